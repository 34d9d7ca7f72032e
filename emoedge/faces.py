"""Per-frame face API: detect (BlazeFace) -> track (optional, per stream) -> align (eye-levelled
affine crop, native kernel, all faces of a frame in one call) -> classify (expression model, one
onnxruntime call per frame) -> ``Face`` dataclasses.

    from emoedge.faces import FaceAnalyzer, FaceAnalyzerOptions
    from emoedge.tracking import FaceTracker
    with FaceAnalyzer(FaceAnalyzerOptions(max_faces=4)) as fa:
        tracker = FaceTracker()                      # one per camera/stream
        for t, frame in frames:                      # frame: uint8 BGR [H, W, 3]
            for face in fa.analyze(frame, t=t, tracker=tracker):
                print(face.track_id, face.box, face.label, face.probs)

The analyzer holds only shared, read-only state (sessions, manifest entries) and may serve many
streams/threads at once; per-stream state lives in the tracker.
"""
from __future__ import annotations

import itertools
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple, Union

import numpy as np

from .align import CropSpec, align_faces
from .detect import DetectorOptions, FaceDetector, check_frame
from .errors import InvalidInputError, ModelNotFoundError

if TYPE_CHECKING:  # pragma: no cover
    from .manifest import Manifest
    from .options import RuntimeOptions
    from .session import SessionOptions
    from .tracking import FaceTracker, Track

__all__ = ["FaceAnalyzerOptions", "Face", "Located", "FaceAnalyzer", "BASELINE_MODEL"]

BASELINE_MODEL = "fer-minixception"
_PREPROCESS_KEYS = ("color", "mean", "std", "scale", "offset", "interpolation", "border")


