// Thin binding of the frame kernel: array checks with the GIL held, compute without it.
// The Python façade (emoedge/kernels/frame.py) validates arguments with friendlier messages;
// these checks are the last line of defence so no input can crash the interpreter.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <string>
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

// ---- frame::Options <-> Python (emoedge._native.FrameOptions). Dict form: enums by name, scale/offset as
// lists of 4 per-output-channel floats (a shorter list is extended with its last value).
using emoedge_bind::enum_from;

fr::Interp interp_from(py::handle v) {
  return enum_from<fr::Interp>(v, "interp", {{"linear", fr::Interp::Linear}, {"area", fr::Interp::Area}});
}
fr::Color color_from(py::handle v) {
  return enum_from<fr::Color>(v, "color", {{"keep", fr::Color::Keep}, {"swap_rb", fr::Color::SwapRB}, {"gray", fr::Color::Gray}});
}
fr::Border border_from(py::handle v) {
  return enum_from<fr::Border>(v, "border", {{"constant", fr::Border::Constant}, {"replicate", fr::Border::Replicate}});
}
const char* name_of(fr::Interp v) { return v == fr::Interp::Area ? "area" : "linear"; }
const char* name_of(fr::Color v) { return v == fr::Color::SwapRB ? "swap_rb" : v == fr::Color::Gray ? "gray" : "keep"; }
const char* name_of(fr::Border v) { return v == fr::Border::Replicate ? "replicate" : "constant"; }

void set_per_channel(float* dst, const std::vector<double>& v, const char* field) {
  if (v.empty() || v.size() > 4)
    throw py::value_error(std::string(field) + " must have 1..4 values (one per output channel), got " + std::to_string(v.size()));
  for (std::size_t c = 0; c < 4; ++c) dst[c] = static_cast<float>(v[std::min(c, v.size() - 1)]);
}
std::vector<double> per_channel(const float* src) { return {src[0], src[1], src[2], src[3]}; }

py::dict options_to_dict(const fr::Options& o) {
  py::dict d;
  d["interp"] = name_of(o.interp);
  d["color"] = name_of(o.color);
  d["input_rgb"] = o.input_rgb;
  d["border"] = name_of(o.border);
  d["border_value"] = o.border_value;
  d["letterbox"] = o.letterbox;
  d["pad_value"] = o.pad_value;
  d["scale"] = per_channel(o.scale);
  d["offset"] = per_channel(o.offset);
  return d;
}

fr::Options options_from_dict(const py::dict& d) {
  fr::Options o;
  for (auto item : d) {
    const std::string k = py::str(item.first);
    py::handle v = item.second;
    if (k == "interp") o.interp = interp_from(v);
    else if (k == "color") o.color = color_from(v);
    else if (k == "input_rgb") o.input_rgb = v.cast<bool>();
    else if (k == "border") o.border = border_from(v);
    else if (k == "border_value") o.border_value = v.cast<float>();
    else if (k == "letterbox") o.letterbox = v.cast<bool>();
    else if (k == "pad_value") o.pad_value = v.cast<float>();
    else if (k == "scale") set_per_channel(o.scale, v.cast<std::vector<double>>(), "scale");
    else if (k == "offset") set_per_channel(o.offset, v.cast<std::vector<double>>(), "offset");
    else
      throw py::value_error("unknown FrameOptions key '" + k + "': valid keys are " +
                            std::string(py::str(py::list(options_to_dict(fr::Options{}).attr("keys")()))));
  }
  return o;
}

}  // namespace

void bind_frame(py::module_& m) {
  py::enum_<fr::Interp>(m, "Interp", "Resize interpolation (cv2.INTER_LINEAR / INTER_AREA)")
      .value("linear", fr::Interp::Linear)
      .value("area", fr::Interp::Area);
  py::enum_<fr::Color>(m, "Color", "Output channels: keep, swap_rb (BGR <-> RGB) or gray")
      .value("keep", fr::Color::Keep)
      .value("swap_rb", fr::Color::SwapRB)
      .value("gray", fr::Color::Gray);
  py::enum_<fr::Border>(m, "Border", "Pixels outside the frame: constant (border_value) or replicate")
      .value("constant", fr::Border::Constant)
      .value("replicate", fr::Border::Replicate);

  py::class_<fr::Options>(m, "FrameOptions",
      "Frame kernel options (the C++ frame::Options): read/write fields, to_dict()/from_dict(), picklable. "
      "scale/offset: 4 per-output-channel floats, out = pixel * scale + offset.")
      .def(py::init<>())
      .def_readwrite("interp", &fr::Options::interp)
      .def_readwrite("color", &fr::Options::color)
      .def_readwrite("input_rgb", &fr::Options::input_rgb, "3/4-channel input is RGB(A) (default BGR(A))")
      .def_readwrite("border", &fr::Options::border)
      .def_readwrite("border_value", &fr::Options::border_value, "pixel value (0..255) outside the frame")
      .def_readwrite("letterbox", &fr::Options::letterbox, "keep the aspect ratio, pad with pad_value")
      .def_readwrite("pad_value", &fr::Options::pad_value, "pixel value (0..255) of the letterbox padding")
      .def_property("scale", [](const fr::Options& o) { return per_channel(o.scale); },
                    [](fr::Options& o, const std::vector<double>& v) { set_per_channel(o.scale, v, "scale"); })
      .def_property("offset", [](const fr::Options& o) { return per_channel(o.offset); },
                    [](fr::Options& o, const std::vector<double>& v) { set_per_channel(o.offset, v, "offset"); })
      .def("to_dict", &options_to_dict)
      .def_static("from_dict", &options_from_dict, py::arg("d"))
      .def("__eq__", [](const fr::Options& a, const fr::Options& b) { return options_to_dict(a).equal(options_to_dict(b)); })
      .def("__repr__", [](const fr::Options& o) { return "FrameOptions(" + std::string(py::str(options_to_dict(o))) + ")"; })
      .def(py::pickle([](const fr::Options& o) { return options_to_dict(o); },
                      [](const py::dict& d) { return options_from_dict(d); }));

  m.def(
      "frame_boxes",
      [](const py::array& image, const py::array_t<double, py::array::c_style | py::array::forcecast>& boxes,
         py::array out, const fr::Options& opt) {
        const fr::Image im = as_image(image);
        const fr::Output o = as_output(out);
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
      py::arg("image"), py::arg("boxes"), py::arg("out"), py::arg("options"),
      "Resize boxes (x, y, w, h) of a uint8 image into out[N, C, H, W] (float32, any strides).");
  m.def(
      "frame_affine",
      [](const py::array& image, const py::array_t<double, py::array::c_style | py::array::forcecast>& inverse,
         py::array out, const fr::Options& opt) {
        const fr::Image im = as_image(image);
        const fr::Output o = as_output(out);
        if (opt.interp != fr::Interp::Linear)
          throw py::value_error("frame_affine supports interp=linear only (cv2.warpAffine has no area mode)");
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
      py::arg("image"), py::arg("inverse"), py::arg("out"), py::arg("options"),
      "Warp a uint8 image with N inverse 2x3 affines (output -> source) into out[N, C, H, W]; "
      "letterbox and pad_value are ignored.");
  m.def(
      "frame_inner_rect",
      [](double bw, double bh, int out_w, int out_h, bool letterbox) {
        const fr::Rect r = fr::inner_rect(bw, bh, out_w, out_h, letterbox);
        return py::make_tuple(r.x, r.y, r.w, r.h);
      },
      "Output sub-rectangle (x, y, w, h) a bw x bh region is resized into (letterbox keeps aspect ratio).");
}
