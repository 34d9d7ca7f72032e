// Thin bindings for the log-mel kernel: checks with the GIL held, compute with it released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "bind_util.h"
#include "logmel.h"

namespace py = pybind11;
using emoedge::LogMel;
using emoedge::LogMelConfig;
using emoedge::LogMelStreamer;

namespace {

enum class Kind { kF32, kI16 };

// Output values computed per GIL-released slice (~0.1 s of work at the largest n_fft).
constexpr std::int64_t kSliceValues = std::int64_t(1) << 18;

// Validates a waveform: numpy array, 1-D, int16/float32 (float64 converted), C-contiguous.
// Returns the (possibly converted) array and its kind.
py::array as_waveform(py::handle h, Kind* kind, const char* what) {
  if (!py::isinstance<py::array>(h)) {
    std::string tn = py::str(py::type::handle_of(h).attr("__name__"));
    throw py::type_error(std::string(what) + " must be a numpy array of int16 or float32 samples, got " + tn +
                         ": pass np.asarray(x, dtype=np.float32)");
  }
  py::array a = py::reinterpret_borrow<py::array>(h);
  if (a.ndim() != 1) {
    std::string shape = py::str(a.attr("shape"));
    throw py::value_error(std::string(what) + " must be 1-D mono [samples], got shape " + shape +
                          ": pick one channel (x[:, 0]) or mix down (x.mean(axis=1))");
  }
  const char k = a.dtype().kind();
  const auto size = a.dtype().itemsize();
  if (k == 'i' && size == 2) {
    *kind = Kind::kI16;
    return emoedge_bind::aligned_or_copy(emoedge_bind::convert<std::int16_t, py::array::c_style>(a));
  }
  if (k == 'f' && size == 4) {
    *kind = Kind::kF32;
    return emoedge_bind::aligned_or_copy(emoedge_bind::convert<float, py::array::c_style>(a));
  }
  if (k == 'f' && size == 8) {  // float64: converted to float32 (a copy)
    *kind = Kind::kF32;
    return emoedge_bind::aligned_or_copy(
        emoedge_bind::convert<float, py::array::c_style | py::array::forcecast>(a));
  }
  std::string dt = py::str(a.dtype());
  throw py::type_error(std::string(what) + " dtype " + dt +
                       " is not supported: pass int16 PCM or float32 (float64 is converted) in [-1, 1], "
                       "e.g. x.astype(np.float32) / 32768 for int32 PCM scaled to 16 bits");
}

LogMelConfig make_config(int sample_rate, int n_fft, int win_length, int hop_length, int n_mels, double fmin,
                         std::optional<double> fmax, bool center, const std::string& mel_scale,
                         std::optional<std::string> norm, const std::string& log, std::optional<double> top_db,
                         double amin) {
  LogMelConfig c;
  c.sample_rate = sample_rate;
  c.n_fft = n_fft;
  c.win_length = win_length;
  c.hop_length = hop_length;
  c.n_mels = n_mels;
  c.fmin = fmin;
  if (fmax) {
    if (!(*fmax > 0)) throw py::value_error("fmax=" + std::to_string(*fmax) + " is invalid: use a frequency in (fmin, sample_rate/2] Hz, or None");
    c.fmax = *fmax;
  }
  c.center = center;
  if (mel_scale == "slaney") c.htk = false;
  else if (mel_scale == "htk") c.htk = true;
  else throw py::value_error("mel_scale='" + mel_scale + "' is invalid: use 'slaney' or 'htk'");
  if (!norm || *norm == "none") c.slaney_norm = false;
  else if (*norm == "slaney") c.slaney_norm = true;
  else throw py::value_error("norm='" + *norm + "' is invalid: use 'slaney' or None");
  if (log == "db") c.log_db = true;
  else if (log == "ln") c.log_db = false;
  else throw py::value_error("log='" + log + "' is invalid: use 'db' (10*log10) or 'ln' (natural log)");
  if (top_db) {
    if (!(*top_db > 0)) throw py::value_error("top_db=" + std::to_string(*top_db) + " is invalid: use a positive number of dB, or None");
    c.top_db = *top_db;
  }
  c.amin = amin;
  c.validate();
  return c;
}

py::array_t<float> compute_offline(const LogMel& lm, py::handle x) {
  Kind kind;
  py::array a = as_waveform(x, &kind, "waveform");
  const std::int64_t n = a.shape(0);
  if (n == 0) throw py::value_error("waveform is empty: pass at least one sample");
  const std::int64_t F = lm.num_frames(n);
  if (F == 0)
    throw py::value_error("waveform has " + std::to_string(n) + " samples but center=False needs at least n_fft=" +
                          std::to_string(lm.config().n_fft) + ": pass a longer waveform or use center=True");
  lm.check_output(F);
  py::array_t<float> out({py::ssize_t(F), py::ssize_t(lm.n_mels())});
  float* o = out.mutable_data();
  if (kind != Kind::kI16) {
    const auto* p = static_cast<const float*>(a.data());
    py::gil_scoped_release nogil;
    emoedge::check_finite(p, n, "waveform");
  }
  // Slices of frames with the GIL released; Ctrl-C is checked between slices (a long call stays
  // interruptible), top_db runs over the whole output at the end.
  const std::int64_t slice = std::max<std::int64_t>(4, kSliceValues / lm.n_mels());
  for (std::int64_t f0 = 0; f0 < F; f0 += slice) {
    const std::int64_t f1 = std::min(F, f0 + slice);
    float* of = o + f0 * lm.n_mels();
    {
      py::gil_scoped_release nogil;
      if (kind == Kind::kI16) lm.compute_frames(static_cast<const std::int16_t*>(a.data()), n, f0, f1, of);
      else lm.compute_frames(static_cast<const float*>(a.data()), n, f0, f1, of);
    }
    if (f1 < F) emoedge_bind::check_signals();
  }
  {
    py::gil_scoped_release nogil;
    lm.apply_top_db(o, F);
  }
  return out;
}

struct StreamBox {
  std::shared_ptr<const LogMel> lm;
  LogMelStreamer st;
  explicit StreamBox(std::shared_ptr<const LogMel> l) : lm(l), st(l) {}
};

struct TryLock {
  std::unique_lock<std::mutex> lk;
  explicit TryLock(std::mutex& m) : lk(m, std::try_to_lock) {
    if (!lk.owns_lock())
      throw std::runtime_error("LogMelStream is in use by another thread: use one stream per thread");
  }
};

py::array_t<float> stream_accept(StreamBox& s, py::handle chunk, py::handle sample_rate) {
  const auto& c = s.lm->config();
  if (!sample_rate.is_none()) {
    if (PyBool_Check(sample_rate.ptr()))
      throw py::type_error("sample_rate must be an integer number of Hz, got a bool");
    // operator.index(): ints and numpy integers; a str/float raises TypeError (the cast gave RuntimeError)
    const py::object idx = py::reinterpret_steal<py::object>(PyNumber_Index(sample_rate.ptr()));
    if (!idx) throw py::error_already_set();
    const long long sr = PyLong_AsLongLong(idx.ptr());
    if (sr == -1 && PyErr_Occurred()) throw py::error_already_set();
    if (sr != c.sample_rate)
      throw py::value_error("chunk sample_rate=" + std::to_string(sr) + " Hz does not match the stream's " +
                            std::to_string(c.sample_rate) + " Hz: resample the audio to " +
                            std::to_string(c.sample_rate) + " Hz first, or create the stream with "
                            "LogMelOptions(sample_rate=" + std::to_string(sr) + ")");
  }
  Kind kind;
  py::array a = as_waveform(chunk, &kind, "chunk");
  TryLock lock(s.st.mutex());
  if (s.st.finished()) throw py::value_error("accept() after flush(): call reset() to start a new signal");
  const std::int64_t n = a.shape(0);
  const std::int64_t F = s.st.frames_for_accept(n);
  s.lm->check_output(F);
  py::array_t<float> out({py::ssize_t(F), py::ssize_t(c.n_mels)});
  float* o = out.mutable_data();
  if (kind != Kind::kI16) {
    const auto* p = static_cast<const float*>(a.data());
    py::gil_scoped_release nogil;
    emoedge::check_finite(p, n, "chunk");  // before any state changes: a rejected chunk leaves the stream as it was
  }
  // Long chunks go in pieces (the stream's output does not depend on chunking), checking Ctrl-C between
  // them; an interrupted call leaves the stream part-way through the chunk (reset() to start over).
  const std::int64_t piece = std::max<std::int64_t>(std::int64_t(c.hop_length), kSliceValues / c.n_mels * c.hop_length);
  std::int64_t done = 0;
  for (std::int64_t i0 = 0; i0 < n; i0 += piece) {
    const std::int64_t m = std::min(n, i0 + piece) - i0;
    {
      py::gil_scoped_release nogil;
      if (kind == Kind::kI16) done += s.st.accept(static_cast<const std::int16_t*>(a.data()) + i0, m, o + done * c.n_mels);
      else done += s.st.accept(static_cast<const float*>(a.data()) + i0, m, o + done * c.n_mels);
    }
    if (i0 + piece < n) emoedge_bind::check_signals();
  }
  if (done != F) throw std::runtime_error("LogMelStream: internal frame count mismatch");
  return out;
}

}  // namespace

