"""Log-mel kernel: parity with librosa (float64 reference), streaming == offline, options, errors.

Tolerances (stated in the issue): max |ours - librosa| <= 0.01 dB wherever the reference is above
-80 dB; stream vs offline within 1e-4 dB for any chunking.
"""
from __future__ import annotations

import threading

import numpy as np
import pytest

from emoedge import kernels
from emoedge._native_loader import get_native
from emoedge.errors import InvalidInputError
from emoedge.kernels import LogMelOptions, LogMelStream, log_mel
from emoedge.kernels import _numba_logmel
from emoedge.kernels import logmel as logmel_mod

librosa = pytest.importorskip("librosa")

SR = 16000
PARITY_DB = 0.01
STREAM_DB = 1e-4


def _backend_kernels():
    """(name, factory(opts) -> offline kernel, stream factory) for every available backend."""
    out = []
    nat = get_native()
    if nat is not None:
        out.append(("native", lambda o: nat.LogMel(o.to_native()),
                    lambda k: nat.LogMelStream(k)))
    out.append(("numba", lambda o: _numba_logmel.LogMel(o),
                lambda k: _numba_logmel.LogMelStream(k)))
    return out


BACKENDS = _backend_kernels()
BACKEND_IDS = [b[0] for b in BACKENDS]


def reference(y: np.ndarray, o: LogMelOptions) -> np.ndarray:
    """librosa melspectrogram + power_to_db in float64, same parameters, as [frames, n_mels]."""
    y64 = y.astype(np.float64) / 32768.0 if y.dtype == np.int16 else y.astype(np.float64)
    S = librosa.feature.melspectrogram(
        y=y64, sr=o.sample_rate, n_fft=o.n_fft, win_length=o.win_length, hop_length=o.hop_length,
        window="hann", center=o.center, pad_mode="constant", power=2.0, n_mels=o.n_mels, fmin=o.fmin,
        fmax=o.fmax, htk=o.mel_scale == "htk", norm=None if o.norm in (None, "none") else o.norm)
    if o.log == "db":
        return librosa.power_to_db(S, ref=1.0, amin=o.amin, top_db=o.top_db).T
    return np.log(np.maximum(S, o.amin)).T


def assert_parity(ours: np.ndarray, ref: np.ndarray, log: str = "db") -> None:
    assert ours.dtype == np.float32
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    floor = -80.0 if log == "db" else -80.0 / (10 / np.log(10))
    mask = ref > floor
    assert mask.any()
    tol = PARITY_DB if log == "db" else PARITY_DB / (10 / np.log(10))
    err = np.abs(ours.astype(np.float64) - ref)[mask].max()
    assert err <= tol, f"max abs diff {err:.5g} above {tol} where the reference is above -80 dB"


# ------------------------------------------------------------------ signals

def _noise(n=SR * 2, seed=0, scale=0.1):
    return (np.random.default_rng(seed).standard_normal(n) * scale).astype(np.float32)


def _tone(freq, amp=0.5, n=SR * 2):
    t = np.arange(n) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture(scope="module")
def speech_clips(shared_data):
    """A few real speech clips (int16) from each corpus of ../shared/data/speech."""
    clips = []
    for name, idx in [("ravdess_speech_actors01-20_16k.npz", [0, 100, 777]),
                      ("emodb_speakers_no15-16_16k.npz", [0, 200])]:
        p = shared_data / "speech" / name
        if not p.exists():
            pytest.skip(f"{p} not found")
        d = np.load(p)
        a, o = d["audio"], d["offsets"]
        assert int(d["sample_rate"]) == SR
        for i in idx:
            clips.append(np.asarray(a[o[i]:o[i + 1]]))
    return clips


SIGNALS = {
    "noise": lambda: _noise(),
    "quiet_noise": lambda: _noise(scale=1e-3, seed=1),
    "tone_440": lambda: _tone(440.0, 0.9),
    "tone_3000": lambda: _tone(3000.3, 0.5),
    "chirp": lambda: librosa.chirp(fmin=100, fmax=7000, sr=SR, duration=1.5).astype(np.float32) * 0.7,
    "short_1000": lambda: _noise(1000, seed=2),
    "one_sample": lambda: np.array([0.5], np.float32),
}


# ------------------------------------------------------------------ parity with librosa

