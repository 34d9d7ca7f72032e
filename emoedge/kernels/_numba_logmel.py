"""numba fallback of the log-mel kernel (same API as emoedge._native.LogMel / LogMelStream).

Used when the C++ extension is unavailable (``EMOEDGE_NATIVE=0`` or no build) and as a second oracle
in tests. Computes in float64 (own radix-2 FFT; numba has no FFT), returns float32. numba is
imported lazily, on the first computation.
"""
from __future__ import annotations

import math
import threading
from typing import Optional

import numpy as np

from .logmel_options import LogMelOptions
from ..errors import InvalidInputError, InvalidTypeError

_jit_lock = threading.Lock()
_jitted: dict = {}


def _kernels():
    """Compile (once) and return the numba kernels."""
    with _jit_lock:
        if _jitted:
            return _jitted
        import numba

        @numba.njit(cache=True, nogil=True)
        def fft_inplace(re, im, bitrev, cos_t, sin_t):  # pragma: no cover - compiled
            n = re.size
            for i in range(n):
                j = bitrev[i]
                if j > i:
                    re[i], re[j] = re[j], re[i]
                    im[i], im[j] = im[j], im[i]
            size = 2
            while size <= n:
                half = size // 2
                step = n // size
                for start in range(0, n, size):
                    for k in range(half):
                        c = cos_t[k * step]
                        s = sin_t[k * step]
                        a = start + k
                        b = a + half
                        tr = re[b] * c - im[b] * s
                        ti = re[b] * s + im[b] * c
                        re[b] = re[a] - tr
                        im[b] = im[a] - ti
                        re[a] += tr
                        im[a] += ti
                size *= 2

        @numba.njit(cache=True, nogil=True)
        def frames(x, first_start, n_frames, hop, win, bitrev, cos_t, sin_t, fstart, flen, foff, fw,
                   log_db, amin, out):  # pragma: no cover - compiled
            # x: float64 signal; frame f covers x[first_start + f*hop : ... + n_fft], zeros outside x.
            n_fft = win.size
            n = x.size
            nb = n_fft // 2 + 1
            re = np.empty(n_fft)
            im = np.empty(n_fft)
            pw = np.empty(nb)
            n_mels = fstart.size
            for f in range(n_frames):
                s = first_start + f * hop
                for i in range(n_fft):
                    j = s + i
                    v = x[j] if (j >= 0 and j < n) else 0.0
                    re[i] = v * win[i]
                    im[i] = 0.0
                fft_inplace(re, im, bitrev, cos_t, sin_t)
                for k in range(nb):
                    pw[k] = re[k] * re[k] + im[k] * im[k]
                for m in range(n_mels):
                    acc = 0.0
                    o = foff[m]
                    for j in range(flen[m]):
                        acc += fw[o + j] * pw[fstart[m] + j]
                    if acc < amin:
                        acc = amin
                    out[f, m] = 10.0 * math.log10(acc) if log_db else math.log(acc)

        _jitted["frames"] = frames
        return _jitted


def _hz_to_mel(f, htk):
    f = np.asarray(f, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    f_sp = 200.0 / 3
    mels = f / f_sp
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-300) / min_log_hz) / logstep, mels)


