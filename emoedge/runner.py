"""The threaded driver behind :meth:`Engine.run <emoedge.engine.Engine.run>`: opens media sources, reads
each one on a background thread into a bounded queue, and pushes the items into one
:class:`~emoedge.stream.Stream` in time order; iterate a :class:`Run` for the events.

* File mode (file sources, not ``realtime``): every item, k-way merged across sources by time, so the
  events are deterministic.
* Live mode (cameras, microphones, or ``realtime=True``): only the newest frame is analyzed; skipped frames
  (and audio blocks dropped when the consumer falls far behind) are counted in ``stream.stats``.
"""
from __future__ import annotations

import queue
import threading
from typing import TYPE_CHECKING, Any, Iterator, List

from .errors import InvalidInputError
from .events import EmotionEvent
from .stream import Stream

if TYPE_CHECKING:  # pragma: no cover
    from .sources import Source

__all__ = ["Run", "open_sources"]


def open_sources(*, video: Any = None, audio: Any = None, camera: Any = None, mic: Any = None,
                 text: Any = None) -> "List[Source]":
    """The sources of one run (see :meth:`Engine.run <emoedge.engine.Engine.run>` for the arguments);
    cameras and microphones share one clock so their times agree. On an error every source opened so far
    is closed again."""
    from . import sources as S
    srcs: "List[Source]" = []
    clock = S.LiveClock()
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
    return srcs


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