@pytest.mark.parametrize("backend", BACKENDS, ids=BACKEND_IDS)
@pytest.mark.parametrize("sig", list(SIGNALS))
def test_parity_synthetic(backend, sig):
    o = LogMelOptions()
    y = SIGNALS[sig]()
    assert_parity(backend[1](o).compute(y), reference(y, o))


@pytest.mark.parametrize("backend", BACKENDS, ids=BACKEND_IDS)
def test_parity_speech_int16_and_float(backend, speech_clips):
    o = LogMelOptions()
    k = backend[1](o)
    for clip in speech_clips:
        ref = reference(clip, o)
        assert_parity(k.compute(clip), ref)
        assert_parity(k.compute(clip.astype(np.float32) / 32768), ref)


VARIANTS = [
    dict(mel_scale="htk", norm=None),
    dict(mel_scale="htk", norm="slaney"),
    dict(mel_scale="slaney", norm=None),
    dict(n_mels=80, fmin=20.0, fmax=7600.0),
    dict(n_mels=40, n_fft=1024, win_length=1024, hop_length=256),
    dict(sample_rate=8000, n_fft=256, win_length=200, hop_length=80, n_mels=32),
    dict(center=False),
    dict(log="ln"),
    dict(top_db=60.0),
    dict(n_fft=512, win_length=511, hop_length=100),
    dict(n_fft=32, win_length=32, hop_length=16, n_mels=6),        # smallest FFT plans (radix 4 x 4)
    dict(n_fft=4096, win_length=4096, hop_length=1024, n_mels=128),  # radix 4^5 x 2
]


@pytest.mark.parametrize("backend", BACKENDS, ids=BACKEND_IDS)
@pytest.mark.parametrize("kw", VARIANTS, ids=[",".join(f"{k}={v}" for k, v in kw.items()) for kw in VARIANTS])
def test_parity_variants(backend, kw, speech_clips):
    o = LogMelOptions(**kw)
    k = backend[1](o)
    for y in [speech_clips[1], _noise(), _tone(1234.5, 0.8)]:
        assert_parity(k.compute(y), reference(y, o), o.log)


