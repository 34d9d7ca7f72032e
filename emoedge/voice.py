"""Streaming speech-emotion recognition: VAD-gated voice model over a ring buffer of native log-mel frames.

    model = VoiceModel()                       # shared: ONNX sessions for the voice model + Silero VAD
    with model.stream() as s:                  # per source: resampler, log-mel stream, VAD state, ring buffer
        for chunk in mic:                      # int16/float32/float64, [n] or [n, channels], any rate
            for ev in s.push(chunk, 48000):    # -> list[VoiceEvidence]
                print(ev.t_end, ev.label, ev.probs)
        tail = s.flush()
    clip = model.predict_clip(pcm, 16000)      # offline: same windows, same numbers as a stream

Windows (*contract* shared by training, streaming and offline evaluation, see :func:`window_ends`): the
model sees the latest ``window_frames`` log-mel frames (10 ms hop) ending at every multiple of
``hop_frames`` (0.5 s by default) once at least ``min_fill_s`` of audio has been seen; frames before the
start of the stream are filled with the log-mel of digital silence. At ``flush()`` one more window ends at
the last frame when at least half a hop has passed since the previous window (or when none was run yet).
While ``vad_gate`` is on, a window is run only when the highest Silero VAD probability of the 32 ms chunks
ending inside its last hop is >= ``vad_threshold``.

Timestamps: ``t`` passed to ``push`` is the source time (seconds) of the chunk's first sample; by default
it continues from the samples already pushed (starting at 0). Evidence times are on that clock.
"""
from __future__ import annotations

import collections
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Deque, Dict, List, Optional, Tuple, Union

import numpy as np

from .audio import Resampler, _check_rate, check_pcm, to_float_mono
from .errors import InvalidInputError, ModelError, StreamClosedError

if TYPE_CHECKING:  # pragma: no cover
    from .manifest import Manifest
    from .options import RuntimeOptions
    from .session import SessionOptions

SAMPLE_RATE = 16000
VAD_CHUNK = 512
VAD_CONTEXT = 64


# ----------------------------------------------------------------------------- windowing (shared contract)

def min_fill_frames(min_fill_s: float, hop_length: int, sample_rate: int = SAMPLE_RATE) -> int:
    return max(1, int(round(min_fill_s * sample_rate / hop_length)))