@dataclass
class FaceAnalyzerOptions:
    """min_score / nms_iou / max_faces / min_face_size: detector settings (see DetectorOptions;
    max_faces 0 = no limit, min_face_size in pixels). detector: detector manifest entry (None = default).
    expression_model: manifest entry name (None = the manifest default for task face_expression, else
    the fer-minixception baseline with a warning); precision: 'fp32' | 'int8' | None (the default's).
    intra_threads: onnxruntime threads per session; backend: 'cpu' | 'cuda' | 'tensorrt' (both only when
    the analyzer is made without ``runtime=``, as an Engine makes it: then the engine's RuntimeOptions apply);
    manifest: path of a manifest.json (None = the bundled one).

    Detection cadence (per stream, with a tracker; see emoedge.tracking and emoedge.roi):
    detect_every: full-frame detection at most every N frames (1 = every frame); detect_every_idle: the
    same while no face is tracked (1 = every frame: a face is found as soon as it is detectable); in between each
    track is re-localised by ``roi``: 'template' (grey template correlation, ~0.05 ms/face),
    'detector' (BlazeFace on the ROI, ~1 ms/face) or 'predict' (constant velocity, no image look).
    A full detection runs at once when a track's ROI confidence < roi_min_confidence, when less than
    roi_min_inside of a track's box is inside the frame, or when more than scene_change (fraction) of a
    1/16-scale subsample changed by > scene_change_level grey levels since the previous frame
    (scene_change >= 1 disables that check). Defaults chosen on moving-face clips (export/cadence_eval.py).

    Classification cadence (per track, with a tracker): the expression model runs on a tracked face at
    most every ``classify_every`` frames (1 = every frame); in between the face reports the probabilities of
    its last classification with that frame's time (``Face.probs_t``, so fusion ages the evidence). A face
    is classified at once when its track is new, on a full-detection frame (the cadence re-detects early
    when the ROI confidence drops, i.e. when the face's appearance changed), or when its box centre moved
    more than ``classify_max_move`` box widths or its width changed by more than ``classify_max_scale``
    (fraction) since its last classification. Default chosen on the label-paired fusion evaluation
    (export/cadence_fusion_eval.py --classify-every) and moving-face clips."""
    min_score: float = 0.5
    nms_iou: float = 0.3
    max_faces: int = 0
    min_face_size: float = 0.0
    detector: Optional[str] = None
    expression_model: Optional[str] = None
    precision: Optional[str] = None
    intra_threads: int = 1
    backend: str = "cpu"
    manifest: Optional[str] = None
    detect_every: int = 8
    detect_every_idle: int = 1
    roi: str = "template"
    roi_min_confidence: float = 0.7
    roi_min_inside: float = 0.8
    scene_change: float = 0.3
    scene_change_level: float = 32.0
    classify_every: int = 8
    classify_max_move: float = 0.25
    classify_max_scale: float = 0.15

    def validate(self) -> "FaceAnalyzerOptions":
        self.detector_options()
        if int(self.intra_threads) != self.intra_threads or self.intra_threads < 1:
            raise InvalidInputError(f"FaceAnalyzerOptions.intra_threads={self.intra_threads!r} must be an int >= 1")
        from .tracking import TrackerOptions
        TrackerOptions(detect_every=self.detect_every, detect_every_idle=self.detect_every_idle).validate()
        if self.roi not in ("template", "detector", "predict"):
            raise InvalidInputError(f"FaceAnalyzerOptions.roi={self.roi!r} must be 'template', 'detector' or 'predict'")
        if not (-1.0 <= float(self.roi_min_confidence) <= 1.0):
            raise InvalidInputError(f"FaceAnalyzerOptions.roi_min_confidence={self.roi_min_confidence!r} must be in [-1, 1]")
        if not (0.0 <= float(self.roi_min_inside) <= 1.0):
            raise InvalidInputError(f"FaceAnalyzerOptions.roi_min_inside={self.roi_min_inside!r} must be in [0, 1]")
        if not (0.0 <= float(self.scene_change)) or not (0.0 <= float(self.scene_change_level) <= 255.0):
            raise InvalidInputError(f"FaceAnalyzerOptions.scene_change={self.scene_change!r} must be >= 0 (>= 1: off) "
                                    f"and scene_change_level={self.scene_change_level!r} in [0, 255]")
        ce = self.classify_every
        if isinstance(ce, bool) or int(ce) != ce or ce < 1:
            raise InvalidInputError(f"FaceAnalyzerOptions.classify_every={ce!r} must be an int >= 1 (1 = every frame)")
        for k in ("classify_max_move", "classify_max_scale"):
            v = float(getattr(self, k))
            if not (v >= 0.0):
                raise InvalidInputError(f"FaceAnalyzerOptions.{k}={getattr(self, k)!r} must be >= 0 (box widths / fraction)")
        if self.precision not in (None, "fp32", "int8", "fp16"):
            raise InvalidInputError(f"FaceAnalyzerOptions.precision={self.precision!r} must be 'fp32', 'int8', 'fp16' or None")
        return self

    def detector_options(self) -> DetectorOptions:
        return DetectorOptions(model=self.detector, min_score=self.min_score, nms_iou=self.nms_iou,
                               max_faces=self.max_faces, min_size=self.min_face_size).validate()

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "FaceAnalyzerOptions":
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise InvalidInputError(f"unknown FaceAnalyzerOptions fields {sorted(unknown)}; valid: {sorted(cls.__dataclass_fields__)}")
        return cls(**d).validate()


@dataclass
class Located:
    """Stage 1 of FaceAnalyzer.analyze for one frame: boxes float64 [K, 4] (x, y, w, h px), scores [K],
    keypoints [K, 6, 2] px, track ids (None without a tracker), detected (full-frame detector ran),
    detect_ms (time of this stage), reason (why the detector ran: 'cadence', 'low confidence', ...),
    t (the frame's time), classify (bool [K]: the faces whose crop goes to the expression model on this
    frame; None = all; see classify_every), frame_index (the tracker's index of this frame), expressions
    (each face's classification record on its track; None without a tracker)."""
    boxes: np.ndarray
    scores: np.ndarray
    keypoints: np.ndarray
    track_ids: Optional[List[int]]
    detected: bool
    detect_ms: float
    reason: Optional[str] = None
    t: Optional[float] = None
    classify: Optional[np.ndarray] = None
    frame_index: int = 0
    expressions: "Optional[List[_Expression]]" = field(default=None, repr=False)

    @property
    def n_classify(self) -> int:
        """How many crops this frame sends to the expression model."""
        return len(self.boxes) if self.classify is None else int(np.count_nonzero(self.classify))


