"""A :class:`Stream`: the per-source state of one camera / microphone / user on a shared
:class:`~emoedge.engine.Engine` — face tracker, voice stream (audio ring buffer, log-mel, VAD state) and
fusion state. Push timestamped inputs, get back the :class:`~emoedge.events.EmotionEvent` s that became
ready:

* ``push_frame(image, t)``: one event per frame, with the faces found in it (trigger time: ``t``).
* ``push_audio(pcm, sample_rate, t)``: one event per voice window the voice model finished (trigger time:
  the window's end), none while there is no speech.
* ``push_text(text, t)``: one event (trigger time: ``t``); none for empty text.

Timestamps are seconds on the source clock and must not go backwards within a modality (frames: strictly
increasing). **Event times follow the stream clock**: fusion is evaluated at the latest of the trigger
time and every earlier event's time, and that is the event's ``t``, so a stream's events never go back in
time even when modalities arrive out of step. The trigger's own time is ``event.trigger_t``. Examples: a
voice window ending at 1.50 s finished by an audio chunk pushed after the frame at 1.53 s gives an event
with ``t`` 1.53 and ``trigger_t`` 1.50; a text line stamped 2.0 s pushed after 9 s of audio whose voice
windows reached 7.5 s gives ``t`` 7.5 and ``trigger_t`` 2.0 (the line's evidence is 5.5 s old and decays
accordingly). When inputs arrive in time order (file mode, the ``engine.run`` driver) ``t == trigger_t``.
A frame whose size differs from the previous one resets the face tracker
and per-face smoothing (counted in ``stats.size_changes``); it is not an error.
Every push holds the stream's lock, so calls from several threads are serialized (they are not run in
parallel, and timestamps must still increase in the order the calls take the lock); many streams may
share one engine across threads.

A stream calls the engine's components through their written interfaces (:mod:`emoedge.components`):
``face.analyze`` with the stream's own tracker, its own ``VoiceStream``, ``text.predict``; the outputs go
through :mod:`emoedge.adapters` into the stream's ``fusion.FusionState`` and come back as events.
"""
from __future__ import annotations

import math
import numbers
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import adapters
from . import fusion as _fusion
from .audio import _check_rate, check_pcm
from .components import FaceObservation, VoiceObservation
from .detect import check_frame
from .errors import InvalidInputError, StreamClosedError
from .events import EmotionEvent, FaceResult
from .options import RunningMode

if TYPE_CHECKING:  # pragma: no cover
    from .engine import Engine
    from .faces import Located

try:  # Python >= 3.8
    from typing import Protocol, runtime_checkable
except ImportError:  # pragma: no cover
    from typing_extensions import Protocol, runtime_checkable  # type: ignore

MODES = tuple(m.value for m in RunningMode)
STAGES = ("detect", "align", "classify", "audio", "voice", "text", "fuse", "total")


class LatencyStats:
    """Per-stage latency samples (ms) in fixed-size rings (memory stays flat on endless streams);
    percentiles over the most recent ``capacity`` samples of each stage."""

    # 16384 samples per stage (18 min of frames at 15 fps) is plenty for percentiles, and the rings of
    # an endless stream stop growing (touching new pages) within its first minutes.
    def __init__(self, capacity: int = 1 << 14):
        self.capacity = int(capacity)
        self._buf: Dict[str, np.ndarray] = {}
        self._n: Dict[str, int] = {}

    def add(self, stage: str, ms: float) -> None:
        b = self._buf.get(stage)
        if b is None:
            b = self._buf[stage] = np.empty(self.capacity, dtype=np.float32)
            self._n[stage] = 0
        n = self._n[stage]
        b[n % self.capacity] = ms
        self._n[stage] = n + 1

    def count(self, stage: str) -> int:
        return self._n.get(stage, 0)

    def samples(self, stage: str) -> np.ndarray:
        n = self._n.get(stage, 0)
        return self._buf[stage][:min(n, self.capacity)] if n else np.empty(0, np.float32)

    def percentiles(self, qs: Sequence[int] = (50, 95, 99)) -> Dict[str, Dict[str, float]]:
        """``{stage: {"n": count, "p50": ms, "p95": ms, "p99": ms}}`` for every stage with samples."""
        out: Dict[str, Dict[str, float]] = {}
        for s in list(STAGES) + sorted(set(self._buf) - set(STAGES)):
            x = self.samples(s)
            if x.size:
                d: Dict[str, float] = {"n": self._n[s]}
                d.update({f"p{q}": float(np.percentile(x, q)) for q in qs})
                out[s] = d
        return out

    def stages(self) -> List[str]:
        """Stages with at least one sample, in first-seen order."""
        return list(self._buf)

    def merge(self, other: "LatencyStats") -> None:
        for s in other.stages():
            for v in other.samples(s):
                self.add(s, float(v))


