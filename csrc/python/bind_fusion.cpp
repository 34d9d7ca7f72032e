// Thin bindings for the fusion kernel (csrc/fusion.h): arrays are checked with the GIL held
// (dtype float32, C-contiguous, shapes), then the kernel runs with the GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "bind_util.h"
#include "fusion.h"

namespace py = pybind11;

namespace {

void require_f32_c(const py::array& a, const char* name, py::ssize_t ndim) {
  if (!a.dtype().is(py::dtype::of<float>()))
    throw py::value_error(std::string(name) + " must be float32 (got " + std::string(py::str(a.dtype())) +
                          "); convert with np.asarray(x, dtype=np.float32)");
  if (a.ndim() != ndim)
    throw py::value_error(std::string(name) + " must be " + std::to_string(ndim) + "-D (got " +
                          std::to_string(a.ndim()) + "-D)");
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + " must be C-contiguous; pass np.ascontiguousarray(x)");
}

void require_writable(const py::array& a, const char* name) {
  if (!a.writeable()) throw py::value_error(std::string(name) + " must be writable (it is updated in place)");
}

// Optional mask [m, k] (uint8 or bool, C-contiguous); returns nullptr for None.
const std::uint8_t* check_mask(const py::object& mask, py::array& keep, std::int64_t mm, std::int64_t k) {
  if (mask.is_none()) return nullptr;
  if (!py::isinstance<py::array>(mask))
    throw py::value_error("mask must be a numpy array (uint8 or bool [M, K]) or None");
  keep = py::reinterpret_borrow<py::array>(mask);
  if (!(keep.dtype().is(py::dtype::of<std::uint8_t>()) || keep.dtype().is(py::dtype::of<bool>())))
    throw py::value_error("mask must be uint8 or bool (got " + std::string(py::str(keep.dtype())) +
                          "); convert with np.asarray(m, dtype=np.uint8)");
  if (keep.ndim() != 2 || keep.shape(0) != mm || keep.shape(1) != k)
    throw py::value_error("mask must have the shape of log_probs [" + std::to_string(mm) + ", " + std::to_string(k) +
                          "] (1 = the modality models that class)");
  if (!(keep.flags() & py::array::c_style))
    throw py::value_error("mask must be C-contiguous; pass np.ascontiguousarray(mask)");
  return static_cast<const std::uint8_t*>(keep.data());
}

}  // namespace

void bind_fusion(py::module_& m) {
  m.def(
      "fusion_step",
      [](py::array log_probs, py::array weights, py::array state, bool has_state, double alpha,
         py::object out, py::object mask) -> py::array {
        require_f32_c(log_probs, "log_probs", 2);
        require_f32_c(weights, "weights", 1);
        require_f32_c(state, "state", 1);
        require_writable(state, "state");
        emoedge_bind::require_aligned_out(state, "state");
        log_probs = emoedge_bind::aligned_or_copy(log_probs);
        weights = emoedge_bind::aligned_or_copy(weights);
        const std::int64_t mm = log_probs.shape(0), k = log_probs.shape(1);
        if (weights.shape(0) != mm)
          throw py::value_error("weights has " + std::to_string(weights.shape(0)) + " entries but log_probs has " +
                                std::to_string(mm) + " rows (one weight per modality)");
        if (state.shape(0) != k)
          throw py::value_error("state has " + std::to_string(state.shape(0)) + " entries but log_probs has " +
                                std::to_string(k) + " columns (one per label)");
        py::array res;
        if (out.is_none()) {
          res = py::array_t<float>(k);
        } else {
          res = py::reinterpret_borrow<py::array>(out);
          require_f32_c(res, "out", 1);
          require_writable(res, "out");
          emoedge_bind::require_aligned_out(res, "out");
          if (res.shape(0) != k)
            throw py::value_error("out has " + std::to_string(res.shape(0)) + " entries; it needs " + std::to_string(k));
        }
        py::array mask_arr;
        const std::uint8_t* mk = check_mask(mask, mask_arr, mm, k);
        const float* lp = static_cast<const float*>(log_probs.data());
        const float* w = static_cast<const float*>(weights.data());
        float* st = static_cast<float*>(state.mutable_data());
        float* o = static_cast<float*>(res.mutable_data());
        {
          py::gil_scoped_release release;
          emoedge::fusion_step(lp, w, mm, k, st, has_state, alpha, o, mk);
        }
        return res;
      },
      py::arg("log_probs"), py::arg("weights"), py::arg("state"), py::arg("has_state"), py::arg("alpha"),
      py::arg("out") = py::none(), py::arg("mask") = py::none(),
      "One fusion step: z = log_softmax(sum_i weights[i] * l_i) (uniform when all weights are 0), where\n"
      "l_i[j] = log_probs[i, j] for classes row i models (mask[i, j] != 0; all when mask is None) and\n"
      "l_i[j] = max over row i's modelled classes otherwise (no evidence: cannot lower class j);\n"
      "state = has_state ? (1 - alpha) * state + alpha * z : z (renormalised, updated in place);\n"
      "returns softmax(state) as float32 [K] (written into `out` when given).\n"
      "log_probs: float32 [M, K] finite; weights: float32 [M] >= 0; state: float32 [K]; alpha in [0, 1];\n"
      "mask: None or uint8/bool [M, K].");
  m.def(
      "fusion_pool",
      [](py::array log_probs, py::array weights, py::object mask) -> py::array {
        require_f32_c(log_probs, "log_probs", 2);
        require_f32_c(weights, "weights", 1);
        log_probs = emoedge_bind::aligned_or_copy(log_probs);
        weights = emoedge_bind::aligned_or_copy(weights);
        const std::int64_t mm = log_probs.shape(0), k = log_probs.shape(1);
        if (weights.shape(0) != mm)
          throw py::value_error("weights has " + std::to_string(weights.shape(0)) + " entries but log_probs has " +
                                std::to_string(mm) + " rows (one weight per modality)");
        if (k < 1 || k > 4096)
          throw py::value_error("log_probs has " + std::to_string(k) + " columns; the number of labels must be in [1, 4096]");
        py::array mask_arr;
        const std::uint8_t* mk = check_mask(mask, mask_arr, mm, k);
        py::array_t<float> res(k);
        const float* lp = static_cast<const float*>(log_probs.data());
        const float* w = static_cast<const float*>(weights.data());
        float* o = res.mutable_data();
        {
          py::gil_scoped_release release;
          emoedge::fusion_pool(lp, w, mm, k, o, mk);
        }
        return res;
      },
      py::arg("log_probs"), py::arg("weights"), py::arg("mask") = py::none(),
      "Weighted log-linear pooling only: float32 [K] log_softmax(sum_i weights[i] * l_i) (l_i as in fusion_step).");
}