def test_public_api_matches_reference(speech_clips):
    o = LogMelOptions()
    y = speech_clips[0]
    out = log_mel(y, o)
    assert out.shape == (1 + y.size // 160, 64)
    assert_parity(out, reference(y, o))
    assert_parity(log_mel(y), reference(y, o))  # default options
    np.testing.assert_array_equal(log_mel(y.astype(np.float64) / 32768), log_mel(y.astype(np.float32) / 32768))


def test_filterbank_matches_librosa():
    for kw in [{}, dict(mel_scale="htk", norm=None), dict(n_mels=80, fmin=30.0, fmax=7000.0)]:
        o = LogMelOptions(**kw)
        ref = librosa.filters.mel(sr=o.sample_rate, n_fft=o.n_fft, n_mels=o.n_mels, fmin=o.fmin, fmax=o.fmax,
                                  htk=o.mel_scale == "htk", norm=o.norm)
        np.testing.assert_allclose(kernels.mel_filterbank(o), ref, rtol=1e-6, atol=1e-9)


def test_window_is_centered_periodic_hann():
    nat = get_native()
    k = nat.LogMel() if nat is not None else _numba_logmel.LogMel()
    ref = librosa.util.pad_center(librosa.filters.get_window("hann", 400, fftbins=True), size=512)
    np.testing.assert_allclose(k.window(), ref, atol=1e-7)


@pytest.mark.skipif(get_native() is None, reason="native extension not built; numba-only run")
def test_native_and_numba_agree(speech_clips):
    o = LogMelOptions()
    a = get_native().LogMel().compute(speech_clips[2])
    b = _numba_logmel.LogMel().compute(speech_clips[2])
    ref = reference(speech_clips[2], o)
    mask = ref > -80
    assert np.abs(a - b)[mask].max() <= PARITY_DB


# ------------------------------------------------------------------ streaming == offline

def _stream_all(stream, y, sizes):
    parts, i, j = [], 0, 0
    while i < y.size:
        k = sizes[j % len(sizes)]
        j += 1
        out = stream.accept(y[i:i + k])
        assert out.dtype == np.float32 and out.ndim == 2
        parts.append(out)
        i += k
    parts.append(stream.flush())
    return np.concatenate(parts, axis=0)


@pytest.mark.parametrize("backend", BACKENDS, ids=BACKEND_IDS)
@pytest.mark.parametrize("sizes", [[160], [1], [0, 7, 0, 333], [512], [100000], [159, 161, 1000, 3]])
@pytest.mark.parametrize("kw", [{}, dict(center=False), dict(hop_length=700, n_fft=512, win_length=400),
                                dict(log="ln", mel_scale="htk", norm=None)], ids=["default", "nocenter", "hop>n_fft", "ln"])
def test_stream_equals_offline(backend, sizes, kw):
    o = LogMelOptions(**kw)
    k = backend[1](o)
    for y in [_noise(SR * 1 + 37, seed=3), (_noise(4000, seed=4) * 32767 * 3).clip(-32768, 32767).astype(np.int16)]:
        off = k.compute(y)
        st = _stream_all(backend[2](k), y, sizes)
        assert st.shape == off.shape
        np.testing.assert_allclose(st, off, rtol=0, atol=STREAM_DB)


def test_stream_public_api_reset_and_counters():
    o = LogMelOptions()
    s = LogMelStream(o)
    y = _noise(SR // 2, seed=5)
    first = _stream_all(s, y, [160])
    assert s.samples_seen == y.size and s.frames_emitted == first.shape[0]
    with pytest.raises(ValueError, match="reset"):
        s.accept(y[:10])
    assert s.flush().shape == (0, 64)  # a second flush emits nothing
    s.reset()
    assert s.samples_seen == 0
    again = _stream_all(s, y, [333])
    np.testing.assert_array_equal(first, again)
    np.testing.assert_allclose(first, log_mel(y, o), atol=STREAM_DB, rtol=0)
    # empty stream: flush gives no frames
    s.reset()
    assert s.accept(np.zeros(0, np.float32)).shape == (0, 64)
    assert s.flush().shape == (0, 64)


def test_stream_10ms_chunks_emit_one_frame_each():
    s = LogMelStream()
    counts = [s.accept(_noise(160, seed=i)).shape[0] for i in range(20)]
    # frame t needs padded samples up to t*160 + 512 (256 zeros first): first frame after 256 samples
    assert counts[0] == 0 and counts[1] == 1 and all(c == 1 for c in counts[2:])


@pytest.mark.parametrize("backend", BACKENDS, ids=BACKEND_IDS)
def test_stream_any_chunking_property(backend):
    hyp = pytest.importorskip("hypothesis")
    st_ = pytest.importorskip("hypothesis.strategies")
    o = LogMelOptions()
    k = backend[1](o)
    y = _noise(6000, seed=6)
    off = k.compute(y)

    @hyp.settings(max_examples=60 if backend[0] == "native" else 15, deadline=None)
    @hyp.given(sizes=st_.lists(st_.integers(min_value=0, max_value=1500), min_size=1, max_size=40),
               n=st_.integers(min_value=1, max_value=y.size))
    def prop(sizes, n):
        if not any(sizes):
            sizes = sizes + [1]
        ref = off if n == y.size else k.compute(y[:n])
        got = _stream_all(backend[2](k), y[:n], sizes)
        assert got.shape == ref.shape
        assert np.abs(got - ref).max(initial=0.0) <= STREAM_DB

    prop()


# ------------------------------------------------------------------ options

def test_options_defaults_and_round_trip():
    o = LogMelOptions()
    assert (o.sample_rate, o.n_fft, o.win_length, o.hop_length, o.n_mels, o.fmin, o.fmax, o.center,
            o.mel_scale, o.norm, o.log, o.top_db) == (16000, 512, 400, 160, 64, 0.0, None, True, "slaney",
                                                      "slaney", "db", None)
    o2 = LogMelOptions(n_mels=80, fmax=7600.0, mel_scale="htk", norm=None, log="ln")
    d = o2.to_dict()
    import json
    assert LogMelOptions.from_dict(json.loads(json.dumps(d))) == o2
    assert LogMelOptions.from_dict({}) == LogMelOptions()
    with pytest.raises(ValueError, match="unknown LogMelOptions keys"):
        LogMelOptions.from_dict({"nmels": 64})


@pytest.mark.parametrize("kw,field,fix", [
    (dict(win_length=1024), "win_length", "n_fft"),
    (dict(n_fft=500), "n_fft", "power of two"),
    (dict(fmax=9000.0), "fmax", "sample_rate/2"),
    (dict(hop_length=0), "hop_length", "positive"),
    (dict(hop_length=-5), "hop_length", "positive"),
    (dict(n_mels=0), "n_mels", "n_mels"),
    (dict(sample_rate=0), "sample_rate", "positive"),
    (dict(fmin=-1.0), "fmin", ">= 0"),
    (dict(fmin=9000.0, fmax=None), "fmin", "below fmax"),
    (dict(mel_scale="mel"), "mel_scale", "htk"),
    (dict(norm="l2"), "norm", "slaney"),
    (dict(log="log10"), "log", "ln"),
    (dict(top_db=-3.0), "top_db", "positive"),
    (dict(top_db=80.0, log="ln"), "top_db", "log='db'"),
    (dict(amin=0.0), "amin", "positive"),
])
def test_options_validate_names_field_value_fix(kw, field, fix):
    o = LogMelOptions(**kw)
    with pytest.raises(ValueError) as ei:
        o.validate()
    msg = str(ei.value)
    assert field in msg and fix in msg and repr(list(kw.values())[0])[:4] in msg
    with pytest.raises(ValueError, match=field):
        log_mel(_noise(1000), o)


# ------------------------------------------------------------------ bad input

@pytest.mark.parametrize("backend", BACKENDS, ids=BACKEND_IDS)
def test_offline_bad_input(backend):
    k = backend[1](LogMelOptions())
    with pytest.raises(ValueError, match="empty"):
        k.compute(np.zeros(0, np.float32))
    with pytest.raises(ValueError, match="1-D"):
        k.compute(np.zeros((100, 2), np.float32))
    with pytest.raises(TypeError, match="int16 PCM or float32"):
        k.compute(np.zeros(100, np.int32))
    with pytest.raises(TypeError, match="int16 PCM or float32"):
        k.compute(np.zeros(100, np.complex64))
    with pytest.raises(TypeError, match="numpy array"):
        k.compute("not audio")
    y = _noise(1000)
    y[500] = np.nan
    with pytest.raises(ValueError, match="NaN at sample 500"):
        k.compute(y)
    y[500] = np.inf
    with pytest.raises(ValueError, match="Inf at sample 500"):
        k.compute(y)
    for i, bad in [(0, np.nan), (99_999, -np.inf), (159_999, np.inf), (4096, np.nan)]:  # across check blocks
        y = _noise(160_000)
        y[i] = bad
        with pytest.raises(ValueError, match=f"{'NaN' if np.isnan(bad) else 'Inf'} at sample {i}"):
            k.compute(y)
    y = _noise(160_000)
    y[1234] = np.finfo(np.float32).max  # huge but finite: accepted
    assert np.isfinite(k.compute(y)).all()
    k2 = backend[1](LogMelOptions(center=False))
    with pytest.raises(ValueError, match="center=False needs at least n_fft"):
        k2.compute(_noise(100))


def test_public_bad_input():
    with pytest.raises(ValueError, match="empty"):
        log_mel(np.zeros(0, np.int16))
    with pytest.raises(ValueError, match="1-D"):
        log_mel(np.zeros((2, 100), np.int16))
    with pytest.raises(TypeError):
        log_mel(np.zeros(100, np.uint8))
    with pytest.raises(ValueError, match="resample"):
        log_mel(_noise(1000), LogMelOptions(), sample_rate=44100)
    # strided (non-contiguous) input works and equals the contiguous copy
    st = np.stack([_noise(3000, seed=7), _noise(3000, seed=8)], axis=1)[:, 0]
    np.testing.assert_array_equal(log_mel(st), log_mel(np.ascontiguousarray(st)))
    np.testing.assert_array_equal(log_mel([0.1, 0.2, -0.3]), log_mel(np.array([0.1, 0.2, -0.3], np.float32)))


@pytest.mark.parametrize("backend", BACKENDS, ids=BACKEND_IDS)
def test_stream_bad_input(backend):
    k = backend[1](LogMelOptions())
    s = backend[2](k)
    with pytest.raises(ValueError, match="resample the audio to 16000"):
        s.accept(_noise(160), sample_rate=8000)
    assert s.accept(_noise(160), sample_rate=16000).shape == (0, 64)
    y = _noise(160)
    y[3] = np.inf
    with pytest.raises(ValueError, match="Inf at sample 3"):
        s.accept(y)
    with pytest.raises(ValueError, match="1-D"):
        s.accept(np.zeros((160, 1), np.float32))
    with pytest.raises(TypeError, match="int16 PCM or float32"):
        s.accept(np.zeros(160, np.int32))
    assert s.samples_seen == 160  # rejected chunks left the state alone
    with pytest.raises(ValueError, match="top_db"):
        backend[2](backend[1](LogMelOptions(top_db=80.0)))


def test_stream_rejects_top_db_public():
    with pytest.raises(ValueError, match="top_db=80.0 is not supported by LogMelStream"):
        LogMelStream(LogMelOptions(top_db=80.0))


def test_numba_fallback_through_public_api(monkeypatch, speech_clips):
    """With get_native() returning None, log_mel/LogMelStream use the numba kernels."""
    from emoedge import _native_loader
    monkeypatch.setitem(_native_loader._state, "mod", None)
    monkeypatch.setattr(logmel_mod, "_cache", {})
    y = speech_clips[0]
    out = log_mel(y)
    assert isinstance(logmel_mod._kernel(LogMelOptions()), _numba_logmel.LogMel)
    assert_parity(out, reference(y, LogMelOptions()))
    s = LogMelStream()
    np.testing.assert_allclose(_stream_all(s, y, [160, 1000]), out, atol=STREAM_DB, rtol=0)


@pytest.mark.skipif(get_native() is None, reason="native extension not built")
def test_threads_share_one_kernel():
    """One native LogMel used from several threads at once (GIL released) gives the single-thread result."""
    k = get_native().LogMel()
    ys = [_noise(SR * 3, seed=10 + i) for i in range(4)]
    want = [k.compute(y) for y in ys]
    got = [None] * 4

    def work(i):
        for _ in range(3):
            got[i] = k.compute(ys[i])

    th = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


@pytest.mark.skipif(get_native() is None, reason="native extension not built")
def test_offline_call_releases_the_gil():
    """While a long native log_mel runs in a worker thread, the main thread keeps running Python code."""
    import time
    k = get_native().LogMel()
    y = _noise(SR * 300, seed=20)  # 5 minutes: tens of ms of native compute
    window = {}

    def work():
        window["t0"] = time.perf_counter()
        k.compute(y)
        window["t1"] = time.perf_counter()

    th = threading.Thread(target=work)
    stamps = []
    th.start()
    while th.is_alive():
        stamps.append(time.perf_counter())
    th.join()
    t0, t1 = window["t0"], window["t1"]
    inside = [t for t in stamps if t0 + 0.1 * (t1 - t0) < t < t1 - 0.1 * (t1 - t0)]
    assert len(inside) >= 3, f"main thread ran {len(inside)} times during {1e3 * (t1 - t0):.1f} ms of compute"


def test_options_python_view_and_native_config_agree():
    """LogMelOptions (Python) and _native.LogMelConfig (the C++ struct) are one option set: same field
    names, defaults and dict form; conversion and pickling round-trip; enums are enums."""
    import dataclasses
    import pickle
    nat = get_native()
    if nat is None:
        pytest.skip("emoedge._native is not built (numba fallback in use)")
    assert LogMelOptions().to_dict() == nat.LogMelConfig().to_dict()
    assert [f.name for f in dataclasses.fields(LogMelOptions)] == list(nat.LogMelConfig().to_dict())
    o = LogMelOptions(sample_rate=22050, n_fft=1024, win_length=1024, hop_length=256, n_mels=80, fmin=20.0,
                      fmax=8000.0, center=False, mel_scale="htk", norm=None, log="ln", amin=1e-5)
    c = o.to_native()
    assert (c.mel_scale, c.norm, c.log) == (nat.MelScale.htk, nat.MelNorm.none, nat.LogScale.ln)
    assert LogMelOptions.from_dict(c.to_dict()) == o and pickle.loads(pickle.dumps(c)) == c
    c.n_mels = 40                                     # read/write fields
    assert c.to_dict()["n_mels"] == 40 and nat.LogMel(c).n_mels == 40
    assert nat.LogMel(c).config == c
    with pytest.raises(InvalidInputError, match="log='lg' is invalid"):
        nat.LogMelConfig.from_dict({"log": "lg"})
    with pytest.raises(InvalidInputError, match="unknown LogMelConfig key 'bogus'"):
        nat.LogMelConfig.from_dict({"bogus": 1})
    with pytest.raises(TypeError):
        nat.LogMelConfig.from_dict({"n_fft": "512"})
    with pytest.raises(InvalidInputError, match="fmax"):
        c.fmax = -1.0
