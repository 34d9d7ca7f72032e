// Real FFT for power-of-two sizes (double precision throughout).
//
// A real FFT of n points runs as a complex FFT of n/2 points (Stockham autosort, radix-4 with one
// radix-2 stage when log2(n/2) is odd) followed by the usual even/odd split. Transforms are
// *batched*: B independent signals are interleaved with the batch index innermost
// (element i of signal b lives at [i * B + b]), so every inner loop runs over >= B contiguous
// doubles and auto-vectorizes even in the first stages. B = 1 is a plain single transform.
//
// Plans are immutable after construction and cached per size: RealFFTPlan::get(n) is thread-safe
// and the returned plan may be used from many threads at once (all scratch is caller-provided).
#pragma once
#include <cstddef>
#include <memory>
#include <vector>

namespace emoedge {

class RealFFTPlan {
 public:
  // Cached plan for size n (power of two, 4 <= n <= 2^20); throws std::invalid_argument otherwise.
  static std::shared_ptr<const RealFFTPlan> get(int n);
  explicit RealFFTPlan(int n);

  int size() const { return n_; }
  int half() const { return m_; }  // n / 2: complex points; the spectrum has half() + 1 bins.

  // Floats of scratch needed by the batched calls below: 4 * half() * B.
  std::size_t scratch_size(int B) const { return std::size_t(4) * m_ * B; }

  // Power spectrum of B real signals given already split into even/odd samples:
  //   zr[k * B + b] = x_b[2k], zi[k * B + b] = x_b[2k + 1]   for k < half().
  // zr/zi are overwritten (used as scratch). Writes pw[k * B + b] = |X_b[k]|^2 for k = 0..half().
  // scratch: at least 2 * half() * B doubles.
  void power_split(double* zr, double* zi, int B, double* pw, double* scratch) const;

  // Complex spectrum of B real signals (same split input as power_split). Writes
  // xr/xi[k * B + b] for k = 0..half(). scratch: at least 2 * half() * B doubles.
  void forward_split(double* zr, double* zi, int B, double* xr, double* xi, double* scratch) const;

  // Convenience, single signal: x[n] real -> out[2 * (n/2 + 1)] interleaved (re, im), bins 0..n/2.
  void forward(const double* x, double* out) const;

 private:
  // Runs the n/2-point complex FFT on (re, im) with ping-pong buffers (sr, si); returns which
  // pair holds the result: false -> (re, im), true -> (sr, si).
  bool complex_fft(double* re, double* im, double* sr, double* si, int B) const;
  template <bool kPower>
  void split(const double* zr, const double* zi, int B, double* out_a, double* out_b) const;

  struct Stage { int radix; int n_cur; std::size_t tw; };  // tw: offset into twiddle tables
  int n_ = 0, m_ = 0;
  std::vector<Stage> stages_;
  std::vector<double> twr_, twi_;   // per-stage twiddles, 3 per p for radix 4 (w1, w2, w3)
  std::vector<double> spr_, spi_;   // split twiddles e^{-2 pi i k / n}, k = 0..n/2
};

}  // namespace emoedge