@dataclass
class _Expression:
    """A track's last classification (in ``Track.state['expression']``): probabilities, frame time,
    tracker frame index and box."""
    probs: Optional[np.ndarray]  # None until the frame's faces() ran
    t: Optional[float]
    frame: int
    box: Tuple[float, float, float, float]


@dataclass
class Face:
    """One face in one frame.

    box: (x, y, w, h) pixels, frame coordinates; score: detector confidence (0, 1]; keypoints:
    float32 [6, 2] pixels (right eye, left eye, nose, mouth, right ear, left ear); track_id: stable id
    from the tracker (None without one); labels: the expression model's labels, in its output order;
    probs: float32 [len(labels)], temperature-calibrated softmax (sums to 1); timing: ms per stage of
    this frame (detect_ms, align_ms, classify_ms; detect_ms is 0 on tracked-only frames);
    detected: False when the box was predicted by the tracker instead of the detector; classified: False
    when ``probs`` are the track's last classification, reused (see ``classify_every``); probs_t: time (s) of
    the frame whose crop gave ``probs`` (None when analyze() got no time).
    """
    box: Tuple[float, float, float, float]
    score: float
    keypoints: np.ndarray = field(repr=False)
    track_id: Optional[int]
    labels: Tuple[str, ...]
    probs: np.ndarray
    timing: Dict[str, float] = field(default_factory=dict, repr=False)
    detected: bool = True
    classified: bool = True
    probs_t: Optional[float] = None

    @property
    def label(self) -> str:
        """The most probable label."""
        return str(self.labels[int(np.argmax(self.probs))])

    def to_dict(self) -> Dict[str, Any]:
        return {"box": [float(v) for v in self.box], "score": float(self.score),
                "keypoints": np.asarray(self.keypoints, float).round(2).tolist(), "track_id": self.track_id,
                "label": self.label, "probs": {k: float(p) for k, p in zip(self.labels, self.probs)},
                "timing": dict(self.timing), "detected": self.detected, "classified": self.classified,
                "probs_t": self.probs_t}


