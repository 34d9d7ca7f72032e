"""Audio input helpers: validate PCM, convert to float32, downmix, and resample (anti-aliased, via soxr).

Layout (*contract*): mono audio is a 1-D array ``[n_samples]``; multi-channel audio is 2-D
``[n_samples, n_channels]`` (interleaved frames, as soundfile/sounddevice return them). A 2-D array that
looks channel-first (``[n_channels, n_samples]`` with few rows and many columns) is rejected with a hint to
transpose. Dtypes: int16 (scaled by 1/32768), float32 or float64 (taken as-is, nominal range [-1, 1]).
Channels are downmixed by their mean.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .errors import InvalidInputError

MAX_CHANNELS = 64


def _check_rate(sample_rate: Any) -> int:
    try:
        sr = int(sample_rate)
    except (TypeError, ValueError):
        raise InvalidInputError(f"sample_rate must be a positive integer in Hz, got {sample_rate!r}") from None
    if sr != sample_rate or sr <= 0:
        raise InvalidInputError(f"sample_rate must be a positive integer in Hz, got {sample_rate!r}")
    if sr < 4000 or sr > 768000:
        raise InvalidInputError(f"sample_rate {sr} Hz is outside the supported 4000..768000 Hz range")
    return sr


def check_pcm(pcm: Any) -> np.ndarray:
    """Validate a PCM chunk (see module doc for layout/dtypes) and return it as an ndarray (no copy).
    Raises InvalidInputError naming the problem and the fix."""
    if not isinstance(pcm, np.ndarray):
        if isinstance(pcm, (list, tuple)):
            pcm = np.asarray(pcm)
        else:
            raise InvalidInputError(f"audio must be a numpy array, got {type(pcm).__name__}; "
                                    "pass np.asarray(samples, dtype=np.float32)")
    if pcm.dtype not in (np.int16, np.float32, np.float64):
        raise InvalidInputError(f"audio dtype {pcm.dtype} is not supported; pass int16 PCM or float32/float64 "
                                "in [-1, 1] (e.g. pcm.astype(np.float32) / 32768 for int32 sources)")
    if pcm.ndim not in (1, 2):
        raise InvalidInputError(f"audio must be 1-D [n_samples] or 2-D [n_samples, n_channels], got shape {pcm.shape}")
    if pcm.ndim == 2:
        n, ch = pcm.shape
        if ch == 0:
            raise InvalidInputError(f"audio has shape {pcm.shape}: zero channels")
        if ch > MAX_CHANNELS:
            if n <= MAX_CHANNELS:
                raise InvalidInputError(f"audio shape {pcm.shape} looks channel-first; the layout is "
                                        "[n_samples, n_channels]: pass pcm.T")
            raise InvalidInputError(f"audio has {ch} channels (> {MAX_CHANNELS}); the layout is [n_samples, n_channels]")
    checked: np.ndarray = pcm
    return checked


def to_float_mono(pcm: Any) -> np.ndarray:
    """float32 [n] mono from a validated chunk: int16 / 32768, floats as-is, channels averaged.
    Raises InvalidInputError on NaN/Inf."""
    pcm = check_pcm(pcm)
    if pcm.dtype == np.int16:
        x = pcm.astype(np.float32) * np.float32(1.0 / 32768.0)
    else:
        x = pcm
        if not np.isfinite(x).all():
            bad = int((~np.isfinite(x)).sum())
            raise InvalidInputError(f"audio contains {bad} NaN/Inf sample(s); replace them first "
                                    "(e.g. np.nan_to_num(pcm, nan=0.0, posinf=1.0, neginf=-1.0))")
    if x.ndim == 2:
        x = x.mean(axis=1, dtype=np.float64) if x.shape[1] > 1 else x[:, 0]
    return np.ascontiguousarray(x, dtype=np.float32)


class Resampler:
    """Streaming anti-aliased resampler ``in_rate -> out_rate`` for mono float32 (soxr 'HQ', delay
    compensated: concat(process(...), flush()) equals the one-shot ``resample`` output).
    Pass-through (no copy beyond float32 conversion) when the rates are equal."""

    def __init__(self, in_rate: int, out_rate: int = 16000, quality: str = "HQ"):
        self.in_rate = _check_rate(in_rate)
        self.out_rate = _check_rate(out_rate)
        self.quality = quality
        self._rs = None
        if self.in_rate != self.out_rate:
            import soxr
            self._rs = soxr.ResampleStream(self.in_rate, self.out_rate, 1, dtype="float32", quality=quality)

    @property
    def passthrough(self) -> bool:
        return self._rs is None

    def process(self, x: np.ndarray) -> np.ndarray:
        """Resample float32 [n] -> float32 [m] (m may be 0 while the filter fills)."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self._rs is None:
            return x
        return np.asarray(self._rs.resample_chunk(x, last=False), dtype=np.float32)

    def flush(self) -> np.ndarray:
        """The remaining output; the resampler is finished afterwards (make a new one to reuse)."""
        if self._rs is None:
            return np.zeros(0, np.float32)
        return np.asarray(self._rs.resample_chunk(np.zeros(0, np.float32), last=True), dtype=np.float32)


def resample(x: Any, in_rate: int, out_rate: int = 16000, quality: str = "HQ") -> np.ndarray:
    """One-shot anti-aliased resampling of mono audio (any accepted dtype/layout, downmixed) to float32."""
    x = to_float_mono(x)
    r = Resampler(in_rate, out_rate, quality)
    if r.passthrough:
        out: np.ndarray = x
        return out
    return np.concatenate([r.process(x), r.flush()])
