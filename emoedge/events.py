"""What a stream returns: :class:`EmotionEvent` (a *contract*), with per-face and per-modality parts.

Every event is JSON-serializable through ``to_dict()`` / ``to_json()``; probabilities are dicts over the
canonical labels (``emoedge.labels.CANONICAL``) in canonical order, times are seconds on the source clock,
latencies are milliseconds.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .labels import CANONICAL
from .errors import InvalidInputError


def probs_dict(p: Any, labels: Sequence[str] = CANONICAL) -> Dict[str, float]:
    """``{label: prob}`` for a probability vector over ``labels`` (floats rounded to 6 digits)."""
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    if p.shape[0] != len(labels):
        raise InvalidInputError(f"probability vector has {p.shape[0]} entries, labels has {len(labels)}")
    return {str(k): round(v, 6) for k, v in zip(labels, p.tolist())}  # tolist: Python floats, same rounding


def _clean(x: Any) -> Any:
    """JSON-friendly copy: numpy scalars/arrays to Python, NaN/Inf to None."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, np.ndarray):
        return _clean(x.tolist())
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return x if math.isfinite(x) else None
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def _clean_dict(d: Dict[str, Any]) -> Dict[str, Any]:
    out: Dict[str, Any] = _clean(d)
    return out


@dataclass
class FaceResult:
    """One face in a frame. ``box``: (x, y, w, h) in frame pixels; ``probs``: canonical labels -> probability
    (the expression model's calibrated output mapped by name, smoothed per track when smoothing is on);
    ``raw_probs``: the model's own labels -> calibrated probability of this frame alone."""
    box: Tuple[float, float, float, float]
    score: float
    track_id: Optional[int]
    label: str
    probs: Dict[str, float]
    raw_probs: Dict[str, float] = field(default_factory=dict)
    keypoints: Optional[List[Tuple[float, float]]] = None
    reliability: Optional[float] = None

    def to_dict(self) -> Dict[str, Any]:
        return _clean_dict({"box": list(self.box), "score": self.score, "track_id": self.track_id, "label": self.label,
                            "probs": self.probs, "raw_probs": self.raw_probs, "keypoints": self.keypoints,
                            "reliability": self.reliability})


@dataclass
class ModalityResult:
    """Latest evidence of one modality as used in the fused estimate. ``t``: time of the evidence (s);
    ``age``: event time minus ``t`` (s); ``weight``: its effective weight in the log-linear pool (base weight
    x reliability x age decay, see emoedge.fusion; not normalized, so the weights of an event need not sum
    to 1); ``probs``: canonical labels -> probability."""
    modality: str
    label: str
    probs: Dict[str, float]
    weight: float
    age: float
    t: float
    reliability: Optional[float] = None
    detail: Dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        return _clean_dict({"modality": self.modality, "label": self.label, "probs": self.probs, "weight": self.weight,
                            "age": self.age, "t": self.t, "reliability": self.reliability, "detail": self.detail})


@dataclass
class EmotionEvent:
    """The fused emotion estimate at time ``t`` (seconds on the source clock).

    Event times follow the stream clock: ``t`` is the time the stream's fusion was evaluated at, the
    latest of the triggering input's time and every earlier event's ``t``, so a stream's events never go
    back in time. ``trigger_t`` is the time of the input that triggered the event (the frame's time, the
    voice window's end, the text line's time); it is smaller than ``t`` when an input arrives late (e.g. a
    text line stamped 2.0 s pushed after audio whose voice windows reached 7.5 s gives ``t`` 7.5,
    ``trigger_t`` 2.0; the line's evidence is aged by 5.5 s).

    ``label`` is None (and ``probs`` uniform, ``confidence`` 0) until some modality has produced evidence.
    ``trigger`` says which input made the event ready: 'frame', 'audio' or 'text' (the voice windows a
    ``flush()`` finishes are 'audio' events).
    ``latency_ms``: per-stage wall time of the work done for this event (detect, align, classify, voice,
    text, fuse, total; the stream summary also has "audio": the whole push_audio of each chunk).
    ``drops``: the stream's cumulative counters (frames_dropped, audio_dropped, ...).
    ``frame``: the BGR frame of a frame-triggered event, only when requested (never serialized)."""
    t: float
    label: Optional[str]
    probs: Dict[str, float]
    confidence: float
    evidence: Dict[str, ModalityResult] = field(default_factory=dict)
    faces: List[FaceResult] = field(default_factory=list)
    latency_ms: Dict[str, float] = field(default_factory=dict)
    drops: Dict[str, int] = field(default_factory=dict)
    trigger: str = "frame"
    frame_index: Optional[int] = None
    stream_id: Optional[str] = None
    frame: Optional[np.ndarray] = field(default=None, repr=False, compare=False)
    trigger_t: Optional[float] = None

    def to_dict(self) -> Dict[str, Any]:
        """Plain dict of JSON types (no numpy), without ``frame``."""
        return _clean_dict({
            "t": self.t, "label": self.label, "probs": self.probs, "confidence": self.confidence,
            "evidence": {k: v.to_dict() for k, v in self.evidence.items()},
            "faces": [f.to_dict() for f in self.faces],
            "latency_ms": self.latency_ms, "drops": self.drops, "trigger": self.trigger,
            "frame_index": self.frame_index, "stream_id": self.stream_id, "trigger_t": self.trigger_t,
        })

    def to_json(self) -> str:
        """One line of JSON (the JSONL format of ``emoedge run --jsonl``)."""
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "EmotionEvent":
        """Inverse of :meth:`to_dict` (for reading JSONL back)."""
        ev = {k: ModalityResult(**v) for k, v in (d.get("evidence") or {}).items()}
        faces = []
        for f in d.get("faces") or []:
            f = dict(f)
            f["box"] = tuple(f["box"])
            if f.get("keypoints") is not None:
                f["keypoints"] = [tuple(k) for k in f["keypoints"]]
            faces.append(FaceResult(**f))
        return cls(t=d["t"], label=d.get("label"), probs=dict(d["probs"]), confidence=d.get("confidence") or 0.0,
                   evidence=ev, faces=faces, latency_ms=dict(d.get("latency_ms") or {}),
                   drops=dict(d.get("drops") or {}), trigger=d.get("trigger", "frame"),
                   frame_index=d.get("frame_index"), stream_id=d.get("stream_id"), trigger_t=d.get("trigger_t"))

    def summary(self) -> str:
        """One human-readable line: time, fused label, and each modality's top label and weight."""
        head = f"{self.t:7.2f}s  " + (f"{self.label:<9} {self.confidence:4.2f}" if self.label else "(no evidence)   ")
        parts = [f"{m} {r.label} {max(r.probs.values()):.2f} w{r.weight:.2f}" for m, r in sorted(self.evidence.items())]
        return head + ("  | " + ", ".join(parts) if parts else "")
