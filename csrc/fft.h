// Real FFT for power-of-two sizes, double precision throughout.
//
// A real FFT of n points runs as a complex FFT of n/2 points (Stockham autosort, radix-4 with one
// radix-2 stage when log2(n/2) is odd) followed by the usual even/odd split. Transforms are
// *batched*: B independent signals are interleaved with the batch index innermost
// (element i of signal b lives at [i * B + b]), so the inner loops run over >= B contiguous
// doubles and auto-vectorize. With B = 1 the first stage loops over butterflies instead.
//
// Plans are immutable after construction and cached per size: RealFFTPlan::get(n) is thread-safe
// and the returned plan may be used from many threads at once (all scratch is caller-provided).
//
// The loops live in fft_detail below as always-inline functions so that a kernel compiled for
// AVX2+FMA (run-time dispatch, see logmel.cpp) gets its own vectorized copy; RealFFTPlan's
// member functions are the portable (baseline ISA) instances.
#pragma once
#include <cstddef>
#include <memory>
#include <vector>

#if defined(__GNUC__) || defined(__clang__)
#define EMOEDGE_INLINE inline __attribute__((always_inline))
#else
#define EMOEDGE_INLINE inline
#endif
// The legs of a butterfly never overlap; say so, since GCC ignores __restrict on local pointers and
// gives up on run-time alias checks for this many streams.
#if defined(__clang__)
#define EMOEDGE_IVDEP _Pragma("clang loop vectorize(assume_safety)")
#elif defined(__GNUC__)
#define EMOEDGE_IVDEP _Pragma("GCC ivdep")
#else
#define EMOEDGE_IVDEP
#endif

namespace emoedge {

class RealFFTPlan {
 public:
  // Cached plan for size n (power of two, 4 <= n <= 2^20); throws std::invalid_argument otherwise.
  static std::shared_ptr<const RealFFTPlan> get(int n);
  explicit RealFFTPlan(int n);
  RealFFTPlan(const RealFFTPlan&) = delete;  // stages hold pointers into tw_
  RealFFTPlan& operator=(const RealFFTPlan&) = delete;

  int size() const { return n_; }
  int half() const { return m_; }  // n / 2: complex points; the spectrum has half() + 1 bins.

  // Doubles of scratch needed by the batched calls below.
  std::size_t scratch_size(int B) const { return std::size_t(2) * m_ * B + kSkew; }
  // The imaginary half of the scratch starts kSkew doubles late, so re/im are not 4K-aliased.
  static constexpr std::size_t kSkew = 24;

  // Power spectrum of B real signals given already split into even/odd samples:
  //   zr[k * B + b] = x_b[2k], zi[k * B + b] = x_b[2k + 1]   for k < half().
  // zr/zi are overwritten (used as scratch). Writes pw[k * B + b] = |X_b[k]|^2 for k = 0..half().
  void power_split(double* zr, double* zi, int B, double* pw, double* scratch) const;

  // Complex spectrum of B real signals (same split input as power_split). Writes
  // xr/xi[k * B + b] for k = 0..half().
  void forward_split(double* zr, double* zi, int B, double* xr, double* xi, double* scratch) const;

  // Convenience, single signal: x[n] real -> out[2 * (n/2 + 1)] interleaved (re, im), bins 0..n/2.
  void forward(const double* x, double* out) const;

  struct Stage {
    int radix;   // 4 or 2
    int n_cur;   // current sub-transform length
    const double* w[6];  // radix 4: w1r, w1i, w2r, w2i, w3r, w3i, each [n_cur / 4]
  };
  const std::vector<Stage>& stages() const { return stages_; }
  const double* split_cos() const { return spr_.data(); }  // cos(-2 pi k / n), k = 0..n/2
  const double* split_sin() const { return spi_.data(); }  // sin(-2 pi k / n)
  // Where the in-place decimation-in-frequency FFT (fft_detail::dif_fft) leaves bin k, k < half().
  const int* dif_pos() const { return dif_pos_.data(); }

