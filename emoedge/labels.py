"""Label names: every model declares its own labels (in output order) in the manifest; they are
mapped onto the canonical set by *name*, never by position.

Canonical set (fusion output): neutral, happy, sad, angry, fearful, disgusted, surprised.
Decisions for labels without a direct counterpart (documented in the README):
- ``calm`` (RAVDESS) -> neutral for fusion: a low-arousal, valence-neutral state; the voice model still
  predicts it and reports it in its own evidence.
- ``love`` (CARER text) -> happy: positive valence; CARER's love examples are affectionate joy.
- ``boredom`` (EmoDB), ``contempt`` (FER+), ``unknown``/``NF`` -> no counterpart: their probability mass
  is dropped before fusion and the remainder renormalized.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

CANONICAL = ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")

SYNONYMS = {
    "neutral": "neutral", "calm": "neutral",
    "happy": "happy", "happiness": "happy", "joy": "happy", "love": "happy",
    "sad": "sad", "sadness": "sad",
    "angry": "angry", "anger": "angry",
    "fearful": "fearful", "fear": "fearful",
    "disgusted": "disgusted", "disgust": "disgusted",
    "surprised": "surprised", "surprise": "surprised",
    "boredom": None, "contempt": None, "unknown": None, "nf": None,
}


def to_canonical(label: str) -> Optional[str]:
    """Canonical name for a model/corpus label, or None when it has no counterpart.
    Raises KeyError for a label that is not known at all (so typos are not silently dropped)."""
    key = str(label).strip().lower()
    if key not in SYNONYMS:
        raise KeyError(f"label {label!r} has no mapping onto the canonical set {CANONICAL}; "
                       "add it to emoedge.labels.SYNONYMS")
    return SYNONYMS[key]


def mapping_matrix(model_labels: Sequence[str], canonical: Sequence[str] = CANONICAL) -> np.ndarray:
    """float32 [len(canonical), len(model_labels)] 0/1 matrix M with canonical_probs ~ M @ model_probs
    (before renormalisation). Labels without a counterpart have an all-zero column."""
    m = np.zeros((len(canonical), len(model_labels)), dtype=np.float32)
    for j, lab in enumerate(model_labels):
        c = to_canonical(lab)
        if c is not None:
            m[list(canonical).index(c), j] = 1.0
    return m


def to_canonical_probs(probs: Any, model_labels: Sequence[str]) -> np.ndarray:
    """Map a model's probability vector(s) [..., len(model_labels)] onto CANONICAL by name and
    renormalise; rows whose mass all falls on unmapped labels come out uniform."""
    p = np.asarray(probs, dtype=np.float64)
    out = p @ mapping_matrix(model_labels).T.astype(np.float64)
    s = out.sum(-1, keepdims=True)
    uniform = np.full_like(out, 1.0 / out.shape[-1])
    res: np.ndarray = np.where(s > 0, out / np.where(s > 0, s, 1.0), uniform)
    return res
