"""The :class:`Engine`: shared, thread-safe model sessions (faces, voice, text) and configuration, with no
per-stream state; :meth:`Engine.stream` makes a :class:`~emoedge.stream.Stream` per source and
:meth:`Engine.run` drives media sources from reader threads through bounded queues.

Example::

    from emoedge import Engine
    engine = Engine()                                   # the manifest's default models, CPU, 1 thread
    with engine.stream() as s:
        for ev in s.push_frame(frame_bgr, t=0.0):       # also push_audio(pcm, 16000, t), push_text(str, t)
            print(ev.t, ev.label, ev.confidence)
    for ev in engine.run(video="clip.mp4"):             # file mode: every frame, deterministic
        print(ev.to_json())
"""
from __future__ import annotations

import math
import queue
import threading
import time
from typing import Dict, Iterator, List, Optional

import numpy as np

from .errors import EmoEdgeError, InvalidInputError, ModelNotFoundError
from .events import EmotionEvent, FaceResult, ModalityResult, probs_dict
from .labels import CANONICAL
from .stream import Stream

_CANON = list(CANONICAL)


class Engine:
    """Holds the model sessions shared by all streams (thread-safe) and no per-stream state.

    Keyword-only. ``models``: task -> manifest entry name (e.g. ``{"face_expression": "face-expr-fp32"}``),
    default: the manifest's defaults. ``backend``: 'cpu' | 'cuda' | 'tensorrt'. ``precision``: 'int8' |
    'fp32' | None (each model's default). ``threads``: onnxruntime intra-op threads per session.
    ``face`` / ``voice`` / ``text``: None loads the default component, False disables the modality, or pass
    an object with the same interface (custom models, tests). ``skip_missing``: a default modality whose
    pipeline or model is not installed is left out (noted in ``info()['notes']``) instead of raising."""

    def __init__(self, *, models: Optional[Dict[str, str]] = None, backend: str = "cpu", precision: Optional[str] = None,
                 threads: int = 1, manifest=None, face=None, voice=None, text=None, face_options=None,
                 voice_options=None, skip_missing: bool = False):
        if precision not in (None, "int8", "fp32", "fp16"):
            raise InvalidInputError(f"precision must be 'int8', 'fp32', 'fp16' or None, got {precision!r}")
        if not isinstance(threads, int) or threads < 1:
            raise InvalidInputError(f"threads must be an integer >= 1, got {threads!r}")
        self.models = dict(models or {})
        self.backend, self.precision, self.threads = backend, precision, threads
        self.manifest = manifest
        self.notes: List[str] = []
        self._closed = False
        t0 = time.perf_counter()
        self._voice_options = voice_options
        self._face = self._optional("face", lambda: self._load_face(face, face_options), skip_missing and face is None)
        self._voice = self._optional("voice", lambda: self._load_voice(voice, voice_options), skip_missing and voice is None)
        self._text = self._optional("text", lambda: self._load_text(text), skip_missing and text is None)
        self.load_seconds = time.perf_counter() - t0

    # ------------------------------------------------------------------ components
    @property
    def has_face(self) -> bool:
        return self._face is not None

    @property
    def has_voice(self) -> bool:
        return self._voice is not None

    @property
    def has_text(self) -> bool:
        return self._text is not None

    def _optional(self, what, load, skip):
        if not skip:
            return load()
        try:
            return load()
        except ModelNotFoundError as e:
            self.notes.append(f"{what} left out: {e}")
            return None

    def _session_options(self):
        from .session import SessionOptions
        return SessionOptions(backend=self.backend, intra_threads=self.threads)

    def _load_face(self, face, options):
        if face is False:
            return None
        if face is not None:
            return face
        try:
            from .faces import FaceAnalyzer, FaceAnalyzerOptions
        except ImportError as e:
            raise ModelNotFoundError(f"the face pipeline (emoedge.faces) is not available in this build ({e}); "
                                     "pass face=False to run without faces") from None
        if options is not None:
            return FaceAnalyzer(options, manifest=self.manifest)
        import dataclasses
        names = {f.name for f in dataclasses.fields(FaceAnalyzerOptions)}

        def load(precision):
            cand = {"precision": precision, "intra_threads": self.threads, "backend": self.backend,
                    "expression_model": self.models.get("face_expression"), "detector": self.models.get("face_detector")}
            return FaceAnalyzer(FaceAnalyzerOptions(**{k: v for k, v in cand.items() if k in names and v is not None}),
                                manifest=self.manifest)
        return self._with_precision("face", load)

    def _with_precision(self, what, load):
        """Load with the engine's precision; a model family without that precision keeps its default
        precision, with a warning and a note in ``engine.info()['notes']`` (never silently)."""
        if self.precision is None:
            return load(None)
        try:
            return load(self.precision)
        except InvalidInputError as e:
            if "variant" not in str(e):
                raise
            import warnings
            msg = f"{what}: {e}; using its default precision"
            warnings.warn(msg, RuntimeWarning, stacklevel=3)
            self.notes.append(msg)
            return load(None)

    def _load_voice(self, voice, options):
        if voice is False:
            return None
        if voice is not None:
            return voice
        try:
            from .voice import VoiceModel
        except ImportError as e:
            raise ModelNotFoundError(f"the voice pipeline (emoedge.voice) is not available in this build ({e}); "
                                     "pass voice=False to run without audio") from None
        return self._with_precision("voice", lambda prec: VoiceModel(
            name=self.models.get("voice"), precision=prec, manifest=self.manifest, session_options=self._session_options()))

    def _load_text(self, text):
        if text is False:
            return None
        if text is not None:
            return text
        try:
            from .text import TextModel
        except ImportError as e:
            raise ModelNotFoundError(f"the text pipeline (emoedge.text) is not available in this build ({e}); "
                                     "pass text=False to run without text") from None
        return self._with_precision("text", lambda prec: TextModel.load(
            name=self.models.get("text"), precision=prec, manifest=self.manifest, session_options=self._session_options()))

    def _new_tracker(self):
        f = self._face
        if hasattr(f, "new_tracker"):
            # streams take successive phases of the detection cadence, so their detector runs spread
            # over the frames instead of coinciding (emoedge.tracking.FaceTracker phase)
            self._tracker_count = getattr(self, "_tracker_count", 0) + 1
            try:
                return _EmptySafeTracker(f.new_tracker(phase=self._tracker_count - 1))
            except TypeError:  # a custom component without phases
                return _EmptySafeTracker(f.new_tracker())
        from .tracking import FaceTracker
        return _EmptySafeTracker(FaceTracker())

    def _new_voice_stream(self):
        v = self._voice
        return v.stream(self._voice_options) if self._voice_options is not None else v.stream()

    def info(self) -> dict:
        """What this engine runs: modalities, model names, backend, precision, threads."""
        d = {"backend": self.backend, "precision": self.precision, "threads": self.threads,
             "modalities": [m for m, on in (("face", self.has_face), ("voice", self.has_voice), ("text", self.has_text)) if on],
             "load_seconds": self.load_seconds, "notes": list(self.notes)}
        for m, comp in (("face", self._face), ("voice", self._voice), ("text", self._text)):
            if comp is not None:
                d[f"{m}_model"] = getattr(comp, "model_name", None) or getattr(comp, "name", None) or type(comp).__name__
        return d

    # ------------------------------------------------------------------ evidence adapters
    def _face_evidence(self, faces, t, shape):
        """(pending FaceResults, ModalityEvidence per face) for one frame's faces. Fusion pools the most
        reliable face track (largest, most confidently detected) and smooths every track. Component outputs
        are calibrated probabilities already (temperature applied by the face/voice/text pipelines)."""
        from . import fusion as F
        out, evs = [], []
        for f in faces:
            labels = list(getattr(f, "labels"))
            probs = np.asarray(getattr(f, "probs"), dtype=np.float64)
            box = tuple(float(v) for v in f.box)
            score = float(getattr(f, "score", 1.0))
            tid = getattr(f, "track_id", None)
            tid = None if tid is None else int(tid)
            rel = F.face_reliability(box[2], score)
            evs.append(F.ModalityEvidence(modality="face", t=t, probs=probs, labels=labels, temperature=1.0,
                                          reliability=float(rel), track_id=tid))
            out.append(FaceResult(box=box, score=score, track_id=tid, label="", probs={},
                                  raw_probs=probs_dict(probs, labels), keypoints=_kps(getattr(f, "keypoints", None)),
                                  reliability=float(rel)))
        return out, evs

    @staticmethod
    def _face_timing(faces, analyze_ms: float) -> Dict[str, float]:
        """Per-stage ms of one analyze() call: the pipeline's own timing (detect/align/classify, shared by
        all faces of the frame) or, for a frame without faces, all of it as detection."""
        tm = None
        for f in faces:
            tm = getattr(f, "timing", None) or getattr(f, "ms", None)
            if tm:
                break
        if not tm:
            return {"detect": analyze_ms}
        return {k[:-3] if k.endswith("_ms") else k: float(v) for k, v in tm.items()}

    def _voice_evidence(self, ve):
        from . import fusion as F
        vad = float(getattr(ve, "vad_prob", 1.0))
        rel = F.voice_reliability(vad) if math.isfinite(vad) else 1.0  # NaN: no VAD, window taken as speech
        t = float(getattr(ve, "t_end", getattr(ve, "t", 0.0)))
        ev = F.ModalityEvidence(modality="voice", t=t, probs=np.asarray(ve.probs, dtype=np.float64), labels=list(ve.labels),
                                temperature=1.0, reliability=float(rel), track_id=None)
        lat = {}
        if getattr(ve, "latency_ms", None) is not None:
            lat["voice"] = float(ve.latency_ms)
        return [ev], lat

    def _text_evidence(self, text, t):
        from . import fusion as F
        t0 = time.perf_counter_ns()
        pred = self._text.predict(text)
        ms = (time.perf_counter_ns() - t0) / 1e6
        n_tok = int(getattr(pred, "n_tokens", len(text.split())))
        if n_tok == 0:  # nothing the model could read (e.g. only punctuation): no evidence
            return [], {"text": ms}
        rel = F.text_reliability(n_tok)
        ev = F.ModalityEvidence(modality="text", t=t, probs=np.asarray(pred.probs, dtype=np.float64),
                                labels=list(pred.labels), temperature=1.0, reliability=float(rel), track_id=None)
        return [ev], {"text": ms}

    def _event_from_estimate(self, est, *, t, trigger, faces, latency, drops, frame_index, stream_id) -> EmotionEvent:
        """EmotionEvent from a fusion.FusedEstimate; ``faces`` (FaceResults of this frame) get their per-track
        smoothed probabilities from the estimate."""
        evidence = {}
        for m, c in est.contributions.items():
            cp = np.asarray(c.probs, dtype=np.float64)
            detail = {} if c.track_id is None else {"track_id": int(c.track_id)}
            evidence[m] = ModalityResult(modality=m, label=_CANON[int(np.argmax(cp))], probs=probs_dict(cp),
                                         weight=round(float(c.weight), 6), age=round(float(c.age_s), 6), t=float(c.t),
                                         reliability=round(float(c.reliability), 6), detail=detail)
        for f in faces:
            fp = est.faces.get(f.track_id) if f.track_id is not None else None
            if fp is None:  # untracked face: its own calibrated output, mapped by name
                from .fusion import calibrate
                fp = calibrate(list(f.raw_probs.values()), list(f.raw_probs), 1.0)
            fp = np.asarray(fp, dtype=np.float64)
            f.probs, f.label = probs_dict(fp), _CANON[int(np.argmax(fp))]
        if not evidence:
            probs = probs_dict(np.full(len(CANONICAL), 1.0 / len(CANONICAL)))
            label, conf = None, 0.0
        else:
            p = np.asarray(est.probs, dtype=np.float64)
            probs, label, conf = probs_dict(p), est.label, round(float(est.confidence), 6)
        return EmotionEvent(t=float(t), label=label, probs=probs, confidence=conf, evidence=evidence, faces=faces,
                            latency_ms={k: round(float(v), 4) for k, v in latency.items()}, drops=dict(drops),
                            trigger=trigger, frame_index=frame_index, stream_id=stream_id)

    # ------------------------------------------------------------------ streams and runs
    def stream(self, mode: str = "file", fusion=None, *, stream_id: Optional[str] = None,
               keep_frames: bool = False) -> Stream:
        """A new stream on this engine. ``mode``: 'file' | 'live'; ``fusion``: FusionOptions."""
        if self._closed:
            raise EmoEdgeError("the engine is closed")
        return Stream(self, mode=mode, fusion=fusion, stream_id=stream_id, keep_frames=keep_frames)

    def scheduler(self, **options):
        """A :class:`~emoedge.scheduler.FrameScheduler` batching the expression model across this engine's
        streams; ``options``: SchedulerOptions fields (max_wait_ms=2.0, max_batch=64, max_pending=256, batch=True)."""
        from .scheduler import FrameScheduler, SchedulerOptions
        return FrameScheduler(self, SchedulerOptions(**options))

    def run(self, *, video=None, audio=None, camera=None, mic=None, text=None, realtime: bool = False,
            fusion=None, keep_frames: bool = False, queue_size: int = 8, speed: float = 1.0) -> "Run":
        """Drive sources through a new stream; iterate the result for events (a generator-like :class:`Run`).

        ``video``: a video file (its audio track is used unless ``audio`` is given) or a Source; ``audio``: an
        audio file or Source; ``camera``: a camera index; ``mic``: True / a sounddevice device; ``text``: a text
        file (see TextFileSource) or Source. File sources run in file mode (every frame, in time order across
        sources, deterministic) unless ``realtime=True`` (paced at ``speed`` x real time, live semantics).
        Cameras and microphones always run live: only the newest frame is analyzed, skipped frames are
        counted in ``stats.frames_dropped``."""
        from . import sources as S
        srcs = []
        clock = S.LiveClock()  # cameras and microphones share one clock so their times agree
        try:
            if video is not None and camera is not None:
                raise InvalidInputError("give either video= or camera=, not both")
            if audio is not None and mic is not None and mic is not False:
                raise InvalidInputError("give either audio= or mic=, not both")
            if video is not None:
                srcs.append(S.open_source(video, kind="video", audio=audio is None and not mic))
            if camera is not None:
                srcs.append(S.CameraSource(int(camera), clock=clock) if not isinstance(camera, S.Source) else camera)
            if audio is not None:
                srcs.append(S.open_source(audio, kind="audio"))
            if mic is not None and mic is not False:
                srcs.append(mic if isinstance(mic, S.Source) else S.MicSource(None if mic is True else mic, clock=clock))
            if text is not None:
                srcs.append(S.open_source(text, kind="text"))
            if not srcs:
                raise InvalidInputError("engine.run needs at least one source: video=, audio=, camera=, mic= or text=")
        except BaseException:
            for s in srcs:
                s.close()
            raise
        live = realtime or any(s.live for s in srcs)
        st = self.stream("live" if live else "file", fusion, keep_frames=keep_frames)
        return Run(st, srcs, live=live, realtime=realtime, queue_size=queue_size, speed=speed)

    def close(self) -> None:
        self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _EmptySafeTracker:
    """Delegates to a FaceTracker; a frame without detections is passed with ``keypoints=None`` (the
    tracker's keypoint reshape cannot infer a shape from an empty array)."""

    def __init__(self, tracker):
        self._t = tracker

    def update(self, boxes, scores=None, keypoints=None, t=None):
        if keypoints is not None and np.asarray(keypoints).size == 0:
            keypoints = None
        return self._t.update(boxes, scores, keypoints, t=t)

    def __getattr__(self, name):
        return getattr(self._t, name)


