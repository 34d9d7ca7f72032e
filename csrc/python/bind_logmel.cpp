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
using emoedge::LogScale;
using emoedge::MelNorm;
using emoedge::MelScale;

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

// ---- LogMelConfig <-> Python. The dict form is the one of emoedge.kernels.LogMelOptions.to_dict():
// enums by their lower-case names, fmax / top_db None when unset.
const char* name_of(MelScale v) { return v == MelScale::Htk ? "htk" : "slaney"; }
const char* name_of(LogScale v) { return v == LogScale::Ln ? "ln" : "db"; }

py::object norm_value(MelNorm v) { return v == MelNorm::Slaney ? py::object(py::str("slaney")) : py::object(py::none()); }

std::optional<double> unset_if_nonpositive(double v) { return v > 0 ? std::optional<double>(v) : std::nullopt; }

double positive_or_unset(const std::optional<double>& v, const char* field) {
  if (!v) return 0.0;
  if (!(*v > 0))
    throw py::value_error(std::string(field) + "=" + std::to_string(*v) + " is invalid: use a positive value, or None");
  return *v;
}

using emoedge_bind::enum_from;

MelNorm norm_from(py::handle v) {
  if (v.is_none()) return MelNorm::NoNorm;
  return enum_from<MelNorm>(v, "norm", {{"slaney", MelNorm::Slaney}, {"none", MelNorm::NoNorm}});
}

py::dict config_to_dict(const LogMelConfig& c) {
  py::dict d;
  d["sample_rate"] = c.sample_rate;
  d["n_fft"] = c.n_fft;
  d["win_length"] = c.win_length;
  d["hop_length"] = c.hop_length;
  d["n_mels"] = c.n_mels;
  d["fmin"] = c.fmin;
  d["fmax"] = unset_if_nonpositive(c.fmax);
  d["center"] = c.center;
  d["mel_scale"] = name_of(c.mel_scale);
  d["norm"] = norm_value(c.norm);
  d["log"] = name_of(c.log);
  d["top_db"] = unset_if_nonpositive(c.top_db);
  d["amin"] = c.amin;
  return d;
}

LogMelConfig config_from_dict(const py::dict& d) {
  LogMelConfig c;
  for (auto item : d) {
    const std::string k = py::str(item.first);
    py::handle v = item.second;
    if (k == "sample_rate") c.sample_rate = v.cast<int>();
    else if (k == "n_fft") c.n_fft = v.cast<int>();
    else if (k == "win_length") c.win_length = v.cast<int>();
    else if (k == "hop_length") c.hop_length = v.cast<int>();
    else if (k == "n_mels") c.n_mels = v.cast<int>();
    else if (k == "fmin") c.fmin = v.cast<double>();
    else if (k == "fmax") c.fmax = positive_or_unset(v.cast<std::optional<double>>(), "fmax");
    else if (k == "center") c.center = v.cast<bool>();
    else if (k == "mel_scale") c.mel_scale = enum_from<MelScale>(v, "mel_scale", {{"slaney", MelScale::Slaney}, {"htk", MelScale::Htk}});
    else if (k == "norm") c.norm = norm_from(v);
    else if (k == "log") c.log = enum_from<LogScale>(v, "log", {{"db", LogScale::Db}, {"ln", LogScale::Ln}});
    else if (k == "top_db") c.top_db = positive_or_unset(v.cast<std::optional<double>>(), "top_db");
    else if (k == "amin") c.amin = v.cast<double>();
    else
      throw py::value_error("unknown LogMelConfig key '" + k + "': valid keys are " +
                            std::string(py::str(py::list(config_to_dict(LogMelConfig{}).attr("keys")()))));
  }
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
  py::enum_<MelScale>(m, "MelScale", "Mel scale of the filterbank (librosa htk=False / True)")
      .value("slaney", MelScale::Slaney)
      .value("htk", MelScale::Htk);
  py::enum_<MelNorm>(m, "MelNorm", "Filter normalisation: none (peak 1) or slaney (area-normalised)")
      .value("none", MelNorm::NoNorm)
      .value("slaney", MelNorm::Slaney);
  py::enum_<LogScale>(m, "LogScale", "Log of the mel power: db (10*log10) or ln (natural log)")
      .value("db", LogScale::Db)
      .value("ln", LogScale::Ln);

  py::class_<LogMelConfig>(m, "LogMelConfig",
      "Log-mel options (the C++ LogMelConfig): read/write fields, validate(), to_dict()/from_dict() in the "
      "dict form of emoedge.kernels.LogMelOptions, picklable. fmax/top_db are None when unset.")
      .def(py::init<>())
      .def_readwrite("sample_rate", &LogMelConfig::sample_rate, "Hz")
      .def_readwrite("n_fft", &LogMelConfig::n_fft, "FFT size in samples (power of two)")
      .def_readwrite("win_length", &LogMelConfig::win_length, "window length in samples (<= n_fft)")
      .def_readwrite("hop_length", &LogMelConfig::hop_length, "hop in samples")
      .def_readwrite("n_mels", &LogMelConfig::n_mels, "mel bands")
      .def_readwrite("fmin", &LogMelConfig::fmin, "lowest filter edge, Hz")
      .def_property("fmax", [](const LogMelConfig& c) { return unset_if_nonpositive(c.fmax); },
                    [](LogMelConfig& c, std::optional<double> v) { c.fmax = positive_or_unset(v, "fmax"); },
                    "highest filter edge, Hz (None: sample_rate / 2)")
      .def_readwrite("center", &LogMelConfig::center, "pad n_fft // 2 zeros on both sides (librosa)")
      .def_readwrite("mel_scale", &LogMelConfig::mel_scale)
      .def_property("norm", [](const LogMelConfig& c) { return c.norm; },
                    [](LogMelConfig& c, py::object v) { c.norm = norm_from(v); }, "MelNorm (None means none)")
      .def_readwrite("log", &LogMelConfig::log)
      .def_property("top_db", [](const LogMelConfig& c) { return unset_if_nonpositive(c.top_db); },
                    [](LogMelConfig& c, std::optional<double> v) { c.top_db = positive_or_unset(v, "top_db"); },
                    "clip to max - top_db dB, offline only (None: no clipping)")
      .def_readwrite("amin", &LogMelConfig::amin, "power floor before the log")
      .def("validate", [](const LogMelConfig& c) { c.validate(); },
           "Raise InvalidInputError naming the field, the value and the fix")
      .def("to_dict", &config_to_dict)
      .def_static("from_dict", &config_from_dict, py::arg("d"))
      .def("__eq__", [](const LogMelConfig& a, const LogMelConfig& b) {
             return config_to_dict(a).equal(config_to_dict(b));
           })
      .def("__repr__", [](const LogMelConfig& c) {
             return "LogMelConfig(" + std::string(py::str(config_to_dict(c))) + ")";
           })
      .def(py::pickle([](const LogMelConfig& c) { return config_to_dict(c); },
                      [](const py::dict& d) { return config_from_dict(d); }));

  py::class_<LogMel, std::shared_ptr<LogMel>>(m, "LogMel",
      "Log-mel spectrogram (offline) for a LogMelConfig (validated here); call compute(waveform).")
      .def(py::init([](const LogMelConfig& c) { return std::make_shared<LogMel>(c); }),
           py::arg("config") = LogMelConfig{})
      .def_property_readonly("config", [](const LogMel& lm) { return lm.config(); }, "The LogMelConfig (a copy)")
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
