"""Cross-stream micro-batching: one expression-model run for the faces of many streams' frames.

A :class:`FrameScheduler` serves many :class:`~emoedge.stream.Stream` s of one engine. Frames submitted
while the worker is busy (plus up to ``max_wait_ms`` after the first waiting one, default 0; at most
``max_batch`` frames) form one batch: each
frame is located (full-frame detection or ROI tracking, per its stream's cadence) and its faces cropped
in submission order, then the face crops of the whole batch go through the expression model in *one*
call, then every frame is fused and its events are returned, again in submission order. Per-stream
order is kept (one worker; a stream's frames are never reordered) and events are the same as with
``stream.push_frame`` one frame at a time (tests/test_scheduler.py compares them exactly: onnxruntime's
CPU results for a face do not depend on the batch it runs in; other backends may differ in the last bits).

    sched = engine.scheduler()                   # SchedulerOptions fields as keywords
    fut = sched.submit(stream, frame_bgr, t)     # concurrent.futures.Future -> list[EmotionEvent]
    events = fut.result()
    sched.run_batch([(s1, f1, t1), (s2, f2, t2)])  # synchronous: one batch now, events per item
    sched.close()

Backpressure: at most ``max_pending`` frames wait; ``submit`` then blocks (``block=True``, file mode) or
returns None and counts the frame in that stream's ``stats.frames_dropped`` (``block=False``, live).
A stream fed through a scheduler must not be pushed directly at the same time, and one scheduler is fed
either through ``submit`` (its worker thread runs the batches) or through ``run_batch`` (the caller's
thread), not both at once.

Only the expression model is batched: BlazeFace is exported with batch 1 and runs per frame only on
detection frames; voice windows are not batched (each stream's voice model runs inside push_audio).
On one CPU core the batch saves the per-call overhead and ~8 % of the model time per face
(`emoedge bench --only streams` measures it in the same run).
"""
from __future__ import annotations

import collections
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, List, Optional, Sequence, Tuple, Union

import numpy as np

from .errors import EmoEdgeError, InvalidInputError

if TYPE_CHECKING:  # pragma: no cover
    from .events import EmotionEvent
    from .stream import Stream

#: the result of one frame: its events, or the exception it raised
FrameResult = Union[List["EmotionEvent"], BaseException]

__all__ = ["SchedulerOptions", "FrameScheduler"]


@dataclass
class SchedulerOptions:
    """max_wait_ms: how long the first waiting frame may wait for others to join its batch (ms, 0..50; 0:
    batch only what is already waiting when the worker gets free, which on CPU gave the throughput of a
    2 ms wait at saturation without its latency at low load, see README "Throughput");
    max_batch: frames per batch (>= 1); max_pending: frames waiting at most (backpressure, >= max_batch);
    batch: False runs every frame's expression model on its own (same ordering; for comparison)."""
    max_wait_ms: float = 0.0
    max_batch: int = 64
    max_pending: int = 256
    batch: bool = True

    def validate(self) -> "SchedulerOptions":
        if not (0.0 <= float(self.max_wait_ms) <= 50.0):
            raise InvalidInputError(f"SchedulerOptions.max_wait_ms={self.max_wait_ms!r} must be in [0, 50] ms")
        if int(self.max_batch) != self.max_batch or self.max_batch < 1:
            raise InvalidInputError(f"SchedulerOptions.max_batch={self.max_batch!r} must be an int >= 1")
        if int(self.max_pending) != self.max_pending or self.max_pending < self.max_batch:
            raise InvalidInputError(f"SchedulerOptions.max_pending={self.max_pending!r} must be an int >= max_batch "
                                    f"({self.max_batch})")
        return self


