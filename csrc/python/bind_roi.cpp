// Thin bindings for csrc/roi.h: arrays are checked with the GIL held, matching runs without it.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "bind_util.h"
#include "roi.h"

namespace py = pybind11;

namespace {

using FArr = py::array_t<float, py::array::c_style>;

FArr as_f32(const py::handle& obj, const char* name) {
  return emoedge_bind::as_f32_c(obj, name, "use .astype(np.float32)");
}

// windows float32 [K, n_scales, S, S], templates float32 [K, T, T] -> float64 [K, 4]: (x, y, value, scale)
py::array_t<double> roi_match_py(py::handle windows, py::handle templates) {
  FArr w = as_f32(windows, "windows"), tp = as_f32(templates, "templates");
  if (w.ndim() != 4 || w.shape(2) != w.shape(3))
    throw py::value_error("windows must have shape [K, n_scales, S, S] (square windows), got ndim " +
                          std::to_string(w.ndim()));
  if (tp.ndim() != 3 || tp.shape(1) != tp.shape(2))
    throw py::value_error("templates must have shape [K, T, T] (square templates)");
  if (tp.shape(0) != w.shape(0))
    throw py::value_error("templates (" + std::to_string(tp.shape(0)) + ") and windows (" + std::to_string(w.shape(0)) +
                          ") must have the same K");
  if (w.shape(1) < 1 || w.shape(1) > 64) throw py::value_error("n_scales must be in 1..64, got " + std::to_string(w.shape(1)));
  if (w.shape(0) > emoedge::roi::kMaxWindows || w.shape(2) > emoedge::roi::kMaxSide || tp.shape(1) > emoedge::roi::kMaxSide)
    throw py::value_error("windows/templates too large: at most " + std::to_string(emoedge::roi::kMaxWindows) +
                          " tracks and sides of " + std::to_string(emoedge::roi::kMaxSide) + " px");
  const int k = static_cast<int>(w.shape(0)), ns = static_cast<int>(w.shape(1));
  const int s = static_cast<int>(w.shape(2)), t = static_cast<int>(tp.shape(1));
  emoedge::roi::validate(k * ns, s, t);  // std::invalid_argument -> InvalidInputError
  py::array_t<double> out({static_cast<py::ssize_t>(k), static_cast<py::ssize_t>(4)});
  double* o = out.mutable_data();
  const float* wp = w.data();
  const float* tpp = tp.data();
  {
    py::gil_scoped_release nogil;
    std::vector<float> scratch(static_cast<size_t>(s - t + 1) * (s - t + 1));
    for (int i = 0; i < k; ++i) {
      const auto p = emoedge::roi::best_peak(wp + static_cast<size_t>(i) * ns * s * s, ns, s,
                                             tpp + static_cast<size_t>(i) * t * t, t, scratch.data());
      o[4 * i] = p.x;
      o[4 * i + 1] = p.y;
      o[4 * i + 2] = p.value;
      o[4 * i + 3] = p.scale;
    }
  }
  return out;
}

}  // namespace

void bind_roi(py::module_& m) {
  m.def("roi_match", &roi_match_py, py::arg("windows"), py::arg("templates"),
        "Template re-localisation: for each of K tracks, the normalised cross-correlation (cv2 TM_CCOEFF_NORMED) "
        "of templates[k] (float32 [T, T]) over windows[k] (float32 [n_scales, S, S]); returns float64 [K, 4]: "
        "the best peak's sub-pixel (x, y) of the template's top-left corner, its value and its scale index.");
}
