"""Log-mel spectrogram features, offline and streaming (C++ kernel, numba fallback).

Matches ``librosa.feature.melspectrogram(power=2)`` followed by ``librosa.power_to_db`` (librosa >= 0.10
defaults: periodic Hann window of ``win_length`` zero-padded (centered) to ``n_fft``; with
``center=True`` the signal is padded with ``n_fft // 2`` zeros on both sides, giving
``1 + n // hop_length`` frames). Output is float32 ``[frames, n_mels]`` (rows are frames 10 ms apart
with the defaults). int16 input is scaled by 1/32768; float64 input is converted to float32.

``LogMelStream`` gives exactly the frames of ``log_mel`` on the concatenated signal, for any chunking
(chunks of any length, including 0); ``flush()`` emits the final center-padded frames.
``top_db`` needs the maximum over the whole signal, so streams reject it (``ValueError``): clip
afterwards yourself if you need it.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from .._native_loader import get_native
from ..errors import InvalidInputError

__all__ = ["LogMelOptions", "log_mel", "LogMelStream", "mel_filterbank"]


def _bad(field: str, value: Any, fix: str) -> InvalidInputError:
    return InvalidInputError(f"LogMelOptions.{field}={value!r} is invalid: {fix}")


@dataclass
class LogMelOptions:
    """Log-mel parameters (contract names and defaults; the defaults suit 16 kHz speech).

    sample_rate: Hz. n_fft: FFT size in samples (power of two). win_length, hop_length: samples
    (400 / 160 = 25 ms / 10 ms at 16 kHz). n_mels: mel bands. fmin, fmax: Hz (fmax None = sample_rate/2).
    center: pad n_fft//2 zeros on both sides (librosa). mel_scale: "slaney" | "htk".
    norm: "slaney" | None (area-normalised triangles or peak 1). log: "db" (10*log10) | "ln" (natural log).
    top_db: clip to max - top_db dB (offline only; None = no clip). amin: power floor before the log.
    """

    sample_rate: int = 16000
    n_fft: int = 512
    win_length: int = 400
    hop_length: int = 160
    n_mels: int = 64
    fmin: float = 0.0
    fmax: Optional[float] = None
    center: bool = True
    mel_scale: str = "slaney"
    norm: Optional[str] = "slaney"
    log: str = "db"
    top_db: Optional[float] = None
    amin: float = 1e-10

    def validate(self) -> "LogMelOptions":
        """Raise InvalidInputError (a ValueError) naming the field, the value and the fix; return self."""
        def _int(name):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise _bad(name, v, "use an integer")
            return int(v)

        sr = _int("sample_rate")
        if sr <= 0:
            raise _bad("sample_rate", sr, "use a positive rate in Hz, e.g. 16000")
        n_fft = _int("n_fft")
        if n_fft < 16 or n_fft > 65536 or n_fft & (n_fft - 1):
            p2 = 1 << max(4, int(n_fft - 1).bit_length()) if n_fft > 0 else 512
            raise _bad("n_fft", n_fft, f"use a power of two between 16 and 65536 (e.g. {min(p2, 65536)})")
        wl = _int("win_length")
        if wl <= 0 or wl > n_fft:
            raise _bad("win_length", wl, f"use 1 <= win_length <= n_fft ({n_fft}), or raise n_fft to "
                                         f"{1 << max(4, int(wl - 1).bit_length())}")
        if sr > MAX_SAMPLE_RATE:
            raise _bad("sample_rate", sr, f"use a rate of at most {MAX_SAMPLE_RATE} Hz")
        hop = _int("hop_length")
        if hop <= 0:
            raise _bad("hop_length", hop, "use a positive hop in samples, e.g. 160 (10 ms at 16 kHz)")
        if hop * MAX_OVERLAP < n_fft:
            raise _bad("hop_length", hop, f"frames may overlap at most {MAX_OVERLAP}x, so use hop_length >= "
                                          f"n_fft / {MAX_OVERLAP} = {-(-n_fft // MAX_OVERLAP)}")
        if hop > MAX_HOP:
            raise _bad("hop_length", hop, f"use a hop of at most {MAX_HOP} samples")
        nm = _int("n_mels")
        if nm <= 0 or nm > 4096:
            raise _bad("n_mels", nm, "use 1 <= n_mels <= 4096, e.g. 64")
        try:
            fmin = float(self.fmin)
        except (TypeError, ValueError):
            raise _bad("fmin", self.fmin, "use a frequency in Hz >= 0") from None
        if not math.isfinite(fmin) or fmin < 0:
            raise _bad("fmin", self.fmin, "use a frequency in Hz >= 0")
        if self.fmax is not None:
            try:
                fmax = float(self.fmax)
            except (TypeError, ValueError):
                raise _bad("fmax", self.fmax, "use a frequency in Hz or None") from None
            if not math.isfinite(fmax) or fmax <= 0 or fmax > sr / 2:
                raise _bad("fmax", self.fmax, f"use 0 < fmax <= sample_rate/2 = {sr / 2:g} Hz, or None for sample_rate/2")
        else:
            fmax = sr / 2
        if fmin >= fmax:
            raise _bad("fmin", self.fmin, f"fmin must be below fmax ({fmax:g} Hz): lower fmin or raise fmax")
        if fmax - fmin < sr / n_fft:
            raise _bad("fmin", self.fmin, f"fmin..fmax ({fmin:g}..{fmax:g} Hz) is narrower than one FFT bin "
                                          f"(sample_rate / n_fft = {sr / n_fft:g} Hz): widen the band or raise n_fft")
        if not isinstance(self.center, (bool, np.bool_)):
            raise _bad("center", self.center, "use True or False")
        if self.mel_scale not in ("slaney", "htk"):
            raise _bad("mel_scale", self.mel_scale, "use 'slaney' or 'htk'")
        if self.norm not in ("slaney", None, "none"):
            raise _bad("norm", self.norm, "use 'slaney' or None")
        if self.log not in ("db", "ln"):
            raise _bad("log", self.log, "use 'db' (10*log10) or 'ln' (natural log)")
        if self.top_db is not None:
            try:
                tdb = float(self.top_db)
            except (TypeError, ValueError):
                raise _bad("top_db", self.top_db, "use a positive number of dB or None") from None
            if not math.isfinite(tdb) or tdb <= 0:
                raise _bad("top_db", self.top_db, "use a positive number of dB or None")
            if self.log != "db":
                raise _bad("top_db", self.top_db, "top_db only applies to log='db': set top_db=None")
        try:
            amin = float(self.amin)
        except (TypeError, ValueError):
            raise _bad("amin", self.amin, "use a small positive floor, e.g. 1e-10") from None
        if not math.isfinite(amin) or amin <= 0:
            raise _bad("amin", self.amin, "use a small positive floor, e.g. 1e-10")
        return self

    def to_dict(self) -> dict:
        """Plain JSON-able dict (used in the model manifest)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "LogMelOptions":
        """Inverse of to_dict; missing keys take defaults, unknown keys raise InvalidInputError."""
        if not isinstance(d, dict):
            raise InvalidInputError(f"LogMelOptions.from_dict needs a dict, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise InvalidInputError(f"unknown LogMelOptions keys {unknown}: valid keys are {sorted(names)}")
        return cls(**d).validate()

    def _key(self) -> tuple:
        norm = None if self.norm in (None, "none") else self.norm
        return (int(self.sample_rate), int(self.n_fft), int(self.win_length), int(self.hop_length),
                int(self.n_mels), float(self.fmin), None if self.fmax is None else float(self.fmax),
                bool(self.center), self.mel_scale, norm, self.log,
                None if self.top_db is None else float(self.top_db), float(self.amin))

    @property
    def frame_rate(self) -> float:
        """Frames per second (sample_rate / hop_length)."""
        return self.sample_rate / self.hop_length


# Work bounds (the C++ kernel enforces the same; errors name them).
MAX_OVERLAP = 64          # n_fft / hop_length at most
MAX_HOP = 1 << 20         # samples
MAX_SAMPLE_RATE = 1 << 20  # Hz
MAX_OUTPUT_VALUES = 1 << 28  # frames * n_mels per call (1 GiB float32)

_KEYS = ("sample_rate", "n_fft", "win_length", "hop_length", "n_mels", "fmin", "fmax", "center",
         "mel_scale", "norm", "log", "top_db", "amin")
_cache: dict = {}


def _kernel(opts: LogMelOptions):
    """The (cached) backend object for these options: native LogMel or the numba fallback."""
    # validate on every call: the key below coerces values (int(512.7) == 512), so a cache hit must not
    # stand in for validation of these exact options
    opts.validate()
    key = opts._key()
    k = _cache.get(key)
    if k is None:
        kw = dict(zip(_KEYS, key))
        native = get_native()
        if native is not None:
            k = native.LogMel(**kw)
        else:
            from . import _numba_logmel
            k = _numba_logmel.LogMel(**kw)
        if len(_cache) > 64:
            _cache.clear()
        _cache[key] = k
    return k


def _check_rate(sample_rate, opts: LogMelOptions) -> None:
    if sample_rate is not None and int(sample_rate) != opts.sample_rate:
        raise InvalidInputError(
            f"waveform sample_rate={sample_rate} Hz does not match LogMelOptions.sample_rate={opts.sample_rate} Hz: "
            f"resample to {opts.sample_rate} Hz first, or use LogMelOptions(sample_rate={sample_rate})")


def log_mel(waveform: np.ndarray, opts: Optional[LogMelOptions] = None, *,
            sample_rate: Optional[int] = None) -> np.ndarray:
    """Log-mel spectrogram of a mono waveform.

    waveform: 1-D int16 (PCM, scaled by 1/32768) or float32 [samples] (float64 is converted).
    opts: LogMelOptions (defaults if None). sample_rate: optional Hz of the waveform, checked
    against opts.sample_rate. Returns float32 [frames, n_mels]; frames = 1 + n // hop_length
    with center=True. Raises ValueError for empty/2-D/non-finite input, TypeError for other dtypes.
    """
    opts = LogMelOptions() if opts is None else opts
    _check_rate(sample_rate, opts)
    if not isinstance(waveform, np.ndarray):
        if isinstance(waveform, (list, tuple)):
            waveform = np.asarray(waveform, dtype=np.float32)
        else:
            raise TypeError(f"waveform must be a numpy array of int16 or float32 samples, got "
                            f"{type(waveform).__name__}: pass np.asarray(x, dtype=np.float32)")
    return _kernel(opts).compute(waveform)


class LogMelStream:
    """Streaming log-mel with the same output as ``log_mel`` on the whole signal, for any chunking.

    ``accept(chunk, sample_rate=None)`` takes 1-D int16/float32 chunks of any length (also 0) and returns
    float32 ``[new_frames, n_mels]`` (possibly 0 rows); ``flush()`` ends the signal and returns the last
    (center-padded) frames; ``reset()`` starts a new signal. accept() after flush() raises until reset().
    A stream with ``top_db`` set is rejected (ValueError). One stream per thread.
    """

    def __init__(self, opts: Optional[LogMelOptions] = None):
        self.opts = LogMelOptions() if opts is None else opts
        if self.opts.top_db is not None:
            raise InvalidInputError(
                f"LogMelOptions.top_db={self.opts.top_db!r} is not supported by LogMelStream (clipping needs the "
                "maximum over the whole signal): use top_db=None for the stream and clip afterwards, "
                "or call log_mel on the whole signal")
        k = _kernel(self.opts)
        native = get_native()
        if native is not None and isinstance(k, native.LogMel):
            self._impl = native.LogMelStream(k)
        else:
            from . import _numba_logmel
            self._impl = _numba_logmel.LogMelStream(k)
        # Bind the backend's methods directly: accept() is on the 10 ms hot path.
        self.accept = self._impl.accept
        self.flush = self._impl.flush
        self.reset = self._impl.reset

    def accept(self, chunk: np.ndarray, sample_rate: Optional[int] = None) -> np.ndarray:  # pragma: no cover
        """Replaced per instance by the backend's accept (documented here)."""
        return self._impl.accept(chunk, sample_rate)

    def flush(self) -> np.ndarray:  # pragma: no cover
        """End of signal: the remaining frames, float32 [frames, n_mels]."""
        return self._impl.flush()

    def reset(self) -> None:  # pragma: no cover
        """Forget all state and start a new signal."""
        self._impl.reset()

    @property
    def samples_seen(self) -> int:
        """Samples accepted since the last reset."""
        return self._impl.samples_seen

    @property
    def frames_emitted(self) -> int:
        """Frames returned since the last reset."""
        return self._impl.frames_emitted


def mel_filterbank(opts: Optional[LogMelOptions] = None) -> np.ndarray:
    """The mel filterbank used by log_mel, float32 [n_mels, n_fft // 2 + 1] (like librosa.filters.mel)."""
    return _kernel(LogMelOptions() if opts is None else opts).filterbank()