def _get(c, k, default=None):
    if isinstance(c, dict):
        return c.get(k, default)
    return getattr(c, k, default)


def _opt(x):
    return None if x is None else float(x)


def _kps(k):
    if k is None:
        return None
    a = np.asarray(k, dtype=np.float64).reshape(-1, 2)
    return [(float(x), float(y)) for x, y in a]


def _close_quietly(s):
    try:
        s.close()
    except Exception:
        pass


# ---------------------------------------------------------------------- the driver
_END = object()


class _Failure:
    def __init__(self, exc):
        self.exc = exc


class _ReaderCtx:
    def __init__(self, stop, realtime, speed):
        self.stop, self.realtime, self.speed = stop, realtime, speed


def _put(ctx, q, item):
    while not ctx.stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


def _file_reader(ctx, src, q):
    try:
        items = src.items()
        if ctx.realtime and not src.live:
            from .sources import paced
            items = paced(items, speed=ctx.speed, stop=ctx.stop)
        for it in items:
            _put(ctx, q, it)
            if ctx.stop.is_set():
                return
        _put(ctx, q, _END)
    except BaseException as e:  # forwarded to the consumer
        _put(ctx, q, _Failure(e))


def _live_reader(ctx, src, inbox, cond):
    try:
        items = src.items()
        if not src.live:
            from .sources import paced
            items = paced(items, speed=ctx.speed, stop=ctx.stop)
        for it in items:
            if ctx.stop.is_set():
                return
            with cond:
                if it.kind == "video":
                    slot = inbox["video"]
                    if slot.item is not None:
                        slot.replaced += 1
                    slot.item = it
                else:
                    dq = inbox[it.kind]
                    if len(dq) >= 1024:  # consumer far behind: drop the oldest, counted
                        dq.pop(0)
                        inbox["audio_dropped" if it.kind == "audio" else "text_dropped"] += 1
                    dq.append(it)
                cond.notify()
        with cond:
            inbox["ended"] += 1
            cond.notify()
    except BaseException as e:
        with cond:
            inbox["errors"].append(e)
            inbox["ended"] += 1
            cond.notify()


