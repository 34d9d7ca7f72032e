#include "cpu.h"

namespace emoedge {

bool cpu_has_avx2_fma() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
#else
  return false;
#endif
}

std::string cpu_flags() {
  std::string s;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  const char* names[] = {"sse2", "sse4.2", "avx", "avx2", "fma", "avx512f"};
  for (const char* n : names) {
    bool on = false;
    if (std::string(n) == "sse2") on = __builtin_cpu_supports("sse2");
    else if (std::string(n) == "sse4.2") on = __builtin_cpu_supports("sse4.2");
    else if (std::string(n) == "avx") on = __builtin_cpu_supports("avx");
    else if (std::string(n) == "avx2") on = __builtin_cpu_supports("avx2");
    else if (std::string(n) == "fma") on = __builtin_cpu_supports("fma");
    else if (std::string(n) == "avx512f") on = __builtin_cpu_supports("avx512f");
    if (on) { if (!s.empty()) s += ' '; s += n; }
  }
#elif defined(__aarch64__)
  s = "neon";
#endif
  return s;
}

}  // namespace emoedge
