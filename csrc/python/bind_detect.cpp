// Thin bindings for csrc/detect.h: arrays are checked with the GIL held, decoding runs without it.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <string>
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
  return emoedge_bind::as_f32_c(obj, name, "pass the onnxruntime output as is or use .astype(np.float32)");
}

py::dict options_to_dict(const DecodeOptions& o) {
  py::dict d;
  d["min_score"] = o.min_score;
  d["nms_iou"] = o.nms_iou;
  d["max_faces"] = o.max_faces;
  d["box_scale"] = o.box_scale;
  d["transform"] = py::make_tuple(o.sx, o.sy, o.tx, o.ty);
  d["score_clip"] = o.score_clip;
  return d;
}

void set_transform(DecodeOptions& o, const std::vector<double>& t) {
  if (t.size() != 4) throw py::value_error("transform must be (sx, sy, tx, ty)");
  o.sx = t[0]; o.sy = t[1]; o.tx = t[2]; o.ty = t[3];
}

DecodeOptions options_from_dict(const py::dict& d) {
  DecodeOptions o;
  for (auto item : d) {
    const std::string k = py::str(item.first);
    py::handle v = item.second;
    if (k == "min_score") o.min_score = v.cast<float>();
    else if (k == "nms_iou") o.nms_iou = v.cast<float>();
    else if (k == "max_faces") o.max_faces = v.cast<int>();
    else if (k == "box_scale") o.box_scale = v.cast<float>();
    else if (k == "transform") set_transform(o, v.cast<std::vector<double>>());
    else if (k == "score_clip") o.score_clip = v.cast<float>();
    else
      throw py::value_error("unknown DecodeOptions key '" + k + "': valid keys are " +
                            std::string(py::str(py::list(options_to_dict(DecodeOptions{}).attr("keys")()))));
  }
  return o;
}

py::array_t<float> decode_py(py::handle regressors, py::handle scores, py::handle anchors, const DecodeOptions& o) {
  FArr reg = as_f32(regressors, "regressors"), sc = as_f32(scores, "scores"), an = as_f32(anchors, "anchors");
  // regressors [N, K] or [1, N, K]; scores [N], [N, 1] or [1, N, 1]; anchors [N, 2]
  if (reg.ndim() == 3 && reg.shape(0) != 1) throw py::value_error("regressors batch must be 1 (decode one frame at a time)");
  if (reg.ndim() != 2 && reg.ndim() != 3) throw py::value_error("regressors must have shape [N, 16] or [1, N, 16]");
  const py::ssize_t n = reg.shape(reg.ndim() - 2), k = reg.shape(reg.ndim() - 1);
  if (k < 16) throw py::value_error("regressors need >= 16 values per anchor (box + 6 keypoints)");
  if (sc.size() != n) throw py::value_error("scores must have one value per anchor (" + std::to_string(n) + "), got " + std::to_string(sc.size()));
  if (an.ndim() != 2 || an.shape(0) != n || an.shape(1) != 2)
    throw py::value_error("anchors must have shape [" + std::to_string(n) + ", 2]; build them with blazeface_anchors()");
  emoedge::detect::validate(o);  // throws std::invalid_argument -> InvalidInputError
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
  py::class_<DecodeOptions>(m, "DecodeOptions",
      "BlazeFace decoding options (the C++ detect::DecodeOptions): read/write fields, to_dict()/from_dict(), "
      "picklable; validated by blazeface_decode.")
      .def(py::init<>())
      .def_readwrite("min_score", &DecodeOptions::min_score, "keep anchors with sigmoid(score) >= min_score")
      .def_readwrite("nms_iou", &DecodeOptions::nms_iou, "weighted-NMS overlap threshold")
      .def_readwrite("max_faces", &DecodeOptions::max_faces, "at most this many faces (0 = no limit)")
      .def_readwrite("box_scale", &DecodeOptions::box_scale, "regressor units per model-input width")
      .def_property("transform", [](const DecodeOptions& o) { return py::make_tuple(o.sx, o.sy, o.tx, o.ty); },
                    [](DecodeOptions& o, const std::vector<double>& t) { set_transform(o, t); },
                    "(sx, sy, tx, ty): model-input normalised coordinates -> frame pixels")
      .def_readwrite("score_clip", &DecodeOptions::score_clip, "raw logits are clipped to [-clip, clip]")
      .def("validate", [](const DecodeOptions& o) { emoedge::detect::validate(o); })
      .def("to_dict", &options_to_dict)
      .def_static("from_dict", &options_from_dict, py::arg("d"))
      .def("__eq__", [](const DecodeOptions& a, const DecodeOptions& b) { return options_to_dict(a).equal(options_to_dict(b)); })
      .def("__repr__", [](const DecodeOptions& o) { return "DecodeOptions(" + std::string(py::str(options_to_dict(o))) + ")"; })
      .def(py::pickle([](const DecodeOptions& o) { return options_to_dict(o); },
                      [](const py::dict& d) { return options_from_dict(d); }));
  m.def("blazeface_decode", &decode_py, py::arg("regressors"), py::arg("scores"), py::arg("anchors"),
        py::arg("options") = DecodeOptions{},
        "Decode BlazeFace outputs -> float32 [K, 17] rows (x, y, w, h, score, 6 keypoints x/y) in frame pixels, "
        "best first. transform (sx, sy, tx, ty) maps normalised model-input coords to frame pixels.");
}
