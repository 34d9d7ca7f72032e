// Thin bindings for csrc/detect.h: arrays are checked with the GIL held, decoding runs without it.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <stdexcept>
#include <vector>

#include "bind_util.h"
#include "detect.h"

namespace py = pybind11;
using emoedge::detect::DecodeOptions;

namespace {

using FArr = py::array_t<float, py::array::c_style>;

// Accepts float32 C-contiguous arrays only (no silent copies of other dtypes).
FArr as_f32(const py::handle& obj, const char* name) {
  if (!py::isinstance<py::array>(obj))
    throw py::value_error(std::string(name) + " must be a numpy float32 array, got " +
                          std::string(py::str(py::type::handle_of(obj).attr("__name__"))));
  py::array a = py::reinterpret_borrow<py::array>(obj);
  if (!a.dtype().is(py::dtype::of<float>()))
    throw py::value_error(std::string(name) + " must be float32 (got " + std::string(py::str(a.dtype())) +
                          "); pass the onnxruntime output as is or use .astype(np.float32)");
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + " must be C-contiguous; use np.ascontiguousarray()");
  return py::reinterpret_borrow<FArr>(emoedge_bind::aligned_or_copy(a));
}

py::array_t<float> decode_py(py::handle regressors, py::handle scores, py::handle anchors, float min_score,
                             float nms_iou, int max_faces, float box_scale, py::tuple transform, float score_clip) {
  FArr reg = as_f32(regressors, "regressors"), sc = as_f32(scores, "scores"), an = as_f32(anchors, "anchors");
  // regressors [N, K] or [1, N, K]; scores [N], [N, 1] or [1, N, 1]; anchors [N, 2]
  if (reg.ndim() == 3 && reg.shape(0) != 1) throw py::value_error("regressors batch must be 1 (decode one frame at a time)");
  if (reg.ndim() != 2 && reg.ndim() != 3) throw py::value_error("regressors must have shape [N, 16] or [1, N, 16]");
  const py::ssize_t n = reg.shape(reg.ndim() - 2), k = reg.shape(reg.ndim() - 1);
  if (k < 16) throw py::value_error("regressors need >= 16 values per anchor (box + 6 keypoints)");
  if (sc.size() != n) throw py::value_error("scores must have one value per anchor (" + std::to_string(n) + "), got " + std::to_string(sc.size()));
  if (an.ndim() != 2 || an.shape(0) != n || an.shape(1) != 2)
    throw py::value_error("anchors must have shape [" + std::to_string(n) + ", 2]; build them with blazeface_anchors()");
  if (transform.size() != 4) throw py::value_error("transform must be (sx, sy, tx, ty)");
  DecodeOptions o;
  o.min_score = min_score; o.nms_iou = nms_iou; o.max_faces = max_faces; o.box_scale = box_scale; o.score_clip = score_clip;
  o.sx = transform[0].cast<double>(); o.sy = transform[1].cast<double>();
  o.tx = transform[2].cast<double>(); o.ty = transform[3].cast<double>();
  emoedge::detect::validate(o);  // throws std::invalid_argument -> ValueError
  std::vector<float> rows;
  {
    py::gil_scoped_release nogil;
    rows = emoedge::detect::decode(reg.data(), static_cast<int>(k), sc.data(), an.data(), static_cast<int>(n), o);
  }
  const py::ssize_t m = static_cast<py::ssize_t>(rows.size() / emoedge::detect::kRowSize);
  py::array_t<float> out({m, static_cast<py::ssize_t>(emoedge::detect::kRowSize)});
  if (m) std::memcpy(out.mutable_data(), rows.data(), rows.size() * sizeof(float));
  return out;
}

py::array_t<float> anchors_py(int input_size, std::vector<int> strides, std::vector<int> per_cell) {
  if (strides.size() != per_cell.size()) throw py::value_error("strides and per_cell must have the same length");
  std::vector<float> a = emoedge::detect::make_anchors(input_size, strides.data(), per_cell.data(), static_cast<int>(strides.size()));
  py::array_t<float> out({static_cast<py::ssize_t>(a.size() / 2), static_cast<py::ssize_t>(2)});
  std::memcpy(out.mutable_data(), a.data(), a.size() * sizeof(float));
  return out;
}

}  // namespace

void bind_detect(py::module_& m) {
  m.def("blazeface_anchors", &anchors_py, py::arg("input_size"), py::arg("strides"), py::arg("per_cell"),
        "Anchor centres float32 [N, 2] (x, y in [0, 1]) for a BlazeFace model.");
  m.def("blazeface_decode", &decode_py, py::arg("regressors"), py::arg("scores"), py::arg("anchors"),
        py::arg("min_score") = 0.5f, py::arg("nms_iou") = 0.3f, py::arg("max_faces") = 0,
        py::arg("box_scale") = 128.f, py::arg("transform") = py::make_tuple(1.0, 1.0, 0.0, 0.0),
        py::arg("score_clip") = 100.f,
        "Decode BlazeFace outputs -> float32 [K, 17] rows (x, y, w, h, score, 6 keypoints x/y) in frame pixels, "
        "best first. transform (sx, sy, tx, ty) maps normalised model-input coords to frame pixels.");
}