def window_ends(n_frames: int, hop_frames: int, min_fill: int) -> List[int]:
    """Frame indices (exclusive ends) of the windows run for a clip of ``n_frames`` log-mel frames:
    every multiple of ``hop_frames`` that is >= ``min_fill`` and <= n_frames, then ``n_frames`` itself when
    at least ``hop_frames // 2`` frames passed since the last one (or when there is none yet)."""
    ends = []
    e = hop_frames * max(1, -(-min_fill // hop_frames))
    while e <= n_frames:
        ends.append(e)
        e += hop_frames
    if n_frames > 0 and (not ends or n_frames - ends[-1] >= max(1, hop_frames // 2)):
        ends.append(n_frames)
    return ends


def window_at(frames: np.ndarray, end: int, window_frames: int, pad_value: float) -> np.ndarray:
    """float32 [window_frames, n_mels]: frames[end - window_frames:end], left-padded with ``pad_value``."""
    out = np.full((window_frames, frames.shape[1]), pad_value, dtype=np.float32)
    lo = max(0, end - window_frames)
    seg = frames[lo:end]
    out[window_frames - len(seg):] = seg
    return out


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    out: np.ndarray = (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)
    return out


# ----------------------------------------------------------------------------- VAD

class VadStream:
    """Silero VAD on a 16 kHz stream: every 512 new samples (with the previous 64 prepended) give one
    speech probability. The recurrent state [2, 1, 128] lives here, never in the shared session."""

    def __init__(self, session: Any):
        self.session = session
        self.reset()

    def reset(self) -> None:
        self._state = np.zeros((2, 1, 128), np.float32)
        self._ctx = np.zeros(VAD_CONTEXT, np.float32)
        self._pending = np.zeros(0, np.float32)
        self.n = 0   # samples consumed in complete chunks

    def _run(self, chunk: np.ndarray) -> float:
        x = np.concatenate([self._ctx, chunk])[None, :]
        p, self._state = self.session.run(
            None, {"input": x, "state": self._state, "sr": np.array(SAMPLE_RATE, np.int64)})
        self._ctx = chunk[-VAD_CONTEXT:].copy()
        return float(p.reshape(-1)[0])

    def accept(self, y: np.ndarray) -> List[Tuple[int, float]]:
        """float32 [n] 16 kHz -> [(chunk end sample, probability), ...] for each completed 512-sample chunk."""
        buf = np.concatenate([self._pending, y]) if len(self._pending) else np.asarray(y, np.float32)
        k = len(buf) // VAD_CHUNK
        out = []
        for j in range(k):
            self.n += VAD_CHUNK
            out.append((self.n, self._run(buf[j * VAD_CHUNK:(j + 1) * VAD_CHUNK])))
        self._pending = buf[k * VAD_CHUNK:].copy()
        return out

    def flush(self) -> List[Tuple[int, float]]:
        """The zero-padded tail chunk, if any samples are pending: [(end sample of the real audio, p)]."""
        if not len(self._pending):
            return []
        tail = np.zeros(VAD_CHUNK, np.float32)
        tail[:len(self._pending)] = self._pending
        end = self.n + len(self._pending)
        self._pending = np.zeros(0, np.float32)
        self.n = end
        return [(end, self._run(tail))]


def load_vad(manifest: "Union[str, Manifest, None]" = None, session_options: "Optional[SessionOptions]" = None) -> Any:
    """The bundled Silero VAD session (sha256-verified), shareable by any number of VadStream objects."""
    from .manifest import load_manifest
    from .session import SessionOptions, make_session
    m = load_manifest(manifest)
    return make_session(m.model_path(m.find("vad")), session_options or SessionOptions())


def vad_probabilities(pcm: Any, sample_rate: int, session: Any = None) -> np.ndarray:
    """Offline helper: float32 [ceil(n / 512)] speech probabilities per 32 ms chunk of a clip (resampled
    to 16 kHz first; the last chunk zero-padded)."""
    from .audio import resample
    x = resample(pcm, sample_rate, SAMPLE_RATE)
    v = VadStream(session if session is not None else load_vad())
    r = v.accept(x) + v.flush()
    return np.array([p for _, p in r], np.float32)


# ----------------------------------------------------------------------------- results and options

@dataclass
class VoiceOptions:
    """Per-stream settings. ``hop_s``: seconds between model runs (multiple of the 10 ms frame hop);
    ``vad_gate``: run the model only while speech is present; ``vad_threshold``: Silero probability that
    counts as speech; ``min_fill_s``: audio needed before the first window; ``slice_s``: long chunks are
    processed in slices of this many seconds of source audio (bounds memory for e.g. a 10-minute push)."""
    hop_s: float = 0.5
    vad_gate: bool = True
    vad_threshold: float = 0.5
    min_fill_s: float = 1.0
    slice_s: float = 10.0

    def validate(self) -> "VoiceOptions":
        for name in ("hop_s", "min_fill_s", "slice_s"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise InvalidInputError(f"VoiceOptions.{name}={v!r} is invalid: use a positive number of seconds")
        if not (0.0 <= float(self.vad_threshold) <= 1.0):
            raise InvalidInputError(f"VoiceOptions.vad_threshold={self.vad_threshold!r} is invalid: use a probability in [0, 1]")
        return self


@dataclass
class VoiceEvidence:
    """One run of the voice model. ``t_start``/``t_end``: seconds on the source clock covered by the
    window (clamped to the stream start); ``probs``: float32 [len(labels)] calibrated with the manifest
    temperature, in model label order; ``vad_prob``: highest VAD probability in the window's last hop
    (NaN without VAD); ``latency_ms``: time to assemble the window and run the model."""
    t_start: float
    t_end: float
    labels: Tuple[str, ...]
    probs: np.ndarray
    vad_prob: float
    latency_ms: float
    logits: Optional[np.ndarray] = field(default=None, repr=False)

    @property
    def label(self) -> str:
        return str(self.labels[int(np.argmax(self.probs))])

    def canonical(self) -> Dict[str, float]:
        """Probabilities mapped by name onto emoedge.labels.CANONICAL (calm -> neutral)."""
        from .labels import CANONICAL, to_canonical_probs
        return dict(zip(CANONICAL, to_canonical_probs(self.probs, self.labels).tolist()))


@dataclass
class ClipPrediction:
    """Clip-level decision: ``probs`` is the mean of the window probabilities (float32 [C]); ``label``
    their argmax (None when no window ran, e.g. no speech with the VAD gate on)."""
    labels: Tuple[str, ...]
    probs: Optional[np.ndarray]
    label: Optional[str]
    windows: List[VoiceEvidence]


# ----------------------------------------------------------------------------- model (shared) and stream

class VoiceModel:
    """Shared, thread-safe part: the voice model and Silero VAD onnxruntime sessions plus their manifest
    settings. Holds no per-stream state; make one :class:`VoiceStream` per audio source with :meth:`stream`."""

    def __init__(self, *, name: Optional[str] = None, precision: Optional[str] = None,
                 manifest: "Union[str, Manifest, None]" = None, session_options: "Optional[SessionOptions]" = None,
                 vad: bool = True, runtime: "Optional[RuntimeOptions]" = None):
        from . import kernels
        from .manifest import load_manifest
        from .session import SessionOptions, make_session
        so = runtime.session_options() if runtime is not None else (session_options or SessionOptions())
        m = load_manifest(manifest)
        self.name = m.find("voice", precision=precision, name=name)
        e = m.entry(self.name)
        if e.get("task") != "voice":
            raise ModelError(f"manifest entry {self.name!r} is a {e.get('task')!r} model, not a voice model")
        self.entry = e
        self.session = make_session(m.model_path(self.name), so)
        self.input_name = self.session.get_inputs()[0].name
        self.labels = tuple(e["labels"])
        self.temperature = float(e.get("temperature", 1.0))
        lm = dict(e["logmel"])
        self.logmel_options = kernels.LogMelOptions(**lm)
        self.sample_rate = int(self.logmel_options.sample_rate)
        if self.sample_rate != SAMPLE_RATE:
            raise ModelError(f"voice model {self.name!r} expects {self.sample_rate} Hz; only 16000 Hz is supported")
        self.hop_length = int(self.logmel_options.hop_length)
        self.n_mels = int(self.logmel_options.n_mels)
        self.window_frames = int(e["window_frames"])
        self.pad_value = float(e["pad_value"])
        self.vad_session = None
        self.vad_name = None
        if vad:
            self.vad_name = m.find("vad")
            self.vad_session = make_session(m.model_path(self.vad_name), so)

    @property
    def window_s(self) -> float:
        return self.window_frames * self.hop_length / self.sample_rate

    def stream(self, options: Optional[VoiceOptions] = None, **kw: Any) -> "VoiceStream":
        """A new per-source stream; keyword arguments override VoiceOptions fields."""
        opts = options or VoiceOptions()
        if kw:
            opts = VoiceOptions(**{**opts.__dict__, **kw})
        return VoiceStream(self, opts.validate())

    def run_logits(self, windows: np.ndarray) -> np.ndarray:
        """float32 [B, C] logits for log-mel windows float32 [B, window_frames, n_mels]."""
        w = np.ascontiguousarray(windows, dtype=np.float32)
        if w.ndim != 3 or w.shape[1:] != (self.window_frames, self.n_mels):
            raise InvalidInputError(f"windows must be [B, {self.window_frames}, {self.n_mels}], got {w.shape}")
        logits: np.ndarray = self.session.run(None, {self.input_name: w})[0]
        return logits

    def predict_clip(self, pcm: Any, sample_rate: int, *, vad_gate: bool = False, **kw: Any) -> ClipPrediction:
        """Clip decision: a fresh stream (``vad_gate`` off by default) is fed the whole clip and flushed;
        the clip's probabilities are the mean of its window probabilities."""
        with self.stream(vad_gate=vad_gate, **kw) as s:
            evs = s.push(pcm, sample_rate)
            evs += s.flush()
        if not evs:
            return ClipPrediction(self.labels, None, None, evs)
        p = np.mean([e.probs for e in evs], axis=0).astype(np.float32)
        return ClipPrediction(self.labels, p, self.labels[int(np.argmax(p))], evs)


class VoiceStream:
    """Per-source state: resampler, log-mel stream, VAD recurrent state, ring buffer of the latest
    ``window_frames`` log-mel frames. Not thread-safe (one producer per stream). ``push`` accepts any
    sample rate but the rate must stay the same; call :meth:`reset` before switching rates."""

    def __init__(self, model: VoiceModel, options: VoiceOptions):
        from . import kernels
        self.model = model
        self.options = options
        hop_frames = options.hop_s * model.sample_rate / model.hop_length
        if abs(hop_frames - round(hop_frames)) > 1e-6 or round(hop_frames) < 1:
            raise InvalidInputError(f"VoiceOptions.hop_s={options.hop_s} must be a multiple of the "
                                    f"{model.hop_length / model.sample_rate:g} s frame hop")
        self.hop_frames = int(round(hop_frames))
        self.min_fill = min_fill_frames(options.min_fill_s, model.hop_length, model.sample_rate)
        if options.vad_gate and model.vad_session is None:
            raise InvalidInputError("vad_gate=True needs a VoiceModel created with vad=True")
        self._kernels = kernels
        self._closed = False
        self.reset()

    # -- lifecycle
    def reset(self) -> None:
        """Forget all audio, timestamps, VAD state and the sample rate (the next push may use a new rate)."""
        m = self.model
        self._sr: Optional[int] = None
        self._resampler: Optional[Resampler] = None
        self._logmel = self._kernels.LogMelStream(m.logmel_options)
        self._ring = np.full((m.window_frames, m.n_mels), m.pad_value, dtype=np.float32)
        self._ring_pos = 0          # next write index
        self._n_frames = 0          # frames produced so far
        self._next_end = self.hop_frames * max(1, -(-self.min_fill // self.hop_frames))
        self._last_end = 0          # end frame of the last evaluated window (0: none yet)
        self._n_windows = 0
        self._n16 = 0               # 16 kHz samples produced so far
        self._n_in = 0              # source samples pushed so far
        self._anchors: Deque[Tuple[float, float]] = collections.deque()   # (16 kHz sample position, source time)
        self._t_next = 0.0
        self._vad = VadStream(self.model.vad_session) if self.model.vad_session is not None else None
        self._vad_hist: Deque[Tuple[int, float]] = collections.deque()  # (chunk end sample, prob)
        self._flushed = False

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> "VoiceStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def sample_rate(self) -> Optional[int]:
        """Source sample rate fixed by the first push (None before it)."""
        return self._sr

    # -- input
    def push(self, pcm: Any, sample_rate: int, t: Optional[float] = None) -> List[VoiceEvidence]:
        """Feed a chunk (int16/float32/float64; [n] mono or [n, channels]); returns the evidence of the
        windows that became ready. ``t``: source time (s) of the chunk's first sample. Chunks of any length
        are accepted; long ones are processed in ``slice_s`` slices so memory stays bounded."""
        if self._closed:
            raise StreamClosedError("push() on a closed VoiceStream; create a new one with model.stream()")
        if self._flushed:
            raise InvalidInputError("push() after flush(); call reset() to start a new utterance, or make a new stream")
        sr = _check_rate(sample_rate)
        x = check_pcm(pcm)
        if x.shape[0] == 0:         # nothing to do; does not fix the rate or move the clock
            return []
        # NaN/Inf check up front so nothing is consumed from a bad chunk (a float64 sum: no big temporary)
        if x.dtype != np.int16 and not np.isfinite(np.sum(x, dtype=np.float64)):
            bad = ~np.isfinite(x)
            if bad.any():
                raise InvalidInputError(f"audio contains {int(bad.sum())} NaN/Inf sample(s); replace them first "
                                        "(e.g. np.nan_to_num(pcm, nan=0.0, posinf=1.0, neginf=-1.0))")
        if t is not None:
            if not isinstance(t, (int, float, np.floating, np.integer)) or not math.isfinite(float(t)):
                raise InvalidInputError(f"t must be a finite time in seconds, got {t!r}")
            t = float(t)
            if self._n_in > 0 and t < self._t_next - 1e-3:
                raise InvalidInputError(f"t={t:.4f} s goes back in time (the previous chunk ended at "
                                        f"{self._t_next:.4f} s); timestamps must increase")
        else:
            t = self._t_next
        if self._sr is None:           # the first non-empty chunk fixes the rate
            self._sr = sr
            self._resampler = Resampler(sr, self.model.sample_rate)
        elif sr != self._sr:
            raise InvalidInputError(f"sample rate changed mid-stream from {self._sr} Hz to {sr} Hz; call "
                                    "stream.flush() and stream.reset() before pushing audio at the new rate, "
                                    "or resample it to the first rate yourself")
        rate, resampler = self._sr, self._resampler
        assert resampler is not None  # made together with the rate
        n = x.shape[0]
        pos16 = self._n_in * self.model.sample_rate / rate
        self._anchors.append((pos16, t))
        self._n_in += n
        self._t_next = t + n / rate
        out: List[VoiceEvidence] = []
        step = max(1, int(self.options.slice_s * rate))
        for i in range(0, n, step):
            y = resampler.process(to_float_mono(x[i:i + step]))
            out += self._consume16(y)
        return out

    def flush(self) -> List[VoiceEvidence]:
        """End of input: drain the resampler and log-mel stream, run the VAD on the zero-padded tail, and
        return the remaining evidence (including the final partial window, see module doc)."""
        if self._closed:
            raise StreamClosedError("flush() on a closed VoiceStream; create a new one with model.stream()")
        if self._flushed or self._resampler is None:  # nothing pushed yet (the rate is not fixed)
            self._flushed = True
            return []
        self._flushed = True
        out = self._consume16(self._resampler.flush())
        if self._vad is not None:
            self._vad_hist.extend(self._vad.flush())
        frames = self._logmel.flush()
        out += self._consume_frames(frames)
        n = self._n_frames
        if n > self._last_end and (self._last_end == 0 or n - self._last_end >= max(1, self.hop_frames // 2)):
            ev = self._evaluate(n, final=True)
            if ev is not None:
                out.append(ev)
        return out

    # -- internals
    def _consume16(self, y: np.ndarray) -> List[VoiceEvidence]:
        if len(y) == 0:
            return []
        self._n16 += len(y)
        if self._vad is not None:
            self._vad_hist.extend(self._vad.accept(y))
        return self._consume_frames(self._logmel.accept(y))

    def _consume_frames(self, frames: np.ndarray) -> List[VoiceEvidence]:
        out = []
        W = self.model.window_frames
        i = 0
        nf = len(frames)
        while i < nf:
            # copy frames up to the next window end into the ring, then evaluate
            take = min(nf - i, self._next_end - self._n_frames)  # _next_end > _n_frames always
            seg = frames[i:i + take]
            if len(seg) >= W:
                self._ring[:] = seg[-W:]
                self._ring_pos = 0
            else:
                first = min(len(seg), W - self._ring_pos)
                self._ring[self._ring_pos:self._ring_pos + first] = seg[:first]
                rest = len(seg) - first
                if rest:
                    self._ring[:rest] = seg[first:]
                self._ring_pos = (self._ring_pos + len(seg)) % W
            self._n_frames += len(seg)
            i += len(seg)
            if self._n_frames == self._next_end:
                ev = self._evaluate(self._n_frames, final=False)
                self._next_end += self.hop_frames
                if ev is not None:
                    out.append(ev)
        return out

    def _hop_vad(self, end: int, final: bool) -> float:
        """Highest VAD probability of chunks ending in (end - hop, end] (frames -> 16 kHz samples)."""
        if self._vad is None:
            return float("nan")
        hl = self.model.hop_length
        lo = max(0, end - self.hop_frames) * hl if not final else self._last_end * hl
        hi = math.inf if final else end * hl
        # drop history that no later window can need
        keep_from = max(0, end - self.hop_frames) * hl
        best = -1.0
        last_before = None
        for ce, p in self._vad_hist:
            if lo < ce <= hi:
                best = max(best, p)
            elif ce <= lo:
                last_before = p
        while self._vad_hist and self._vad_hist[0][0] <= keep_from - VAD_CHUNK:
            self._vad_hist.popleft()
        if best < 0:
            best = last_before if last_before is not None else 0.0
        return best

    def _time_of(self, pos16: float) -> float:
        """Source time of a 16 kHz sample position."""
        while len(self._anchors) > 1 and self._anchors[1][0] <= pos16:
            self._anchors.popleft()
        p0, t0 = self._anchors[0]
        return t0 + (pos16 - p0) / self.model.sample_rate

    def _evaluate(self, end: int, final: bool) -> Optional[VoiceEvidence]:
        vad = self._hop_vad(end, final)
        self._last_end = end
        W = self.model.window_frames
        hl = self.model.hop_length
        t_start = self._time_of(max(0, end - W) * hl)
        t_end = self._time_of(end * hl)
        if self.options.vad_gate and not (vad >= self.options.vad_threshold):
            return None
        t0 = time.perf_counter_ns()
        win = np.concatenate([self._ring[self._ring_pos:], self._ring[:self._ring_pos]])[None]
        logits = self.model.run_logits(win)[0]
        probs = softmax(logits, self.model.temperature)
        lat = (time.perf_counter_ns() - t0) / 1e6
        self._n_windows += 1
        return VoiceEvidence(t_start=t_start, t_end=t_end,
                             labels=self.model.labels, probs=probs, vad_prob=float(vad), latency_ms=lat,
                             logits=np.asarray(logits, np.float32))


__all__ = ["VoiceModel", "VoiceStream", "VadStream", "load_vad", "vad_probabilities", "VoiceOptions", "VoiceEvidence", "ClipPrediction",
           "window_ends", "window_at", "softmax"]
