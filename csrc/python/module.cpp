// Collects the per-family bindings into emoedge._native. Each bind_*.cpp is thin:
// check arrays with the GIL held, then release it around the kernel call.
#include <pybind11/pybind11.h>

#include "cpu.h"

namespace py = pybind11;

void bind_frame(py::module_& m);
void bind_logmel(py::module_& m);
void bind_detect(py::module_& m);
void bind_fusion(py::module_& m);

#ifndef EMOEDGE_VERSION
#define EMOEDGE_VERSION "dev"
#endif

PYBIND11_MODULE(_native, m) {
  m.doc() = "emoedge native kernels (frame preprocessing, log-mel, detection decode, fusion)";
  m.attr("__version__") = EMOEDGE_VERSION;
  m.def("cpu_flags", &emoedge::cpu_flags, "CPU features seen at run time (space-separated)");
  m.def("simd_enabled", &emoedge::cpu_has_avx2_fma, "True when the AVX2+FMA fast paths are used");
  bind_frame(m);
  bind_logmel(m);
  bind_detect(m);
  bind_fusion(m);
}
