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
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, Generator, Iterator, List, Optional, Tuple, Union

from .errors import InvalidInputError
from .events import EmotionEvent
from .stream import Stream, StreamStats

if TYPE_CHECKING:  # pragma: no cover
    from .sources import AudioChunk, Item, Source

__all__ = ["Run", "open_sources"]


def open_sources(*, video: Any = None, audio: Any = None, camera: Any = None, mic: Any = None,
                 text: Any = None) -> "List[Source]":
    """The sources of one run (see :meth:`Engine.run <emoedge.engine.Engine.run>` for the arguments);
    cameras and microphones share one clock so their times agree. On an error every source opened so far
    is closed again."""
    from . import sources as S
    srcs: List[Source] = []
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


def _close_quietly(s: "Source") -> None:
    try:
        s.close()
    except Exception:
        pass


# ---------------------------------------------------------------------- the driver
class _End:
    """End-of-source marker in a file reader's queue."""


_END = _End()


class _Failure:
    """A reader's exception, forwarded through its queue and raised by the consumer."""

    def __init__(self, exc: BaseException):
        self.exc = exc


if TYPE_CHECKING:  # pragma: no cover
    _Queued = Union[Item, _End, _Failure]


class _ReaderCtx:
    # stop: close() (readers quit at once); drain: Run.stop() (readers quit after the item in hand and mark
    # their end, so the consumer processes everything already read); halt: either one (wakes paced sleeps)
    def __init__(self, stop: threading.Event, realtime: bool, speed: float):
        self.stop, self.realtime, self.speed = stop, realtime, speed
        self.drain = threading.Event()
        self.halt = threading.Event()


def _put(ctx: _ReaderCtx, q: "queue.Queue[_Queued]", item: _Queued) -> None:
    while not ctx.stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


def _file_reader(ctx: _ReaderCtx, src: "Source", q: "queue.Queue[_Queued]") -> None:
    try:
        if ctx.drain.is_set():
            _put(ctx, q, _END)
            return
        items = src.items()
        if ctx.realtime and not src.live:
            from .sources import paced
            items = paced(items, speed=ctx.speed, stop=ctx.halt)
        for it in items:
            _put(ctx, q, it)
            if ctx.stop.is_set():
                return
            if ctx.drain.is_set():
                break
        _put(ctx, q, _END)
    except BaseException as e:  # forwarded to the consumer
        _put(ctx, q, _Failure(e))


class _Inbox:
    """What live readers hand to the consumer (guarded by ``cond``): the newest frame (older ones are
    replaced and counted), bounded lists of audio chunks and texts (the oldest dropped, counted), and
    how many readers ended or failed."""

    MAX_PENDING = 1024

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.video: "Optional[Item]" = None
        self.replaced = 0
        self.audio: "List[Item]" = []
        self.text: "List[Item]" = []
        self.audio_dropped = 0
        self.text_dropped = 0
        self.ended = 0
        self.errors: List[BaseException] = []


def _live_reader(ctx: _ReaderCtx, src: "Source", inbox: _Inbox) -> None:
    cond = inbox.cond
    try:
        items = src.items() if not ctx.halt.is_set() else iter(())
        if not src.live:
            from .sources import paced
            items = paced(items, speed=ctx.speed, stop=ctx.halt)
        for it in items:
            if ctx.stop.is_set():
                return
            if ctx.drain.is_set():
                break
            with cond:
                if it.kind == "video":
                    if inbox.video is not None:
                        inbox.replaced += 1
                    inbox.video = it
                else:
                    pending = inbox.audio if it.kind == "audio" else inbox.text
                    if len(pending) >= _Inbox.MAX_PENDING:  # consumer far behind: drop the oldest, counted
                        pending.pop(0)
                        if it.kind == "audio":
                            inbox.audio_dropped += 1
                        else:
                            inbox.text_dropped += 1
                    pending.append(it)
                cond.notify()
        with cond:
            inbox.ended += 1
            cond.notify()
    except BaseException as e:
        with cond:
            inbox.errors.append(e)
            inbox.ended += 1
            cond.notify()