 private:
  int n_ = 0, m_ = 0;
  std::vector<Stage> stages_;
  std::vector<double> tw_;
  std::vector<double> spr_, spi_;
  std::vector<int> dif_pos_;
};

namespace fft_detail {

#if defined(__GNUC__) || defined(__clang__)
// Radix-4 butterfly on kL-lane vectors: legs a..d in, y0..y3 out (twiddles applied unless kTrivial).
template <int kL, bool kTrivial>
EMOEDGE_INLINE void radix4_vec_stage(const RealFFTPlan::Stage& st, std::size_t S, const double* xr, const double* xi,
                                     double* yr, double* yi) {
  typedef double vd __attribute__((vector_size(8 * kL), aligned(8)));
  const int n1 = st.n_cur / 4;
  for (int p = 0; p < n1; ++p) {
    vd w1r, w1i, w2r, w2i, w3r, w3i;
    if (!kTrivial) {
      w1r = vd{} + st.w[0][p]; w1i = vd{} + st.w[1][p];
      w2r = vd{} + st.w[2][p]; w2i = vd{} + st.w[3][p];
      w3r = vd{} + st.w[4][p]; w3i = vd{} + st.w[5][p];
    }
    const double* ar = xr + S * p;
    const double* ai = xi + S * p;
    const std::size_t L = S * std::size_t(n1);
    double* y0r = yr + S * (4 * p);
    double* y0i = yi + S * (4 * p);
    for (std::size_t q = 0; q < S; q += kL) {
      const vd a_r = *reinterpret_cast<const vd*>(ar + q), a_i = *reinterpret_cast<const vd*>(ai + q);
      const vd b_r = *reinterpret_cast<const vd*>(ar + L + q), b_i = *reinterpret_cast<const vd*>(ai + L + q);
      const vd c_r = *reinterpret_cast<const vd*>(ar + 2 * L + q), c_i = *reinterpret_cast<const vd*>(ai + 2 * L + q);
      const vd d_r = *reinterpret_cast<const vd*>(ar + 3 * L + q), d_i = *reinterpret_cast<const vd*>(ai + 3 * L + q);
      const vd apcr = a_r + c_r, apci = a_i + c_i, amcr = a_r - c_r, amci = a_i - c_i;
      const vd bpdr = b_r + d_r, bpdi = b_i + d_i, bmdr = b_r - d_r, bmdi = b_i - d_i;
      const vd t1r = amcr + bmdi, t1i = amci - bmdr;
      const vd t2r = apcr - bpdr, t2i = apci - bpdi;
      const vd t3r = amcr - bmdi, t3i = amci + bmdr;
      *reinterpret_cast<vd*>(y0r + q) = apcr + bpdr;
      *reinterpret_cast<vd*>(y0i + q) = apci + bpdi;
      if (kTrivial) {
        *reinterpret_cast<vd*>(y0r + S + q) = t1r;
        *reinterpret_cast<vd*>(y0i + S + q) = t1i;
        *reinterpret_cast<vd*>(y0r + 2 * S + q) = t2r;
        *reinterpret_cast<vd*>(y0i + 2 * S + q) = t2i;
        *reinterpret_cast<vd*>(y0r + 3 * S + q) = t3r;
        *reinterpret_cast<vd*>(y0i + 3 * S + q) = t3i;
      } else {
        *reinterpret_cast<vd*>(y0r + S + q) = w1r * t1r - w1i * t1i;
        *reinterpret_cast<vd*>(y0i + S + q) = w1r * t1i + w1i * t1r;
        *reinterpret_cast<vd*>(y0r + 2 * S + q) = w2r * t2r - w2i * t2i;
        *reinterpret_cast<vd*>(y0i + 2 * S + q) = w2r * t2i + w2i * t2r;
        *reinterpret_cast<vd*>(y0r + 3 * S + q) = w3r * t3r - w3i * t3i;
        *reinterpret_cast<vd*>(y0i + 3 * S + q) = w3r * t3i + w3i * t3r;
      }
    }
  }
}
#endif

// One radix-4 Stockham stage over all p, with S = s * B contiguous elements per butterfly leg.
template <int kLanes = 2>
EMOEDGE_INLINE void radix4_stage(const RealFFTPlan::Stage& st, std::size_t S, const double* xr, const double* xi,
                                 double* yr, double* yi) {
#if defined(__GNUC__) || defined(__clang__)
  if (kLanes >= 4 && S % kLanes == 0) {  // explicit vectors: no alias checks or remainder loops per p
    if (st.n_cur == 4) radix4_vec_stage<kLanes, true>(st, S, xr, xi, yr, yi);  // last stage: twiddles are 1
    else radix4_vec_stage<kLanes, false>(st, S, xr, xi, yr, yi);
    return;
  }
#endif
  const int n1 = st.n_cur / 4;
  const double* __restrict W1r = st.w[0];
  const double* __restrict W1i = st.w[1];
  const double* __restrict W2r = st.w[2];
  const double* __restrict W2i = st.w[3];
  const double* __restrict W3r = st.w[4];
  const double* __restrict W3i = st.w[5];
  if (S == 1) {  // first stage of a single transform: vectorize over p (stride-4 stores)
    const double* __restrict ar = xr;
    const double* __restrict ai = xi;
    const double* __restrict br = xr + n1;
    const double* __restrict bi = xi + n1;
    const double* __restrict cr = xr + 2 * n1;
    const double* __restrict ci = xi + 2 * n1;
    const double* __restrict dr = xr + 3 * n1;
    const double* __restrict di = xi + 3 * n1;
    double* __restrict Yr = yr;
    double* __restrict Yi = yi;
    EMOEDGE_IVDEP
    for (int p = 0; p < n1; ++p) {
      const double apcr = ar[p] + cr[p], apci = ai[p] + ci[p];
      const double amcr = ar[p] - cr[p], amci = ai[p] - ci[p];
      const double bpdr = br[p] + dr[p], bpdi = bi[p] + di[p];
      const double bmdr = br[p] - dr[p], bmdi = bi[p] - di[p];
      const double t1r = amcr + bmdi, t1i = amci - bmdr;
      const double t2r = apcr - bpdr, t2i = apci - bpdi;
      const double t3r = amcr - bmdi, t3i = amci + bmdr;
      Yr[4 * p] = apcr + bpdr;
      Yi[4 * p] = apci + bpdi;
      Yr[4 * p + 1] = W1r[p] * t1r - W1i[p] * t1i;
      Yi[4 * p + 1] = W1r[p] * t1i + W1i[p] * t1r;
      Yr[4 * p + 2] = W2r[p] * t2r - W2i[p] * t2i;
      Yi[4 * p + 2] = W2r[p] * t2i + W2i[p] * t2r;
      Yr[4 * p + 3] = W3r[p] * t3r - W3i[p] * t3i;
      Yi[4 * p + 3] = W3r[p] * t3i + W3i[p] * t3r;
    }
    return;
  }
  for (int p = 0; p < n1; ++p) {
    const double w1r = W1r[p], w1i = W1i[p], w2r = W2r[p], w2i = W2i[p], w3r = W3r[p], w3i = W3i[p];
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
    EMOEDGE_IVDEP
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
}

// The half()-point complex FFT on (re, im), ping-ponging with (sr, si). Returns true when the
// result ended in (sr, si).
template <int kLanes = 2>
EMOEDGE_INLINE bool complex_fft(const RealFFTPlan& plan, double* re, double* im, double* sr, double* si, int B) {
  double* xr = re;
  double* xi = im;
  double* yr = sr;
  double* yi = si;
  bool swapped = false;
  std::size_t S = std::size_t(B);
  for (const auto& st : plan.stages()) {
    if (st.radix == 4) {
      radix4_stage<kLanes>(st, S, xr, xi, yr, yi);
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
      EMOEDGE_IVDEP
      for (std::size_t q = 0; q < S; ++q) {
        y0r[q] = ar[q] + br[q];
        y0i[q] = ai[q] + bi[q];
        y1r[q] = ar[q] - br[q];
        y1i[q] = ai[q] - bi[q];
      }
      S *= 2;
    }
    double* t = xr; xr = yr; yr = t;
    t = xi; xi = yi; yi = t;
    swapped = !swapped;
  }
  return swapped;
}

#if defined(__GNUC__) || defined(__clang__)
// In-place decimation-in-frequency FFT of B interleaved signals (B a multiple of kL), same stages and
// twiddles as the Stockham version but half the working set (no ping-pong buffer), which keeps a
// batch in L1. Bin k ends at position plan.dif_pos()[k].
template <int kL>
EMOEDGE_INLINE void dif_fft(const RealFFTPlan& plan, double* re, double* im, int B) {
  typedef double vd __attribute__((vector_size(8 * kL), aligned(8)));
  const int m = plan.half();
  const auto& stages = plan.stages();
  for (std::size_t si = 0; si < stages.size(); ++si) {
    const auto& st = stages[si];
    const int nc = st.n_cur;
    if (nc == 16 && si + 1 < stages.size() && stages[si + 1].radix == 4) {
      // The last two radix-4 stages (lengths 16 and 4) on one 16-point block at a time, in registers:
      // saves a load/store pass over the whole batch.
      const double* w = st.w[0];  // twiddles of length 16, p = 0..3: w1r, w1i, w2r, w2i, w3r, w3i (4 each)
      for (int base = 0; base < m; base += 16)
        for (int b = 0; b < B; b += kL) {
          double* xr = re + std::size_t(base) * B + b;
          double* xi = im + std::size_t(base) * B + b;
          vd r[16], i[16];
          for (int j = 0; j < 16; ++j) {
            r[j] = *reinterpret_cast<const vd*>(xr + std::size_t(j) * B);
            i[j] = *reinterpret_cast<const vd*>(xi + std::size_t(j) * B);
          }
          for (int p = 0; p < 4; ++p) {  // length-16 stage: legs p, p+4, p+8, p+12
            const vd apcr = r[p] + r[p + 8], apci = i[p] + i[p + 8], amcr = r[p] - r[p + 8], amci = i[p] - i[p + 8];
            const vd bpdr = r[p + 4] + r[p + 12], bpdi = i[p + 4] + i[p + 12];
            const vd bmdr = r[p + 4] - r[p + 12], bmdi = i[p + 4] - i[p + 12];
            const vd t1r = amcr + bmdi, t1i = amci - bmdr;
            const vd t2r = apcr - bpdr, t2i = apci - bpdi;
            const vd t3r = amcr - bmdi, t3i = amci + bmdr;
            r[p] = apcr + bpdr;
            i[p] = apci + bpdi;
            if (p == 0) {
              r[p + 4] = t1r; i[p + 4] = t1i; r[p + 8] = t2r; i[p + 8] = t2i; r[p + 12] = t3r; i[p + 12] = t3i;
            } else {
              const double w1r = w[p], w1i = w[4 + p], w2r = w[8 + p], w2i = w[12 + p], w3r = w[16 + p], w3i = w[20 + p];
              r[p + 4] = w1r * t1r - w1i * t1i;
              i[p + 4] = w1r * t1i + w1i * t1r;
              r[p + 8] = w2r * t2r - w2i * t2i;
              i[p + 8] = w2r * t2i + w2i * t2r;
              r[p + 12] = w3r * t3r - w3i * t3i;
              i[p + 12] = w3r * t3i + w3i * t3r;
            }
          }
          for (int q = 0; q < 16; q += 4) {  // length-4 stage: twiddles 1
            const vd apcr = r[q] + r[q + 2], apci = i[q] + i[q + 2], amcr = r[q] - r[q + 2], amci = i[q] - i[q + 2];
            const vd bpdr = r[q + 1] + r[q + 3], bpdi = i[q + 1] + i[q + 3];
            const vd bmdr = r[q + 1] - r[q + 3], bmdi = i[q + 1] - i[q + 3];
            *reinterpret_cast<vd*>(xr + std::size_t(q) * B) = apcr + bpdr;
            *reinterpret_cast<vd*>(xi + std::size_t(q) * B) = apci + bpdi;
            *reinterpret_cast<vd*>(xr + std::size_t(q + 1) * B) = amcr + bmdi;
            *reinterpret_cast<vd*>(xi + std::size_t(q + 1) * B) = amci - bmdr;
            *reinterpret_cast<vd*>(xr + std::size_t(q + 2) * B) = apcr - bpdr;
            *reinterpret_cast<vd*>(xi + std::size_t(q + 2) * B) = apci - bpdi;
            *reinterpret_cast<vd*>(xr + std::size_t(q + 3) * B) = amcr - bmdi;
            *reinterpret_cast<vd*>(xi + std::size_t(q + 3) * B) = amci + bmdr;
          }
        }
      ++si;  // the length-4 stage is done
      continue;
    }
    if (st.radix == 2) {
      for (int base = 0; base < m; base += 2)
        for (int b = 0; b < B; b += kL) {
          vd* ar = reinterpret_cast<vd*>(re + std::size_t(base) * B + b);
          vd* ai = reinterpret_cast<vd*>(im + std::size_t(base) * B + b);
          vd* br = reinterpret_cast<vd*>(re + std::size_t(base + 1) * B + b);
          vd* bi = reinterpret_cast<vd*>(im + std::size_t(base + 1) * B + b);
          const vd xr = *ar, xi = *ai, yr = *br, yi = *bi;
          *ar = xr + yr; *ai = xi + yi; *br = xr - yr; *bi = xi - yi;
        }
      continue;
    }
    const int L = nc / 4;
    const std::size_t LB = std::size_t(L) * B;
    for (int base = 0; base < m; base += nc)
      for (int p = 0; p < L; ++p) {
        const bool trivial = p == 0;  // all twiddles are 1 (every p of the last stage)
        vd w1r{}, w1i{}, w2r{}, w2i{}, w3r{}, w3i{};
        if (!trivial) {
          w1r += st.w[0][p]; w1i += st.w[1][p];
          w2r += st.w[2][p]; w2i += st.w[3][p];
          w3r += st.w[4][p]; w3i += st.w[5][p];
        }
        double* xr = re + std::size_t(base + p) * B;
        double* xi = im + std::size_t(base + p) * B;
        for (int b = 0; b < B; b += kL) {
          vd* pa_r = reinterpret_cast<vd*>(xr + b);
          vd* pa_i = reinterpret_cast<vd*>(xi + b);
          vd* pb_r = reinterpret_cast<vd*>(xr + LB + b);
          vd* pb_i = reinterpret_cast<vd*>(xi + LB + b);
          vd* pc_r = reinterpret_cast<vd*>(xr + 2 * LB + b);
          vd* pc_i = reinterpret_cast<vd*>(xi + 2 * LB + b);
          vd* pd_r = reinterpret_cast<vd*>(xr + 3 * LB + b);
          vd* pd_i = reinterpret_cast<vd*>(xi + 3 * LB + b);
          const vd a_r = *pa_r, a_i = *pa_i, b_r = *pb_r, b_i = *pb_i;
          const vd c_r = *pc_r, c_i = *pc_i, d_r = *pd_r, d_i = *pd_i;
          const vd apcr = a_r + c_r, apci = a_i + c_i, amcr = a_r - c_r, amci = a_i - c_i;
          const vd bpdr = b_r + d_r, bpdi = b_i + d_i, bmdr = b_r - d_r, bmdi = b_i - d_i;
          const vd t1r = amcr + bmdi, t1i = amci - bmdr;  // amc - j*bmd
          const vd t2r = apcr - bpdr, t2i = apci - bpdi;
          const vd t3r = amcr - bmdi, t3i = amci + bmdr;  // amc + j*bmd
          *pa_r = apcr + bpdr;
          *pa_i = apci + bpdi;
          if (trivial) {
            *pb_r = t1r; *pb_i = t1i; *pc_r = t2r; *pc_i = t2i; *pd_r = t3r; *pd_i = t3i;
          } else {
            *pb_r = w1r * t1r - w1i * t1i;
            *pb_i = w1r * t1i + w1i * t1r;
            *pc_r = w2r * t2r - w2i * t2i;
            *pc_i = w2r * t2i + w2i * t2r;
            *pd_r = w3r * t3r - w3i * t3i;
            *pd_i = w3r * t3i + w3i * t3r;
          }
        }
      }
  }
}

#endif

// Even/odd split: X[k] = Fe[k] + e^{-2 pi i k/n} Fo[k], Fe = (Z[k] + conj Z[m-k]) / 2,
// Fo = (Z[k] - conj Z[m-k]) / 2i. kPower: out_a = |X|^2; otherwise out_a = Re X, out_b = Im X.
template <bool kPower, int kLanes = 2>
EMOEDGE_INLINE void split(const RealFFTPlan& plan, const double* zr, const double* zi, int B, double* out_a,
                          double* out_b) {
  const int m = plan.half();
  const double* spr = plan.split_cos();
  const double* spi = plan.split_sin();
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
  if (B == 1) {  // single transform: vectorize over k (the mirrored index runs backwards)
    EMOEDGE_IVDEP
    for (int k = 1; k < m; ++k) {
      const double c = spr[k], s = spi[k];
      const double kr = zr[k], ki = zi[k], jr = zr[m - k], ji = zi[m - k];
      const double fer = 0.5 * (kr + jr), fei = 0.5 * (ki - ji);
      const double forr = 0.5 * (ki + ji), foi = -0.5 * (kr - jr);
      const double xr = fer + (c * forr - s * foi);
      const double xi = fei + (c * foi + s * forr);
      if (kPower) {
        out_a[k] = xr * xr + xi * xi;
      } else {
        out_a[k] = xr;
        out_b[k] = xi;
      }
    }
    return;
  }
#if defined(__GNUC__) || defined(__clang__)
  if (kPower && B % kLanes == 0) {  // batched power: explicit vectors (GCC's SLP leaves this scalar)
    typedef double v4d __attribute__((vector_size(8 * kLanes), aligned(8)));
    for (int k = 1; k < m; ++k) {
      const double c = spr[k], s = spi[k];
      for (int b = 0; b < B; b += kLanes) {
        const v4d kr = *reinterpret_cast<const v4d*>(zr + std::size_t(k) * B + b);
        const v4d ki = *reinterpret_cast<const v4d*>(zi + std::size_t(k) * B + b);
        const v4d jr = *reinterpret_cast<const v4d*>(zr + std::size_t(m - k) * B + b);
        const v4d ji = *reinterpret_cast<const v4d*>(zi + std::size_t(m - k) * B + b);
        const v4d fer = 0.5 * (kr + jr), fei = 0.5 * (ki - ji);
        const v4d forr = 0.5 * (ki + ji), foi = -0.5 * (kr - jr);
        const v4d xr = fer + (c * forr - s * foi);
        const v4d xi = fei + (c * foi + s * forr);
        *reinterpret_cast<v4d*>(out_a + std::size_t(k) * B + b) = xr * xr + xi * xi;
      }
    }
    return;
  }
#endif
  for (int k = 1; k < m; ++k) {
    const double c = spr[k], s = spi[k];
    const double* __restrict kr = zr + std::size_t(k) * B;
    const double* __restrict ki = zi + std::size_t(k) * B;
    const double* __restrict jr = zr + std::size_t(m - k) * B;
    const double* __restrict ji = zi + std::size_t(m - k) * B;
    double* __restrict oa = out_a + std::size_t(k) * B;
    double* __restrict ob = kPower ? nullptr : out_b + std::size_t(k) * B;
    EMOEDGE_IVDEP
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

// kLanes: doubles per vector in the instance this is inlined into (2: SSE2/NEON baseline, 4: AVX2).
template <int kLanes = 2>
EMOEDGE_INLINE void power_split(const RealFFTPlan& plan, double* zr, double* zi, int B, double* pw,
                                double* scratch) {
  double* sr = scratch;
  double* si = scratch + std::size_t(plan.half()) * B + RealFFTPlan::kSkew;
  if (complex_fft<kLanes>(plan, zr, zi, sr, si, B)) split<true, kLanes>(plan, sr, si, B, pw, nullptr);
  else split<true, kLanes>(plan, zr, zi, B, pw, nullptr);
}

}  // namespace fft_detail
}  // namespace emoedge
