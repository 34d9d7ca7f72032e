#include <cmath>
#include <cstdint>
#include <vector>

#include "check.h"
#include "roi.h"

namespace {
// deterministic smooth-ish test image (no <random>: same values on every platform)
std::vector<float> image(int s, uint32_t seed) {
  std::vector<float> v(static_cast<size_t>(s) * s);
  uint32_t x = seed;
  for (auto& p : v) {
    x = x * 1664525u + 1013904223u;
    p = static_cast<float>((x >> 8) % 256);
  }
  return v;
}
std::vector<float> cut(const std::vector<float>& img, int s, int x0, int y0, int t) {
  std::vector<float> out(static_cast<size_t>(t) * t);
  for (int y = 0; y < t; ++y)
    for (int x = 0; x < t; ++x) out[static_cast<size_t>(y) * t + x] = img[static_cast<size_t>(y0 + y) * s + x0 + x];
  return out;
}
}  // namespace

TEST_CASE("a template cut from the window is found where it was cut, correlation 1") {
  const int s = 28, t = 16;
  auto win = image(s, 7);
  auto tpl = cut(win, s, 5, 9, t);
  std::vector<float> map(static_cast<size_t>(s - t + 1) * (s - t + 1));
  emoedge::roi::match_ncc(win.data(), s, tpl.data(), t, map.data());
  CHECK_NEAR(map[9 * (s - t + 1) + 5], 1.0, 1e-5);
  for (float v : map) CHECK(v <= 1.0f + 1e-5f && v >= -1.0f - 1e-5f);
  auto p = emoedge::roi::best_peak(win.data(), 1, s, tpl.data(), t, map.data());
  CHECK_NEAR(p.x, 5.0, 0.5);
  CHECK_NEAR(p.y, 9.0, 0.5);
  CHECK_NEAR(p.value, 1.0, 1e-5);
  CHECK(p.scale == 0);
}

TEST_CASE("the best of several windows (scales) wins; brightness and contrast do not matter") {
  const int s = 22, t = 16;
  std::vector<float> wins;
  auto a = image(s, 1), b = image(s, 2), c = image(s, 3);
  auto tpl = cut(b, s, 3, 2, t);
  for (auto& v : tpl) v = 0.5f * v + 40.f;  // an affine change of grey levels: NCC is invariant
  wins.insert(wins.end(), a.begin(), a.end());
  wins.insert(wins.end(), b.begin(), b.end());
  wins.insert(wins.end(), c.begin(), c.end());
  std::vector<float> scratch(static_cast<size_t>(s - t + 1) * (s - t + 1));
  auto p = emoedge::roi::best_peak(wins.data(), 3, s, tpl.data(), t, scratch.data());
  CHECK(p.scale == 1);
  CHECK_NEAR(p.value, 1.0, 1e-5);
  CHECK_NEAR(p.x, 3.0, 0.5);
  CHECK_NEAR(p.y, 2.0, 0.5);
}

TEST_CASE("flat window or template: correlation 0, finite") {
  const int s = 20, t = 8;
  std::vector<float> flat(static_cast<size_t>(s) * s, 9.f);
  auto tpl = cut(image(s, 4), s, 0, 0, t);
  std::vector<float> map(static_cast<size_t>(s - t + 1) * (s - t + 1));
  emoedge::roi::match_ncc(flat.data(), s, tpl.data(), t, map.data());
  for (float v : map) CHECK(v == 0.0f);
  std::vector<float> ftpl(static_cast<size_t>(t) * t, 3.f);
  auto win = image(s, 5);
  emoedge::roi::match_ncc(win.data(), s, ftpl.data(), t, map.data());
  for (float v : map) CHECK(v == 0.0f);
}

TEST_CASE("validate rejects bad sizes") {
  CHECK_THROWS(emoedge::roi::validate(1, 10, 0));
  CHECK_THROWS(emoedge::roi::validate(1, 10, 11));
  CHECK_THROWS(emoedge::roi::validate(1, emoedge::roi::kMaxSide + 1, 16));
  CHECK_THROWS(emoedge::roi::validate(-1, 22, 16));
  emoedge::roi::validate(0, 22, 16);
}

TEST_MAIN()
