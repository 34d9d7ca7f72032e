""":class:`LogMelOptions`, the log-mel parameters, in a module of their own so that both the log-mel
front end (:mod:`emoedge.kernels.logmel`) and the numba fallback (:mod:`emoedge.kernels._numba_logmel`)
import them without importing each other."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

import numpy as np

from ..errors import InvalidInputError

__all__ = ["LogMelOptions", "MAX_OVERLAP", "MAX_HOP", "MAX_SAMPLE_RATE", "MAX_OUTPUT_VALUES"]

# Work bounds (the C++ kernel enforces the same; errors name them).
MAX_OVERLAP = 64             # n_fft / hop_length at most
MAX_HOP = 1 << 20            # samples
MAX_SAMPLE_RATE = 1 << 20    # Hz
MAX_OUTPUT_VALUES = 1 << 28  # frames * n_mels per call (1 GiB float32)


def _bad(field: str, value: Any, fix: str) -> InvalidInputError:
    return InvalidInputError(f"LogMelOptions.{field}={value!r} is invalid: {fix}")


@dataclass
class LogMelOptions:
    """Log-mel parameters (contract names and defaults; the defaults suit 16 kHz speech). The Python view of
    the C++ ``LogMelConfig`` (csrc/logmel.h; ``emoedge._native.LogMelConfig``): same fields, defaults and
    dict form (tests/test_logmel.py checks they agree); :meth:`to_native` converts.

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
        def _int(name: str) -> int:
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

    def to_dict(self) -> Dict[str, Any]:
        """Plain JSON-able dict (used in the model manifest)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "LogMelOptions":
        """Inverse of to_dict; missing keys take defaults, unknown keys raise InvalidInputError."""
        if not isinstance(d, dict):
            raise InvalidInputError(f"LogMelOptions.from_dict needs a dict, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise InvalidInputError(f"unknown LogMelOptions keys {unknown}: valid keys are {sorted(names)}")
        return cls(**d).validate()

    def normalized(self) -> Tuple[Any, ...]:
        """The field values in declaration order, with canonical Python types (norm 'none' -> None): the
        cache key of a kernel."""
        norm = None if self.norm in (None, "none") else self.norm
        return (int(self.sample_rate), int(self.n_fft), int(self.win_length), int(self.hop_length),
                int(self.n_mels), float(self.fmin), None if self.fmax is None else float(self.fmax),
                bool(self.center), self.mel_scale, norm, self.log,
                None if self.top_db is None else float(self.top_db), float(self.amin))

    def to_native(self) -> Any:
        """The same options as the C++ ``emoedge._native.LogMelConfig`` (validated here first; the native
        LogMel constructor checks them again as the last line of defence). Needs the extension."""
        from .._native_loader import get_native
        nat = get_native()
        if nat is None:
            raise RuntimeError("emoedge._native is not available (numba fallback in use); LogMelOptions.to_native "
                               "needs the compiled extension")
        return nat.LogMelConfig.from_dict(self.validate().to_dict())

    @property
    def frame_rate(self) -> float:
        """Frames per second (sample_rate / hop_length)."""
        return self.sample_rate / self.hop_length

