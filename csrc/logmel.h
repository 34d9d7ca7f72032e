// Log-mel spectrogram, offline and streaming (plain C++17; bindings in python/bind_logmel.cpp).
//
// Matches librosa.feature.melspectrogram(power=2) + power_to_db: periodic Hann window of
// win_length zero-padded (centered) to n_fft, center=True pads n_fft/2 zeros on both sides
// (librosa >= 0.10 pad_mode="constant"), frames = 1 + n // hop_length (center) or
// 1 + (n - n_fft) // hop_length (no center), mel filterbank built like librosa.filters.mel
// (slaney or htk scale, slaney or no norm). Output rows are frames, columns mel bands:
//   db: 10 * log10(max(S, amin)) [then max(., max - top_db) offline], ln: log(max(S, amin)).
// int16 input is scaled by 1/32768. Windowing, FFT, mel sums and log run in double precision
// (float32 cannot hold 0.01 dB at 110 dB below a frame's peak); output is float32.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "fft.h"

namespace emoedge {

// Work bounds (validate() names them in its errors).
constexpr int kMaxOverlap = 64;           // n_fft / hop_length at most
constexpr int kMaxHop = 1 << 20;          // samples
constexpr int kMaxSampleRate = 1 << 20;   // Hz
constexpr std::int64_t kMaxOutputValues = std::int64_t(1) << 28;  // frames * n_mels per call (1 GiB float32)

enum class MelScale : int { Slaney = 0, Htk = 1 };   // librosa htk=False / htk=True
enum class MelNorm : int { NoNorm = 0, Slaney = 1 };  // triangles of peak 1 / area-normalised (librosa norm)
enum class LogScale : int { Db = 0, Ln = 1 };         // 10 * log10(S) / natural log

// The log-mel options, defined once here; Python sees them as emoedge._native.LogMelConfig (read/write
// fields, to_dict/from_dict, pickling) and as the pure-Python emoedge.kernels.LogMelOptions view
// (same field names, defaults and dict form; tests/test_logmel.py checks that they agree).
struct LogMelConfig {
  int sample_rate = 16000;
  int n_fft = 512;
  int win_length = 400;
  int hop_length = 160;
  int n_mels = 64;
  double fmin = 0.0;
  double fmax = 0.0;      // <= 0 means sample_rate / 2 (Python: None)
  bool center = true;
  MelScale mel_scale = MelScale::Slaney;
  MelNorm norm = MelNorm::Slaney;
  LogScale log = LogScale::Db;
  double top_db = 0.0;    // <= 0 means none (offline only; Python: None)
  double amin = 1e-10;    // floor applied before the log
  bool allow_simd = true; // C++ only: false forces the portable path (tests compare both)
  void validate() const;  // throws std::invalid_argument naming the field, value and fix
  double fmax_hz() const { return fmax > 0 ? fmax : sample_rate / 2.0; }
  bool htk() const { return mel_scale == MelScale::Htk; }
  bool slaney_norm() const { return norm == MelNorm::Slaney; }
  bool log_db() const { return log == LogScale::Db; }
};

// Shared, immutable after construction: window, filterbank and FFT plan. Thread-safe.
class LogMel {
 public:
  explicit LogMel(const LogMelConfig& cfg);
  const LogMelConfig& config() const { return cfg_; }
  int n_mels() const { return cfg_.n_mels; }
  int n_bins() const { return cfg_.n_fft / 2 + 1; }

  // Number of frames for an offline call on n samples (0 when center=False and n < n_fft).
  std::int64_t num_frames(std::int64_t n) const;
  // Offline: x[n] -> out[num_frames(n) * n_mels] (row-major, frames x mels). n must be > 0.
  void compute(const float* x, std::int64_t n, float* out) const;
  void compute(const std::int16_t* x, std::int64_t n, float* out) const;
  // The same in pieces (so a caller can check for interruption between them): frames [f0, f1) of the
  // offline output into out (rows f0..f1-1 at out[0..]); then apply_top_db over all frames.
  void compute_frames(const float* x, std::int64_t n, std::int64_t f0, std::int64_t f1, float* out) const;
  void compute_frames(const std::int16_t* x, std::int64_t n, std::int64_t f0, std::int64_t f1, float* out) const;
  void apply_top_db(float* out, std::int64_t frames) const;
  // Throws when frames x n_mels exceeds kMaxOutputValues (names the limit and the fix).
  void check_output(std::int64_t frames) const;

