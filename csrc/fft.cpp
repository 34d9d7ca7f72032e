// Real FFT plans (twiddle tables) and the portable instances of the kernels in fft.h.
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
  std::vector<std::size_t> offsets;
  int n_cur = m_;
  while (n_cur > 1) {
    Stage st{};
    st.n_cur = n_cur;
    if (n_cur >= 4) {
      st.radix = 4;
      const int n1 = n_cur / 4;
      offsets.push_back(tw_.size());
      for (int j = 1; j <= 3; ++j) {
        for (int p = 0; p < n1; ++p) tw_.push_back(std::cos(-2.0 * kPi * double(j) * double(p) / double(n_cur)));
        for (int p = 0; p < n1; ++p) tw_.push_back(std::sin(-2.0 * kPi * double(j) * double(p) / double(n_cur)));
      }
      n_cur /= 4;
    } else {
      st.radix = 2;
      offsets.push_back(tw_.size());
      n_cur /= 2;
    }
    stages_.push_back(st);
  }
  for (std::size_t i = 0; i < stages_.size(); ++i) {  // tw_ no longer grows: pointers are stable
    Stage& st = stages_[i];
    if (st.radix != 4) continue;
    const std::size_t n1 = std::size_t(st.n_cur / 4);
    for (int j = 0; j < 6; ++j) st.w[j] = tw_.data() + offsets[i] + n1 * std::size_t(j);
  }
  // dif_fft: stage i (radix r) sends bin k's digit k % r to sub-block (k % r) of the current length.
  dif_pos_.resize(m_);
  for (int k = 0; k < m_; ++k) {
    int rest = k, len = m_, off = 0;
    for (const Stage& st : stages_) {
      len /= st.radix;
      off += (rest % st.radix) * len;
      rest /= st.radix;
    }
    dif_pos_[k] = off;
  }
  spr_.resize(m_ + 1);
  spi_.resize(m_ + 1);
  for (int k = 0; k <= m_; ++k) {
    const double th = -2.0 * kPi * double(k) / double(n_);
    spr_[k] = std::cos(th);
    spi_[k] = std::sin(th);
  }
}

void RealFFTPlan::power_split(double* zr, double* zi, int B, double* pw, double* scratch) const {
  fft_detail::power_split(*this, zr, zi, B, pw, scratch);
}

void RealFFTPlan::forward_split(double* zr, double* zi, int B, double* xr, double* xi, double* scratch) const {
  double* sr = scratch;
  double* si = scratch + std::size_t(m_) * B + kSkew;
  if (fft_detail::complex_fft(*this, zr, zi, sr, si, B)) fft_detail::split<false>(*this, sr, si, B, xr, xi);
  else fft_detail::split<false>(*this, zr, zi, B, xr, xi);
}

void RealFFTPlan::forward(const double* x, double* out) const {
  std::vector<double> buf(std::size_t(m_) * 4 + std::size_t(m_ + 1) * 2 + kSkew);
  double* zr = buf.data();
  double* zi = zr + m_;
  double* scratch = zi + m_;
  double* xr = scratch + scratch_size(1);
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
