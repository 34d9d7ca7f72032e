// Real FFT: n/2-point complex Stockham FFT (radix-4, plus one radix-2 stage when needed) and an
// even/odd split, batched with the batch index innermost. See fft.h.
#include "fft.h"

#include <cmath>
#include <map>
#include <mutex>

#include "common.h"

namespace emoedge {

namespace {
constexpr double kPi = 3.14159265358979323846;
}

std::shared_ptr<const RealFFTPlan> RealFFTPlan::get(int n) {
  static std::mutex mu;
  static std::map<int, std::shared_ptr<const RealFFTPlan>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(n);
  if (it != cache.end()) return it->second;
  auto plan = std::make_shared<const RealFFTPlan>(n);
  cache.emplace(n, plan);
  return plan;
}

RealFFTPlan::RealFFTPlan(int n) : n_(n), m_(n / 2) {
  if (n < 4 || n > (1 << 20) || (n & (n - 1)) != 0)
    fail("FFT size n=", n, " is not supported: use a power of two between 4 and 1048576");
  // Stages of the m-point complex FFT: radix 4 while the current length is >= 4, radix 2 for 2.
  int n_cur = m_;
  while (n_cur > 1) {
    Stage st;
    st.n_cur = n_cur;
    st.tw = twr_.size();
    if (n_cur >= 4) {
      st.radix = 4;
      const int n1 = n_cur / 4;
      for (int p = 0; p < n1; ++p) {
        for (int j = 1; j <= 3; ++j) {
          const double th = -2.0 * kPi * double(j) * double(p) / double(n_cur);
          twr_.push_back(double(std::cos(th)));
          twi_.push_back(double(std::sin(th)));
        }
      }
      n_cur /= 4;
    } else {
      st.radix = 2;
      n_cur /= 2;
    }
    stages_.push_back(st);
  }
  spr_.resize(m_ + 1);
  spi_.resize(m_ + 1);
  for (int k = 0; k <= m_; ++k) {
    const double th = -2.0 * kPi * double(k) / double(n_);
    spr_[k] = double(std::cos(th));
    spi_[k] = double(std::sin(th));
  }
}

bool RealFFTPlan::complex_fft(double* re, double* im, double* sr, double* si, int B) const {
  double* xr = re;
  double* xi = im;
  double* yr = sr;
  double* yi = si;
  bool swapped = false;
  std::size_t S = std::size_t(B);  // stride of the current stage, in elements (s * B)
  for (const Stage& st : stages_) {
    if (st.radix == 4) {
      const int n1 = st.n_cur / 4;
      for (int p = 0; p < n1; ++p) {
        const double* tr = twr_.data() + st.tw + 3 * std::size_t(p);
        const double* ti = twi_.data() + st.tw + 3 * std::size_t(p);
        const double w1r = tr[0], w1i = ti[0], w2r = tr[1], w2i = ti[1], w3r = tr[2], w3i = ti[2];
        const double* __restrict ar = xr + S * p;
        const double* __restrict ai = xi + S * p;
        const double* __restrict br = xr + S * (p + n1);
        const double* __restrict bi = xi + S * (p + n1);
        const double* __restrict cr = xr + S * (p + 2 * n1);
        const double* __restrict ci = xi + S * (p + 2 * n1);
        const double* __restrict dr = xr + S * (p + 3 * n1);
        const double* __restrict di = xi + S * (p + 3 * n1);
        double* __restrict y0r = yr + S * (4 * p);
        double* __restrict y0i = yi + S * (4 * p);
        double* __restrict y1r = yr + S * (4 * p + 1);
        double* __restrict y1i = yi + S * (4 * p + 1);
        double* __restrict y2r = yr + S * (4 * p + 2);
        double* __restrict y2i = yi + S * (4 * p + 2);
        double* __restrict y3r = yr + S * (4 * p + 3);
        double* __restrict y3i = yi + S * (4 * p + 3);
        for (std::size_t q = 0; q < S; ++q) {
          const double apcr = ar[q] + cr[q], apci = ai[q] + ci[q];
          const double amcr = ar[q] - cr[q], amci = ai[q] - ci[q];
          const double bpdr = br[q] + dr[q], bpdi = bi[q] + di[q];
          const double bmdr = br[q] - dr[q], bmdi = bi[q] - di[q];
          // j * (b - d) = (-bmdi, bmdr)
          y0r[q] = apcr + bpdr;
          y0i[q] = apci + bpdi;
          const double t1r = amcr + bmdi, t1i = amci - bmdr;  // amc - j*bmd
          const double t2r = apcr - bpdr, t2i = apci - bpdi;
          const double t3r = amcr - bmdi, t3i = amci + bmdr;  // amc + j*bmd
          y1r[q] = w1r * t1r - w1i * t1i;
          y1i[q] = w1r * t1i + w1i * t1r;
          y2r[q] = w2r * t2r - w2i * t2i;
          y2i[q] = w2r * t2i + w2i * t2r;
          y3r[q] = w3r * t3r - w3i * t3i;
          y3i[q] = w3r * t3i + w3i * t3r;
        }
      }
      S *= 4;
    } else {  // radix 2 with n_cur == 2: one butterfly, twiddle 1
      const double* __restrict ar = xr;
      const double* __restrict ai = xi;
      const double* __restrict br = xr + S;
      const double* __restrict bi = xi + S;
      double* __restrict y0r = yr;
      double* __restrict y0i = yi;
      double* __restrict y1r = yr + S;
      double* __restrict y1i = yi + S;
      for (std::size_t q = 0; q < S; ++q) {
        y0r[q] = ar[q] + br[q];
        y0i[q] = ai[q] + bi[q];
        y1r[q] = ar[q] - br[q];
        y1i[q] = ai[q] - bi[q];
      }
      S *= 2;
    }
    std::swap(xr, yr);
    std::swap(xi, yi);
    swapped = !swapped;
  }
  return swapped;
}

// Even/odd split: X[k] = Fe[k] + e^{-2 pi i k/n} Fo[k] with Fe = (Z[k] + conj Z[m-k]) / 2 and
// Fo = (Z[k] - conj Z[m-k]) / 2i. kPower: out_a = |X|^2; otherwise out_a = Re X, out_b = Im X.
template <bool kPower>
void RealFFTPlan::split(const double* zr, const double* zi, int B, double* out_a, double* out_b) const {
  const int m = m_;
  for (int b = 0; b < B; ++b) {
    const double x0 = zr[b] + zi[b];
    const double xm = zr[b] - zi[b];
    if (kPower) {
      out_a[b] = x0 * x0;
      out_a[std::size_t(m) * B + b] = xm * xm;
    } else {
      out_a[b] = x0;
      out_b[b] = 0.0;
      out_a[std::size_t(m) * B + b] = xm;
      out_b[std::size_t(m) * B + b] = 0.0;
    }
  }
  for (int k = 1; k < m; ++k) {
    const double c = spr_[k], s = spi_[k];
    const double* __restrict kr = zr + std::size_t(k) * B;
    const double* __restrict ki = zi + std::size_t(k) * B;
    const double* __restrict jr = zr + std::size_t(m - k) * B;
    const double* __restrict ji = zi + std::size_t(m - k) * B;
    double* __restrict oa = out_a + std::size_t(k) * B;
    double* __restrict ob = kPower ? nullptr : out_b + std::size_t(k) * B;
    for (int b = 0; b < B; ++b) {
      const double fer = 0.5 * (kr[b] + jr[b]);
      const double fei = 0.5 * (ki[b] - ji[b]);
      const double forr = 0.5 * (ki[b] + ji[b]);
      const double foi = -0.5 * (kr[b] - jr[b]);
      const double xr = fer + (c * forr - s * foi);
      const double xi = fei + (c * foi + s * forr);
      if (kPower) {
        oa[b] = xr * xr + xi * xi;
      } else {
        oa[b] = xr;
        ob[b] = xi;
      }
    }
  }
}

void RealFFTPlan::power_split(double* zr, double* zi, int B, double* pw, double* scratch) const {
  double* sr = scratch;
  double* si = scratch + std::size_t(m_) * B;
  if (complex_fft(zr, zi, sr, si, B)) split<true>(sr, si, B, pw, nullptr);
  else split<true>(zr, zi, B, pw, nullptr);
}

void RealFFTPlan::forward_split(double* zr, double* zi, int B, double* xr, double* xi, double* scratch) const {
  double* sr = scratch;
  double* si = scratch + std::size_t(m_) * B;
  if (complex_fft(zr, zi, sr, si, B)) split<false>(sr, si, B, xr, xi);
  else split<false>(zr, zi, B, xr, xi);
}

void RealFFTPlan::forward(const double* x, double* out) const {
  std::vector<double> buf(std::size_t(m_) * 4 + std::size_t(m_ + 1) * 2);
  double* zr = buf.data();
  double* zi = zr + m_;
  double* scratch = zi + m_;
  double* xr = scratch + 2 * std::size_t(m_);
  double* xi = xr + (m_ + 1);
  for (int k = 0; k < m_; ++k) {
    zr[k] = x[2 * k];
    zi[k] = x[2 * k + 1];
  }
  forward_split(zr, zi, 1, xr, xi, scratch);
  for (int k = 0; k <= m_; ++k) {
    out[2 * k] = xr[k];
    out[2 * k + 1] = xi[k];
  }
}

}  // namespace emoedge
