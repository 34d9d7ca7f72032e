// Helpers shared by the bind_*.cpp files: failed numpy conversions, misaligned views, enum options.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

namespace emoedge_bind {

namespace py = pybind11;

// array_t<T>::ensure() returns a null handle and *clears* the Python error (e.g. the MemoryError of a
// copy of a huge broadcast view) when the conversion fails; using that handle crashed. The converting
// constructor raises the error instead.
template <typename T, int Flags>
py::array convert(const py::array& a) {
  return py::array_t<T, Flags>(py::reinterpret_borrow<py::object>(a));
}

inline bool aligned(const py::array& a) {
  return reinterpret_cast<std::uintptr_t>(a.data()) % static_cast<std::uintptr_t>(a.itemsize()) == 0;
}

// A C-contiguous array whose data pointer is misaligned for its element type (a view at an odd byte
// offset of a buffer: numpy allows it, C++ loads from it are undefined) -> an aligned copy; else `a`.
inline py::array aligned_or_copy(py::array a) {
  if (aligned(a)) return a;
  py::array c(a.dtype(), std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim()));
  std::memcpy(c.mutable_data(), a.data(), static_cast<std::size_t>(a.nbytes()));
  return c;
}

// A float32 C-contiguous input array, never silently converted from another dtype or layout (a misaligned
// view becomes an aligned copy). Not an array: TypeError (InvalidTypeError, also a ValueError); wrong dtype or
// layout: ValueError naming the fix; `dtype_fix` is how to get float32 (e.g. "use .astype(np.float32)").
inline py::array_t<float, py::array::c_style> as_f32_c(const py::handle& obj, const char* name, const char* dtype_fix) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(name) + " must be a numpy float32 array, got " +
                         std::string(py::str(py::type::handle_of(obj).attr("__name__"))));
  py::array a = py::reinterpret_borrow<py::array>(obj);
  if (!a.dtype().is(py::dtype::of<float>()))
    throw py::value_error(std::string(name) + " must be float32 (got " + std::string(py::str(a.dtype())) + "); " +
                          dtype_fix);
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + " must be C-contiguous; use np.ascontiguousarray()");
  return py::reinterpret_borrow<py::array_t<float, py::array::c_style>>(aligned_or_copy(a));
}

// Outputs written in place cannot be copied: reject a misaligned one with the fix.
inline void require_aligned_out(const py::array& a, const char* name) {
  if (!aligned(a))
    throw py::value_error(std::string(name) + " is not aligned to " + std::to_string(a.itemsize()) +
                          " bytes (a view at an odd byte offset); allocate it with np.empty(...)");
}

// Between slices of a long native loop (GIL held): raises KeyboardInterrupt etc. when a signal is pending.
inline void check_signals() {
  if (PyErr_CheckSignals() != 0) throw py::error_already_set();
}

// An enum option set from a Python value: the bound enum itself, or its name as a string (`names` maps
// each accepted name to its value). Anything else raises ValueError naming the field and the valid names.
template <typename E>
E enum_from(py::handle v, const char* field, std::initializer_list<std::pair<const char*, E>> names) {
  if (py::isinstance<E>(v)) return v.cast<E>();
  if (py::isinstance<py::str>(v)) {
    const std::string s = v.cast<std::string>();
    for (const auto& kv : names)
      if (s == kv.first) return kv.second;
  }
  std::string valid;
  for (const auto& kv : names) valid += std::string(valid.empty() ? "'" : ", '") + kv.first + "'";
  throw py::value_error(std::string(field) + "=" + std::string(py::str(py::repr(v))) + " is invalid: use one of " + valid);
}

}  // namespace emoedge_bind
