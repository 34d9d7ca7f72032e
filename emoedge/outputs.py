"""Outputs: JSONL events, annotated video (PyAV), an optional on-screen window.

The annotated video draws, on each frame: face boxes with track id, label and the track's *smoothed*
probability, probability bars per face (smoothed), and a panel with the fused label and each modality's
*raw* evidence (top label, probability, weight, age). Timestamps of the source frames are kept (variable
frame rate safe); the source file's audio track can be copied in.

Files are written to a temporary file beside the target and renamed into place by ``close()``
(``emoedge._atomic``); ``discard()`` (or an exception inside a ``with`` block) drops the temporary file, so
a failed run never leaves a half-written output. Write errors (disk full, file-size limit) raise
:class:`~emoedge.errors.OutputError` naming the file.
"""
from __future__ import annotations

import json
import pathlib
from fractions import Fraction
from typing import Any, Optional

import numpy as np

from ._atomic import AtomicOutput, write_error
from .errors import BackendUnavailableError, InvalidInputError, OutputError
from .events import EmotionEvent
from .labels import CANONICAL

# BGR colours per canonical label.
COLORS = {"neutral": (200, 200, 200), "happy": (0, 200, 255), "sad": (200, 120, 40), "angry": (40, 40, 230),
          "fearful": (180, 60, 160), "disgusted": (40, 160, 60), "surprised": (0, 230, 230)}


# Containers the annotated video can be written to (H.264 or MPEG-4 video, the source's audio copied).
VIDEO_OUT_EXTS = (".mp4", ".mkv", ".mov", ".avi", ".m4v")


def check_video_path(path) -> None:
    """Raise InvalidInputError unless ``path`` has an extension the annotated video can be written as."""
    ext = pathlib.Path(path).suffix.lower()
    if ext not in VIDEO_OUT_EXTS:
        raise InvalidInputError(f"{path}: cannot write an annotated video with the extension {ext or '(none)'!r}; "
                                f"use one of {', '.join(VIDEO_OUT_EXTS)} (e.g. annotated.mp4); events go to --jsonl")


class JsonlWriter:
    """Writes one event per line (``EmotionEvent.to_json``) to a temporary file beside ``path``; ``close()``
    renames it into place, ``discard()`` drops it. As a context manager: committed on success, discarded
    when the block raises."""

    def __init__(self, path):
        self.path = pathlib.Path(path)
        self._out = AtomicOutput(self.path)
        try:
            self._f = open(self._out.tmp, "w", encoding="utf-8")
        except OSError as e:
            self._out.discard()
            raise write_error(self.path, e) from None
        self.count = 0

    def write(self, event: EmotionEvent) -> None:
        try:
            self._f.write(event.to_json())
            self._f.write("\n")
        except OSError as e:
            self.discard()
            raise write_error(self.path, e) from None
        self.count += 1

    def close(self) -> None:
        """Finish the file and rename it into place (idempotent)."""
        if self._out.done:
            return
        try:
            self._f.close()
        except OSError as e:
            self.discard()
            raise write_error(self.path, e) from None
        self._out.commit()

    def discard(self) -> None:
        """Drop what was written; the target is left as it was."""
        try:
            self._f.close()
        except OSError:
            pass
        self._out.discard()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is None:
            self.close()
        else:
            self.discard()


