// Log-mel spectrogram kernel (see logmel.h).
#include "logmel.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "common.h"
#include "cpu.h"

namespace emoedge {

namespace {

constexpr double kPi = 3.14159265358979323846;

// librosa.hz_to_mel / mel_to_hz (slaney: linear below 1 kHz, log above; or htk).
double hz_to_mel(double f, bool htk) {
  if (htk) return 2595.0 * std::log10(1.0 + f / 700.0);
  const double f_sp = 200.0 / 3;
  double mel = f / f_sp;
  const double min_log_hz = 1000.0, min_log_mel = min_log_hz / f_sp, logstep = std::log(6.4) / 27.0;
  if (f >= min_log_hz) mel = min_log_mel + std::log(f / min_log_hz) / logstep;
  return mel;
}

double mel_to_hz(double mel, bool htk) {
  if (htk) return 700.0 * (std::pow(10.0, mel / 2595.0) - 1.0);
  const double f_sp = 200.0 / 3;
  double f = f_sp * mel;
  const double min_log_hz = 1000.0, min_log_mel = min_log_hz / f_sp, logstep = std::log(6.4) / 27.0;
  if (mel >= min_log_mel) f = min_log_hz * std::exp(logstep * (mel - min_log_mel));
  return f;
}

inline std::int64_t complete_frames(std::int64_t padded_len, int n_fft, int hop) {
  return padded_len >= n_fft ? (padded_len - n_fft) / hop + 1 : 0;
}

// Natural log for normal positive doubles, written with integer/bit operations that vectorize
// (no libm call): x = 2^k * m with m in [sqrt(1/2), sqrt(2)), ln m = 2 atanh(s), s = (m-1)/(m+1),
// series to s^15 (|error| < 2e-14).
EMOEDGE_INLINE double fast_ln(double x) {
  std::uint64_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  const std::uint64_t off = 0x3FE6A09E667F3BCDull;  // bits of sqrt(1/2)
  const std::uint64_t t = bits - off;
  const std::uint64_t mb = bits - (t & 0xFFF0000000000000ull);  // mantissa scaled into [sqrt(1/2), sqrt(2))
  double m;
  std::memcpy(&m, &mb, sizeof m);
  // k = (signed) t >> 52 in [-1023, 1024]; double(k) via the 2^52 trick (integer ops only).
  const std::uint64_t kbits = 0x4330000000000000ull | (((t >> 52) + 2048u) & 0xFFFull);
  double kd;
  std::memcpy(&kd, &kbits, sizeof kd);
  kd -= 4503599627370496.0 + 2048.0;
  const double s = (m - 1.0) / (m + 1.0), s2 = s * s;
  const double p = 1.0 + s2 * (1.0 / 3 + s2 * (1.0 / 5 + s2 * (1.0 / 7 + s2 * (1.0 / 9 + s2 * (1.0 / 11 +
                   s2 * (1.0 / 13 + s2 * (1.0 / 15)))))));
  return kd * 0.6931471805599453094 + 2.0 * s * p;
}

#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12)
#define EMOEDGE_HAVE_SHUFFLEVECTOR 1
#else
#define EMOEDGE_HAVE_SHUFFLEVECTOR 0
#endif

// Natural log for normal positive floats (vectorizes like fast_ln): x = 2^k m, m in [sqrt(1/2), sqrt(2)),
// ln m = 2 atanh(s), series to s^9 (|error| < 3e-8 relative to ln 2), k ln 2 in two parts.
EMOEDGE_INLINE float fast_lnf(float x) {
  std::uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  const std::uint32_t t = bits - 0x3F3504F3u;  // bits of sqrt(1/2)
  const std::uint32_t mb = bits - (t & 0xFF800000u);
  float m;
  std::memcpy(&m, &mb, sizeof m);
  const float k = float(std::int32_t(t) >> 23);
  const float s = (m - 1.0f) / (m + 1.0f), s2 = s * s;
  const float p = 1.0f + s2 * (1.0f / 3 + s2 * (1.0f / 5 + s2 * (1.0f / 7 + s2 * (1.0f / 9))));
  return k * 0.693145751953125f + (k * 1.428606765330187e-06f + 2.0f * s * p);
}

// acc[m * kB + b] (mel power) -> out[b * n_mels + m] (log, float). The log runs in float when every
// value and amin are inside the normal float range (dB error < 3e-5, far below the output's own
// rounding for most values), else in double.
template <int kB = 4>
EMOEDGE_INLINE void log_out(const LogMel::Tables& t, double* acc, float* accf, float* out) {
  const int nm = t.n_mels;
  const std::size_t total = std::size_t(nm) * kB;
  const double amin = t.amin;
  double mx = 0.0;
  for (std::size_t i = 0; i < total; ++i) mx = acc[i] > mx ? acc[i] : mx;
  if (amin >= 1e-30 && mx <= 1e37) {
    const float aminf = float(amin);
    const float scale = t.log_db ? 4.342944819032518277f : 1.0f;
    for (std::size_t i = 0; i < total; ++i) {
      const float v = float(acc[i]);
      accf[i] = scale * fast_lnf(v > aminf ? v : aminf);
    }
  } else {
    const double scale = t.log_db ? 4.342944819032518277 : 1.0;  // 10 / ln(10)
    for (std::size_t i = 0; i < total; ++i) accf[i] = float(scale * fast_ln(acc[i] > amin ? acc[i] : amin));
  }
  int m0 = 0;
#if EMOEDGE_HAVE_SHUFFLEVECTOR
  if constexpr (kB == 4) {  // 4 mels x 4 frames: 4x4 transposes
    typedef float v4f __attribute__((vector_size(16), aligned(4)));
    for (; m0 + 4 <= nm; m0 += 4) {
      const v4f r0 = *reinterpret_cast<const v4f*>(accf + 4 * m0), r1 = *reinterpret_cast<const v4f*>(accf + 4 * m0 + 4);
      const v4f r2 = *reinterpret_cast<const v4f*>(accf + 4 * m0 + 8), r3 = *reinterpret_cast<const v4f*>(accf + 4 * m0 + 12);
      const v4f t0 = __builtin_shufflevector(r0, r1, 0, 4, 1, 5), t1 = __builtin_shufflevector(r0, r1, 2, 6, 3, 7);
      const v4f t2 = __builtin_shufflevector(r2, r3, 0, 4, 1, 5), t3 = __builtin_shufflevector(r2, r3, 2, 6, 3, 7);
      *reinterpret_cast<v4f*>(out + m0) = __builtin_shufflevector(t0, t2, 0, 1, 4, 5);
      *reinterpret_cast<v4f*>(out + nm + m0) = __builtin_shufflevector(t0, t2, 2, 3, 6, 7);
      *reinterpret_cast<v4f*>(out + 2 * nm + m0) = __builtin_shufflevector(t1, t3, 0, 1, 4, 5);
      *reinterpret_cast<v4f*>(out + 3 * nm + m0) = __builtin_shufflevector(t1, t3, 2, 3, 6, 7);
    }
  }
#endif
  for (int b = 0; b < kB; ++b)
    for (int m = m0; m < nm; ++m) out[std::size_t(b) * nm + m] = accf[std::size_t(m) * kB + b];
}

#if EMOEDGE_HAVE_SHUFFLEVECTOR
// Even/odd split of the in-place FFT output, then the mel sums, 4 frames per vector. The split makes
// bins k and m - k from one pair of loads and stores 4 |X|^2 (no halving; the mel weights are
// pre-scaled by 1/4, exact). Bins come in segments: every bin of segment s lies in filters q_s
// (weight seg_wa) and q_s + 1 (seg_wb) only, so each segment's two sums stay in registers.
EMOEDGE_INLINE void split_mel_4(const LogMel::Tables& t, const double* zr, const double* zi, double* pw, double* acc) {
  typedef double v4d __attribute__((vector_size(32), aligned(8)));
  const RealFFTPlan& plan = *t.fft;
  const int m = plan.half(), nm = t.n_mels;
  const double* spr = plan.split_cos();
  const double* spi = plan.split_sin();
  const int* pos = plan.dif_pos();
  {  // bins 0 and m from Z[0] (position 0)
    const v4d r = *reinterpret_cast<const v4d*>(zr), i = *reinterpret_cast<const v4d*>(zi);
    const v4d x0 = r + i, xm = r - i;
    *reinterpret_cast<v4d*>(pw) = 4.0 * x0 * x0;
    *reinterpret_cast<v4d*>(pw + 4 * std::size_t(m)) = 4.0 * xm * xm;
  }
  // Bins k and j = m - k from the same two loads: with A = Z_k + conj Z_j, B = (Z_k - conj Z_j) / i and
  // (P, Q) = (c + i s) B, 2 X_k = (A_r + P, A_i + Q) and 2 X_j = (A_r - P, Q - A_i) (cos flips sign at j).
  for (int k = 1; 2 * k <= m; ++k) {
    const int j = m - k;
    const double c = spr[k], s = spi[k];
    const std::size_t ok = std::size_t(pos[k]) * 4, oj = std::size_t(pos[j]) * 4;
    const v4d kr = *reinterpret_cast<const v4d*>(zr + ok), ki = *reinterpret_cast<const v4d*>(zi + ok);
    const v4d jr = *reinterpret_cast<const v4d*>(zr + oj), ji = *reinterpret_cast<const v4d*>(zi + oj);
    const v4d ar = kr + jr, ai = ki - ji, br = ki + ji, bi = jr - kr;
    const v4d P = c * br - s * bi, Q = c * bi + s * br;
    const v4d xr = ar + P, xi = ai + Q, yr = ar - P, yi = Q - ai;
    *reinterpret_cast<v4d*>(pw + 4 * std::size_t(k)) = xr * xr + xi * xi;
    *reinterpret_cast<v4d*>(pw + 4 * std::size_t(j)) = yr * yr + yi * yi;  // k == j at m/2: same value
  }
  const double* wa = t.seg_wa.data();
  const double* wb = t.seg_wb.data();
  for (int i = 0; i < nm; ++i) *reinterpret_cast<v4d*>(acc + 4 * i) = v4d{};
  const int nseg = int(t.seg_q.size());
  for (int sg = 0; sg < nseg; ++sg) {
    v4d sa{}, sb{};
    const int k1 = t.seg_start[sg + 1];
    for (int k = t.seg_start[sg]; k < k1; ++k) {
      const v4d pk = *reinterpret_cast<const v4d*>(pw + 4 * std::size_t(k));
      sa += wa[k] * pk;
      sb += wb[k] * pk;
    }
    const int q = t.seg_q[sg];
    *reinterpret_cast<v4d*>(acc + 4 * q) += sa;
    if (q + 1 < nm) *reinterpret_cast<v4d*>(acc + 4 * (q + 1)) += sb;
  }
}
#endif

// One batch of kB frames (compile-time, so the batch lanes live in registers): window + split, FFT
// power, sparse mel, log. Always inlined into the portable and the AVX2+FMA instances below.
template <int kLanes, int kB, typename T>
EMOEDGE_INLINE void frames_body(const LogMel::Tables& t, const T* const* ptrs, float* out, LogMel::Work& w) {
  const int M = t.n_fft / 2, nm = t.n_mels;
  const double* __restrict win = std::is_same<T, std::int16_t>::value ? t.window_i16.data() : t.window.data();
  double* __restrict zr = w.zr.data();
  double* __restrict zi = w.zi.data();
#if EMOEDGE_HAVE_SHUFFLEVECTOR
  if constexpr (kLanes == 4 && kB == 4) {
    // 4 frames x 8 samples at a time: a 4x8 transpose in float with in-lane shuffles only (cheap),
    // then widening to double: D[j] = sample 2*k0 + j of frames 0..3.
    typedef double v4d __attribute__((vector_size(32), aligned(8)));
    typedef float v4f __attribute__((vector_size(16), aligned(4)));
    typedef float v8f __attribute__((vector_size(32), aligned(4)));
    typedef std::int16_t v8s __attribute__((vector_size(16), aligned(2)));
    for (int k0 = 0; k0 + 4 <= M; k0 += 4) {
      if (k0 < t.k_lo || k0 >= t.k_hi) {  // window is zero here (win_length < n_fft): no loads
        for (int j = 0; j < 4; ++j) {
          *reinterpret_cast<v4d*>(zr + std::size_t(k0 + j) * 4) = v4d{};
          *reinterpret_cast<v4d*>(zi + std::size_t(k0 + j) * 4) = v4d{};
        }
        continue;
      }
      v8f R[4];
      for (int b = 0; b < 4; ++b) {
        if constexpr (std::is_same<T, std::int16_t>::value)
          R[b] = __builtin_convertvector(*reinterpret_cast<const v8s*>(ptrs[b] + 2 * k0), v8f);
        else
          R[b] = *reinterpret_cast<const v8f*>(ptrs[b] + 2 * k0);
      }
      const v8f t01l = __builtin_shufflevector(R[0], R[1], 0, 8, 1, 9, 4, 12, 5, 13);
      const v8f t01h = __builtin_shufflevector(R[0], R[1], 2, 10, 3, 11, 6, 14, 7, 15);
      const v8f t23l = __builtin_shufflevector(R[2], R[3], 0, 8, 1, 9, 4, 12, 5, 13);
      const v8f t23h = __builtin_shufflevector(R[2], R[3], 2, 10, 3, 11, 6, 14, 7, 15);
      const v8f U[4] = {__builtin_shufflevector(t01l, t23l, 0, 1, 8, 9, 4, 5, 12, 13),     // j = 0 | 4
                        __builtin_shufflevector(t01l, t23l, 2, 3, 10, 11, 6, 7, 14, 15),    // j = 1 | 5
                        __builtin_shufflevector(t01h, t23h, 0, 1, 8, 9, 4, 5, 12, 13),     // j = 2 | 6
                        __builtin_shufflevector(t01h, t23h, 2, 3, 10, 11, 6, 7, 14, 15)};  // j = 3 | 7
      for (int j = 0; j < 8; ++j) {
        const v4f h = (j < 4) ? __builtin_shufflevector(U[j], U[j], 0, 1, 2, 3)
                              : __builtin_shufflevector(U[j - 4], U[j - 4], 4, 5, 6, 7);
        const int k = k0 + j / 2;
        double* dst = (j & 1) ? zi : zr;
        *reinterpret_cast<v4d*>(dst + std::size_t(k) * 4) = __builtin_convertvector(h, v4d) * win[2 * k0 + j];
      }
    }
  } else
#endif
  // k outer, frames inner: contiguous stores of kB lanes (the loads gather from kB frames).
  for (int k = 0; k < M; ++k) {
    const double w0 = win[2 * k], w1 = win[2 * k + 1];
    double* __restrict r = zr + std::size_t(k) * kB;
    double* __restrict i = zi + std::size_t(k) * kB;
    for (int b = 0; b < kB; ++b) {
      r[b] = double(ptrs[b][2 * k]) * w0;
      i[b] = double(ptrs[b][2 * k + 1]) * w1;
    }
  }
  double* __restrict acc = w.acc.data();
#if EMOEDGE_HAVE_SHUFFLEVECTOR
  if constexpr (kLanes == 4 && kB == 4) {
    if (!t.seg_start.empty()) {
      fft_detail::dif_fft<4>(*t.fft, zr, zi, 4);
      split_mel_4(t, zr, zi, w.pw.data(), acc);
      log_out(t, acc, w.accf.data(), out);
      return;
    }
  }
#endif
  double* __restrict pw = w.pw.data();
  fft_detail::power_split<kLanes>(*t.fft, zr, zi, kB, pw, w.scratch.data());
  for (int m = 0; m < nm; ++m) {
    const double* __restrict wt = t.fw.data() + t.foff[m];
    const double* __restrict base = pw + std::size_t(t.fstart[m]) * kB;
    const int len = t.flen[m];
    if (kB == 1) {  // one frame: four partial sums break the add latency chain
      double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      int j = 0;
      for (; j + 4 <= len; j += 4) {
        s0 += wt[j] * base[j];
        s1 += wt[j + 1] * base[j + 1];
        s2 += wt[j + 2] * base[j + 2];
        s3 += wt[j + 3] * base[j + 3];
      }
      for (; j < len; ++j) s0 += wt[j] * base[j];
      acc[m] = (s0 + s1) + (s2 + s3);
    } else {
      double a[kB], c[kB];  // even / odd j: two chains of multiply-adds
      for (int b = 0; b < kB; ++b) a[b] = c[b] = 0.0;
      int j = 0;
      for (; j + 2 <= len; j += 2) {
        const double w0 = wt[j], w1 = wt[j + 1];
        const double* __restrict p0 = base + std::size_t(j) * kB;
        const double* __restrict p1 = p0 + kB;
        for (int b = 0; b < kB; ++b) {
          a[b] += w0 * p0[b];
          c[b] += w1 * p1[b];
        }
      }
      if (j < len) {
        const double* __restrict p0 = base + std::size_t(j) * kB;
        for (int b = 0; b < kB; ++b) a[b] += wt[j] * p0[b];
      }
      for (int b = 0; b < kB; ++b) acc[std::size_t(m) * kB + b] = a[b] + c[b];
    }
  }
  log_out<kB>(t, acc, w.accf.data(), out);
}

// Full batches use the kBatch-wide body; partial batches run frame by frame.
template <int kLanes, typename T>
EMOEDGE_INLINE void frames_dispatch(const LogMel::Tables& t, const T* const* ptrs, int B, float* out, LogMel::Work& w) {
  if (B == LogMel::kBatch) {
    frames_body<kLanes, LogMel::kBatch>(t, ptrs, out, w);
    return;
  }
  for (int b = 0; b < B; ++b) frames_body<kLanes, 1>(t, ptrs + b, out + std::size_t(b) * t.n_mels, w);
}

template <typename T>
void frames_generic(const LogMel::Tables& t, const T* const* ptrs, int B, float* out, LogMel::Work& w) {
  frames_dispatch<2>(t, ptrs, B, out, w);
}

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define EMOEDGE_AVX2_PATH 1
constexpr bool kHaveAvx2Path = true;
template <typename T>
__attribute__((target("avx2,fma"))) void frames_avx2(const LogMel::Tables& t, const T* const* ptrs, int B, float* out,
                                                      LogMel::Work& w) {
  frames_dispatch<4>(t, ptrs, B, out, w);
}
#else
#define EMOEDGE_AVX2_PATH 0
constexpr bool kHaveAvx2Path = false;
#endif

}  // namespace

void LogMelConfig::validate() const {
  if (sample_rate <= 0)
    fail("sample_rate=", sample_rate, " is invalid: use a positive rate in Hz, e.g. 16000");
  if (n_fft < 16 || n_fft > 65536 || (n_fft & (n_fft - 1)) != 0)
    fail("n_fft=", n_fft, " is invalid: use a power of two between 16 and 65536, e.g. 512");
  if (win_length <= 0 || win_length > n_fft)
    fail("win_length=", win_length, " is invalid: use 1 <= win_length <= n_fft (", n_fft,
         "), or raise n_fft to the next power of two >= win_length");
  if (hop_length <= 0)
    fail("hop_length=", hop_length, " is invalid: use a positive hop in samples, e.g. 160 (10 ms at 16 kHz)");
  // Work bound: each frame costs O(n_fft log n_fft), so frames may overlap at most kMaxOverlap times
  // (librosa's default is 4x; 64x keeps a call within ~1000 operations per input sample).
  if (std::int64_t(hop_length) * kMaxOverlap < n_fft)
    fail("hop_length=", hop_length, " is too small for n_fft=", n_fft, ": frames may overlap at most ", kMaxOverlap,
         "x, so use hop_length >= n_fft / ", kMaxOverlap, " = ", (n_fft + kMaxOverlap - 1) / kMaxOverlap);
  if (hop_length > kMaxHop)
    fail("hop_length=", hop_length, " is invalid: use a hop of at most ", kMaxHop, " samples");
  if (sample_rate > kMaxSampleRate)
    fail("sample_rate=", sample_rate, " is invalid: use a rate of at most ", kMaxSampleRate, " Hz");
  if (n_mels <= 0 || n_mels > 4096)
    fail("n_mels=", n_mels, " is invalid: use 1 <= n_mels <= 4096, e.g. 64");
  if (!(fmin >= 0.0) || !std::isfinite(fmin))
    fail("fmin=", fmin, " is invalid: use a frequency >= 0 Hz");
  const double fmx = fmax_hz();
  if (!std::isfinite(fmx) || fmx > sample_rate / 2.0)
    fail("fmax=", fmx, " is invalid: it must be <= sample_rate / 2 = ", sample_rate / 2.0, " Hz (or None)");
  if (!(fmin < fmx))
    fail("fmin=", fmin, " must be below fmax=", fmx, " Hz: lower fmin or raise fmax");
  // Degenerate band: narrower than one FFT bin, the filters hold no bin (silent amin output) or
  // divide by a zero mel spacing (NaN weights).
  const double bin_hz = double(sample_rate) / double(n_fft);
  if (fmx - fmin < bin_hz)
    fail("fmin=", fmin, " and fmax=", fmx, " Hz are closer than one FFT bin (sample_rate / n_fft = ", bin_hz,
         " Hz): widen the band to at least ", bin_hz, " Hz or raise n_fft");
  if (!(amin >= 1e-300) || !std::isfinite(amin))
    fail("amin=", amin, " is invalid: use a small positive floor >= 1e-300, e.g. 1e-10");
  if (!std::isfinite(top_db) || top_db < 0)
    fail("top_db=", top_db, " is invalid: use a positive number of dB, or None for no clipping");
  if (top_db > 0 && !log_db())
    fail("top_db=", top_db, " only applies to log='db': set top_db=None for log='ln'");
  if (mel_scale != MelScale::Slaney && mel_scale != MelScale::Htk)
    fail("mel_scale=", static_cast<int>(mel_scale), " is invalid: use MelScale::Slaney or MelScale::Htk");
  if (norm != MelNorm::NoNorm && norm != MelNorm::Slaney)
    fail("norm=", static_cast<int>(norm), " is invalid: use MelNorm::NoNorm or MelNorm::Slaney");
  if (log != LogScale::Db && log != LogScale::Ln)
    fail("log=", static_cast<int>(log), " is invalid: use LogScale::Db or LogScale::Ln");
}

LogMel::LogMel(const LogMelConfig& cfg) : cfg_(cfg) {
  cfg_.validate();
  fft_ = RealFFTPlan::get(cfg_.n_fft);
  const int n_fft = cfg_.n_fft, wl = cfg_.win_length;
  t_.n_fft = n_fft;
  t_.n_mels = cfg_.n_mels;
  t_.log_db = cfg_.log_db();
  t_.amin = cfg_.amin;
  t_.fft = fft_.get();
  // Periodic Hann of win_length, centered in n_fft (librosa: get_window(fftbins=True) + pad_center).
  t_.window.assign(n_fft, 0.0);
  t_.window_i16.assign(n_fft, 0.0);
  const int lpad = (n_fft - wl) / 2;
  for (int i = 0; i < wl; ++i) {
    const double w = 0.5 - 0.5 * std::cos(2.0 * kPi * double(i) / double(wl));
    t_.window[lpad + i] = w;
    t_.window_i16[lpad + i] = w / 32768.0;
  }
  // Mel filterbank, replicating librosa.filters.mel (float32 weights, float64 construction).
  const int n_bins = n_fft / 2 + 1, nm = cfg_.n_mels;
  std::vector<double> fftfreqs(n_bins);
  const double val = 1.0 / (double(n_fft) * (1.0 / double(cfg_.sample_rate)));
  for (int k = 0; k < n_bins; ++k) fftfreqs[k] = double(k) * val;
  const int n_pts = nm + 2;
  std::vector<double> mel_f(n_pts);
  const double min_mel = hz_to_mel(cfg_.fmin, cfg_.htk()), max_mel = hz_to_mel(cfg_.fmax_hz(), cfg_.htk());
  const double step = (max_mel - min_mel) / double(n_pts - 1);
  for (int i = 0; i < n_pts; ++i) {
    const double mel = (i == n_pts - 1) ? max_mel : double(i) * step + min_mel;
    mel_f[i] = mel_to_hz(mel, cfg_.htk());
  }
  for (int i = 0; i + 1 < n_pts; ++i)
    if (!(mel_f[i + 1] > mel_f[i]) || !std::isfinite(mel_f[i + 1]))
      fail("fmin=", cfg_.fmin, ", fmax=", cfg_.fmax_hz(), " Hz with n_mels=", nm,
           " gives mel bands of zero width: widen fmin..fmax or use fewer mel bands");
  t_.fstart.assign(nm, 0);
  t_.flen.assign(nm, 0);
  t_.foff.assign(nm, 0);
  t_.fw.clear();
  std::vector<double> row(n_bins);
  for (int i = 0; i < nm; ++i) {
    const double fd0 = mel_f[i + 1] - mel_f[i], fd1 = mel_f[i + 2] - mel_f[i + 1];
    const double enorm = 2.0 / (mel_f[i + 2] - mel_f[i]);
    int first = -1, last = -1;
    for (int k = 0; k < n_bins; ++k) {
      const double lower = -(mel_f[i] - fftfreqs[k]) / fd0;
      const double upper = (mel_f[i + 2] - fftfreqs[k]) / fd1;
      float w = float(std::max(0.0, std::min(lower, upper)));
      if (cfg_.slaney_norm()) w = float(double(w) * enorm);
      row[k] = double(w);
      if (w != 0.0f) {
        if (first < 0) first = k;
        last = k;
      }
    }
    t_.foff[i] = t_.fw.size();
    if (first >= 0) {
      t_.fstart[i] = first;
      t_.flen[i] = last - first + 1;
      t_.fw.insert(t_.fw.end(), row.begin() + first, row.begin() + last + 1);
    }
  }
  // Window support in complex points (pairs of samples), rounded out to the 4-point blocks.
  const int M = n_fft / 2;
  t_.k_lo = (lpad / 2) & ~3;
  t_.k_hi = std::min(M, (((lpad + wl - 1) / 2 + 1) + 3) & ~3);
  build_segments();
  simd_ = cfg_.allow_simd && kHaveAvx2Path && cpu_has_avx2_fma();
}

void LogMel::build_segments() {
  // Each bin must lie in filters {q, q + 1} for one q (true for triangular filters, whose supports
  // only overlap neighbours); otherwise the fused path is not used.
  const int nb = n_bins(), nm = cfg_.n_mels;
  const std::vector<float> dense = dense_filterbank();
  std::vector<int> qk(nb);
  std::vector<double> wa(nb, 0.0), wb(nb, 0.0);
  int prev = 0;
  for (int k = 0; k < nb; ++k) {
    int lo = -1, hi = -1, cnt = 0;
    for (int mm = 0; mm < nm; ++mm)
      if (dense[std::size_t(mm) * nb + k] != 0.0f) {
        if (lo < 0) lo = mm;
        hi = mm;
        ++cnt;
      }
    int q = prev;  // a bin in no filter joins the current segment with zero weights
    if (cnt == 2 && hi == lo + 1) {
      q = lo;
    } else if (cnt == 1) {
      q = (prev + 1 == lo) ? prev : lo;
    } else if (cnt != 0) {
      t_.seg_start.clear(); t_.seg_q.clear(); t_.seg_wa.clear(); t_.seg_wb.clear();
      return;
    }
    qk[k] = q;
    wa[k] = 0.25 * double(dense[std::size_t(q) * nb + k]);
    wb[k] = q + 1 < nm ? 0.25 * double(dense[std::size_t(q + 1) * nb + k]) : 0.0;
    prev = q;
  }
  t_.seg_start.assign(1, 0);
  t_.seg_q.assign(1, qk[0]);
  for (int k = 1; k < nb; ++k)
    if (qk[k] != qk[k - 1]) {
      t_.seg_start.push_back(k);
      t_.seg_q.push_back(qk[k]);
    }
  t_.seg_start.push_back(nb);
  t_.seg_wa = std::move(wa);
  t_.seg_wb = std::move(wb);
}

std::vector<float> LogMel::dense_filterbank() const {
  const int nb = n_bins();
  std::vector<float> d(std::size_t(cfg_.n_mels) * nb, 0.0f);
  for (int m = 0; m < cfg_.n_mels; ++m)
    for (int j = 0; j < t_.flen[m]; ++j) d[std::size_t(m) * nb + t_.fstart[m] + j] = float(t_.fw[t_.foff[m] + j]);
  return d;
}

std::int64_t LogMel::num_frames(std::int64_t n) const {
  if (n <= 0) return 0;
  if (cfg_.center) return 1 + n / cfg_.hop_length;
  return complete_frames(n, cfg_.n_fft, cfg_.hop_length);
}

void LogMel::init_work(Work& w) const {
  const std::size_t m = std::size_t(cfg_.n_fft / 2), B = kBatch;
  // Odd extra lengths keep the buffers from sharing address bits 0-11 (4K aliasing stalls loads
  // that follow stores to another buffer at the same offset modulo 4096).
  w.zr.assign(m * B + 40, 0.0);
  w.zi.assign(m * B + 88, 0.0);
  w.scratch.assign(t_.fft->scratch_size(B) + 136, 0.0);
  w.pw.assign((m + 1) * B + 184, 0.0);
  w.acc.assign(std::size_t(cfg_.n_mels) * B + 8, 0.0);
  w.accf.assign(std::size_t(cfg_.n_mels) * B + 8, 0.0f);
}

void LogMel::frames(const float* const* ptrs, int B, float* out, Work& w) const {
#if EMOEDGE_AVX2_PATH
  if (simd_) return frames_avx2(t_, ptrs, B, out, w);
#endif
  frames_generic(t_, ptrs, B, out, w);
}

void LogMel::frames(const std::int16_t* const* ptrs, int B, float* out, Work& w) const {
#if EMOEDGE_AVX2_PATH
  if (simd_) return frames_avx2(t_, ptrs, B, out, w);
#endif
  frames_generic(t_, ptrs, B, out, w);
}

void LogMel::check_output(std::int64_t frames) const {
  if (frames > kMaxOutputValues / cfg_.n_mels)
    fail("the output would have ", frames, " frames x ", cfg_.n_mels, " mels, above the limit of ", kMaxOutputValues,
         " values (1 GiB float32) per call: pass the signal in shorter pieces (e.g. through LogMelStream) or "
         "raise hop_length");
}

template <typename T>
void LogMel::frames_impl(const T* x, std::int64_t n, std::int64_t f_begin, std::int64_t f_end, float* out) const {
  if (n <= 0) fail("waveform is empty: pass at least one sample");
  const std::int64_t F = num_frames(n);
  if (f_begin < 0 || f_end > F || f_begin > f_end)
    fail("frame range [", f_begin, ", ", f_end, ") is outside [0, ", F, ")");
  if (reinterpret_cast<std::uintptr_t>(x) % alignof(T) != 0)
    fail("waveform pointer is not aligned to ", alignof(T), " bytes: pass an aligned copy (np.ascontiguousarray)");
  const int n_fft = cfg_.n_fft, hop = cfg_.hop_length, nm = cfg_.n_mels;
  const std::int64_t pad = cfg_.center ? n_fft / 2 : 0;
  Work w;
  init_work(w);
  std::vector<T> tmp(std::size_t(kBatch) * n_fft);
  const T* ptrs[kBatch];
  for (std::int64_t f0 = f_begin; f0 < f_end; f0 += kBatch) {
    const int B = int(std::min<std::int64_t>(kBatch, f_end - f0));
    for (int b = 0; b < B; ++b) {
      const std::int64_t start = (f0 + b) * hop - pad;
      if (start >= 0 && start + n_fft <= n) {
        ptrs[b] = x + start;
      } else {
        T* t = tmp.data() + std::size_t(b) * n_fft;
        for (int i = 0; i < n_fft; ++i) {
          const std::int64_t j = start + i;
          t[i] = (j >= 0 && j < n) ? x[j] : T(0);
        }
        ptrs[b] = t;
      }
    }
    frames(ptrs, B, out + (f0 - f_begin) * nm, w);
  }
}

void LogMel::apply_top_db(float* out, std::int64_t frames) const {
  if (!(cfg_.log_db() && cfg_.top_db > 0)) return;
  const std::size_t total = std::size_t(frames) * cfg_.n_mels;
  float mx = -std::numeric_limits<float>::infinity();
  for (std::size_t i = 0; i < total; ++i) mx = std::max(mx, out[i]);
  const float lo = float(double(mx) - cfg_.top_db);
  for (std::size_t i = 0; i < total; ++i) out[i] = std::max(out[i], lo);
}

template <typename T>
void LogMel::compute_impl(const T* x, std::int64_t n, float* out) const {
  if (n <= 0) fail("waveform is empty: pass at least one sample");
  const std::int64_t F = num_frames(n);
  check_output(F);
  if (reinterpret_cast<std::uintptr_t>(x) % alignof(T) != 0) {  // misaligned view: read an aligned copy
    std::vector<T> copy(static_cast<std::size_t>(n));
    std::memcpy(copy.data(), x, sizeof(T) * static_cast<std::size_t>(n));
    frames_impl(copy.data(), n, 0, F, out);
  } else {
    frames_impl(x, n, 0, F, out);
  }
  apply_top_db(out, F);
}

void LogMel::compute(const float* x, std::int64_t n, float* out) const { compute_impl(x, n, out); }
void LogMel::compute(const std::int16_t* x, std::int64_t n, float* out) const { compute_impl(x, n, out); }
void LogMel::compute_frames(const float* x, std::int64_t n, std::int64_t f0, std::int64_t f1, float* out) const {
  frames_impl(x, n, f0, f1, out);
}
void LogMel::compute_frames(const std::int16_t* x, std::int64_t n, std::int64_t f0, std::int64_t f1,
                            float* out) const {
  frames_impl(x, n, f0, f1, out);
}

void check_finite(const float* x, std::int64_t n, const char* what) {
  // Fast path: a float is NaN/Inf iff its exponent bits are all ones. An integer compare-and-or over the
  // exponent fields vectorizes (a float sum would not: its order is fixed without -ffast-math, which
  // made this check a serial add chain costing ~20% of a 10 s log-mel).
  constexpr std::int64_t kBlock = 4096;
  constexpr std::uint32_t kExp = 0x7F800000u;
  for (std::int64_t i0 = 0; i0 < n; i0 += kBlock) {
    const std::int64_t i1 = std::min(n, i0 + kBlock);
    std::uint32_t bad = 0;  // compare + or: vectorizes with SSE2 (no unsigned max needed)
    for (std::int64_t i = i0; i < i1; ++i) {
      std::uint32_t bits;
      std::memcpy(&bits, x + i, sizeof bits);
      bad |= std::uint32_t((bits & kExp) == kExp);
    }
    if (bad) {
      for (std::int64_t i = i0; i < i1; ++i) {
        float v;
        std::memcpy(&v, x + i, sizeof v);  // x may be a misaligned view
        if (!std::isfinite(v))
          fail(what, " contains ", std::isnan(v) ? "NaN" : "Inf", " at sample ", i,
               ": remove or replace non-finite samples first (e.g. np.nan_to_num(x))");
      }
    }
  }
}

// ---------------------------------------------------------------- streaming

LogMelStreamer::LogMelStreamer(std::shared_ptr<const LogMel> lm) : lm_(std::move(lm)) {
  if (!lm_) fail("LogMelStreamer needs a LogMel");
  if (lm_->config().top_db > 0)
    fail("top_db=", lm_->config().top_db, " is not supported for streams (it needs the maximum over the whole "
         "signal): use top_db=None for the stream and clip afterwards, or call the offline log_mel");
  lm_->init_work(work_);
  buf_.reserve(std::size_t(lm_->config().n_fft) * 4);
  reset();
}

void LogMelStreamer::reset() {
  const auto& c = lm_->config();
  buf_.clear();
  if (c.center) buf_.assign(std::size_t(c.n_fft / 2), 0.0f);
  buf_start_ = 0;
  samples_ = 0;
  next_frame_ = 0;
  finished_ = false;
}

std::int64_t LogMelStreamer::frames_for_accept(std::int64_t n) const {
  if (finished_ || n <= 0) return 0;
  const auto& c = lm_->config();
  const std::int64_t pad = c.center ? c.n_fft / 2 : 0;
  const std::int64_t ready = complete_frames(pad + samples_ + n, c.n_fft, c.hop_length);
  return std::max<std::int64_t>(0, ready - next_frame_);
}

std::int64_t LogMelStreamer::frames_for_flush() const {
  if (finished_ || samples_ == 0 || !lm_->config().center) return 0;
  return std::max<std::int64_t>(0, samples_ / lm_->config().hop_length + 1 - next_frame_);
}

template <typename T>
std::int64_t LogMelStreamer::accept_impl(const T* x, std::int64_t n, float scale, float* out) {
  if (finished_) fail("accept() after flush(): call reset() to start a new signal");
  if (n <= 0) return 0;
  lm_->check_output(frames_for_accept(n));
  const auto& c = lm_->config();
  const std::int64_t needed = next_frame_ * c.hop_length;
  std::int64_t i0 = 0;
  const std::int64_t end = buf_start_ + std::int64_t(buf_.size());
  if (buf_.empty() && end < needed) {  // hop > n_fft: samples between frames are never used
    i0 = std::min(n, needed - end);
    buf_start_ += i0;
  }
  const std::size_t old = buf_.size();
  buf_.resize(old + std::size_t(n - i0));
  float* dst = buf_.data() + old;
  if (reinterpret_cast<std::uintptr_t>(x) % alignof(T) == 0) {
    for (std::int64_t i = i0; i < n; ++i) dst[i - i0] = float(x[i]) * scale;
  } else {  // misaligned view: byte copies (memcpy is defined for any alignment)
    for (std::int64_t i = i0; i < n; ++i) {
      T v;
      std::memcpy(&v, reinterpret_cast<const unsigned char*>(x) + sizeof(T) * std::size_t(i), sizeof(T));
      dst[i - i0] = float(v) * scale;
    }
  }
  samples_ += n;
  const std::int64_t pad = c.center ? c.n_fft / 2 : 0;
  return emit_ready(complete_frames(pad + samples_, c.n_fft, c.hop_length), out);
}

std::int64_t LogMelStreamer::accept(const float* x, std::int64_t n, float* out) {
  return accept_impl(x, n, 1.0f, out);
}
std::int64_t LogMelStreamer::accept(const std::int16_t* x, std::int64_t n, float* out) {
  return accept_impl(x, n, 1.0f / 32768.0f, out);
}

std::int64_t LogMelStreamer::emit_ready(std::int64_t last, float* out) {
  const auto& c = lm_->config();
  const int hop = c.hop_length, nm = c.n_mels;
  std::int64_t cnt = 0;
  const float* ptrs[LogMel::kBatch];
  while (next_frame_ < last) {
    const int B = int(std::min<std::int64_t>(LogMel::kBatch, last - next_frame_));
    for (int b = 0; b < B; ++b) ptrs[b] = buf_.data() + ((next_frame_ + b) * hop - buf_start_);
    lm_->frames(ptrs, B, out + cnt * nm, work_);
    next_frame_ += B;
    cnt += B;
  }
  const std::int64_t needed = next_frame_ * hop;
  const std::int64_t drop = std::min<std::int64_t>(needed - buf_start_, std::int64_t(buf_.size()));
  if (drop > 0) {
    buf_.erase(buf_.begin(), buf_.begin() + drop);
    buf_start_ += drop;
  }
  return cnt;
}

std::int64_t LogMelStreamer::flush(float* out) {
  if (finished_) return 0;
  std::int64_t cnt = 0;
  const auto& c = lm_->config();
  if (c.center && samples_ > 0) {
    const std::int64_t last = samples_ / c.hop_length + 1;
    const std::int64_t pad = c.n_fft / 2;
    const std::int64_t end = buf_start_ + std::int64_t(buf_.size());
    const std::int64_t needed = next_frame_ * c.hop_length;
    std::int64_t zeros = pad;
    if (buf_.empty() && end < needed) {
      const std::int64_t skip = std::min(pad, needed - end);
      buf_start_ += skip;
      zeros -= skip;
    }
    buf_.insert(buf_.end(), std::size_t(zeros), 0.0f);
    cnt = emit_ready(last, out);
  }
  finished_ = true;
  return cnt;
}

}  // namespace emoedge