  // The mel filterbank as a dense [n_mels x n_bins] matrix (for tests).
  std::vector<float> dense_filterbank() const;
  const std::vector<double>& window() const { return t_.window; }

  // Scratch for frames(); one per thread / stream.
  struct Work {
    std::vector<double> zr, zi, scratch, pw, acc;
    std::vector<float> accf;
  };
  static constexpr int kBatch = 4;
  void init_work(Work& w) const;
  // Log-mel of B <= kBatch frames; frame b is the n_fft samples starting at ptrs[b] (int16 samples
  // are scaled by 1/32768). Writes out[b * n_mels + m].
  void frames(const float* const* ptrs, int B, float* out, Work& w) const;
  void frames(const std::int16_t* const* ptrs, int B, float* out, Work& w) const;
  bool simd() const { return simd_; }  // true when the AVX2+FMA instance runs

  // Precomputed tables, read by the frame kernels.
  struct Tables {
    int n_fft = 0, n_mels = 0;
    bool log_db = true;
    double amin = 1e-10;
    const RealFFTPlan* fft = nullptr;
    std::vector<double> window;      // n_fft, zero outside the centered win_length span
    std::vector<double> window_i16;  // window / 32768 (exact: power-of-two scale)
    std::vector<int> fstart, flen;   // per mel filter: first nonzero bin and count
    std::vector<std::size_t> foff;   // offset of filter m's weights in fw
    std::vector<double> fw;          // float32-rounded weights (as librosa), held as double
    // Fused split + mel (AVX2 batch): bins [seg_start[s], seg_start[s+1]) feed filters seg_q[s] (weights
    // seg_wa, x 1/4) and seg_q[s] + 1 (seg_wb, x 1/4). Empty when the filters do not have that shape.
    std::vector<int> seg_start, seg_q;
    std::vector<double> seg_wa, seg_wb;
    int k_lo = 0, k_hi = 0;          // complex points [k_lo, k_hi) (multiples of 4) hold the nonzero window
  };

 private:
  template <typename T>
  void compute_impl(const T* x, std::int64_t n, float* out) const;
  template <typename T>
  void frames_impl(const T* x, std::int64_t n, std::int64_t f0, std::int64_t f1, float* out) const;
  void build_segments();

  LogMelConfig cfg_;
  std::shared_ptr<const RealFFTPlan> fft_;
  Tables t_;
  bool simd_ = false;
};

// Streaming log-mel: concat(accept(...)..., flush()) == LogMel::compute(whole) for any chunking.
// top_db is rejected (it needs the maximum over the whole signal). One thread per object: the
// internal mutex is there so the Python binding can detect a second thread (it try-locks and raises
// "in use by another thread" instead of waiting); C++ callers must not share a streamer across threads.
class LogMelStreamer {
 public:
  explicit LogMelStreamer(std::shared_ptr<const LogMel> lm);
  const LogMel& logmel() const { return *lm_; }
  // Frames that accept(n samples) / flush() will emit now.
  std::int64_t frames_for_accept(std::int64_t n) const;
  std::int64_t frames_for_flush() const;
  // Appends n samples; writes the completed frames to out (frames_for_accept(n) * n_mels floats).
  std::int64_t accept(const float* x, std::int64_t n, float* out);
  std::int64_t accept(const std::int16_t* x, std::int64_t n, float* out);
  // Ends the signal: emits the remaining (center-padded) frames. Further accept() throws until reset().
  std::int64_t flush(float* out);
  void reset();
  bool finished() const { return finished_; }
  std::int64_t samples_seen() const { return samples_; }
  std::int64_t frames_emitted() const { return next_frame_; }
  std::mutex& mutex() { return mu_; }

 private:
  template <typename T>
  std::int64_t accept_impl(const T* x, std::int64_t n, float scale, float* out);
  std::int64_t emit_ready(std::int64_t last_frame_exclusive, float* out);

  std::shared_ptr<const LogMel> lm_;
  LogMel::Work work_;
  std::vector<float> buf_;       // padded-signal samples [buf_start_, buf_start_ + buf_.size())
  std::int64_t buf_start_ = 0;   // padded-signal index of buf_[0]
  std::int64_t samples_ = 0;     // real samples received
  std::int64_t next_frame_ = 0;  // next frame to emit
  bool finished_ = false;
  std::mutex mu_;
};

// Scans for NaN/Inf; throws std::invalid_argument naming the first bad index and the fix.
void check_finite(const float* x, std::int64_t n, const char* what);

}  // namespace emoedge
