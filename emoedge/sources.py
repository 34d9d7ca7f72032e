"""Media sources: video files (with their audio track, through PyAV, real timestamps), wav/audio files,
cameras (cv2.VideoCapture), microphones (sounddevice, extra ``live``) and timed text files.

Every source yields items in time order per kind: :class:`VideoFrame` (BGR uint8 [H, W, 3]),
:class:`AudioChunk` (float32 mono [n] at the file's own sample rate) and :class:`TextItem`. Times are
seconds on the source clock (file: presentation timestamps; live: seconds since the source started).
Bad files raise :class:`~emoedge.errors.InvalidInputError` naming the file and the problem.
"""
from __future__ import annotations

import os
import pathlib
import queue
import re
import threading
import time
import wave
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Union

import numpy as np

from .errors import BackendUnavailableError, InvalidInputError

VIDEO_EXTS = {".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".flv", ".wmv", ".gif"}
AUDIO_EXTS = {".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".wma"}


@dataclass
class VideoFrame:
    """A decoded frame: ``image`` BGR uint8 [H, W, 3]; ``t`` seconds; ``index`` 0-based frame number."""
    t: float
    image: np.ndarray
    index: int
    kind: str = "video"


@dataclass
class AudioChunk:
    """Audio samples: ``pcm`` float32 mono [n] in [-1, 1] at ``sample_rate`` Hz starting at ``t`` seconds."""
    t: float
    pcm: np.ndarray
    sample_rate: int
    kind: str = "audio"

    @property
    def duration(self) -> float:
        return self.pcm.shape[0] / float(self.sample_rate)


@dataclass
class TextItem:
    """A line of text (transcript, chat message) at ``t`` seconds."""
    t: float
    text: str
    kind: str = "text"


Item = Union[VideoFrame, AudioChunk, TextItem]


class Source:
    """Base class. ``kinds``: which item kinds it yields; ``live``: True for cameras and microphones
    (items arrive in real time and may be dropped downstream); ``duration``: seconds or None."""
    kinds: frozenset = frozenset()
    live: bool = False
    duration: Optional[float] = None
    name: str = ""

    def items(self) -> Iterator[Item]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _file_error(path, what, e=None) -> InvalidInputError:
    detail = f" ({type(e).__name__}: {e})" if e is not None else ""
    return InvalidInputError(f"{path}: {what}{detail}")


def _check_file(path) -> pathlib.Path:
    p = pathlib.Path(path)
    if not p.exists():
        raise InvalidInputError(f"{p}: no such file; check the path")
    if not p.is_file():
        raise InvalidInputError(f"{p}: not a regular file")
    if p.stat().st_size == 0:
        raise InvalidInputError(f"{p}: the file is empty")
    return p


class VideoFileSource(Source):
    """A video file decoded with PyAV: frames (BGR) with their presentation timestamps and, when the
    file has one and ``audio=True``, its first audio track downmixed to float32 mono at its own rate.
    Corrupt or truncated files raise InvalidInputError naming the file."""

    def __init__(self, path, *, audio: bool = True):
        import av
        self.path = _check_file(path)
        self.name = str(self.path)
        try:
            self._c = av.open(str(self.path))
        except (av.error.FFmpegError, OSError, ValueError) as e:
            raise _file_error(self.path, "cannot open as a video: the file is corrupt, truncated or not a video", e) from None
        if not self._c.streams.video:
            self._c.close()
            raise InvalidInputError(f"{self.path}: has no video stream (for audio-only files use an audio source)")
        self._v = self._c.streams.video[0]
        self._a = self._c.streams.audio[0] if (audio and self._c.streams.audio) else None
        # a corrupt header can leave a stream without a decoder (codec_context None): name the file
        if self._v.codec_context is None or (self._a is not None and self._a.codec_context is None):
            self._c.close()
            raise InvalidInputError(f"{self.path}: the {'video' if self._v.codec_context is None else 'audio'} stream "
                                    "has no usable decoder: the file is corrupt or uses an unsupported codec")
        self.kinds = frozenset({"video", "audio"} if self._a is not None else {"video"})
        d = None
        if self._v.duration is not None and self._v.time_base is not None:
            d = float(self._v.duration * self._v.time_base)
        elif self._c.duration is not None:
            d = self._c.duration / 1e6
        self.duration = d
        self.expected_frames = int(self._v.frames or 0)
        rate = self._v.average_rate or self._v.guessed_rate
        self.fps = float(rate) if rate else None
        self.width, self.height = self._v.codec_context.width, self._v.codec_context.height
        self.sample_rate = int(self._a.codec_context.sample_rate) if self._a is not None else None
        if self._a is not None and not self.sample_rate:
            self._c.close()
            raise InvalidInputError(f"{self.path}: the audio stream has no sample rate: the file is corrupt")
        # the audio track's announced length (s), to notice a track that mostly fails to decode
        self.expected_audio_s = None
        if self._a is not None and self._a.duration is not None and self._a.time_base is not None:
            self.expected_audio_s = float(self._a.duration * self._a.time_base)
        self.frames_decoded = 0
        self.audio_seconds_decoded = 0.0

    def items(self) -> Iterator[Item]:
        import av
        streams = [self._v] + ([self._a] if self._a is not None else [])
        resampler: Any = av.AudioResampler(format="flt", layout="mono", rate=self.sample_rate) if self._a is not None else None
        idx = 0
        last_t = None
        a_next: Optional[float] = None  # running sample clock for audio frames without pts
        frame: Any  # PyAV's decode() yields a union of frame types; the stream says which
        try:
            for packet in self._c.demux(*streams):
                for frame in packet.decode():
                    if packet.stream is self._v:
                        t = frame.time
                        if t is None:
                            t = (idx / self.fps) if self.fps else float(idx)
                        t = float(t)
                        if last_t is not None and t <= last_t:  # duplicate/garbled pts: keep the clock monotonic
                            t = last_t + (1.0 / self.fps if self.fps else 1e-3)
                        last_t = t
                        img = frame.to_ndarray(format="bgr24")
                        yield VideoFrame(t=t, image=img, index=idx)
                        idx += 1
                        self.frames_decoded = idx
                    else:
                        t0 = frame.time if frame.time is not None else a_next
                        for rf in resampler.resample(frame):
                            pcm = rf.to_ndarray().reshape(-1).astype(np.float32, copy=False)
                            if pcm.size == 0:
                                continue
                            t = float(t0 if t0 is not None else 0.0)
                            sr = int(self.sample_rate or 0)  # set whenever there is an audio stream
                            yield AudioChunk(t=t, pcm=pcm, sample_rate=sr)
                            self.audio_seconds_decoded += pcm.size / sr
                            t0 = t + pcm.size / sr
                        a_next = t0
        except av.error.FFmpegError as e:
            raise _file_error(self.path, f"decoding failed after {idx} frames: the file is corrupt or truncated", e) from None
        if idx == 0:
            raise InvalidInputError(f"{self.path}: no video frame could be decoded: the file is corrupt or truncated")
        if self.expected_frames and idx < 0.9 * self.expected_frames - 1:
            raise InvalidInputError(f"{self.path}: truncated: the header announces {self.expected_frames} frames but "
                                    f"only {idx} could be decoded")
        exp = self.expected_audio_s
        if exp and self.audio_seconds_decoded < 0.8 * exp - 0.25:
            # the decoder skipped damaged audio packets without an error; a run must not look complete
            raise InvalidInputError(f"{self.path}: the audio track announces {exp:.2f} s but only "
                                    f"{self.audio_seconds_decoded:.2f} s could be decoded: the audio is corrupt. "
                                    "Re-encode the file, or use VideoFileSource(path, audio=False) for the frames only")

    def close(self) -> None:
        try:
            self._c.close()
        except Exception:
            pass


def read_wav(path):
    """(float32 mono samples in [-1, 1], sample_rate Hz) of a PCM wav file (8/16/24/32-bit int, or float
    via PyAV). A broken header raises InvalidInputError naming the file."""
    p = _check_file(path)
    try:
        with wave.open(str(p), "rb") as w:
            sr, ch, sw, n = w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()
            raw = w.readframes(n)
    except wave.Error as e:
        if "unknown format" in str(e):  # e.g. IEEE float wav: let FFmpeg decode it
            return _read_audio_av(p)
        raise _file_error(p, "broken wav header: not a readable RIFF/WAVE PCM file; re-encode it "
                             "(e.g. `ffmpeg -i IN -ar 16000 -ac 1 OUT.wav`)", e) from None
    except EOFError as e:
        raise _file_error(p, "broken wav header: the file ends inside the header", e) from None
    if sr <= 0 or ch <= 0:
        raise InvalidInputError(f"{p}: broken wav header: sample rate {sr} Hz, {ch} channels")
    usable = (len(raw) // (sw * ch)) * sw * ch
    raw = raw[:usable]
    if sw == 1:
        x = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif sw == 2:
        x = np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
    elif sw == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = np.where(v >= 1 << 23, v - (1 << 24), v)
        x = v.astype(np.float32) / float(1 << 23)
    elif sw == 4:
        x = np.frombuffer(raw, "<i4").astype(np.float32) / float(1 << 31)
    else:
        raise InvalidInputError(f"{p}: unsupported wav sample width {sw} bytes")
    x = x.reshape(-1, ch).mean(axis=1, dtype=np.float32) if ch > 1 else x
    if x.size == 0:
        raise InvalidInputError(f"{p}: the wav file has no samples")
    return np.ascontiguousarray(x, dtype=np.float32), int(sr)


def _read_audio_av(p):
    import av
    try:
        with av.open(str(p)) as c:
            if not c.streams.audio:
                raise InvalidInputError(f"{p}: has no audio stream")
            s = c.streams.audio[0]
            sr = int(s.codec_context.sample_rate)
            rs = av.AudioResampler(format="flt", layout="mono", rate=sr)
            parts = []
            for fr in c.decode(s):
                for r in rs.resample(fr):
                    parts.append(r.to_ndarray().reshape(-1))
    except av.error.FFmpegError as e:
        raise _file_error(p, "cannot decode audio: the file is corrupt or truncated", e) from None
    if not parts:
        raise InvalidInputError(f"{p}: no audio could be decoded")
    return np.concatenate(parts).astype(np.float32), sr


class AudioFileSource(Source):
    """An audio file (wav natively; other formats through PyAV) cut into ``chunk_s``-second chunks."""
    kinds = frozenset({"audio"})

    def __init__(self, path, *, chunk_s: float = 0.1):
        p = _check_file(path)
        if not chunk_s > 0:
            raise InvalidInputError(f"chunk_s must be > 0 seconds, got {chunk_s}")
        self.path, self.name, self.chunk_s = p, str(p), float(chunk_s)
        if p.suffix.lower() == ".wav":
            self.pcm, self.sample_rate = read_wav(p)
        else:
            self.pcm, self.sample_rate = _read_audio_av(p)
        self.duration = self.pcm.shape[0] / self.sample_rate

    def items(self) -> Iterator[Item]:
        n = max(1, int(round(self.chunk_s * self.sample_rate)))
        for i in range(0, self.pcm.shape[0], n):
            yield AudioChunk(t=i / self.sample_rate, pcm=self.pcm[i:i + n], sample_rate=self.sample_rate)


_TS_LINE = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*(?:\t|\s+)(.*)$")
_TS_TAB = re.compile(r"^\s*\d+(?:\.\d*)?[ ]*\t")


class TextFileSource(Source):
    """Timed text lines (UTF-8). Either every line is ``SECONDS<TAB or spaces>TEXT`` (placed at that time; times
    must not decrease) or no line is timed with a TAB (line i is placed at ``start + i * interval`` seconds and
    kept verbatim, so "3 cats" stays a sentence). A file that mixes ``SECONDS<TAB>`` lines with untimed lines
    is refused naming the first line of each kind: its times would otherwise be ignored silently. Blank lines
    are skipped; a binary file (NUL bytes, mostly undecodable) is refused."""
    kinds = frozenset({"text"})

    def __init__(self, path, *, interval: float = 2.0, start: float = 0.0):
        p = _check_file(path)
        self.path, self.name = p, str(p)
        try:
            raw = p.read_bytes()
        except OSError as e:
            raise _file_error(p, "cannot read the text file", e) from None
        head = raw[:8192]
        if b"\x00" in head or head.decode("utf-8", errors="replace").count("\ufffd") > max(8, len(head) // 20):
            raise InvalidInputError(f"{p}: not a text file (binary data); --text-file takes UTF-8 lines "
                                    "'SECONDS<TAB>TEXT' (or untimed lines)")
        text = raw.decode("utf-8", errors="replace")
        numbered = [(i + 1, ln.rstrip("\n")) for i, ln in enumerate(text.splitlines()) if ln.strip()]
        lines = [ln for _, ln in numbered]
        timed = [_TS_LINE.match(ln) for ln in lines]
        self.items_list = []
        if lines and all(timed):
            for (no, _), m in zip(numbered, timed):
                assert m is not None
                self.items_list.append(TextItem(t=float(m.group(1)), text=m.group(2).strip()))
            ts = [it.t for it in self.items_list]
            for (no, _), a, b in zip(numbered[1:], ts, ts[1:]):
                if b < a:
                    raise InvalidInputError(f"{p}: line {no}: time {b:g} s is before the previous line's {a:g} s; "
                                            "line times must not decrease")
        else:
            tab_timed = [(no, ln) for no, ln in numbered if _TS_TAB.match(ln)]
            if tab_timed:
                untimed = next((no, ln) for (no, ln), m in zip(numbered, timed) if not m)
                raise InvalidInputError(
                    f"{p}: mixes timed and untimed lines (line {tab_timed[0][0]} starts with a time, line {untimed[0]} "
                    f"{untimed[1][:40]!r} does not); give every line as SECONDS<TAB>TEXT, or no line a time")
            self.items_list = [TextItem(t=start + i * interval, text=ln.strip()) for i, ln in enumerate(lines)]
        self.duration = self.items_list[-1].t if self.items_list else 0.0

    def items(self) -> Iterator[Item]:
        yield from self.items_list


class ArraySource(Source):
    """In-memory items (tests, simulations): any iterable of VideoFrame/AudioChunk/TextItem."""

    def __init__(self, items, *, kinds=("video",), live: bool = False, name: str = "array", duration=None):
        self._items = items
        self.kinds, self.live, self.name, self.duration = frozenset(kinds), live, name, duration

    def items(self) -> Iterator[Item]:
        yield from self._items


def _quiet_capture(index: int):
    """``cv2.VideoCapture(index)`` without OpenCV's own WARN lines for a missing camera (our error says it
    once, with the fix); OpenCV's log level is restored afterwards."""
    import cv2
    log = getattr(getattr(cv2, "utils", None), "logging", None)
    old = None
    if log is not None:
        try:
            old = log.getLogLevel()
            log.setLogLevel(log.LOG_LEVEL_ERROR)
        except (AttributeError, cv2.error):
            old = None
    try:
        return cv2.VideoCapture(index)
    finally:
        if old is not None and log is not None:
            log.setLogLevel(old)


class CameraSource(Source):
    """A camera through ``cv2.VideoCapture(index)``; ``t`` is seconds since the source started (monotonic
    clock). Optional capture size (pixels) and fps requests."""
    kinds = frozenset({"video"})
    live = True

    def __init__(self, index: int = 0, *, width: Optional[int] = None, height: Optional[int] = None,
                 fps: Optional[float] = None, clock=None):
        import cv2
        self.index, self.name = int(index), f"camera {index}"
        self._cap = _quiet_capture(self.index)
        if not self._cap.isOpened():
            raise InvalidInputError(f"camera {index} could not be opened: check the index (0 is the default camera), "
                                    "permissions, and that no other program holds it")
        if width:
            self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, int(width))
        if height:
            self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, int(height))
        if fps:
            self._cap.set(cv2.CAP_PROP_FPS, float(fps))
        self._clock = clock or LiveClock()
        self._stop = threading.Event()

    def items(self) -> Iterator[Item]:
        idx = 0
        while not self._stop.is_set():
            ok, img = self._cap.read()
            if not ok:
                break
            yield VideoFrame(t=self._clock.now(), image=img, index=idx)
            idx += 1

    def close(self) -> None:
        self._stop.set()
        self._cap.release()


class LiveClock:
    """Seconds since the first call, on the monotonic clock; shared by live sources so they agree."""

    def __init__(self) -> None:
        self._t0: Optional[float] = None
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            t = time.monotonic()
            if self._t0 is None:
                self._t0 = t
            return t - self._t0


class MicSource(Source):
    """A microphone through sounddevice (``pip install 'emoedge[live]'``): float32 mono blocks of ``block_s``
    seconds at ``sample_rate`` Hz. ``t`` counts samples from the first block, anchored to the live clock.
    Blocks that overflow the internal queue (``max_blocks``) are counted in ``dropped_blocks``."""
    kinds = frozenset({"audio"})
    live = True

    def __init__(self, device=None, *, sample_rate: int = 16000, block_s: float = 0.1, max_blocks: int = 100,
                 clock=None):
        try:
            import sounddevice as sd
        except (ImportError, OSError) as e:
            raise BackendUnavailableError(f"microphone input needs the sounddevice package and PortAudio: "
                                          f"pip install 'emoedge[live]' ({e})") from None
        self._sd = sd
        if isinstance(device, str) and device.isdigit():
            device = int(device)
        self.device, self.sample_rate, self.name = device, int(sample_rate), f"microphone {device if device is not None else 'default'}"
        self.block = max(1, int(round(block_s * sample_rate)))
        self._q: queue.Queue = queue.Queue(maxsize=max_blocks)
        self._clock = clock or LiveClock()
        self._stop = threading.Event()
        self.dropped_blocks = 0
        self._t0: Optional[float] = None
        self._n = 0

    def _callback(self, indata, frames, time_info, status):
        try:
            self._q.put_nowait(indata[:, 0].astype(np.float32, copy=True))
        except queue.Full:
            self.dropped_blocks += 1

    def items(self) -> Iterator[Item]:
        try:
            stream = self._sd.InputStream(device=self.device, channels=1, samplerate=self.sample_rate, dtype="float32",
                                          blocksize=self.block, callback=self._callback)
        except Exception as e:
            raise InvalidInputError(f"{self.name} could not be opened ({e}); list devices with "
                                    "`python -m sounddevice`") from None
        with stream:
            while not self._stop.is_set():
                try:
                    pcm = self._q.get(timeout=0.2)
                except queue.Empty:
                    continue
                if self._t0 is None:
                    self._t0 = self._clock.now()
                yield AudioChunk(t=self._t0 + self._n / self.sample_rate, pcm=pcm, sample_rate=self.sample_rate)
                self._n += pcm.shape[0]

    def close(self) -> None:
        self._stop.set()


def open_source(spec, *, kind: Optional[str] = None, audio: bool = True, **kw) -> Source:
    """A source for a user spec: a video or audio file path, a camera index (int or digits), 'mic' /
    'mic:DEVICE', or an existing Source. ``kind`` ('video', 'audio', 'text') forces the interpretation."""
    if isinstance(spec, Source):
        return spec
    if isinstance(spec, int) or (isinstance(spec, str) and spec.isdigit() and not os.path.exists(spec)):
        return CameraSource(int(spec), **kw)
    s = str(spec)
    if s == "mic" or s.startswith("mic:"):
        name = s[4:] or None
        dev: Union[int, str, None] = int(name) if name is not None and name.isdigit() else name
        return MicSource(dev, **kw)
    p = pathlib.Path(s)
    ext = p.suffix.lower()
    if kind == "text" or ext in (".txt", ".text"):
        return TextFileSource(p, **kw)
    if kind == "audio" or ext in AUDIO_EXTS:
        return AudioFileSource(p, **kw)
    if kind == "video" or ext in VIDEO_EXTS:
        return VideoFileSource(p, audio=audio, **kw)
    _check_file(p)
    try:  # unknown extension: let FFmpeg decide
        return VideoFileSource(p, audio=audio, **kw)
    except InvalidInputError as e:
        if "no video stream" in str(e):
            return AudioFileSource(p)
        raise


def paced(items: Iterator[Item], *, speed: float = 1.0, stop: Optional[threading.Event] = None) -> Iterator[Item]:
    """Release file items no faster than real time (``speed`` x): item at source time t is yielded once
    (t - t_first) / speed wall seconds have passed. Used by ``realtime=True`` runs."""
    t0_src: Optional[float] = None
    t0_wall = 0.0
    for it in items:
        if t0_src is None:
            t0_src, t0_wall = it.t, time.monotonic()
        due = t0_wall + (it.t - t0_src) / speed
        while True:
            now = time.monotonic()
            if now >= due or (stop is not None and stop.is_set()):
                break
            time.sleep(min(0.05, due - now))
        yield it
