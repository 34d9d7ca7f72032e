// Real FFT against a naive double-precision DFT, batched == single, plan cache, bad sizes.
#include <cmath>
#include <random>
#include <thread>
#include <vector>

#include "check.h"
#include "fft.h"

using emoedge::RealFFTPlan;

static std::vector<double> naive_dft(const std::vector<double>& x) {
  const int n = int(x.size());
  std::vector<double> out(2 * (n / 2 + 1));
  for (int k = 0; k <= n / 2; ++k) {
    long double re = 0, im = 0;
    for (int t = 0; t < n; ++t) {
      const long double th = -2.0L * 3.14159265358979323846264338327950288L * k * t / n;
      re += x[t] * std::cos(th);
      im += x[t] * std::sin(th);
    }
    out[2 * k] = double(re);
    out[2 * k + 1] = double(im);
  }
  return out;
}

TEST_CASE("forward() matches a naive DFT for n = 4 .. 2048") {
  std::mt19937 rng(1);
  std::normal_distribution<double> nd;
  for (int n = 4; n <= 2048; n *= 2) {
    std::vector<double> x(n);
    for (auto& v : x) v = nd(rng);
    auto ref = naive_dft(x);
    std::vector<double> out(2 * (n / 2 + 1));
    RealFFTPlan::get(n)->forward(x.data(), out.data());
    double err = 0, mag = 0;
    for (std::size_t i = 0; i < out.size(); ++i) {
      err = std::fmax(err, std::fabs(out[i] - ref[i]));
      mag = std::fmax(mag, std::fabs(ref[i]));
    }
    CHECK(err <= 1e-12 * mag * std::log2(double(n)) + 1e-12);
  }
}

TEST_CASE("batched power_split equals per-signal power") {
  const int n = 512, m = n / 2, B = 5;
  auto plan = RealFFTPlan::get(n);
  std::mt19937 rng(2);
  std::uniform_real_distribution<double> ud(-1, 1);
  std::vector<std::vector<double>> xs(B, std::vector<double>(n));
  for (auto& x : xs) for (auto& v : x) v = ud(rng);
  std::vector<double> zr(m * B), zi(m * B), pw((m + 1) * B), scratch(plan->scratch_size(B));
  for (int b = 0; b < B; ++b)
    for (int k = 0; k < m; ++k) { zr[k * B + b] = xs[b][2 * k]; zi[k * B + b] = xs[b][2 * k + 1]; }
  plan->power_split(zr.data(), zi.data(), B, pw.data(), scratch.data());
  for (int b = 0; b < B; ++b) {
    auto ref = naive_dft(xs[b]);
    for (int k = 0; k <= m; ++k) {
      const double p = ref[2 * k] * ref[2 * k] + ref[2 * k + 1] * ref[2 * k + 1];
      CHECK_NEAR(pw[k * B + b], p, 1e-9 * (1 + p));
    }
  }
}

TEST_CASE("plans are cached per size and safe to fetch from many threads") {
  auto a = RealFFTPlan::get(256);
  CHECK(a == RealFFTPlan::get(256));
  CHECK(a != RealFFTPlan::get(512));
  std::vector<std::shared_ptr<const RealFFTPlan>> got(8);
  std::vector<std::thread> th;
  for (int i = 0; i < 8; ++i) th.emplace_back([&got, i] { got[i] = RealFFTPlan::get(4096); });
  for (auto& t : th) t.join();
  for (auto& g : got) CHECK(g == got[0]);
}

TEST_CASE("non power-of-two sizes are rejected") {
  CHECK_THROWS(RealFFTPlan::get(500));
  CHECK_THROWS(RealFFTPlan::get(2));
  CHECK_THROWS(RealFFTPlan::get(0));
  CHECK_THROWS(RealFFTPlan::get(-8));
}

TEST_MAIN()