class FaceAnalyzer:
    """Shared face pipeline (see module docstring). Models come from the manifest and are sha256-checked;
    a missing, corrupt or mismatching file raises ModelError/ModelNotFoundError naming the file."""

    def __init__(self, options: Optional[FaceAnalyzerOptions] = None, *, manifest: "Union[str, Manifest, None]" = None,
                 session_options: "Optional[SessionOptions]" = None, runtime: "Optional[RuntimeOptions]" = None):
        from .manifest import load_manifest
        from .session import SessionOptions, make_session
        self.options = o = (options or FaceAnalyzerOptions()).validate()
        self.manifest = load_manifest(manifest if manifest is not None else o.manifest)
        # runtime (an engine's, shared by all components) > session_options > this options' backend/threads
        if runtime is not None:
            so = runtime.session_options()
        else:
            so = session_options or SessionOptions(backend=o.backend, intra_threads=o.intra_threads)
        self.detector = FaceDetector(o.detector_options(), manifest=self.manifest, session_options=so)
        self.model_name = self._pick_expression_model()
        e = self.entry = self.manifest.entry(self.model_name)
        self.session = make_session(self.manifest.model_path(self.model_name), so)
        self.labels = tuple(e["labels"])
        pre = e.get("preprocess", {})
        w, h = (int(v) for v in pre.get("size", e["input"]["shape"][-1:] * 2))
        self.input_size = (w, h)
        self.preprocess_kwargs: Dict[str, Any] = {k: (tuple(v) if isinstance(v, list) else v) for k, v in pre.items()
                                                  if k in _PREPROCESS_KEYS}
        self.layout = pre.get("layout") or e.get("input", {}).get("layout", "nchw")
        self.input_name = e.get("input", {}).get("name") or self.session.get_inputs()[0].name
        self.output_kind = e.get("output", "logits")
        self.temperature = float(e.get("temperature", 1.0))
        if not (self.temperature > 0):
            raise InvalidInputError(f"manifest entry {self.model_name!r} has temperature {self.temperature}; must be > 0")
        # the model's own calibrated crop if it has one (written by export/face_crop_calibrate.py), else
        # the detector's calibration for FER2013 framing
        crop = e.get("crop")
        if not (isinstance(crop, dict) and "reference" in crop and "size" in crop):
            crop = self.detector.entry.get("expression_crop")
        self.crop = CropSpec.from_dict(crop)
        self._phases = itertools.count()  # cadence phases of new trackers (next() is atomic under the GIL)

    @property
    def name(self) -> str:
        """The expression model's manifest entry name (the component name of the FaceComponent interface)."""
        return self.model_name

    def _pick_expression_model(self) -> str:
        o, man = self.options, self.manifest
        if o.expression_model is not None:
            return man.find(man.entry(o.expression_model).get("task", "face_expression"), o.precision, o.expression_model)
        try:
            return man.find("face_expression", o.precision)
        except ModelNotFoundError:
            warnings.warn(f"no face_expression model in {man.path}: using the comparison baseline "
                          f"{BASELINE_MODEL!r} (fer mini-Xception, fp32 only) instead", RuntimeWarning, stacklevel=3)
            return man.find("face_expression_baseline", None, BASELINE_MODEL)

    # ------------------------------------------------------------------ pipeline
    def classify(self, crops: np.ndarray) -> np.ndarray:
        """Model inputs [N, ...] -> float32 [N, len(labels)] calibrated probabilities."""
        if len(crops) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        out = self.session.run(None, {self.input_name: crops})[0].astype(np.float64)
        logits = np.log(np.clip(out, 1e-12, None)) if self.output_kind == "probabilities" else out
        z = logits / self.temperature
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        probs: np.ndarray = (p / p.sum(axis=1, keepdims=True)).astype(np.float32)
        return probs

    def analyze(self, frame_bgr: np.ndarray, t: Optional[float] = None,
                tracker: "Optional[FaceTracker]" = None) -> List[Face]:
        """Faces in one uint8 BGR frame [H, W, 3] (or gray [H, W]). t: timestamp (s), passed to the
        tracker; tracker: a per-stream emoedge.tracking.FaceTracker (None: no track ids, the detector runs
        on every frame). With a tracker, the full-frame detector follows the detection cadence
        (``detect_every``, see emoedge.tracking) and tracks are re-localised in between (``roi``)."""
        frame = check_frame(frame_bgr, "frame_bgr")
        loc = self.locate(frame, t=t, tracker=tracker)
        t1 = time.perf_counter_ns()
        crops = self.crops(frame, loc)
        t2 = time.perf_counter_ns()
        probs = self.classify(crops)
        t3 = time.perf_counter_ns()
        return self.faces(loc, probs, align_ms=(t2 - t1) / 1e6, classify_ms=(t3 - t2) / 1e6)

    # -- the stages of analyze(), separately, so a scheduler can batch classify() across frames/streams
    def locate(self, frame: np.ndarray, t: Optional[float] = None, tracker: "Optional[FaceTracker]" = None) -> "Located":
        """Stage 1: where the faces are in a checked frame (full-frame detection or the tracker's ROI
        re-localisation, following the cadence). Updates the tracker."""
        t0 = time.perf_counter_ns()
        if tracker is None:
            rows = self.detector.detect_array(frame, checked=True)
            return Located(rows[:, :4].astype(np.float64), rows[:, 4], rows[:, 5:17].reshape(-1, 6, 2), None, True,
                           (time.perf_counter_ns() - t0) / 1e6, "no tracker", t)
        o = self.options
        reason = tracker.detection_reason
        if reason is None and o.scene_change < 1.0:
            from .roi import scene_changed
            if scene_changed(frame, tracker.scene, o.scene_change_level, o.scene_change):
                reason = "scene change"
        elif o.scene_change < 1.0:
            from .roi import scene_changed
            scene_changed(frame, tracker.scene, o.scene_change_level, o.scene_change)  # keep the previous subsample
        live = tracker.live_tracks() if reason is None else []
        if reason is None and not live:
            tracker.skip()
            return Located(np.zeros((0, 4)), np.zeros(0, np.float32), np.zeros((0, 6, 2), np.float32), [], False,
                           (time.perf_counter_ns() - t0) / 1e6, None, t, None, tracker.frame_index - 1, [])
        if reason is None:
            out = self._relocate(frame, tracker, live, t)
            if out is not None:
                b, sc, kp, tracks = out
                need, exprs = self._to_classify(tracker, tracks, b, False, t)
                return Located(b, sc, kp, [tr.track_id for tr in tracks], False, (time.perf_counter_ns() - t0) / 1e6,
                               None, t, need, tracker.frame_index - 1, exprs)
            reason = tracker.detection_reason or "roi"
        rows = self.detector.detect_array(frame, checked=True)
        boxes, scores, kps = rows[:, :4].astype(np.float64), rows[:, 4], rows[:, 5:17].reshape(-1, 6, 2)
        tracks = tracker.update(boxes, scores, kps if len(rows) else None, t=t)
        if o.roi == "template" and tracker.options.detect_every > 1:
            from .roi import take_templates
            take_templates(frame, tracks)
        need, exprs = self._to_classify(tracker, tracks, boxes, True, t)
        return Located(boxes, scores, kps, [tr.track_id for tr in tracks], True,
                       (time.perf_counter_ns() - t0) / 1e6, reason, t, need, tracker.frame_index - 1, exprs)

    def _to_classify(self, tracker: "FaceTracker", tracks: "List[Track]", boxes: np.ndarray, detected: bool,
                     t: Optional[float]) -> "Tuple[Optional[np.ndarray], List[_Expression]]":
        """Which faces to classify on this frame (the classification cadence, see FaceAnalyzerOptions;
        None = all) and each face's classification record (new for the classified ones). Decided here, at
        locate time, and recorded on each classified track at once (its
        probabilities follow in faces()), so that a later frame of the same stream located before this
        one finished (a scheduler batch) decides as if the frames had run one by one.
        Called after the tracker advanced: this frame's index is ``tracker.frame_index - 1``."""
        o = self.options
        now = tracker.frame_index - 1
        need = np.ones(len(tracks), bool)
        exprs: List[_Expression] = []
        for i, tr in enumerate(tracks):
            x, y, w, h = (float(v) for v in boxes[i])
            c = tr.state.get("expression")
            if c is not None and not detected and o.classify_every > 1 and now - c.frame < o.classify_every:
                cx, cy, cw = c.box[0] + c.box[2] / 2, c.box[1] + c.box[3] / 2, max(c.box[2], 1e-6)
                moved = math.hypot(x + w / 2 - cx, y + h / 2 - cy) / cw
                if moved <= o.classify_max_move and abs(w / cw - 1.0) <= o.classify_max_scale:
                    need[i] = False
                    exprs.append(c)
                    continue
            c = tr.state["expression"] = _Expression(None, t, now, (x, y, w, h))
            exprs.append(c)
        return (None if need.all() else need), exprs

    def _relocate(self, frame: np.ndarray, tracker: "FaceTracker", live: "List[Track]", t: Optional[float]
                  ) -> "Optional[Tuple[np.ndarray, np.ndarray, np.ndarray, List[Track]]]":
        """ROI re-localisation of the live tracks, or None when a full detection is needed instead
        (a track's confidence dropped or it is leaving the frame; the tracker records why)."""
        o = self.options
        from . import roi
        if o.roi == "predict":
            tracks = tracker.predict(t)
            boxes = np.array([tr.box for tr in tracks], np.float64).reshape(-1, 4)
            scores = np.array([tr.score for tr in tracks], np.float32)
            kps = np.stack([tr.keypoints if tr.keypoints is not None else np.zeros((6, 2), np.float32) for tr in tracks])
            return boxes, scores, kps, tracks
        if o.roi == "template":
            boxes, kps, conf = roi.relocate_template(frame, live)
        else:
            boxes, kps, conf = roi.relocate_detector(self.detector, frame, live)
        h, w = frame.shape[:2]
        for i in range(len(live)):
            if conf[i] < o.roi_min_confidence:
                tracker.request_detection("low confidence")
                return None
            if roi.inside_fraction(boxes[i], w, h) < o.roi_min_inside:
                tracker.request_detection("leaving the frame")
                return None
        tracker.relocate(live, boxes, kps, conf, t=t)
        # the score reported is the track's detector score (fusion weighs faces by it); the ROI
        # confidence is on the Track
        return boxes, np.array([tr.score for tr in live], np.float32), kps, list(live)

    def crops(self, frame: np.ndarray, loc: "Located") -> np.ndarray:
        """Stage 2: the expression model's inputs [loc.n_classify, ...] for the located faces that are
        classified on this frame (``loc.classify``; all by default), in one native call."""
        boxes, kps = loc.boxes, loc.keypoints
        if loc.classify is not None:
            if not loc.classify.any():   # nothing to classify on this frame (the usual case between classifications)
                w, h = self.input_size
                c = 1 if self.preprocess_kwargs.get("color", "gray") == "gray" else 3   # align_faces' default: gray
                return np.zeros((0, c, h, w) if self.layout == "nchw" else (0, h, w, c), np.float32)
            boxes, kps = boxes[loc.classify], kps[loc.classify]
        return align_faces(frame, boxes, kps, size=self.input_size, spec=self.crop, layout=self.layout,
                           **self.preprocess_kwargs)

    def faces(self, loc: "Located", probs: np.ndarray, align_ms: float = 0.0, classify_ms: float = 0.0) -> List[Face]:
        """Stage 4: Face results from stage 1's ``loc`` and stage 3's ``probs`` [loc.n_classify, len(labels)]
        (faces not classified on this frame get their track's last probabilities). Records each classified
        tracked face's probabilities on its Track for the classification cadence."""
        timing = {"detect_ms": loc.detect_ms if loc.detected else 0.0, "align_ms": align_ms, "classify_ms": classify_ms}
        if not loc.detected:
            timing["roi_ms"] = loc.detect_ms
        boxes, scores, kps, ids = loc.boxes, loc.scores, loc.keypoints, loc.track_ids
        n = len(boxes)
        if len(probs) != loc.n_classify:
            raise InvalidInputError(f"faces(): {len(probs)} rows of probabilities for {loc.n_classify} classified faces")
        out: List[Face] = []
        j = 0
        for i in range(n):
            box = (float(boxes[i, 0]), float(boxes[i, 1]), float(boxes[i, 2]), float(boxes[i, 3]))
            c = loc.expressions[i] if loc.expressions is not None else None
            if loc.classify is None or loc.classify[i]:
                p, pt, fresh = probs[j], loc.t, True
                j += 1
                if c is not None:
                    c.probs = p
            else:
                if c is None or c.probs is None:
                    raise InvalidInputError("faces(): the frames of a stream must finish in the order they were located "
                                            "(a reused classification is not there yet)")
                p, pt, fresh = c.probs, c.t, False
            out.append(Face(box=box, score=float(scores[i]), keypoints=np.array(kps[i], np.float32),
                            track_id=None if ids is None else ids[i], labels=self.labels, probs=p, timing=timing,
                            detected=loc.detected, classified=fresh, probs_t=pt))
        return out

    def new_tracker(self, phase: Optional[int] = None) -> "FaceTracker":
        """A fresh per-stream FaceTracker with this analyzer's detection cadence (``detect_every``,
        ``detect_every_idle``). ``phase``: the stream's offset in the cadence (see FaceTracker); None: the
        next one, so that the streams of an engine (which share this analyzer) spread their detector runs
        over the frames instead of all detecting on the same frame."""
        from .tracking import FaceTracker, TrackerOptions
        if phase is None:
            phase = next(self._phases)
        return FaceTracker(TrackerOptions(detect_every=self.options.detect_every,
                                          detect_every_idle=self.options.detect_every_idle), phase=phase)

    def close(self) -> None:
        """Release the sessions."""
        self.session = None
        self.detector.session = None

    def __enter__(self) -> "FaceAnalyzer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
