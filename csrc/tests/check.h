// Minimal test harness for the C++ kernel tests (each test_*.cpp is one ctest executable).
#pragma once
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

namespace check {
struct Case { const char* name; std::function<void()> fn; };
inline std::vector<Case>& cases() { static std::vector<Case> c; return c; }
inline int& failures() { static int f = 0; return f; }
struct Register { Register(const char* n, std::function<void()> f) { cases().push_back({n, std::move(f)}); } };
inline int run_all() {
  int failed_cases = 0;
  for (auto& c : cases()) {
    int before = failures();
    try { c.fn(); } catch (const std::exception& e) { std::printf("  exception: %s\n", e.what()); ++failures(); }
    bool ok = failures() == before;
    std::printf("[%s] %s\n", ok ? " OK " : "FAIL", c.name);
    if (!ok) ++failed_cases;
  }
  std::printf("%zu passed, %d failed\n", cases().size() - failed_cases, failed_cases);
  return failed_cases ? 1 : 0;
}
}  // namespace check

#define CHECK_CAT2(a, b) a##b
#define CHECK_CAT(a, b) CHECK_CAT2(a, b)
#define TEST_CASE(name) \
  static void CHECK_CAT(test_fn_, __LINE__)(); \
  static check::Register CHECK_CAT(test_reg_, __LINE__)(name, CHECK_CAT(test_fn_, __LINE__)); \
  static void CHECK_CAT(test_fn_, __LINE__)()
#define CHECK(cond) do { if (!(cond)) { std::printf("  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); ++check::failures(); } } while (0)
#define CHECK_NEAR(a, b, tol) do { double _a = (a), _b = (b); if (!(std::fabs(_a - _b) <= (tol))) { std::printf("  %s:%d: |%g - %g| > %g\n", __FILE__, __LINE__, _a, _b, (double)(tol)); ++check::failures(); } } while (0)
#define CHECK_THROWS(expr) do { bool _t = false; try { expr; } catch (const std::exception&) { _t = true; } if (!_t) { std::printf("  %s:%d: expected exception from %s\n", __FILE__, __LINE__, #expr); ++check::failures(); } } while (0)
#define TEST_MAIN() int main() { return check::run_all(); }