class FrameScheduler:
    """Micro-batches frames of many streams of one engine (see module docstring)."""

    def __init__(self, engine: Any, options: Optional[SchedulerOptions] = None):
        self.engine = engine
        self.options = (options or SchedulerOptions()).validate()
        self._q: collections.deque = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self._worker: Optional[threading.Thread] = None
        self.batches = 0          # expression-model batches run
        self.frames = 0           # frames processed
        self.batch_sizes: List[int] = []

    # ------------------------------------------------------------------ synchronous core
    def run_batch(self, items: Sequence[Tuple["Stream", np.ndarray, float]]) -> List[FrameResult]:
        """Process ``items`` [(stream, frame_bgr, t), ...] as one batch now; returns each item's events
        (a list of EmotionEvent, or the exception it raised) in item order."""
        pend: List[Tuple[int, Any, Any]] = []
        out: List[Any] = [None] * len(items)
        face: Any = None
        for i, (st, img, t) in enumerate(items):
            if st.engine is not self.engine:
                out[i] = InvalidInputError("stream belongs to another engine than this scheduler's")
                continue
            try:
                with st._lock:
                    p = st._frame_locate(img, t)
                if p.located is not None and st._staged is not None:
                    t0 = time.perf_counter_ns()
                    p.crops = st._staged.crops(p.image, p.located)
                    p.align_ms = (time.perf_counter_ns() - t0) / 1e6
                    face = st._staged  # the engine's face component (the same for all its streams)
                pend.append((i, st, p))
            except Exception as e:  # reported for this item only; the batch goes on
                out[i] = e
        with_crops = [p for _, _, p in pend if p.crops is not None]
        probs_of = {}
        if with_crops and face is not None:
            if self.options.batch:
                sizes = [len(p.crops) for p in with_crops]
                t0 = time.perf_counter_ns()
                allp = face.classify(np.concatenate([p.crops for p in with_crops])) if sum(sizes) else \
                    np.zeros((0, len(face.labels)), np.float32)
                ms = (time.perf_counter_ns() - t0) / 1e6
                k = 0
                for p, n in zip(with_crops, sizes):
                    probs_of[id(p)] = allp[k:k + n]
                    p.classify_ms = ms * n / max(1, sum(sizes))  # this frame's share of the batch
                    k += n
                self.batches += 1
                self.batch_sizes.append(int(sum(sizes)))
            else:
                for p in with_crops:
                    t0 = time.perf_counter_ns()
                    probs_of[id(p)] = face.classify(p.crops)
                    p.classify_ms = (time.perf_counter_ns() - t0) / 1e6
                    self.batches += 1
                    self.batch_sizes.append(len(p.crops))
        for i, st, p in pend:
            try:
                with st._lock:
                    out[i] = st._frame_finish(p, probs_of.get(id(p)))
            except Exception as e:
                out[i] = e
        self.frames += len(items)
        return out

    # ------------------------------------------------------------------ threaded front
    def submit(self, stream: "Stream", image: np.ndarray, t: float, block: bool = True) -> "Optional[Future[Any]]":
        """Queue one frame of ``stream``; returns a Future of its events (list of EmotionEvent). When
        ``max_pending`` frames wait: block until there is room (``block=True``) or drop this frame, counted
        in ``stream.stats.frames_dropped``, and return None (``block=False``)."""
        fut: "Future[Any]" = Future()
        with self._cond:
            if self._closed:
                raise EmoEdgeError("the scheduler is closed")
            while len(self._q) >= self.options.max_pending:
                if not block:
                    stream.count_dropped("frames")
                    return None
                self._cond.wait(0.05)
                if self._closed:
                    raise EmoEdgeError("the scheduler is closed")
            self._q.append((stream, image, float(t), fut, time.perf_counter()))
            if self._worker is None:
                self._worker = threading.Thread(target=_work, args=(self,), daemon=True, name="emoedge-scheduler")
                self._worker.start()
            self._cond.notify_all()
        return fut

    def _take(self):
        """The next batch: waits for a first frame, then up to max_wait_ms (from its arrival) for more."""
        o = self.options
        with self._cond:
            while not self._q and not self._closed:
                self._cond.wait(0.1)
            if not self._q:
                return None
            deadline = self._q[0][4] + o.max_wait_ms / 1000.0
            while len(self._q) < o.max_batch and not self._closed:
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                self._cond.wait(left)
            n = min(len(self._q), o.max_batch)
            batch = [self._q.popleft() for _ in range(n)]
            self._cond.notify_all()
            return batch

    def pending(self) -> int:
        """Frames waiting."""
        with self._cond:
            return len(self._q)

    def close(self, wait: bool = True) -> None:
        """Stop accepting frames; frames already queued are still processed (``wait``: until done)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        w = self._worker
        if wait and w is not None and w is not threading.current_thread():
            w.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _work(sched: FrameScheduler) -> None:
    # a module function holding the scheduler only while it runs a batch
    while True:
        batch = sched._take()
        if batch is None:
            return
        res: List[FrameResult]
        try:
            res = sched.run_batch([(s, img, t) for s, img, t, _, _ in batch])
        except BaseException as e:  # never leave a future unresolved
            res = [e] * len(batch)
        for (_, _, _, fut, _), r in zip(batch, res):
            if isinstance(r, BaseException):
                fut.set_exception(r)
            else:
                fut.set_result(r)