def _order_key(it: "Item") -> float:
    """Time an item is released at: frames and texts at their time, audio chunks at their end time (so
    voice evidence never lands after a later frame was fused)."""
    return float(it.t + it.duration if it.kind == "audio" else it.t)  # type: ignore[union-attr]


class Run:
    """An iterator of EmotionEvents from sources read by background threads (see :meth:`Engine.run
    <emoedge.engine.Engine.run>`). ``stream`` holds the counters (``run.stream.stats``); ``stop()`` ends the
    run gracefully (what was read is processed, then flushed); ``close()`` stops the readers at once (also
    on exit from a ``with`` block or when the iterator is garbage-collected). Reader errors (e.g. a corrupt
    file) are raised from the iteration."""

    def __init__(self, stream: Stream, sources: "List[Source]", *, live: bool, realtime: bool, queue_size: int,
                 speed: float):
        self.stream, self.sources, self.live = stream, list(sources), live
        self.duration = max((s.duration or 0.0) for s in self.sources) or None
        self._stop = threading.Event()
        self._realtime, self._speed = realtime, speed
        self._queue_size = max(1, int(queue_size))
        self._gen: Optional[Generator[EmotionEvent, None, None]] = None
        self._threads: List[threading.Thread] = []
        self._ctx = _ReaderCtx(self._stop, realtime, speed)
        self._drain_deadline: Optional[float] = None
        self.drain_timeout_s = 3.0  # live mode: how long stop() waits for a reader blocked in its device
        self.t = 0.0

    # -- reader threads (module functions: a thread must not keep the Run alive, so that an abandoned
    # iteration is garbage-collected and its __del__ stops the readers)
    def _start(self, target: Callable[..., None], *args: Any) -> None:
        th = threading.Thread(target=target, args=(self._ctx,) + args, daemon=True, name="emoedge-reader")
        th.start()
        self._threads.append(th)

    # -- processing
    def _process(self, it: "Item") -> List[EmotionEvent]:
        s = self.stream
        self.t = max(self.t, it.t)
        if it.kind == "video":
            return s.push_frame(it.image, it.t)  # type: ignore[union-attr]
        if it.kind == "audio":
            return s.push_audio(it.pcm, it.sample_rate, it.t)  # type: ignore[union-attr]
        return s.push_text(it.text, it.t)  # type: ignore[union-attr]

    def _iter_file(self) -> Iterator[EmotionEvent]:
        # k-way merge over (source, kind) sub-streams, each in time order (see _order_key)
        from .sources import AudioChunk
        qs: "List[queue.Queue[_Queued]]" = []
        for s in self.sources:
            q: "queue.Queue[_Queued]" = queue.Queue(maxsize=self._queue_size)
            qs.append(q)
            self._start(_file_reader, s, q)
        Entry = Tuple[float, int, int, int, "Item"]   # (key, kind rank, source, arrival, item)
        bufs: Dict[Tuple[int, str], List[Entry]] = {(i, k): [] for i, s in enumerate(self.sources) for k in s.kinds}
        done = [False] * len(self.sources)
        kind_rank = {"audio": 0, "text": 1, "video": 2}
        seq = 0

        def pull(i: int) -> None:
            nonlocal seq
            it = qs[i].get()
            if isinstance(it, _End):
                done[i] = True
                return
            if isinstance(it, _Failure):
                raise it.exc
            b = bufs.get((i, it.kind))
            if b is None:
                b = bufs[(i, it.kind)] = []
            b.append((_order_key(it), kind_rank.get(it.kind, 3), i, seq, it))
            seq += 1

        while True:
            # every unfinished sub-stream needs a head before the smallest head can be released
            for (i, _k), b in bufs.items():
                while not b and not done[i]:
                    pull(i)
            heads = [b[0] for b in bufs.values() if b]
            if not heads:
                break
            _key, _, i, _, it = min(heads)
            bufs[(i, it.kind)].pop(0)
            if it.kind != "audio":
                # Audio heads all end after this item (they are keyed by end time); push the part of
                # each that starts before it first, so voice evidence is never stamped before an event
                # that was already emitted.
                for (_j, k), b in bufs.items():
                    if k == "audio" and b and b[0][4].t < it.t:
                        c: AudioChunk = b[0][4]  # type: ignore[assignment]
                        n = int(round((it.t - c.t) * c.sample_rate))
                        if 0 < n < c.pcm.shape[0]:
                            head, rest = c.pcm[:n], c.pcm[n:]
                            b[0] = (b[0][0], b[0][1], b[0][2], b[0][3],
                                    AudioChunk(c.t + n / float(c.sample_rate), rest, c.sample_rate))
                            yield from self._process(AudioChunk(c.t, head, c.sample_rate))
            yield from self._process(it)
        yield from self.stream.flush()

    def _iter_live(self) -> Iterator[EmotionEvent]:
        inbox = _Inbox()
        cond = inbox.cond
        for s in self.sources:
            self._start(_live_reader, s, inbox)
        counted_replaced = counted_audio = 0
        while True:
            if self._drain_expired():
                break  # a live reader is stuck inside its device after stop(): end with what was processed
            with cond:
                while (inbox.video is None and not inbox.audio and not inbox.text
                       and inbox.ended < len(self.sources) and not inbox.errors and not self._stop.is_set()
                       and not self._drain_expired()):
                    cond.wait(0.1)
                if inbox.errors:
                    raise inbox.errors[0]
                items = inbox.audio + inbox.text
                inbox.audio, inbox.text = [], []
                if inbox.video is not None:
                    items.append(inbox.video)
                    inbox.video = None
                new_drops = inbox.replaced - counted_replaced
                counted_replaced = inbox.replaced
                new_adrops = inbox.audio_dropped - counted_audio
                counted_audio = inbox.audio_dropped
                finished = inbox.ended >= len(self.sources) and not items
            if new_drops:
                self.stream.count_dropped("frames", new_drops)
            if new_adrops:
                self.stream.count_dropped("audio", new_adrops)
            if finished or self._stop.is_set():
                break
            items.sort(key=_order_key)
            for it in items:
                yield from self._process(it)
        for s in self.sources:
            dropped = getattr(s, "dropped_blocks", 0)  # microphones count the blocks their callback lost
            if dropped:
                self.stream.count_dropped("audio", dropped)
        if not self.stream.closed:
            yield from self.stream.flush()

    def stop(self) -> None:
        """Stop reading, gracefully: each reader stops after the item in hand, everything already read is
        processed, the stream is flushed and the iteration ends normally. Thread-safe and cheap (safe in a
        signal handler; the CLI calls it on Ctrl-C / SIGTERM). ``close()`` instead stops at once."""
        if self._ctx.drain.is_set():
            return
        self._drain_deadline = time.monotonic() + self.drain_timeout_s
        self._ctx.drain.set()
        self._ctx.halt.set()

    def _drain_expired(self) -> bool:
        return self._drain_deadline is not None and time.monotonic() > self._drain_deadline

    @property
    def stopped(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._ctx.drain.is_set()

    def _events(self) -> Generator[EmotionEvent, None, None]:
        try:
            yield from (self._iter_live() if self.live else self._iter_file())
        finally:
            self._shutdown()

    def __iter__(self) -> "Run":
        return self

    def __next__(self) -> EmotionEvent:
        if self._gen is None:
            self._gen = self._events()
        ev: EmotionEvent = next(self._gen)
        return ev

    @property
    def stats(self) -> "StreamStats":
        return self.stream.stats

    def _shutdown(self) -> None:
        # live sources are closed first (that unblocks their readers); file sources only after their
        # reader threads have ended, so no decoder is closed under a running demux.
        self._stop.set()
        self._ctx.halt.set()
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

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self._stop.set()
        except Exception:
            pass
