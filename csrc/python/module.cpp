// Collects the per-family bindings into emoedge._native. Each bind_*.cpp is thin:
// check arrays with the GIL held, then release it around the kernel call.
#include <pybind11/pybind11.h>

#include <exception>
#include <stdexcept>

#include "cpu.h"

namespace py = pybind11;

void bind_frame(py::module_& m);
void bind_logmel(py::module_& m);
void bind_detect(py::module_& m);
void bind_fusion(py::module_& m);
void bind_roi(py::module_& m);

#ifndef EMOEDGE_VERSION
#define EMOEDGE_VERSION "dev"
#endif

namespace {
// emoedge.errors.InvalidInputError / InvalidTypeError; owned references, kept for the process lifetime
// (the module is never unloaded).
PyObject* g_invalid_input = nullptr;
PyObject* g_invalid_type = nullptr;
}  // namespace

PYBIND11_MODULE(_native, m) {
  m.doc() = "emoedge native kernels (frame preprocessing, log-mel, detection decode, fusion, ROI template matching)";
  // Errors map to Python types in one place: the bindings' argument checks (py::value_error /
  // py::type_error) and the kernels' std::invalid_argument arrive as emoedge.errors.InvalidInputError
  // (a ValueError) and InvalidTypeError (a TypeError). Local: other pybind11 modules keep their mapping.
  {
    py::module_ errors = py::module_::import("emoedge.errors");
    g_invalid_input = py::object(errors.attr("InvalidInputError")).release().ptr();
    g_invalid_type = py::object(errors.attr("InvalidTypeError")).release().ptr();
  }
  py::register_local_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const py::type_error& e) {
      py::set_error(g_invalid_type, e.what());
    } catch (const py::cast_error& e) {  // e.g. LogMelConfig.from_dict({"n_fft": "512"})
      py::set_error(g_invalid_type, e.what());
    } catch (const py::value_error& e) {
      py::set_error(g_invalid_input, e.what());
    } catch (const std::invalid_argument& e) {
      py::set_error(g_invalid_input, e.what());
    }
  });
  m.attr("__version__") = EMOEDGE_VERSION;
  m.def("cpu_flags", &emoedge::cpu_flags, "CPU features seen at run time (space-separated)");
  m.def("simd_enabled", &emoedge::cpu_has_avx2_fma, "True when the AVX2+FMA fast paths are used");
  bind_frame(m);
  bind_logmel(m);
  bind_detect(m);
  bind_fusion(m);
  bind_roi(m);
}
