#include "roi.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "common.h"

namespace emoedge {
namespace roi {

void validate(int n_windows, int s, int t) {
  if (t < 1 || t > kMaxSide) fail("template side must be in 1..", kMaxSide, ", got ", t);
  if (s < t || s > kMaxSide) fail("window side must be in ", t, "..", kMaxSide, " (>= the template side), got ", s);
  if (n_windows < 0 || n_windows > kMaxWindows) fail("at most ", kMaxWindows, " windows per call, got ", n_windows);
}

void match_ncc(const float* window, int s, const float* tmpl, int t, float* out) {
  const int m = s - t + 1;
  const int n = t * t;
  // zero-mean template (float, for the vectorised products) and its norm (double)
  std::vector<float> tz(static_cast<size_t>(n));
  double tsum = 0;
  for (int i = 0; i < n; ++i) tsum += tmpl[i];
  const double tmean = tsum / n;
  double tnorm2 = 0;
  for (int i = 0; i < n; ++i) {
    const double d = tmpl[i] - tmean;
    tz[i] = static_cast<float>(d);
    tnorm2 += d * d;
  }
  const double tnorm = std::sqrt(tnorm2);
  // integral images of the window and its square (double) for the per-position sums
  const int s1 = s + 1;
  std::vector<double> ii(static_cast<size_t>(s1) * s1, 0.0), ii2(static_cast<size_t>(s1) * s1, 0.0);
  for (int y = 0; y < s; ++y) {
    double rs = 0, rs2 = 0;
    for (int x = 0; x < s; ++x) {
      const double v = window[static_cast<size_t>(y) * s + x];
      rs += v;
      rs2 += v * v;
      ii[static_cast<size_t>(y + 1) * s1 + x + 1] = ii[static_cast<size_t>(y) * s1 + x + 1] + rs;
      ii2[static_cast<size_t>(y + 1) * s1 + x + 1] = ii2[static_cast<size_t>(y) * s1 + x + 1] + rs2;
    }
  }
  // numerators of one output row at a time: acc[x] += window[y + r][x + c] * tz[r][c], an element-wise
  // loop over x that the compiler vectorises (no reduction to reorder)
  std::vector<float> acc(static_cast<size_t>(m));
  for (int y = 0; y < m; ++y) {
    std::fill(acc.begin(), acc.end(), 0.0f);
    for (int r = 0; r < t; ++r) {
      const float* row = window + static_cast<size_t>(y + r) * s;
      const float* trow = tz.data() + static_cast<size_t>(r) * t;
      for (int c = 0; c < t; ++c) {
        const float tv = trow[c];
        const float* src = row + c;
        float* dst = acc.data();
        for (int x = 0; x < m; ++x) dst[x] += src[x] * tv;
      }
    }
    for (int x = 0; x < m; ++x) {
      const double num = acc[x];  // sum(I * (T - mean T)) == sum((I - mean I)(T - mean T))
      const size_t a0 = static_cast<size_t>(y) * s1 + x, a1 = static_cast<size_t>(y + t) * s1 + x;
      const double isum = ii[a1 + t] - ii[a1] - ii[a0 + t] + ii[a0];
      const double isum2 = ii2[a1 + t] - ii2[a1] - ii2[a0 + t] + ii2[a0];
      const double ivar = isum2 - isum * isum / n;
      const double den = std::sqrt(ivar > 0 ? ivar : 0.0) * tnorm;
      double r = 0.0;
      // OpenCV's rule for a (near-)zero denominator: |num| < den -> num / den; within 12.5% -> +-1; else 0
      if (std::fabs(num) < den) r = num / den;
      else if (std::fabs(num) < den * 1.125) r = num > 0 ? 1.0 : -1.0;
      out[static_cast<size_t>(y) * m + x] = static_cast<float>(r);
    }
  }
}

namespace {
double refine(float a, float b, float c) {  // parabola vertex offset through (-1, a), (0, b), (1, c)
  const double d = static_cast<double>(a) - 2.0 * b + c;
  if (!(d < 0)) return 0.0;
  double off = 0.5 * (static_cast<double>(a) - c) / d;
  return off < -0.5 ? -0.5 : (off > 0.5 ? 0.5 : off);
}
}  // namespace

Peak best_peak(const float* windows, int n_scales, int s, const float* tmpl, int t, float* scratch) {
  const int m = s - t + 1;
  Peak best;
  bool have = false;
  for (int j = 0; j < n_scales; ++j) {
    match_ncc(windows + static_cast<size_t>(j) * s * s, s, tmpl, t, scratch);
    int bi = 0;
    for (int i = 1; i < m * m; ++i)
      if (scratch[i] > scratch[bi]) bi = i;
    const int py = bi / m, px = bi % m;
    Peak p;
    p.value = scratch[bi];
    p.x = px;
    p.y = py;
    p.scale = j;
    if (px > 0 && px < m - 1) p.x += refine(scratch[bi - 1], scratch[bi], scratch[bi + 1]);
    if (py > 0 && py < m - 1) p.y += refine(scratch[bi - m], scratch[bi], scratch[bi + m]);
    if (!have || p.value > best.value) {
      best = p;
      have = true;
    }
  }
  return best;
}

}  // namespace roi
}  // namespace emoedge
