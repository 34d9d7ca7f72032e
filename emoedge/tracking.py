"""Face tracking across frames: greedy IoU matching with a centre-distance fallback, stable integer
track ids, and a per-track ``state`` dict that later stages (smoothing, fusion) own.

A ``FaceTracker`` belongs to one stream (camera); the engine's models are shared. Typical use::

    tracker = FaceTracker()
    for t, frame in frames:
        faces = analyzer.analyze(frame, t=t, tracker=tracker)   # faces[i].track_id is stable

Detection cadence (``TrackerOptions.detect_every`` = N): the face API runs the full-frame detector
on the first frame, then at most N frames apart, and sooner when the tracker asks for it
(``request_detection``: a track's confidence dropped, a track is leaving the frame, the scene
changed). On frames in between each live track is re-localised from a region of interest around its
predicted box (``FaceTracker.relocate``; see emoedge.roi) or, without re-localisation, moved by its
smoothed velocity (``FaceTracker.predict``). N = 1 detects on every frame. A track that is not matched
for more than ``max_missed`` detection rounds is dropped; its id is never reused.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .errors import InvalidInputError

__all__ = ["TrackerOptions", "Track", "FaceTracker", "iou_xywh"]


@dataclass
class TrackerOptions:
    """iou_threshold: minimum IoU to continue a track; center_dist: fallback match when the box centres
    are closer than this many track-box widths (handles fast motion with low IoU); max_missed:
    detection rounds a track survives unmatched; detect_every: full detection at most every N frames
    while faces are tracked (1 = every frame); detect_every_idle: the same while no face is tracked
    (1: a face is found on the first frame the detector sees it, as MediaPipe; larger values save the
    detector's time on streams that are mostly empty); velocity_smoothing: EMA factor (0..1) of the box
    velocity used by predict() and the ROI search."""
    iou_threshold: float = 0.3
    center_dist: float = 0.5
    max_missed: int = 5
    detect_every: int = 1
    velocity_smoothing: float = 0.5
    detect_every_idle: int = 1

    def validate(self) -> "TrackerOptions":
        if not (0.0 < self.iou_threshold <= 1.0):
            raise InvalidInputError(f"TrackerOptions.iou_threshold={self.iou_threshold!r} must be in (0, 1] (default 0.3)")
        if not (self.center_dist >= 0.0):
            raise InvalidInputError(f"TrackerOptions.center_dist={self.center_dist!r} must be >= 0 (box widths)")
        if int(self.max_missed) != self.max_missed or self.max_missed < 0:
            raise InvalidInputError(f"TrackerOptions.max_missed={self.max_missed!r} must be an int >= 0")
        if int(self.detect_every) != self.detect_every or self.detect_every < 1:
            raise InvalidInputError(f"TrackerOptions.detect_every={self.detect_every!r} must be an int >= 1")
        if int(self.detect_every_idle) != self.detect_every_idle or self.detect_every_idle < 1:
            raise InvalidInputError(f"TrackerOptions.detect_every_idle={self.detect_every_idle!r} must be an int >= 1")
        if not (0.0 <= self.velocity_smoothing <= 1.0):
            raise InvalidInputError(f"TrackerOptions.velocity_smoothing={self.velocity_smoothing!r} must be in [0, 1]")
        return self

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "TrackerOptions":
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise InvalidInputError(f"unknown TrackerOptions fields {sorted(unknown)}; valid: {sorted(cls.__dataclass_fields__)}")
        return cls(**d).validate()


@dataclass
class Track:
    """One tracked face. box: (x, y, w, h) pixels; keypoints: float32 [6, 2] pixels or None;
    hits: detections matched so far; missed: detection rounds since the last match; t: time (s) of
    the last update; state: free per-track storage for later stages (e.g. smoothed probabilities)."""
    track_id: int
    box: Tuple[float, float, float, float]
    score: float
    keypoints: Optional[np.ndarray] = field(default=None, repr=False)
    hits: int = 1
    missed: int = 0
    first_t: Optional[float] = None
    t: Optional[float] = None
    velocity: Tuple[float, float] = (0.0, 0.0)
    state: Dict[str, Any] = field(default_factory=dict, repr=False)
    det_center: Tuple[float, float] = field(default=(0.0, 0.0), repr=False)  # centre at the last matched detection
    det_frame: int = field(default=0, repr=False)              # tracker frame index of that detection
    det_box: Tuple[float, float, float, float] = field(default=(0.0, 0.0, 0.0, 0.0), repr=False)  # box at that detection
    det_keypoints: Optional[np.ndarray] = field(default=None, repr=False)
    template: Optional[np.ndarray] = field(default=None, repr=False)  # ROI appearance at that detection (emoedge.roi)
    confidence: float = 1.0  # detector score at a detection, re-localisation confidence in between


def iou_xywh(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x, y, w, h) boxes; 0 when either is empty."""
    if a[2] <= 0 or a[3] <= 0 or b[2] <= 0 or b[3] <= 0:
        return 0.0
    ix = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    iy = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if ix <= 0 or iy <= 0:
        return 0.0
    inter = ix * iy
    return float(inter / (a[2] * a[3] + b[2] * b[3] - inter))


class FaceTracker:
    """Per-stream tracker. ``update(boxes, ...)`` after each detection round returns one Track per
    detection (same order); ``predict()`` advances live tracks on frames without detection."""

    def __init__(self, options: Optional[TrackerOptions] = None, phase: int = 0):
        """phase: this stream's offset in the detection cadence (0..detect_every-1): after the first
        frame, the next full detection comes ``detect_every - phase`` frames later, so that streams on one
        engine with different phases spread their detector runs over the frames instead of all at once."""
        self.options = (options or TrackerOptions()).validate()
        self.tracks: List[Track] = []
        self._next_id = 1
        self.frame_index = 0
        self.phase = int(phase) % self.options.detect_every
        self._last_detect: Optional[int] = None  # frame index of the last full detection (None: none yet)
        self._requested: Optional[str] = "first frame"
        self.detections = 0  # full detection rounds so far
        self.scene: Dict[str, Any] = {}  # scratch state of the scene-change check (emoedge.roi)

    def reset(self) -> None:
        """Forget all tracks (ids keep increasing, so old ids are never reused)."""
        self.tracks = []
        self.frame_index = 0
        self._last_detect = None
        self._requested = "reset"
        self.scene = {}

    def request_detection(self, reason: str) -> None:
        """Make the next ``should_detect()`` true (reason: for debugging/stats)."""
        if self._requested is None:
            self._requested = reason

    @property
    def detection_reason(self) -> Optional[str]:
        """Why the next frame will be detected ('cadence', 'first frame', ... or None)."""
        if self._requested is not None:
            return self._requested
        if self._last_detect is None:
            return "first frame"
        since = self.frame_index - self._last_detect
        if not any(not tr.missed for tr in self.tracks):
            return "no face" if since >= self.options.detect_every_idle else None
        since += self.phase if self.detections == 1 else 0
        return "cadence" if since >= self.options.detect_every else None

    def should_detect(self) -> bool:
        """True when the full-frame detector should run on the next frame: the first frame, then every
        ``detect_every`` frames (the first interval shortened by ``phase``; ``detect_every_idle`` while no
        face is tracked), on the frame after a detection round that missed a tracked face, and whenever
        ``request_detection`` was called since the last detection."""
        return self.detection_reason is not None

    def live_tracks(self) -> List[Track]:
        """Tracks matched at the last detection round (missed == 0): the faces reported in between."""
        return [tr for tr in self.tracks if not tr.missed]

    def update(self, boxes: Any, scores: Any = None, keypoints: Any = None, t: Optional[float] = None) -> List[Track]:
        """Match this frame's detections to tracks. boxes: [K, 4] (x, y, w, h) pixels; scores: [K];
        keypoints: [K, 6, 2] or None; t: timestamp (s). Returns the matched/new Track of every detection."""
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        k = len(b)
        if not np.isfinite(b).all():
            raise InvalidInputError("tracker boxes contain NaN or Inf; pass finite (x, y, w, h) pixel boxes")
        sc = np.ones(k) if scores is None else np.asarray(scores, dtype=np.float64).reshape(-1)
        if len(sc) != k:
            raise InvalidInputError(f"scores has {len(sc)} values for {k} boxes")
        kp = None if (keypoints is None or k == 0) else np.asarray(keypoints, dtype=np.float32).reshape(k, -1, 2)
        o = self.options
        # candidate pairs: (priority, track index, detection index); IoU pairs first, then centre distance
        pairs = []
        for ti, tr in enumerate(self.tracks):
            tb = tr.box
            tcx, tcy = tb[0] + tb[2] / 2, tb[1] + tb[3] / 2
            for di in range(k):
                iou = iou_xywh(tb, b[di])
                if iou >= o.iou_threshold:
                    pairs.append((1.0 + iou, ti, di))
                else:
                    d = np.hypot(b[di, 0] + b[di, 2] / 2 - tcx, b[di, 1] + b[di, 3] / 2 - tcy) / max(tb[2], 1e-6)
                    ratio = b[di, 2] / max(tb[2], 1e-6)
                    if d < o.center_dist and 0.5 < ratio < 2.0:
                        pairs.append((1.0 - d / max(o.center_dist, 1e-9), ti, di))
        pairs.sort(key=lambda p: -p[0])
        t_used, d_used = set(), {}
        for _, ti, di in pairs:
            if ti in t_used or di in d_used:
                continue
            t_used.add(ti)
            d_used[di] = ti
        out: List[Track] = []
        a = o.velocity_smoothing
        for di in range(k):
            box = (float(b[di, 0]), float(b[di, 1]), float(b[di, 2]), float(b[di, 3]))
            if di in d_used:
                tr = self.tracks[d_used[di]]
                steps = max(1, self.frame_index - tr.det_frame)
                vx = (box[0] + box[2] / 2 - tr.det_center[0]) / steps
                vy = (box[1] + box[3] / 2 - tr.det_center[1]) / steps
                tr.velocity = (a * tr.velocity[0] + (1 - a) * vx, a * tr.velocity[1] + (1 - a) * vy)
                tr.box, tr.score, tr.t = box, float(sc[di]), t
                tr.keypoints = None if kp is None else kp[di].copy()
                tr.hits += 1
                tr.missed = 0
                tr.det_center, tr.det_frame = (box[0] + box[2] / 2, box[1] + box[3] / 2), self.frame_index
            else:
                tr = Track(track_id=self._next_id, box=box, score=float(sc[di]),
                           keypoints=None if kp is None else kp[di].copy(), first_t=t, t=t,
                           det_center=(box[0] + box[2] / 2, box[1] + box[3] / 2), det_frame=self.frame_index)
                self._next_id += 1
                self.tracks.append(tr)
            tr.det_box, tr.det_keypoints, tr.confidence = box, tr.keypoints, tr.score
            tr.template = None  # taken from this frame by the caller when it re-localises (emoedge.roi)
            out.append(tr)
        matched = {id(tr) for tr in out}
        for tr in self.tracks:
            if id(tr) not in matched:
                tr.missed += 1
        self.tracks = [tr for tr in self.tracks if tr.missed <= o.max_missed]
        self._last_detect = self.frame_index
        # a tracked face the detector missed (a flicker, an occlusion, a face leaving): look again on the
        # next frame rather than N frames later; a face that is really gone expires after max_missed rounds
        self._requested = "face missed" if any(tr.missed for tr in self.tracks) else None
        self.detections += 1
        self.frame_index += 1
        return out

    def relocate(self, tracks: Sequence[Track], boxes: Any, keypoints: Any = None, confidences: Any = None,
                 t: Optional[float] = None) -> List[Track]:
        """A frame without full detection: ``tracks`` (live tracks) were re-localised to ``boxes``
        [K, 4] (x, y, w, h pixels) with ``keypoints`` [K, 6, 2] (or None: keep) and ``confidences``
        [K] (0..1). Updates their boxes and velocities (EMA of the per-frame motion); returns them."""
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if len(b) != len(tracks) or not np.isfinite(b).all():
            raise InvalidInputError(f"relocate needs {len(tracks)} finite boxes, got {b.shape}")
        a = self.options.velocity_smoothing
        for i, tr in enumerate(tracks):
            x, y, w, h = tr.box
            nb = (float(b[i, 0]), float(b[i, 1]), float(b[i, 2]), float(b[i, 3]))
            vx = nb[0] + nb[2] / 2 - (x + w / 2)
            vy = nb[1] + nb[3] / 2 - (y + h / 2)
            tr.velocity = (a * tr.velocity[0] + (1 - a) * vx, a * tr.velocity[1] + (1 - a) * vy)
            tr.box, tr.t = nb, t
            if keypoints is not None:
                tr.keypoints = np.asarray(keypoints[i], np.float32).copy()
            if confidences is not None:
                tr.confidence = float(confidences[i])
        self.frame_index += 1
        return list(tracks)

    def skip(self) -> None:
        """A frame without detection and without live tracks: only advance the frame counter."""
        self.frame_index += 1

    def predict(self, t: Optional[float] = None) -> List[Track]:
        """Advance live tracks one frame by their smoothed velocity (no detector run); returns the
        tracks that were matched at the last detection round (missed == 0), moved."""
        out = []
        for tr in self.tracks:
            if tr.missed:
                continue
            vx, vy = tr.velocity
            x, y, w, h = tr.box
            tr.box = (x + vx, y + vy, w, h)
            if tr.keypoints is not None:
                tr.keypoints = tr.keypoints + np.array([vx, vy], np.float32)
            tr.t = t
            out.append(tr)
        self.frame_index += 1
        return out
