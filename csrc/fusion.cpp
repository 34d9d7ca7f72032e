#include "fusion.h"

#include <cmath>
#include <vector>

#include "common.h"

namespace emoedge {
namespace {

constexpr std::int64_t kMaxLabels = 4096;
// State entries are clamped to >= kStateFloor so they stay finite in float32 even for extreme
// (but finite) inputs; exp(-1e4) is 0 in any precision, so the output is unaffected.
constexpr double kStateFloor = -1e4;

void check_args(const float* log_probs, const float* weights, std::int64_t m, std::int64_t k) {
  if (k < 1 || k > kMaxLabels) fail("fusion: number of labels k=", k, " must be in [1, ", kMaxLabels, "]");
  if (m < 0) fail("fusion: number of modalities m=", m, " must be >= 0");
  if (m > 0 && (log_probs == nullptr || weights == nullptr)) fail("fusion: null input pointer with m=", m);
  for (std::int64_t i = 0; i < m; ++i) {
    const float w = weights[i];
    if (!std::isfinite(w) || w < 0.f) fail("fusion: weights[", i, "]=", w, " must be finite and >= 0");
    for (std::int64_t j = 0; j < k; ++j) {
      const float v = log_probs[i * k + j];
      if (!std::isfinite(v))
        fail("fusion: log_probs[", i, ", ", j, "]=", v, " is not finite; add a floor eps to the probabilities before the log");
    }
  }
}

// z[j] = sum_i w_i * l_i[j] (l_i = lp[i] where modelled, else the row's max over modelled classes),
// then log-softmax in place (double precision).
void pool_into(const float* log_probs, const float* weights, std::int64_t m, std::int64_t k,
               const std::uint8_t* mask, double* z) {
  for (std::int64_t j = 0; j < k; ++j) z[j] = 0.0;
  for (std::int64_t i = 0; i < m; ++i) {
    const double w = weights[i];
    if (w == 0.0) continue;
    const float* row = log_probs + i * k;
    if (mask == nullptr) {
      for (std::int64_t j = 0; j < k; ++j) z[j] += w * static_cast<double>(row[j]);
      continue;
    }
    const std::uint8_t* mrow = mask + i * k;
    bool any = false;
    double r = 0.0;
    for (std::int64_t j = 0; j < k; ++j) {
      if (!mrow[j]) continue;
      const double v = row[j];
      if (!any || v > r) r = v;
      any = true;
    }
    if (!any) continue;  // models none of the output classes: no evidence at all
    for (std::int64_t j = 0; j < k; ++j) z[j] += w * (mrow[j] ? static_cast<double>(row[j]) : r);
  }
  double mx = z[0];
  for (std::int64_t j = 1; j < k; ++j) mx = z[j] > mx ? z[j] : mx;
  double s = 0.0;
  for (std::int64_t j = 0; j < k; ++j) s += std::exp(z[j] - mx);
  const double lse = mx + std::log(s);
  for (std::int64_t j = 0; j < k; ++j) z[j] -= lse;
}

}  // namespace

void fusion_pool(const float* log_probs, const float* weights, std::int64_t m, std::int64_t k, float* out_log,
                 const std::uint8_t* mask) {
  check_args(log_probs, weights, m, k);
  if (out_log == nullptr) fail("fusion_pool: null output pointer");
  std::vector<double> z(static_cast<std::size_t>(k));
  pool_into(log_probs, weights, m, k, mask, z.data());
  // clamped like the step's state (>= kStateFloor): a huge weight made z ~ -1e36, -inf in float32
  for (std::int64_t j = 0; j < k; ++j) out_log[j] = static_cast<float>(z[j] > kStateFloor ? z[j] : kStateFloor);
}

void fusion_step(const float* log_probs, const float* weights, std::int64_t m, std::int64_t k,
                 float* state, bool has_state, double alpha, float* out_probs, const std::uint8_t* mask) {
  check_args(log_probs, weights, m, k);
  if (state == nullptr || out_probs == nullptr) fail("fusion_step: null state/output pointer");
  if (has_state) {
    if (!(alpha >= 0.0 && alpha <= 1.0)) fail("fusion_step: alpha=", alpha, " must be in [0, 1]");
    for (std::int64_t j = 0; j < k; ++j)
      if (!std::isfinite(state[j])) fail("fusion_step: state[", j, "]=", state[j], " is not finite; reset the fusion state");
  }
  double zbuf[16];
  std::vector<double> zheap;
  double* z = zbuf;
  if (k > 16) { zheap.resize(static_cast<std::size_t>(k)); z = zheap.data(); }
  pool_into(log_probs, weights, m, k, mask, z);
  if (has_state) {
    const double a = alpha, b = 1.0 - alpha;
    for (std::int64_t j = 0; j < k; ++j) z[j] = b * static_cast<double>(state[j]) + a * z[j];
  }
  // A convex combination of normalised log-distributions is <= 0 but not normalised: renormalise
  // so the state stays a log-distribution, then write softmax(state).
  double mx = z[0];
  for (std::int64_t j = 1; j < k; ++j) mx = z[j] > mx ? z[j] : mx;
  double s = 0.0;
  for (std::int64_t j = 0; j < k; ++j) s += std::exp(z[j] - mx);
  const double lse = mx + std::log(s);
  double total = 0.0;
  for (std::int64_t j = 0; j < k; ++j) {
    double lz = z[j] - lse;
    lz = lz < kStateFloor ? kStateFloor : lz;
    z[j] = lz;
    state[j] = static_cast<float>(lz);
    total += std::exp(lz);
  }
  for (std::int64_t j = 0; j < k; ++j) out_probs[j] = static_cast<float>(std::exp(z[j]) / total);
}

}  // namespace emoedge
