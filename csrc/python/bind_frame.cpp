// Thin binding of the frame kernel: array checks with the GIL held, compute without it.
// The Python façade (emoedge/kernels/frame.py) validates arguments with friendlier messages;
// these checks are the last line of defence so no input can crash the interpreter.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <vector>

#include "bind_util.h"
#include "frame.h"

namespace py = pybind11;
namespace fr = emoedge::frame;

namespace {

fr::Image as_image(const py::array& a) {
  if (a.dtype().kind() != 'u' || a.itemsize() != 1)
    throw py::type_error("image must be uint8, got dtype " + std::string(py::str(a.dtype())) + "; convert with np.clip(img, 0, 255).astype(np.uint8)");
  if (a.ndim() != 2 && a.ndim() != 3)
    throw py::value_error("image must be HxW, HxWx3 or HxWx4, got " + std::to_string(a.ndim()) + " dimensions");
  if (a.ndim() == 3 && a.shape(2) > 4)
    throw py::value_error("image has " + std::to_string(a.shape(2)) + " channels; expected 1, 3 or 4");
  fr::Image im;
  im.data = static_cast<const uint8_t*>(a.data());
  im.height = static_cast<int>(a.shape(0));
  im.width = static_cast<int>(a.shape(1));
  im.channels = a.ndim() == 3 ? static_cast<int>(a.shape(2)) : 1;
  im.row_stride = a.strides(0);
  im.col_stride = a.strides(1);
  im.chan_stride = a.ndim() == 3 ? a.strides(2) : 1;
  if (a.shape(0) > (1 << 24) || a.shape(1) > (1 << 24)) throw py::value_error("image is larger than 16M pixels per side");
  return im;
}

fr::Output as_output(py::array& o) {
  if (o.dtype().kind() != 'f' || o.itemsize() != 4) throw py::type_error("out must be float32");
  if (o.ndim() != 4) throw py::value_error("out must be indexed [N, C, H, W] (4 dimensions)");
  if (!o.writeable()) throw py::value_error("out is read-only; pass a writeable float32 array");
  emoedge_bind::require_aligned_out(o, "out");
  for (int i = 0; i < 4; ++i)
    if (o.shape(i) > (1 << 30)) throw py::value_error("out dimension " + std::to_string(i) + " is too large");
  fr::Output out;
  out.data = static_cast<float*>(o.mutable_data());
  out.n = static_cast<int>(o.shape(0));
  out.channels = static_cast<int>(o.shape(1));
  out.height = static_cast<int>(o.shape(2));
  out.width = static_cast<int>(o.shape(3));
  std::ptrdiff_t* st[4] = {&out.n_stride, &out.c_stride, &out.y_stride, &out.x_stride};
  for (int i = 0; i < 4; ++i) {
    if (o.strides(i) % 4 != 0) throw py::value_error("out strides must be multiples of 4 bytes (aligned float32)");
    *st[i] = o.strides(i) / 4;
  }
  return out;
}

fr::Options make_options(int interp, int color, bool input_rgb, int border, double border_value, bool letterbox,
                         double pad_value, const std::vector<double>& scale, const std::vector<double>& offset) {
  fr::Options opt;
  if (interp < 0 || interp > 1) throw py::value_error("interp must be 0 (linear) or 1 (area)");
  if (color < 0 || color > 2) throw py::value_error("color must be 0 (keep), 1 (swap_rb) or 2 (gray)");
  if (border < 0 || border > 1) throw py::value_error("border must be 0 (constant) or 1 (replicate)");
  if (scale.size() > 4 || offset.size() > 4 || scale.size() != offset.size() || scale.empty())
    throw py::value_error("scale and offset must have the same length, 1..4");
  opt.interp = static_cast<fr::Interp>(interp);
  opt.color = static_cast<fr::Color>(color);
  opt.input_rgb = input_rgb;
  opt.border = static_cast<fr::Border>(border);
  opt.border_value = static_cast<float>(border_value);
  opt.letterbox = letterbox;
  opt.pad_value = static_cast<float>(pad_value);
  for (int c = 0; c < 4; ++c) {
    const size_t i = scale.size() == 1 ? 0 : std::min<size_t>(c, scale.size() - 1);
    opt.scale[c] = static_cast<float>(scale[i]);
    opt.offset[c] = static_cast<float>(offset[i]);
  }
  return opt;
}

}  // namespace