void bind_logmel(py::module_& m) {
  py::class_<LogMel, std::shared_ptr<LogMel>>(m, "LogMel",
      "Log-mel spectrogram (offline). Construct with the LogMelOptions fields; call compute(waveform).")
      .def(py::init([](int sample_rate, int n_fft, int win_length, int hop_length, int n_mels, double fmin,
                       std::optional<double> fmax, bool center, const std::string& mel_scale,
                       std::optional<std::string> norm, const std::string& log, std::optional<double> top_db,
                       double amin) {
             return std::make_shared<LogMel>(make_config(sample_rate, n_fft, win_length, hop_length, n_mels, fmin,
                                                         fmax, center, mel_scale, norm, log, top_db, amin));
           }),
           py::kw_only(), py::arg("sample_rate") = 16000, py::arg("n_fft") = 512, py::arg("win_length") = 400,
           py::arg("hop_length") = 160, py::arg("n_mels") = 64, py::arg("fmin") = 0.0, py::arg("fmax") = py::none(),
           py::arg("center") = true, py::arg("mel_scale") = "slaney", py::arg("norm") = "slaney",
           py::arg("log") = "db", py::arg("top_db") = py::none(), py::arg("amin") = 1e-10)
      .def("compute", &compute_offline, py::arg("waveform"),
           "waveform: 1-D int16 or float32 [samples] -> float32 [frames, n_mels]")
      .def("num_frames", &LogMel::num_frames, py::arg("n_samples"))
      .def("filterbank", [](const LogMel& lm) {
             py::array_t<float> out({lm.n_mels(), lm.n_bins()});
             auto d = lm.dense_filterbank();
             std::copy(d.begin(), d.end(), out.mutable_data());
             return out;
           }, "Mel filterbank as float32 [n_mels, n_fft/2 + 1]")
      .def("window", [](const LogMel& lm) {
             py::array_t<float> out(py::ssize_t(lm.window().size()));
             std::copy(lm.window().begin(), lm.window().end(), out.mutable_data());
             return out;
           }, "Analysis window as float32 [n_fft] (periodic Hann of win_length, centered)")
      .def_property_readonly("n_mels", &LogMel::n_mels);

  py::class_<StreamBox>(m, "LogMelStream",
      "Streaming log-mel: accept(chunk) -> completed frames; flush() -> final frames; reset().")
      .def(py::init([](std::shared_ptr<LogMel> lm) { return new StreamBox(lm); }), py::arg("logmel"))
      .def("accept", &stream_accept, py::arg("chunk"), py::arg("sample_rate") = py::none(),
           "chunk: 1-D int16/float32 (any length, also 0) -> float32 [new_frames, n_mels]")
      .def("flush", [](StreamBox& s) {
             TryLock lock(s.st.mutex());
             const std::int64_t F = s.st.frames_for_flush();
             py::array_t<float> out({py::ssize_t(F), py::ssize_t(s.lm->n_mels())});
             float* o = out.mutable_data();
             {
               py::gil_scoped_release nogil;
               s.st.flush(o);
             }
             return out;
           }, "End of signal: the remaining center-padded frames, float32 [frames, n_mels]")
      .def("reset", [](StreamBox& s) { TryLock lock(s.st.mutex()); s.st.reset(); }, "Start a new signal")
      .def_property_readonly("samples_seen", [](StreamBox& s) { return s.st.samples_seen(); })
      .def_property_readonly("frames_emitted", [](StreamBox& s) { return s.st.frames_emitted(); })
      .def_property_readonly("finished", [](StreamBox& s) { return s.st.finished(); });
}
