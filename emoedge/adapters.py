"""Adapters between the components and fusion: a component's observations (faces, voice windows, text
predictions; see :mod:`emoedge.components`) become :class:`~emoedge.fusion.ModalityEvidence` with a
reliability, and a :class:`~emoedge.fusion.FusedEstimate` becomes an :class:`~emoedge.events.EmotionEvent`.

Component outputs are calibrated probabilities already (temperature applied by the face/voice/text
pipelines), so every evidence here has temperature 1; fusion maps labels onto the canonical set by name.
"""
from __future__ import annotations

import math
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from . import fusion as F
from .components import FaceObservation, TextObservation, VoiceObservation
from .events import EmotionEvent, FaceResult, ModalityResult, probs_dict
from .labels import CANONICAL

__all__ = ["face_evidence", "face_timing", "voice_evidence", "text_evidence", "event_from_estimate"]

_CANON = list(CANONICAL)


def face_evidence(faces: Sequence[FaceObservation], t: float) -> Tuple[List[FaceResult], List[F.ModalityEvidence]]:
    """(pending FaceResults, ModalityEvidence per face) for one frame's faces. Fusion pools the most
    reliable face track (largest, most confidently detected) and smooths every track; the FaceResults get
    their label and canonical probabilities in :func:`event_from_estimate`. A face whose probabilities were
    reused from an earlier frame (``probs_t`` < ``t``, the classification cadence of emoedge.faces) gives
    evidence timed at ``probs_t``, so fusion weighs it by its real age."""
    out, evs = [], []
    for f in faces:
        labels = list(f.labels)
        probs = np.asarray(f.probs, dtype=np.float64)
        box = (float(f.box[0]), float(f.box[1]), float(f.box[2]), float(f.box[3]))
        score = float(f.score)
        tid = None if f.track_id is None else int(f.track_id)
        rel = float(F.face_reliability(box[2], score))
        pt = getattr(f, "probs_t", None)
        et = t if pt is None else min(float(pt), t)
        evs.append(F.ModalityEvidence(modality="face", t=et, probs=probs, labels=labels, temperature=1.0,
                                      reliability=rel, track_id=tid))
        out.append(FaceResult(box=box, score=score, track_id=tid, label="", probs={},
                              raw_probs=probs_dict(probs, labels), keypoints=_kps(f.keypoints), reliability=rel))
    return out, evs


def face_timing(faces: Sequence[FaceObservation], analyze_ms: float) -> Dict[str, float]:
    """Per-stage ms of one analyze() call: the pipeline's own timing (detect/align/classify, shared by
    all faces of the frame; ``_ms`` suffixes dropped) or, for a frame without faces, all of it as detection."""
    tm: Optional[Mapping[str, float]] = None
    for f in faces:
        tm = f.timing
        if tm:
            break
    if not tm:
        return {"detect": analyze_ms}
    return {k[:-3] if k.endswith("_ms") else k: float(v) for k, v in tm.items()}


def voice_evidence(ve: VoiceObservation) -> Tuple[F.ModalityEvidence, Dict[str, float]]:
    """(evidence, latency) of one voice window; a NaN ``vad_prob`` (no VAD) takes the window as speech."""
    vad = float(ve.vad_prob)
    rel = F.voice_reliability(vad) if math.isfinite(vad) else 1.0
    ev = F.ModalityEvidence(modality="voice", t=float(ve.t_end), probs=np.asarray(ve.probs, dtype=np.float64),
                            labels=list(ve.labels), temperature=1.0, reliability=float(rel), track_id=None)
    lat = {} if ve.latency_ms is None else {"voice": float(ve.latency_ms)}
    return ev, lat


def text_evidence(pred: TextObservation, t: float) -> Optional[F.ModalityEvidence]:
    """Evidence of one text prediction at ``t``; None when the model could read nothing (0 tokens)."""
    n_tok = int(pred.n_tokens)
    if n_tok == 0:  # e.g. only punctuation
        return None
    # the model's own reliability (length, word coverage, margin; emoedge.text.TextModel.reliability) where
    # it provides one, else the length-only default
    rel = getattr(pred, "reliability", None)
    rel = float(F.text_reliability(n_tok)) if rel is None else float(rel)
    return F.ModalityEvidence(modality="text", t=t, probs=np.asarray(pred.probs, dtype=np.float64),
                              labels=list(pred.labels), temperature=1.0, reliability=rel, track_id=None)


def event_from_estimate(est: F.FusedEstimate, *, t: float, trigger: str, faces: List[FaceResult],
                        latency: Mapping[str, float], drops: Mapping[str, int], frame_index: Optional[int],
                        stream_id: Optional[str]) -> EmotionEvent:
    """EmotionEvent from a fused estimate; ``faces`` (FaceResults of this frame) get their per-track
    smoothed probabilities from the estimate (an untracked face: its own calibrated output, mapped by name)."""
    evidence = {}
    for m, c in est.contributions.items():
        cp = np.asarray(c.probs, dtype=np.float64)
        detail: Dict[str, object] = {} if c.track_id is None else {"track_id": int(c.track_id)}
        evidence[m] = ModalityResult(modality=m, label=_CANON[int(np.argmax(cp))], probs=probs_dict(cp),
                                     weight=round(float(c.weight), 6), age=round(float(c.age_s), 6), t=float(c.t),
                                     reliability=round(float(c.reliability), 6), detail=detail)
    for f in faces:
        fp = est.faces.get(f.track_id) if f.track_id is not None else None
        if fp is None:
            fp = F.calibrate(list(f.raw_probs.values()), list(f.raw_probs), 1.0)
        fp = np.asarray(fp, dtype=np.float64)
        f.probs, f.label = probs_dict(fp), _CANON[int(np.argmax(fp))]
    label: Optional[str]
    if not evidence:
        probs = probs_dict(np.full(len(CANONICAL), 1.0 / len(CANONICAL)))
        label, conf = None, 0.0
    else:
        p = np.asarray(est.probs, dtype=np.float64)
        probs, label, conf = probs_dict(p), est.label, round(float(est.confidence), 6)
    return EmotionEvent(t=float(t), label=label, probs=probs, confidence=conf, evidence=evidence, faces=faces,
                        latency_ms={k: round(float(v), 4) for k, v in latency.items()}, drops=dict(drops),
                        trigger=trigger, frame_index=frame_index, stream_id=stream_id)


def _kps(k: object) -> Optional[List[Tuple[float, float]]]:
    if k is None:
        return None
    a = np.asarray(k, dtype=np.float64).reshape(-1, 2)
    return [(x, y) for x, y in a.tolist()]   # tolist: Python floats in one call