void bind_frame(py::module_& m) {
  m.def(
      "frame_boxes",
      [](const py::array& image, const py::array_t<double, py::array::c_style | py::array::forcecast>& boxes,
         py::array out, int interp, int color, bool input_rgb, int border, double border_value, bool letterbox,
         double pad_value, const std::vector<double>& scale, const std::vector<double>& offset) {
        const fr::Image im = as_image(image);
        const fr::Output o = as_output(out);
        const fr::Options opt =
            make_options(interp, color, input_rgb, border, border_value, letterbox, pad_value, scale, offset);
        if (boxes.ndim() != 2 || boxes.shape(1) != 4) throw py::value_error("boxes must have shape [N, 4] (x, y, w, h)");
        if (boxes.shape(0) > fr::kMaxRegions)
          throw py::value_error(std::to_string(boxes.shape(0)) + " boxes in one call is above the limit of " +
                                std::to_string(fr::kMaxRegions) + "; split the batch");
        const int n = static_cast<int>(boxes.shape(0));
        const py::array bb = emoedge_bind::aligned_or_copy(boxes);
        const double* b = static_cast<const double*>(bb.data());
        py::gil_scoped_release release;
        fr::preprocess_boxes(im, b, n, opt, o);
      },
      py::arg("image"), py::arg("boxes"), py::arg("out"), py::arg("interp"), py::arg("color"), py::arg("input_rgb"),
      py::arg("border"), py::arg("border_value"), py::arg("letterbox"), py::arg("pad_value"), py::arg("scale"),
      py::arg("offset"),
      "Resize boxes (x, y, w, h) of a uint8 image into out[N, C, H, W] (float32, any strides).");
  m.def(
      "frame_affine",
      [](const py::array& image, const py::array_t<double, py::array::c_style | py::array::forcecast>& inverse,
         py::array out, int color, bool input_rgb, int border, double border_value,
         const std::vector<double>& scale, const std::vector<double>& offset) {
        const fr::Image im = as_image(image);
        const fr::Output o = as_output(out);
        const fr::Options opt = make_options(0, color, input_rgb, border, border_value, false, 0.0, scale, offset);
        if (inverse.ndim() != 2 || inverse.shape(1) != 6)
          throw py::value_error("inverse affine matrices must have shape [N, 6] (row-major 2x3, output -> source)");
        if (inverse.shape(0) > fr::kMaxRegions)
          throw py::value_error(std::to_string(inverse.shape(0)) + " affines in one call is above the limit of " +
                                std::to_string(fr::kMaxRegions) + "; split the batch");
        const int n = static_cast<int>(inverse.shape(0));
        const py::array ib = emoedge_bind::aligned_or_copy(inverse);
        const double* mp = static_cast<const double*>(ib.data());
        py::gil_scoped_release release;
        fr::preprocess_affine(im, mp, n, opt, o);
      },
      py::arg("image"), py::arg("inverse"), py::arg("out"), py::arg("color"), py::arg("input_rgb"), py::arg("border"),
      py::arg("border_value"), py::arg("scale"), py::arg("offset"),
      "Warp a uint8 image with N inverse 2x3 affines (output -> source) into out[N, C, H, W].");
  m.def(
      "frame_inner_rect",
      [](double bw, double bh, int out_w, int out_h, bool letterbox) {
        const fr::Rect r = fr::inner_rect(bw, bh, out_w, out_h, letterbox);
        return py::make_tuple(r.x, r.y, r.w, r.h);
      },
      "Output sub-rectangle (x, y, w, h) a bw x bh region is resized into (letterbox keeps aspect ratio).");
}
