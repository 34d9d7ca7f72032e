#include <cmath>
#include <limits>
#include <vector>

#include "check.h"
#include "fusion.h"

namespace {
double sum(const std::vector<float>& v) { double s = 0; for (float x : v) s += x; return s; }
}  // namespace

TEST_CASE("single modality, weight 1, no state: output equals the input distribution") {
  const std::vector<float> p = {0.1f, 0.2f, 0.3f, 0.4f};
  std::vector<float> lp(4), st(4), out(4);
  for (int j = 0; j < 4; ++j) lp[j] = std::log(p[j]);
  const float w = 1.f;
  emoedge::fusion_step(lp.data(), &w, 1, 4, st.data(), false, 0.0, out.data());
  for (int j = 0; j < 4; ++j) CHECK_NEAR(out[j], p[j], 1e-6);
  CHECK_NEAR(sum(out), 1.0, 1e-6);
}

TEST_CASE("two modalities: log-linear pooling equals the normalised weighted geometric mean") {
  const std::vector<float> a = {0.7f, 0.2f, 0.1f}, b = {0.2f, 0.5f, 0.3f};
  std::vector<float> lp(6), st(3), out(3);
  for (int j = 0; j < 3; ++j) { lp[j] = std::log(a[j]); lp[3 + j] = std::log(b[j]); }
  const float w[2] = {1.0f, 0.5f};
  emoedge::fusion_step(lp.data(), w, 2, 3, st.data(), false, 0.0, out.data());
  double ref[3], s = 0;
  for (int j = 0; j < 3; ++j) { ref[j] = std::pow(a[j], 1.0) * std::pow(b[j], 0.5); s += ref[j]; }
  for (int j = 0; j < 3; ++j) CHECK_NEAR(out[j], ref[j] / s, 1e-6);
}

TEST_CASE("no evidence (m = 0 or all weights 0) gives the uniform distribution") {
  std::vector<float> st(5), out(5);
  emoedge::fusion_step(nullptr, nullptr, 0, 5, st.data(), false, 0.0, out.data());
  for (float v : out) CHECK_NEAR(v, 0.2, 1e-7);
  const std::vector<float> lp = {-1.f, -2.f, -3.f, -4.f, -5.f};
  const float w = 0.f;
  emoedge::fusion_step(lp.data(), &w, 1, 5, st.data(), false, 0.0, out.data());
  for (float v : out) CHECK_NEAR(v, 0.2, 1e-7);
}

TEST_CASE("smoothing: alpha 1 ignores the state, alpha 0 keeps it, in between mixes in log space") {
  const std::vector<float> a = {0.8f, 0.1f, 0.1f}, b = {0.1f, 0.1f, 0.8f};
  std::vector<float> la(3), lb(3), st(3), out(3);
  for (int j = 0; j < 3; ++j) { la[j] = std::log(a[j]); lb[j] = std::log(b[j]); }
  const float w = 1.f;
  emoedge::fusion_step(la.data(), &w, 1, 3, st.data(), false, 0.0, out.data());
  std::vector<float> st0 = st;
  emoedge::fusion_step(lb.data(), &w, 1, 3, st.data(), true, 1.0, out.data());
  for (int j = 0; j < 3; ++j) CHECK_NEAR(out[j], b[j], 1e-6);
  st = st0;
  emoedge::fusion_step(lb.data(), &w, 1, 3, st.data(), true, 0.0, out.data());
  for (int j = 0; j < 3; ++j) CHECK_NEAR(out[j], a[j], 1e-6);
  st = st0;
  emoedge::fusion_step(lb.data(), &w, 1, 3, st.data(), true, 0.25, out.data());
  double ref[3], s = 0;
  for (int j = 0; j < 3; ++j) { ref[j] = std::pow(a[j], 0.75) * std::pow(b[j], 0.25); s += ref[j]; }
  for (int j = 0; j < 3; ++j) CHECK_NEAR(out[j], ref[j] / s, 1e-6);
  double ls = 0;
  for (float v : st) ls += std::exp(static_cast<double>(v));
  CHECK_NEAR(ls, 1.0, 1e-6);  // the state stays a normalised log-distribution
}

TEST_CASE("extreme but finite inputs stay finite and sum to 1") {
  const float big = -1e30f;
  const std::vector<float> lp = {0.f, big, big, 0.f, 0.f, big};
  const float w[2] = {1e30f, 1e30f};
  std::vector<float> st(3), out(3);
  emoedge::fusion_step(lp.data(), w, 2, 3, st.data(), false, 0.0, out.data());
  for (float v : out) CHECK(std::isfinite(v));
  CHECK_NEAR(sum(out), 1.0, 1e-6);
  CHECK_NEAR(out[0], 1.0, 1e-6);  // label 0 has log-prob 0 in both rows
  CHECK_NEAR(out[1], 0.0, 1e-6);
  for (float v : st) CHECK(std::isfinite(v));
  // smoothing from an extreme state recovers finite values
  const std::vector<float> flat = {-1.f, -1.f, -1.f};
  const float one = 1.f;
  emoedge::fusion_step(flat.data(), &one, 1, 3, st.data(), true, 0.5, out.data());
  for (float v : out) CHECK(std::isfinite(v));
  CHECK_NEAR(sum(out), 1.0, 1e-6);
}

