"""Face tracking across frames: greedy IoU matching with a centre-distance fallback, stable integer
track ids, and a per-track ``state`` dict that later stages (smoothing, fusion) own.

A ``FaceTracker`` belongs to one stream (camera); the engine's models are shared. Typical use::

    tracker = FaceTracker()
    for t, frame in frames:
        faces = analyzer.analyze(frame, t=t, tracker=tracker)   # faces[i].track_id is stable

Detection every N frames (``TrackerOptions.detect_every``): on frames in between, the face API
does not run the detector; ``FaceTracker.predict`` moves every live track by its smoothed velocity
(pixels per frame) and the expression model runs on those boxes. This saves the detector's time
(about 2 ms per frame on one core) at the cost of lagging fast head motion; N = 1 (the default)
detects on every frame. A track that is not matched for more than ``max_missed`` detection rounds
is dropped; its id is never reused.
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
    detection rounds a track survives unmatched; detect_every: run the detector on every N-th frame
    (1 = every frame); velocity_smoothing: EMA factor (0..1) of the box velocity used by predict()."""
    iou_threshold: float = 0.3
    center_dist: float = 0.5
    max_missed: int = 5
    detect_every: int = 1
    velocity_smoothing: float = 0.5

    def validate(self) -> "TrackerOptions":
        if not (0.0 < self.iou_threshold <= 1.0):
            raise InvalidInputError(f"TrackerOptions.iou_threshold={self.iou_threshold!r} must be in (0, 1] (default 0.3)")
        if not (self.center_dist >= 0.0):
            raise InvalidInputError(f"TrackerOptions.center_dist={self.center_dist!r} must be >= 0 (box widths)")
        if int(self.max_missed) != self.max_missed or self.max_missed < 0:
            raise InvalidInputError(f"TrackerOptions.max_missed={self.max_missed!r} must be an int >= 0")
        if int(self.detect_every) != self.detect_every or self.detect_every < 1:
            raise InvalidInputError(f"TrackerOptions.detect_every={self.detect_every!r} must be an int >= 1")
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

    def __init__(self, options: Optional[TrackerOptions] = None):
        self.options = (options or TrackerOptions()).validate()
        self.tracks: List[Track] = []
        self._next_id = 1
        self.frame_index = 0

    def reset(self) -> None:
        """Forget all tracks (ids keep increasing, so old ids are never reused)."""
        self.tracks = []
        self.frame_index = 0

    def should_detect(self) -> bool:
        """True when the detector should run on the next frame (every ``detect_every`` frames, and
        whenever there are no live tracks)."""
        return not self.tracks or self.frame_index % self.options.detect_every == 0

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
            out.append(tr)
        matched = {id(tr) for tr in out}
        for tr in self.tracks:
            if id(tr) not in matched:
                tr.missed += 1
        self.tracks = [tr for tr in self.tracks if tr.missed <= o.max_missed]
        self.frame_index += 1
        return out

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