class _Latest:
    """Live video slot: the newest frame wins; replaced frames are counted."""

    def __init__(self):
        self.item = None
        self.replaced = 0


class Run:
    """An iterator of EmotionEvents from sources read by background threads (see :meth:`Engine.run`).
    ``stream`` holds the counters (``run.stream.stats``); ``close()`` stops the readers (also on exit from a
    ``with`` block or when the iterator is garbage-collected). Reader errors (e.g. a corrupt file) are
    raised from the iteration."""

    def __init__(self, stream: Stream, sources, *, live: bool, realtime: bool, queue_size: int, speed: float):
        self.stream, self.sources, self.live = stream, list(sources), live
        self.duration = max((s.duration or 0.0) for s in self.sources) or None
        self._stop = threading.Event()
        self._realtime, self._speed = realtime, speed
        self._queue_size = max(1, int(queue_size))
        self._gen = None
        self._threads: List[threading.Thread] = []
        self._ctx = _ReaderCtx(self._stop, realtime, speed)
        self.t = 0.0

    # -- reader threads (module functions: a thread must not keep the Run alive, so that an abandoned
    # iteration is garbage-collected and its __del__ stops the readers)
    def _start(self, target, *args):
        th = threading.Thread(target=target, args=(self._ctx,) + args, daemon=True, name="emoedge-reader")
        th.start()
        self._threads.append(th)

    # -- processing
    def _process(self, it) -> List[EmotionEvent]:
        s = self.stream
        self.t = max(self.t, it.t)
        if it.kind == "video":
            return s.push_frame(it.image, it.t)
        if it.kind == "audio":
            return s.push_audio(it.pcm, it.sample_rate, it.t)
        return s.push_text(it.text, it.t)

    def _iter_file(self) -> Iterator[EmotionEvent]:
        # k-way merge over (source, kind) sub-streams, each in time order; keys: frames and texts by t,
        # audio chunks by their end time (so voice evidence never lands after a later frame was fused).
        qs = []
        for s in self.sources:
            q = queue.Queue(maxsize=self._queue_size)
            qs.append(q)
            self._start(_file_reader, s, q)
        bufs = {(i, k): [] for i, s in enumerate(self.sources) for k in s.kinds}
        done = [False] * len(self.sources)
        kind_rank = {"audio": 0, "text": 1, "video": 2}
        seq = 0

        def pull(i):
            nonlocal seq
            it = qs[i].get()
            if it is _END:
                done[i] = True
                return
            if isinstance(it, _Failure):
                raise it.exc
            key = it.t + it.duration if it.kind == "audio" else it.t
            b = bufs.get((i, it.kind))
            if b is None:
                b = bufs[(i, it.kind)] = []
            b.append((key, kind_rank.get(it.kind, 3), i, seq, it))
            seq += 1

        while True:
            # every unfinished sub-stream needs a head before the smallest head can be released
            for (i, k), b in bufs.items():
                while not b and not done[i]:
                    pull(i)
            heads = [b[0] for b in bufs.values() if b]
            if not heads:
                break
            key, _, i, _, it = min(heads)
            bufs[(i, it.kind)].pop(0)
            if it.kind != "audio":
                from .sources import AudioChunk
                # Audio heads all end after this item (they are keyed by end time); push the part of
                # each that starts before it first, so voice evidence is never stamped before an event
                # that was already emitted.
                for (j, k), b in bufs.items():
                    if k == "audio" and b and b[0][4].t < it.t:
                        c = b[0][4]
                        n = int(round((it.t - c.t) * c.sample_rate))
                        if 0 < n < c.pcm.shape[0]:
                            head, rest = c.pcm[:n], c.pcm[n:]
                            b[0] = (b[0][0], b[0][1], b[0][2], b[0][3],
                                    AudioChunk(c.t + n / float(c.sample_rate), rest, c.sample_rate))
                            for ev in self._process(AudioChunk(c.t, head, c.sample_rate)):
                                yield ev
            for ev in self._process(it):
                yield ev
        for ev in self.stream.flush():
            yield ev

    def _iter_live(self) -> Iterator[EmotionEvent]:
        cond = threading.Condition()
        inbox = {"video": _Latest(), "audio": [], "text": [], "ended": 0, "errors": [], "audio_dropped": 0,
                 "text_dropped": 0}
        for s in self.sources:
            self._start(_live_reader, s, inbox, cond)
        counted = {"replaced": 0, "audio": 0}
        while True:
            with cond:
                while (inbox["video"].item is None and not inbox["audio"] and not inbox["text"]
                       and inbox["ended"] < len(self.sources) and not inbox["errors"] and not self._stop.is_set()):
                    cond.wait(0.1)
                if inbox["errors"]:
                    raise inbox["errors"][0]
                items = inbox["audio"] + inbox["text"]
                inbox["audio"], inbox["text"] = [], []
                if inbox["video"].item is not None:
                    items.append(inbox["video"].item)
                    inbox["video"].item = None
                new_drops = inbox["video"].replaced - counted["replaced"]
                counted["replaced"] = inbox["video"].replaced
                new_adrops = inbox["audio_dropped"] - counted["audio"]
                counted["audio"] = inbox["audio_dropped"]
                finished = inbox["ended"] >= len(self.sources) and not items
            if new_drops:
                self.stream.count_dropped("frames", new_drops)
            if new_adrops:
                self.stream.count_dropped("audio", new_adrops)
            if finished or self._stop.is_set():
                break
            items.sort(key=lambda it: (it.t + it.duration if it.kind == "audio" else it.t))
            for it in items:
                for ev in self._process(it):
                    yield ev
        for s in self.sources:
            dropped = getattr(s, "dropped_blocks", 0)
            if dropped:
                self.stream.count_dropped("audio", dropped)
        if not self.stream.closed:
            for ev in self.stream.flush():
                yield ev

    def _events(self):
        try:
            yield from (self._iter_live() if self.live else self._iter_file())
        finally:
            self._shutdown()

    def __iter__(self):
        return self

    def __next__(self) -> EmotionEvent:
        if self._gen is None:
            self._gen = self._events()
        return next(self._gen)

    @property
    def stats(self):
        return self.stream.stats

    def _shutdown(self):
        # live sources are closed first (that unblocks their readers); file sources only after their
        # reader threads have ended, so no decoder is closed under a running demux.
        self._stop.set()
        for s in self.sources:
            if s.live:
                _close_quietly(s)
        for th in self._threads:
            th.join(timeout=5.0)
        if any(th.is_alive() for th in self._threads):
            return  # a reader is still inside a decoder: leave its source to the garbage collector
        for s in self.sources:
            if not s.live:
                _close_quietly(s)

    def close(self) -> None:
        """Stop the readers and close the sources (the stream's stats stay readable)."""
        if self._gen is not None:
            self._gen.close()
        self._shutdown()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self._stop.set()
        except Exception:
            pass