@dataclass
class StreamStats:
    """Counters of one stream. Frames: ``frames_in`` = processed + dropped (nothing is dropped silently);
    ``frames_dropped`` counts frames a live driver skipped because a newer one arrived."""
    frames_processed: int = 0
    frames_dropped: int = 0
    faces: int = 0
    frames_with_faces: int = 0
    audio_chunks: int = 0
    audio_seconds: float = 0.0
    audio_dropped: int = 0
    voice_windows: int = 0
    texts: int = 0
    events: int = 0
    size_changes: int = 0
    latency: LatencyStats = field(default_factory=LatencyStats, repr=False)

    @property
    def frames_in(self) -> int:
        return self.frames_processed + self.frames_dropped

    def drops(self) -> Dict[str, int]:
        return {"frames_dropped": self.frames_dropped, "audio_dropped": self.audio_dropped}

    def to_dict(self) -> Dict[str, Any]:
        d: Dict[str, Any] = {k: getattr(self, k) for k in ("frames_processed", "frames_dropped", "faces", "frames_with_faces",
                                            "audio_chunks", "audio_seconds", "audio_dropped", "voice_windows",
                                            "texts", "events", "size_changes")}
        d["frames_in"] = self.frames_in
        d["latency_ms"] = self.latency.percentiles()
        return d


def _ms(ns: int) -> float:
    return ns / 1e6


def _check_t(t: object, what: str) -> float:
    # numbers only: float("1.5") / float(True) / bytes would silently become times
    if isinstance(t, (bool, np.bool_)) or not isinstance(t, numbers.Real):
        raise InvalidInputError(f"{what}: timestamp must be a number of seconds (int or float), got "
                                f"{type(t).__name__} {t!r}")
    try:
        tf = float(t)
    except (TypeError, ValueError, OverflowError):
        raise InvalidInputError(f"{what}: timestamp must be a number of seconds, got {t!r}") from None
    if not math.isfinite(tf):
        raise InvalidInputError(f"{what}: timestamp must be finite seconds, got {t!r}")
    return tf


@runtime_checkable
class StagedFaceComponent(Protocol):
    """A face component that also offers ``analyze`` in stages (emoedge.faces.FaceAnalyzer): ``locate``
    (detection or ROI tracking, updates the tracker), ``crops`` (model inputs), ``classify`` (any number of
    crops, e.g. of many frames at once) and ``faces`` (the results). The stream and emoedge.scheduler use
    them; other FaceComponents are called through ``analyze``."""

    def locate(self, frame: np.ndarray, t: Optional[float] = None, tracker: Any = None) -> "Located": ...

    def crops(self, frame: np.ndarray, loc: "Located") -> np.ndarray: ...

    def classify(self, crops: np.ndarray) -> np.ndarray: ...

    def faces(self, loc: "Located", probs: np.ndarray, align_ms: float = 0.0,
              classify_ms: float = 0.0) -> Sequence[FaceObservation]: ...


@dataclass
class _PendingFrame:
    """A frame between the stages of Stream.push_frame (see Stream._frame_locate)."""
    image: np.ndarray
    t: float
    t_start: int
    located: "Optional[Located]" = None
    crops: Optional[np.ndarray] = None
    faces: Optional[Sequence[FaceObservation]] = None  # analyze() output of a component without stages
    analyze_ms: float = 0.0
    align_ms: float = 0.0
    classify_ms: float = 0.0


