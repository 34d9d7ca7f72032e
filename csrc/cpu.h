// Run-time CPU feature detection, so SIMD fast paths are chosen at run time and the
// default build stays portable (x86-64 baseline, aarch64).
#pragma once
#include <string>

namespace emoedge {
bool cpu_has_avx2_fma();
// Space-separated list of the features emoedge cares about, e.g. "sse4.2 avx2 fma" or "neon".
std::string cpu_flags();
}  // namespace emoedge
