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

from typing import Any, Dict, Optional, Tuple

import numpy as np

from .._native_loader import get_native
from ..errors import InvalidInputError, InvalidTypeError
from .logmel_options import LogMelOptions

__all__ = ["LogMelOptions", "log_mel", "LogMelStream", "mel_filterbank"]


_cache: Dict[Tuple[Any, ...], Any] = {}


def _kernel(opts: LogMelOptions) -> Any:
    """The (cached) backend object for these options: native LogMel or the numba fallback."""
    # validate on every call: the key coerces values (int(512.7) == 512), so a cache hit must not stand in
    # for validating these exact options
    opts.validate()
    key = opts.normalized()
    k = _cache.get(key)
    if k is None:
        # (the C++ constructor re-checks the options as the last line of defence)
        native = get_native()
        if native is not None:
            k = native.LogMel(opts.to_native())
        else:
            from . import _numba_logmel
            k = _numba_logmel.LogMel(opts)
        if len(_cache) > 64:
            _cache.clear()
        _cache[key] = k
    return k


def _check_rate(sample_rate: Optional[int], opts: LogMelOptions) -> None:
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
            raise InvalidTypeError(f"waveform must be a numpy array of int16 or float32 samples, got "
                            f"{type(waveform).__name__}: pass np.asarray(x, dtype=np.float32)")
    out: np.ndarray = _kernel(opts).compute(waveform)
    return out


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
        self.accept = self._impl.accept  # type: ignore[method-assign]
        self.flush = self._impl.flush  # type: ignore[method-assign]
        self.reset = self._impl.reset  # type: ignore[method-assign]

    def accept(self, chunk: np.ndarray, sample_rate: Optional[int] = None) -> np.ndarray:  # pragma: no cover
        """Replaced per instance by the backend's accept (documented here)."""
        out: np.ndarray = self._impl.accept(chunk, sample_rate)
        return out

    def flush(self) -> np.ndarray:  # pragma: no cover
        """End of signal: the remaining frames, float32 [frames, n_mels]."""
        out: np.ndarray = self._impl.flush()
        return out

    def reset(self) -> None:  # pragma: no cover
        """Forget all state and start a new signal."""
        self._impl.reset()

    @property
    def samples_seen(self) -> int:
        """Samples accepted since the last reset."""
        return int(self._impl.samples_seen)

    @property
    def frames_emitted(self) -> int:
        """Frames returned since the last reset."""
        return int(self._impl.frames_emitted)


def mel_filterbank(opts: Optional[LogMelOptions] = None) -> np.ndarray:
    """The mel filterbank used by log_mel, float32 [n_mels, n_fft // 2 + 1] (like librosa.filters.mel)."""
    fb: np.ndarray = _kernel(LogMelOptions() if opts is None else opts).filterbank()
    return fb