def read_jsonl(path) -> list:
    """Events written by :class:`JsonlWriter`, as EmotionEvent objects."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                out.append(EmotionEvent.from_dict(json.loads(line)))
    return out


# The 8 neighbours at which the dark outline is drawn: a one-pixel halo around the glyphs.
_HALO = ((-1, -1), (0, -1), (1, -1), (-1, 0), (1, 0), (-1, 1), (0, 1), (1, 1))


def draw_label(img, s: str, org, scale: float = 0.45, color=(255, 255, 255), thick: int = 1) -> None:
    """Text with a dark one-pixel outline. The outline is the same text at the same scale and thickness drawn
    at the 8 neighbouring offsets: a thicker outline stroke would have other glyph advances (OpenCV widens
    each glyph with the thickness) and leave shifted "ghost" copies of the letters beside the text."""
    import cv2
    x, y = int(org[0]), int(org[1])
    for dx, dy in _HALO:
        cv2.putText(img, s, (x + dx, y + dy), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick, cv2.LINE_AA)
    cv2.putText(img, s, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, color, thick, cv2.LINE_AA)


_text = draw_label  # the name used inside this module

_BAR_W = 90        # px of a probability bar
_BAR_TEXT_W = 70   # px for "surprised 1.00" at scale 0.35 (66 px: the longest canonical label)
BARS_W = _BAR_W + 4 + _BAR_TEXT_W   # width of the per-face bar block


def _bars(img, probs: dict, x: int, y: int, width: int = _BAR_W, row: int = 12, title: str = "smoothed"):
    """Per-face probability bars with full class names, under a title saying which probabilities they are."""
    import cv2
    h, w = img.shape[:2]
    n = len(CANONICAL) + 1
    x0, y0, x1, y1 = max(0, x - 3), max(0, y - 3), min(w, x + width + 4 + _BAR_TEXT_W), min(h, y + row * n + 1)
    if x1 > x0 and y1 > y0:  # darken the panel behind the bars so the text stays readable
        img[y0:y1, x0:x1] = (img[y0:y1, x0:x1] * 0.35).astype(img.dtype)
    _text(img, title, (x, y + row - 3), 0.35)
    for i, lab in enumerate(CANONICAL):
        p = float(probs.get(lab, 0.0))
        yy = y + (i + 1) * row
        cv2.rectangle(img, (x, yy), (x + width, yy + row - 3), (40, 40, 40), -1)
        cv2.rectangle(img, (x, yy), (x + int(round(p * width)), yy + row - 3), COLORS[lab], -1)
        _text(img, f"{lab} {p:.2f}", (x + width + 4, yy + row - 3), 0.35)


def annotate(image: np.ndarray, event: EmotionEvent) -> np.ndarray:
    """A copy of ``image`` (BGR uint8) with the event drawn on it."""
    import cv2
    img = np.ascontiguousarray(image).copy()
    h, w = img.shape[:2]
    for f in event.faces:
        x, y, bw, bh = (int(round(v)) for v in f.box)
        col = COLORS.get(f.label, (255, 255, 255))
        cv2.rectangle(img, (x, y), (x + bw, y + bh), col, 2)
        tid = f"#{f.track_id} " if f.track_id is not None else ""
        p = max(f.probs.values()) if f.probs else 0.0
        _text(img, f"{tid}{f.label} {p:.2f} smoothed", (x, max(12, y - 6)), 0.5, col)
        bx = x + bw + 6 if x + bw + 6 + BARS_W < w else max(0, x - 6 - BARS_W)
        _bars(img, f.probs, bx, max(0, y))
    # panel: fused estimate and per-modality evidence
    panel_h = 16 + 14 * (1 + len(event.evidence)) + (14 if event.evidence else 0)
    overlay = img.copy()
    cv2.rectangle(overlay, (0, h - panel_h), (min(w, 380), h), (0, 0, 0), -1)
    img = cv2.addWeighted(overlay, 0.55, img, 0.45, 0)
    y = h - panel_h + 16
    if event.label:
        _text(img, f"t={event.t:6.2f}s  fused: {event.label} {event.confidence:.2f}", (6, y), 0.5,
              COLORS.get(event.label, (255, 255, 255)))
    else:
        _text(img, f"t={event.t:6.2f}s  fused: (no evidence yet)", (6, y), 0.5)
    if event.evidence:
        y += 14
        _text(img, "evidence (raw, before smoothing): p, fusion weight w, age", (6, y), 0.38)
    for m, r in sorted(event.evidence.items()):
        y += 14
        _text(img, f"{m:<5} {r.label:<9} raw p={max(r.probs.values()):.2f} w={r.weight:.2f} age={r.age:.1f}s", (6, y), 0.42)
    return img


class AnnotatedVideoWriter:
    """Encodes annotated frames to a video file with PyAV (H.264 via libx264 when available, else MPEG-4).
    ``write(image, event)`` takes the source frame and its event; pts follow event.t (seconds).
    ``copy_audio_from``: a media file whose first audio track is copied into the output at close()."""

    def __init__(self, path, *, fps: float = 30.0, codec: Optional[str] = None, crf: int = 23,
                 copy_audio_from=None):
        import av
        self.path = pathlib.Path(path)
        check_video_path(self.path)
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self._codec = codec
        self._crf = crf
        self._audio_src = copy_audio_from
        self._out = AtomicOutput(self.path)
        try:
            self._c: Any = av.open(str(self._out.tmp), "w")
        except (av.error.FFmpegError, OSError, ValueError) as e:
            self._out.discard()
            raise OutputError(f"{self.path}: cannot open the video for writing ({e})") from None
        self._s: Any = None
        self._last_pts = -1
        self._aout = None
        self._t0 = 0.0
        self.count = 0
        self.last_t: Optional[float] = None  # source time (s) of the last frame written

    def _open_stream(self, w, h):
        import av
        codecs = [self._codec] if self._codec else ["libx264", "mpeg4"]
        last = None
        for name in codecs:
            try:
                s = self._c.add_stream(name, rate=Fraction(self.fps).limit_denominator(1001))
                s.width, s.height = w - (w % 2), h - (h % 2)
                s.pix_fmt = "yuv420p"
                s.time_base = Fraction(1, 1000)
                s.codec_context.time_base = Fraction(1, 1000)
                if name == "libx264":
                    s.options = {"crf": str(self._crf), "preset": "veryfast"}
                self._s = s
                self._add_audio_stream()
                return
            except (av.error.FFmpegError, ValueError) as e:
                last = e
        raise BackendUnavailableError(f"no usable video encoder in this PyAV build (tried {codecs}): {last}")

    def write(self, image: np.ndarray, event: Optional[EmotionEvent] = None, t: Optional[float] = None) -> None:
        """Draw ``event`` on ``image`` (BGR uint8) and encode it at time ``t`` (default event.t)."""
        import av
        if event is not None:
            image = annotate(image, event)
            t = event.t if t is None else t
        if t is None:
            t = self.count / self.fps
        try:
            if self._s is None:
                self._open_stream(image.shape[1], image.shape[0])
                self._t0 = min(0.0, t)  # keep source times (so a copied audio track stays in sync)
            w, h = self._s.width, self._s.height
            if image.shape[1] != w or image.shape[0] != h:
                import cv2
                image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
            fr = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
            pts = int(round((t - self._t0) * 1000))
            if pts <= self._last_pts:
                pts = self._last_pts + 1
            fr.pts = pts
            fr.time_base = Fraction(1, 1000)
            self._last_pts = pts
            for pkt in self._s.encode(fr):
                self._c.mux(pkt)
        except OSError as e:  # av.error.OSError too: disk full, file-size limit
            self.discard()
            raise write_error(self.path, e) from None
        self.count += 1
        self.last_t = float(t)

    def _add_audio_stream(self):
        # all streams must exist before the first packet is muxed (that writes the container header)
        import av
        self._aout = None
        if self._audio_src is None:
            return
        try:
            with av.open(str(self._audio_src)) as src:
                if src.streams.audio:
                    self._aout = self._c.add_stream_from_template(src.streams.audio[0])
        except (av.error.FFmpegError, OSError, ValueError, AttributeError):
            self._aout = None

    def _copy_audio(self, until: Optional[float] = None):
        import av
        if self._aout is None:
            return
        with av.open(str(self._audio_src)) as src:
            ain = src.streams.audio[0]
            for pkt in src.demux(ain):
                if pkt.dts is None:
                    continue
                if until is not None and pkt.pts is not None and float(pkt.pts * ain.time_base) >= until:
                    break  # cut at the last written frame (an interrupted or --duration run)
                pkt.stream = self._aout
                self._c.mux(pkt)

    def close(self, audio_until: Optional[float] = None) -> None:
        """Flush the encoder, copy the audio track (up to ``audio_until`` seconds of source time when given:
        a run that stopped early ends its audio with its last frame) and rename the file into place."""
        if self._c is None:
            return
        try:
            if self._s is not None:
                for pkt in self._s.encode(None):
                    self._c.mux(pkt)
            if self._audio_src is not None and self._s is not None:
                self._copy_audio(audio_until)
            self._c.close()
        except OSError as e:
            self.discard()
            raise write_error(self.path, e) from None
        self._c = None
        self._out.commit()

    def end_time(self) -> Optional[float]:
        """Source time (s) where the written video ends: the last frame's time plus one frame period."""
        return None if self.last_t is None else self.last_t + 1.0 / self.fps

    def discard(self) -> None:
        """Drop the partial video; the target is left as it was."""
        if self._c is not None:
            try:
                self._c.close()
            except Exception:  # noqa: BLE001 - the file is being thrown away; the first error was reported
                pass
            self._c = None
        self._out.discard()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is None:
            self.close()
        else:
            self.discard()


def gui_available() -> bool:
    """True when this OpenCV build has a GUI backend (cv2.imshow works)."""
    import cv2
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GUI:"):
            return "NONE" not in line.upper()
    return False


class Window:
    """``--show``: an OpenCV window with the annotated frames. Raises BackendUnavailableError on headless
    OpenCV builds (install ``opencv-python`` instead of ``opencv-python-headless``)."""

    def __init__(self, title: str = "emoedge"):
        if not gui_available():
            raise BackendUnavailableError("--show needs an OpenCV build with a GUI backend; this one is headless. "
                                          "Install opencv-python (not -headless) or drop --show")
        self.title = title

    def show(self, image: np.ndarray, event: EmotionEvent) -> bool:
        """Draw and show; returns False when the user pressed q or Esc."""
        import cv2
        cv2.imshow(self.title, annotate(image, event))
        k = cv2.waitKey(1) & 0xFF
        return k not in (ord("q"), 27)

    def close(self) -> None:
        import cv2
        try:
            cv2.destroyWindow(self.title)
        except cv2.error:
            pass