class Stream:
    """Per-source state on a shared engine; create with ``engine.stream(...)``.

    ``mode``: 'file' (every pushed frame is processed; deterministic) or 'live' (the ``engine.run`` driver
    keeps only the newest frame and counts the rest in ``stats.frames_dropped``). ``fusion``: FusionOptions.
    ``keep_frames``: attach the BGR frame to frame-triggered events (for drawing; never serialized)."""

    def __init__(self, engine: "Engine", *, mode: Union[RunningMode, str] = RunningMode.FILE,
                 fusion: Optional[_fusion.FusionOptions] = None, stream_id: Optional[str] = None,
                 keep_frames: bool = False):
        self.mode = RunningMode.parse(mode)
        self.engine = engine
        self.stream_id = stream_id
        self.keep_frames = bool(keep_frames)
        self.fusion_options = fusion if fusion is not None else _fusion.FusionOptions()
        self._fusion = _fusion.FusionState(self.fusion_options)
        # the shared components (None: modality off) and this stream's state of each
        self._face = engine.face
        self._text = engine.text
        self._tracker = self._face.new_tracker() if self._face is not None else None
        # the bundled FaceAnalyzer runs analyze() in stages (so emoedge.scheduler can batch classify)
        self._staged: Optional[StagedFaceComponent] = self._face if isinstance(self._face, StagedFaceComponent) else None
        self._voice = engine.voice.stream(engine.voice_options) if engine.voice is not None else None
        self._voice_flushed = False
        self.stats = StreamStats()
        self._last: Dict[str, Optional[float]] = {"frame": None, "audio": None, "text": None}
        self._fuse_t = -math.inf
        self._frame_shape: Optional[Tuple[int, ...]] = None
        self._seen_tracks: Dict[int, float] = {}  # face track id -> last time seen (pruned: see _prune_tracks)
        self._closed = False
        self._frame_index = 0
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ helpers
    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self, what: str) -> None:
        if self._closed:
            raise StreamClosedError(f"{what} on a closed stream; create a new one with engine.stream()")
        if getattr(self.engine, "closed", False):
            raise StreamClosedError(f"{what}: the engine of this stream was closed (engine.close()); create a new "
                                    "Engine and a stream on it")

    def _prune_tracks(self, t: float) -> None:
        """Forget track ids fusion no longer holds anything for (older than its face horizons), so the set
        stays bounded on an endless stream where every new face gets a new id."""
        o = self.fusion_options
        horizon = max(float(o.max_age("face")), float(o.track_max_age_s)) + 1.0
        stale = [tid for tid, seen in self._seen_tracks.items() if t - seen > horizon]
        for tid in stale:
            del self._seen_tracks[tid]
        if len(self._seen_tracks) > 4096:  # many faces at once: keep the most recent ids
            keep = sorted(self._seen_tracks.items(), key=lambda kv: kv[1])[-4096:]
            self._seen_tracks = dict(keep)

    def _check_order(self, kind: str, t: float, strict: bool) -> None:
        last = self._last[kind]
        if last is not None and (t < last or (strict and t == last)):
            rel = "earlier than" if t < last else "equal to"
            raise InvalidInputError(f"push_{kind}: timestamp t={t:.6f} s is {rel} the previous {kind}'s t={last:.6f} s; "
                                    f"timestamps must increase (seconds on the source clock)")

    def _fuse(self, t: float, evidence: List[_fusion.ModalityEvidence], trigger: str, faces: List[FaceResult],
              lat: Dict[str, float], frame_index: Optional[int] = None, frame: Optional[np.ndarray] = None) -> EmotionEvent:
        t_fuse = max(t, self._fuse_t)
        self._fuse_t = t_fuse
        t0 = time.perf_counter_ns()
        est = self._fusion.update(t_fuse, evidence)
        lat["fuse"] = _ms(time.perf_counter_ns() - t0)
        ev = adapters.event_from_estimate(est, t=t_fuse, trigger=trigger, faces=faces, latency=lat,
                                          drops=self.stats.drops(), frame_index=frame_index, stream_id=self.stream_id)
        ev.trigger_t = float(t)
        if frame is not None and self.keep_frames:
            ev.frame = frame
        self.stats.events += 1
        for k, v in lat.items():
            self.stats.latency.add(k, v)
        return ev

    # ------------------------------------------------------------------ pushes
    def push_frame(self, image: np.ndarray, t: float) -> List[EmotionEvent]:
        """Analyze one BGR uint8 frame [H, W, 3] at ``t`` seconds; returns one event."""
        with self._lock:
            pending = self._frame_locate(image, t)
            probs = None
            if pending.located is not None and self._staged is not None:
                t_c = time.perf_counter_ns()
                pending.crops = self._staged.crops(pending.image, pending.located)
                t_p = time.perf_counter_ns()
                probs = self._staged.classify(pending.crops)
                pending.align_ms, pending.classify_ms = _ms(t_p - t_c), _ms(time.perf_counter_ns() - t_p)
            return self._frame_finish(pending, probs)

    # -- push_frame in stages, so that emoedge.scheduler can run the expression model of many frames (of
    # many streams) in one batch: _frame_locate; the face component's crops() and classify(); _frame_finish.
    # Each stage runs under the stream's lock; a stream fed through a scheduler must not be pushed
    # directly at the same time (its frames would interleave between the stages).
    def _frame_locate(self, image: np.ndarray, t: float) -> "_PendingFrame":
        self._check_open("push_frame")
        t = _check_t(t, "push_frame")
        self._check_order("frame", t, strict=True)
        t_start = time.perf_counter_ns()
        image = check_frame(image, "push_frame: image")  # BGR uint8 [H, W, 3] (gray/BGRA converted)
        if self._frame_shape is not None and image.shape[:2] != self._frame_shape:
            # documented handling: a new geometry restarts tracking and per-face smoothing
            self.stats.size_changes += 1
            if self._tracker is not None:
                self._tracker.reset()   # a FaceTracker keeps its ids increasing: old ids are never reused
            for tid in set(self._fusion.tracks) | set(self._seen_tracks):
                self._fusion.drop_track(tid)
            self._seen_tracks = {}
        self._frame_shape = image.shape[:2]
        p = _PendingFrame(image=image, t=t, t_start=t_start)
        if self._face is not None:
            if self._staged is not None:
                p.located = self._staged.locate(image, t=t, tracker=self._tracker)
            else:  # a component with analyze() only (FaceComponent interface)
                t_a = time.perf_counter_ns()
                p.faces = self._face.analyze(image, t=t, tracker=self._tracker)
                p.analyze_ms = _ms(time.perf_counter_ns() - t_a)
        # committed once the frame was validated and located (a rejected push changes no time); here rather
        # than in _frame_finish so that a scheduler batch holding two frames of one stream keeps their order
        self._last["frame"] = t
        return p

    def _frame_finish(self, p: "_PendingFrame", probs: Optional[np.ndarray]) -> List[EmotionEvent]:
        lat: Dict[str, float] = {}
        faces_out: List[FaceResult] = []
        evidence: List[_fusion.ModalityEvidence] = []
        if self._face is not None:
            faces: Sequence[FaceObservation]
            if p.located is not None and self._staged is not None and probs is not None:
                faces = self._staged.faces(p.located, probs, align_ms=p.align_ms, classify_ms=p.classify_ms)
                analyze_ms = p.located.detect_ms + p.align_ms + p.classify_ms
            else:
                faces, analyze_ms = (p.faces or []), p.analyze_ms
            lat.update(adapters.face_timing(faces, analyze_ms))
            faces_out, evidence = adapters.face_evidence(faces, p.t)
            for f in faces_out:
                if f.track_id is not None:
                    self._seen_tracks[f.track_id] = p.t
            self._prune_tracks(p.t)
            self.stats.faces += len(faces)
            self.stats.frames_with_faces += bool(faces)
        self.stats.frames_processed += 1
        idx = self._frame_index
        self._frame_index += 1
        ev = self._fuse(p.t, evidence, "frame", faces_out, lat, frame_index=idx, frame=p.image)
        lat["total"] = _ms(time.perf_counter_ns() - p.t_start)
        ev.latency_ms["total"] = lat["total"]
        self.stats.latency.add("total", lat["total"])
        return [ev]

    def push_audio(self, pcm: Any, sample_rate: int, t: float) -> List[EmotionEvent]:
        """Add audio (int16/float32/float64, mono [n] or [n, channels], any rate in Hz) starting at ``t`` seconds;
        returns one event per voice window that became ready (none while there is no speech)."""
        with self._lock:
            self._check_open("push_audio")
            t = _check_t(t, "push_audio")
            self._check_order("audio", t, strict=False)
            # Everything is checked before any state changes: a rejected chunk leaves the time, the counters
            # and the voice stream as they were.
            if isinstance(sample_rate, (bool, np.bool_)):
                raise InvalidInputError(f"push_audio: sample_rate must be an integer number of Hz, got {sample_rate!r}")
            try:
                sr = _check_rate(sample_rate)
            except InvalidInputError as e:
                raise InvalidInputError(f"push_audio: {e}") from None
            try:
                arr = check_pcm(pcm)
            except InvalidInputError as e:
                raise InvalidInputError(f"push_audio: {e}") from None
            if arr.ndim == 2 and arr.shape[0] < arr.shape[1] and arr.shape[1] > 8:
                # [2, 48] is far more likely two channels of 48 samples than 2 frames of 48-channel audio
                raise InvalidInputError(f"push_audio: pcm shape {arr.shape} looks channel-first ([channels, samples]); "
                                        "the layout is [n_samples, n_channels]: pass pcm.T")
            if arr.dtype != np.int16 and arr.size and not np.isfinite(np.sum(arr, dtype=np.float64)):
                if not np.isfinite(arr).all():
                    raise InvalidInputError("push_audio: pcm contains NaN/Inf samples; replace them first "
                                            "(e.g. np.nan_to_num(pcm, nan=0.0, posinf=1.0, neginf=-1.0))")
            n = arr.shape[0]
            items: Sequence[VoiceObservation] = []
            push_ms = None
            if self._voice is not None and n:
                if self._voice_flushed:  # audio after flush(): a new utterance
                    self._voice.reset()
                    self._voice_flushed = False
                t0 = time.perf_counter_ns()
                items = self._voice.push(arr, sr, t)
                push_ms = _ms(time.perf_counter_ns() - t0)
            self._last["audio"] = t
            self.stats.audio_chunks += 1
            self.stats.audio_seconds += n / sr
            if push_ms is None:
                return []
            self.stats.latency.add("audio", push_ms)   # whole chunk: resample, log-mel, VAD, model runs
            return self._voice_events(items, push_ms)

    def _voice_events(self, items: Sequence[VoiceObservation], push_ms: float) -> List[EmotionEvent]:
        out = []
        for ve in items:
            self.stats.voice_windows += 1
            evidence, lat = adapters.voice_evidence(ve)
            if "voice" not in lat:  # the component did not time its model run: share the push evenly
                lat["voice"] = push_ms / max(1, len(items))
            out.append(self._fuse(evidence.t, [evidence], "audio", [], lat))
        return out

    def push_text(self, text: str, t: float) -> List[EmotionEvent]:
        """Add a line of text (transcript, chat message) at ``t`` seconds; returns one event (``trigger_t`` =
        ``t``; ``event.t`` is the stream clock, later than ``t`` when other inputs already went further).
        Empty or whitespace-only text yields no evidence (and no event)."""
        with self._lock:
            self._check_open("push_text")
            t = _check_t(t, "push_text")
            if isinstance(text, bytes):
                text = text.decode("utf-8", errors="replace")
            if not isinstance(text, str):
                raise InvalidInputError(f"push_text: text must be str (or UTF-8 bytes), got {type(text).__name__}")
            try:  # lone surrogates (e.g. from a bad decode) cannot be tokenized: reject before anything moves
                text.encode("utf-8")
            except UnicodeEncodeError as e:
                raise InvalidInputError(f"push_text: text is not valid Unicode ({e.reason} at index {e.start}); "
                                        "decode the source with errors='replace'") from None
            self._check_order("text", t, strict=False)
            if self._text is None or not text.strip():
                self._last["text"] = t
                return []
            t0 = time.perf_counter_ns()
            pred = self._text.predict(text)
            lat = {"text": _ms(time.perf_counter_ns() - t0)}
            self._last["text"] = t
            self.stats.texts += 1
            evidence = adapters.text_evidence(pred, t)
            if evidence is None:
                return []
            return [self._fuse(t, [evidence], "text", [], lat)]

    def count_dropped(self, kind: str = "frames", n: int = 1) -> None:
        """Record ``n`` inputs a driver skipped (kind 'frames' or 'audio'); they show up in every later
        event's ``drops`` and in ``stats``."""
        if isinstance(n, (bool, np.bool_)) or not isinstance(n, numbers.Integral) or n < 0:
            raise InvalidInputError(f"count_dropped: n must be an integer >= 0, got {n!r}")
        if kind == "frames":
            self.stats.frames_dropped += int(n)
        elif kind == "audio":
            self.stats.audio_dropped += int(n)
        else:
            raise InvalidInputError(f"count_dropped: kind must be 'frames' or 'audio', got {kind!r}")

    def flush(self) -> List[EmotionEvent]:
        """End of input: the voice stream emits its last partial window (if any speech); returns those events.
        The stream stays usable (timestamps keep increasing)."""
        with self._lock:
            self._check_open("flush")
            if self._voice is None:
                return []
            t0 = time.perf_counter_ns()
            items = self._voice.flush()
            self._voice_flushed = True
            return self._voice_events(items, _ms(time.perf_counter_ns() - t0))

    def close(self) -> None:
        """Release per-stream state; later pushes raise StreamClosedError. Idempotent."""
        with self._lock:
            self._closed = True
            self._voice = None
            self._tracker = None

    def __enter__(self) -> "Stream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
