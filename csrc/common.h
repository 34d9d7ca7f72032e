// Shared helpers for emoedge's plain C++17 kernels (no Python here).
// Errors: kernels throw std::invalid_argument for bad input (pybind11 maps it to ValueError)
// and std::runtime_error for internal failures (RuntimeError). Checks are never compiled out.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace emoedge {

template <typename... Args>
[[noreturn]] inline void fail(Args&&... args) {
  std::ostringstream os;
  (os << ... << args);
  throw std::invalid_argument(os.str());
}

}  // namespace emoedge