def _mel_to_hz(m, htk):
    m = np.asarray(m, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp = 200.0 / 3
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def _filterbank(sr, n_fft, n_mels, fmin, fmax, htk, slaney_norm):
    """librosa.filters.mel, float32 weights built in float64."""
    fftfreqs = np.arange(n_fft // 2 + 1) * (1.0 / (n_fft * (1.0 / sr)))
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(fmin, htk), _hz_to_mel(fmax, htk), n_mels + 2), htk)
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    w = np.zeros((n_mels, n_fft // 2 + 1), dtype=np.float32)
    for i in range(n_mels):
        w[i] = np.maximum(0, np.minimum(-ramps[i] / fdiff[i], ramps[i + 2] / fdiff[i + 1]))
    if slaney_norm:
        w *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, None]
    return w


def check_waveform(x, what: str = "waveform") -> np.ndarray:
    """Validate a 1-D int16/float32 (float64 converted) array; return it C-contiguous (same messages as native)."""
    if not isinstance(x, np.ndarray):
        raise InvalidTypeError(f"{what} must be a numpy array of int16 or float32 samples, got {type(x).__name__}: "
                        "pass np.asarray(x, dtype=np.float32)")
    if x.ndim != 1:
        raise InvalidInputError(f"{what} must be 1-D mono [samples], got shape {x.shape}: pick one channel (x[:, 0]) "
                         "or mix down (x.mean(axis=1))")
    if x.dtype == np.int16:
        return np.ascontiguousarray(x)
    if x.dtype == np.float32 or x.dtype == np.float64:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.size and not np.isfinite(x).all():
            i = int(np.flatnonzero(~np.isfinite(x))[0])
            kind = "NaN" if np.isnan(x[i]) else "Inf"
            raise InvalidInputError(f"{what} contains {kind} at sample {i}: remove or replace non-finite samples first "
                             "(e.g. np.nan_to_num(x))")
        return x
    raise InvalidTypeError(f"{what} dtype {x.dtype} is not supported: pass int16 PCM or float32 (float64 is converted) "
                    "in [-1, 1], e.g. x.astype(np.float32) / 32768 for int32 PCM scaled to 16 bits")


def _to_f64(x: np.ndarray) -> np.ndarray:
    if x.dtype == np.int16:
        return x.astype(np.float64) / 32768.0
    return x.astype(np.float64)


class LogMel:
    """Offline log-mel (numba) for a LogMelOptions (the numba counterpart of emoedge._native.LogMel)."""

    def __init__(self, opts: Optional[LogMelOptions] = None):
        o = (LogMelOptions() if opts is None else opts).validate()
        sample_rate, n_fft, win_length, hop_length, n_mels, fmin, fmax, center, mel_scale, norm, log, top_db, amin = \
            o.normalized()
        self.sample_rate, self.n_fft, self.win_length, self.hop_length = sample_rate, n_fft, win_length, hop_length
        self.n_mels, self.center, self.log_db = n_mels, bool(center), log == "db"
        self.top_db, self.amin = top_db, float(amin)
        fmax = sample_rate / 2 if fmax is None else fmax
        self._fb = _filterbank(sample_rate, n_fft, n_mels, fmin, fmax, mel_scale == "htk",
                               norm not in (None, "none"))
        fstart, flen, foff, fw = [], [], [], []
        for row in self._fb:
            nz = np.flatnonzero(row)
            a, b = (int(nz[0]), int(nz[-1]) + 1) if nz.size else (0, 0)
            fstart.append(a)
            flen.append(b - a)
            foff.append(sum(flen[:-1]))
            fw.append(row[a:b].astype(np.float64))
        self._fstart = np.array(fstart, np.int64)
        self._flen = np.array(flen, np.int64)
        self._foff = np.array(foff, np.int64)
        self._fw = np.concatenate(fw) if fw else np.zeros(0)
        w = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(win_length) / win_length)
        self._win = np.zeros(n_fft)
        lp = (n_fft - win_length) // 2
        self._win[lp:lp + win_length] = w
        bits = n_fft.bit_length() - 1
        self._bitrev = np.array([int(format(i, f"0{bits}b")[::-1], 2) for i in range(n_fft)], np.int64)
        ang = -2.0 * np.pi * np.arange(n_fft // 2) / n_fft
        self._cos, self._sin = np.cos(ang), np.sin(ang)

    def num_frames(self, n: int) -> int:
        if n <= 0:
            return 0
        if self.center:
            return 1 + n // self.hop_length
        return (n - self.n_fft) // self.hop_length + 1 if n >= self.n_fft else 0

    def filterbank(self) -> np.ndarray:
        return self._fb.copy()

    def window(self) -> np.ndarray:
        return self._win.astype(np.float32)

    def _frames(self, x64: np.ndarray, first_start: int, n_frames: int) -> np.ndarray:
        out = np.empty((n_frames, self.n_mels), np.float64)
        if n_frames:
            _kernels()["frames"](x64, first_start, n_frames, self.hop_length, self._win, self._bitrev, self._cos,
                                 self._sin, self._fstart, self._flen, self._foff, self._fw, self.log_db,
                                 self.amin, out)
        return out

    def compute(self, waveform) -> np.ndarray:
        x = check_waveform(waveform)
        n = x.size
        if n == 0:
            raise InvalidInputError("waveform is empty: pass at least one sample")
        F = self.num_frames(n)
        if F == 0:
            raise InvalidInputError(f"waveform has {n} samples but center=False needs at least n_fft={self.n_fft}: "
                             "pass a longer waveform or use center=True")
        _check_output(F, self.n_mels)
        out = self._frames(_to_f64(x), -(self.n_fft // 2) if self.center else 0, F)
        if self.log_db and self.top_db is not None:
            out = np.maximum(out, out.max() - float(self.top_db))
        return out.astype(np.float32)

    __call__ = compute


def _check_output(frames: int, n_mels: int) -> None:
    if frames * n_mels > 1 << 28:
        raise ValueError(f"the output would have {frames} frames x {n_mels} mels, above the limit of {1 << 28} values "
                         "(1 GiB float32) per call: pass the signal in shorter pieces or raise hop_length")


class LogMelStream:
    """Streaming log-mel (numba); same semantics as emoedge._native.LogMelStream."""

    def __init__(self, logmel: LogMel):
        if logmel.top_db is not None:
            raise InvalidInputError(f"top_db={logmel.top_db} is not supported for streams (it needs the maximum over the "
                             "whole signal): use top_db=None for the stream and clip afterwards, or call the "
                             "offline log_mel")
        self._lm = logmel
        self.reset()

    def reset(self) -> None:
        lm = self._lm
        self._pad = lm.n_fft // 2 if lm.center else 0
        self._buf = np.zeros(self._pad, np.float64)  # padded-signal samples from index _buf_start
        self._buf_start = 0
        self._samples = 0
        self._next = 0
        self._finished = False

    samples_seen = property(lambda self: self._samples)
    frames_emitted = property(lambda self: self._next)
    finished = property(lambda self: self._finished)

    def _emit(self, last: int) -> np.ndarray:
        lm = self._lm
        cnt = max(0, last - self._next)
        rel = self._next * lm.hop_length - self._buf_start
        out = lm._frames(self._buf, rel, cnt)
        self._next += cnt
        drop = min(self._next * lm.hop_length - self._buf_start, self._buf.size)
        if drop > 0:
            self._buf = self._buf[drop:]
            self._buf_start += drop
        return out.astype(np.float32)

    def _append(self, x64: np.ndarray) -> None:
        needed = self._next * self._lm.hop_length
        end = self._buf_start + self._buf.size
        if self._buf.size == 0 and end < needed:
            skip = min(x64.size, needed - end)
            x64 = x64[skip:]
            self._buf_start += skip
        self._buf = np.concatenate([self._buf, x64])

    def accept(self, chunk, sample_rate: Optional[int] = None) -> np.ndarray:
        lm = self._lm
        if sample_rate is not None and int(sample_rate) != lm.sample_rate:
            raise InvalidInputError(f"chunk sample_rate={sample_rate} Hz does not match the stream's {lm.sample_rate} Hz: "
                             f"resample the audio to {lm.sample_rate} Hz first, or create the stream with "
                             f"LogMelOptions(sample_rate={sample_rate})")
        x = check_waveform(chunk, "chunk")
        if self._finished:
            raise InvalidInputError("accept() after flush(): call reset() to start a new signal")
        if x.size == 0:
            return np.zeros((0, lm.n_mels), np.float32)
        total = self._pad + self._samples + x.size
        _check_output(((total - lm.n_fft) // lm.hop_length + 1 if total >= lm.n_fft else 0) - self._next, lm.n_mels)
        self._append(_to_f64(x))
        self._samples += x.size
        total = self._pad + self._samples
        last = (total - lm.n_fft) // lm.hop_length + 1 if total >= lm.n_fft else 0
        return self._emit(last)

    def flush(self) -> np.ndarray:
        lm = self._lm
        if self._finished:
            return np.zeros((0, lm.n_mels), np.float32)
        out = np.zeros((0, lm.n_mels), np.float32)
        if lm.center and self._samples > 0:
            self._append(np.zeros(self._pad))
            out = self._emit(self._samples // lm.hop_length + 1)
        self._finished = True
        return out