TEST_CASE("bad input throws") {
  std::vector<float> lp = {0.f, 0.f}, st(2), out(2);
  float w = 1.f;
  CHECK_THROWS(emoedge::fusion_step(lp.data(), &w, 1, 0, st.data(), false, 0.0, out.data()));
  CHECK_THROWS(emoedge::fusion_step(lp.data(), &w, -1, 2, st.data(), false, 0.0, out.data()));
  float wneg = -0.5f;
  CHECK_THROWS(emoedge::fusion_step(lp.data(), &wneg, 1, 2, st.data(), false, 0.0, out.data()));
  float wnan = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS(emoedge::fusion_step(lp.data(), &wnan, 1, 2, st.data(), false, 0.0, out.data()));
  lp[1] = -std::numeric_limits<float>::infinity();
  CHECK_THROWS(emoedge::fusion_step(lp.data(), &w, 1, 2, st.data(), false, 0.0, out.data()));
  lp[1] = 0.f;
  CHECK_THROWS(emoedge::fusion_step(lp.data(), &w, 1, 2, st.data(), true, 1.5, out.data()));
  st[0] = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS(emoedge::fusion_step(lp.data(), &w, 1, 2, st.data(), true, 0.5, out.data()));
  CHECK_THROWS(emoedge::fusion_pool(lp.data(), &w, 1, 2, nullptr));
}

TEST_CASE("fusion_pool returns a normalised log-distribution; large k uses the heap path") {
  const int k = 40;
  std::vector<float> lp(2 * k), st(k), out(k), lo(k);
  for (int j = 0; j < k; ++j) { lp[j] = -0.1f * j; lp[k + j] = -0.05f * (k - j); }
  const float w[2] = {0.7f, 1.3f};
  emoedge::fusion_pool(lp.data(), w, 2, k, lo.data());
  double s = 0;
  for (float v : lo) s += std::exp(static_cast<double>(v));
  CHECK_NEAR(s, 1.0, 1e-5);
  emoedge::fusion_step(lp.data(), w, 2, k, st.data(), false, 0.0, out.data());
  for (int j = 0; j < k; ++j) CHECK_NEAR(out[j], std::exp(static_cast<double>(lo[j])), 1e-6);
  CHECK_NEAR(sum(out), 1.0, 1e-5);
}

TEST_CASE("fusion_pool output stays finite for a huge weight (1e30 gave -inf)") {
  const float lp[3] = {-0.1f, -2.0f, -5.0f};
  float w = 1e30f, out[3];
  emoedge::fusion_pool(lp, &w, 1, 3, out);
  for (float v : out) CHECK(std::isfinite(v));
  CHECK_NEAR(out[0], 0.0, 1e-6);
  CHECK_NEAR(out[1], -1e4, 1e-3);
}

TEST_CASE("partial label spaces: an unmodelled class takes the row's best modelled value") {
  // modality 0 models all 3 classes, modality 1 models classes 0 and 1 only (class 2: no evidence)
  const std::vector<float> a = {0.5f, 0.3f, 0.2f}, b = {0.9f, 0.1f};
  std::vector<float> lp(6), st(3), out(3), lo(3);
  for (int j = 0; j < 3; ++j) lp[j] = std::log(a[j]);
  lp[3] = std::log(b[0]); lp[4] = std::log(b[1]); lp[5] = 0.f;  // ignored (masked out)
  const std::uint8_t mask[6] = {1, 1, 1, 1, 1, 0};
  const float w[2] = {1.0f, 0.8f};
  emoedge::fusion_step(lp.data(), w, 2, 3, st.data(), false, 0.0, out.data(), mask);
  double ref[3] = {a[0] * std::pow(b[0], 0.8), a[1] * std::pow(b[1], 0.8), a[2] * std::pow(b[0], 0.8)};
  const double s = ref[0] + ref[1] + ref[2];
  for (int j = 0; j < 3; ++j) CHECK_NEAR(out[j], ref[j] / s, 1e-6);
  // class 2 is never lowered relative to fusing modality 0 alone
  CHECK(out[2] >= a[2] - 1e-7);
  // uniform over what it models: no change
  lp[3] = lp[4] = std::log(0.5f);
  emoedge::fusion_pool(lp.data(), w, 2, 3, lo.data(), mask);
  for (int j = 0; j < 3; ++j) CHECK_NEAR(std::exp(static_cast<double>(lo[j])), a[j], 1e-6);
  // a row that models nothing contributes nothing; a full mask equals no mask
  const std::uint8_t none[6] = {1, 1, 1, 0, 0, 0}, full[6] = {1, 1, 1, 1, 1, 1};
  emoedge::fusion_pool(lp.data(), w, 2, 3, lo.data(), none);
  for (int j = 0; j < 3; ++j) CHECK_NEAR(std::exp(static_cast<double>(lo[j])), a[j], 1e-6);
  std::vector<float> l1(3), l2(3);
  emoedge::fusion_pool(lp.data(), w, 2, 3, l1.data(), full);
  emoedge::fusion_pool(lp.data(), w, 2, 3, l2.data());
  for (int j = 0; j < 3; ++j) CHECK_NEAR(l1[j], l2[j], 0.0);
}

TEST_MAIN()
