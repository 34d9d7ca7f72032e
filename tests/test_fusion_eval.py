"""The fusion evaluation's stream simulator on synthetic model outputs (no models needed): with two
independent, equally noisy modalities, fused accuracy must beat each single one."""
from __future__ import annotations

import importlib.util
import pathlib

import numpy as np

from emoedge.labels import CANONICAL

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load_eval():
    spec = importlib.util.spec_from_file_location("fusion_eval", ROOT / "export" / "fusion_eval.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def noisy_model(rng, y, k, strength):
    """Synthetic softmax outputs: true class logit + strength, Gaussian noise elsewhere."""
    logits = rng.normal(size=(len(y), k))
    logits[np.arange(len(y)), y] += strength
    p = np.exp(logits)
    return p / p.sum(1, keepdims=True)


def test_simulated_streams_fusion_beats_single_modalities():
    ev = load_eval()
    rng = np.random.default_rng(0)
    fer = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    rav = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
    fy_model = rng.integers(0, 7, size=700)
    vy_model = rng.integers(0, 8, size=300)
    face_p = noisy_model(rng, fy_model, 7, 1.5)
    voice_p = noisy_model(rng, vy_model, 8, 1.5)
    face_y = ev._canon_idx(fer)[fy_model]
    voice_y = ev._canon_idx(rav)[vy_model]
    emotions = list(range(len(CANONICAL)))
    res, targets, nf, nv = ev.simulate(face_p, fer, 1.0, face_y, voice_p, rav, 1.0, voice_y, emotions,
                                       n_frames=1, n_streams=400, seed=1)
    acc = {k: v.mean() for k, v in res.items()}
    assert acc["fused"] > max(acc["face_last"], acc["voice"]) + 0.03, acc
    assert set(np.unique(targets)) <= set(emotions) and nf > 100 and nv > 50
    lo, hi = ev.bootstrap_ci(res["fused"].astype(float), res["voice"].astype(float))
    assert lo < hi
