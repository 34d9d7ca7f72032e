"""Multimodal fusion over time (face, voice, text, or custom modalities).

Method (per stream, see README "Fusion"):

1. **Calibrate and map by name.** Each piece of evidence carries the model's own label names in model
   order and a temperature ``T`` (fusion applies it): ``q = softmax(logits / T)`` or, for
   probabilities, ``q = p**(1/T) / sum(p**(1/T))``. ``q`` is mapped onto the canonical labels by
   *name* (:mod:`emoedge.labels`; e.g. calm -> neutral, mass of labels without a counterpart is
   dropped), then floored: ``c = (q_canon + eps) / (1 + K*eps)``. ``c`` is the modality's
   *calibrated output* reported in :class:`ModalityContribution`.
2. **Weight.** ``w_m = base_weight[m] * reliability_m * 0.5 ** (age_m / half_life[m])`` with
   ``age_m = t - evidence.t`` (seconds); evidence older than ``max_age[m]`` drops out (is forgotten).
   Missing modalities simply do not contribute. When several face tracks are present, the one with the
   largest weight (normally the biggest, most confidently detected face) is the stream's face evidence.
3. **Pool** (weighted log-linear): ``z = log_softmax(sum_m w_m * log c_m)``. With weights of 1 this is
   the product of the calibrated posteriors (independent evidence); weights < 1 flatten a modality.
   No usable evidence at all gives the uniform distribution.
4. **Smooth in log space over time:** ``alpha = 1 - exp(-dt / tau)``, ``s = (1 - alpha) * s_prev +
   alpha * z``, output ``softmax(s)``. ``tau = 0`` switches smoothing off. With no evidence the
   observation is uniform, so the previous state decays towards uniform with time constant tau.
   Several updates at the same ``t`` redo the step at ``t`` (the last one wins), so evidence may be
   delivered in pieces.

Steps 3-4 run in the C++ kernel ``emoedge._native.fusion_step`` (numba fallback when the extension is
unavailable). The output is always a proper distribution (finite, sums to 1).
"""
from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from ._native_loader import get_native
from .errors import InvalidInputError
from .labels import CANONICAL, to_canonical

__all__ = [
    "ModalityEvidence", "ModalityContribution", "FusedEstimate", "FusionOptions", "FusionState",
    "face_reliability", "voice_reliability", "text_reliability", "calibrate", "calibrate_partial", "fusion_step",
    "effective_log_evidence",
    "manifest_temperature", "kernel_backend", "fusion_step_reference",
]


# --------------------------------------------------------------------------------------------------
# reliability helpers


def face_reliability(box_w_px: float, det_score: float, full_px: float = 48.0) -> float:
    """Reliability in [0, 1] of a face crop: ``clip(det_score, 0, 1) * clip(box_w_px / full_px, 0, 1)``.

    ``box_w_px``: face box width in frame pixels; ``det_score``: detector confidence in [0, 1];
    ``full_px``: the width from which a face counts as fully resolved (48 px = the expression model's
    input size; smaller faces are upsampled and lose detail)."""
    w, s = float(box_w_px), float(det_score)
    if not (math.isfinite(w) and math.isfinite(s)):
        raise InvalidInputError(f"face_reliability: box_w_px={box_w_px} and det_score={det_score} must be finite")
    return float(min(max(s, 0.0), 1.0) * min(max(w / float(full_px), 0.0), 1.0))


def voice_reliability(vad_prob: float, lo: float = 0.3, hi: float = 0.8) -> float:
    """Reliability in [0, 1] of a voice window from the VAD speech probability: a linear ramp,
    0 at ``vad_prob <= lo`` (mostly non-speech), 1 at ``vad_prob >= hi``."""
    p = float(vad_prob)
    if not math.isfinite(p):
        raise InvalidInputError(f"voice_reliability: vad_prob={vad_prob} must be finite (a probability in [0, 1])")
    return float(min(max((p - lo) / (hi - lo), 0.0), 1.0))


def text_reliability(n_tokens: int, scale: float = 8.0, *, coverage: float = 1.0, probs=None,
                     labels: Sequence[str] = CANONICAL, coverage_floor: float = 0.5, margin_scale: float = 0.0) -> float:
    """Reliability in [0, 1] of a text prediction: ``length * known * decided`` where

    - ``length = 1 - exp(-n_tokens / scale)`` (1 token: 0.12, 8 tokens: 0.63, 20 tokens: 0.92);
    - ``known = clip((coverage - coverage_floor) / (1 - coverage_floor), 0, 1)``: ``coverage`` is the fraction
      of the line's words the model saw in training (out-of-domain lines, other languages, names: low);
    - ``decided = min(1, margin / margin_scale)`` with ``margin`` = the gap between the two most probable
      canonical classes of ``probs`` (over ``labels``, mapped by name); 1 when ``margin_scale`` is 0 or no
      ``probs`` are given. A line the model cannot place (a greeting) has a small margin.

    The default text model's ``margin_scale`` and ``coverage_floor`` are fitted on development streams and
    stored in its manifest entry (``fusion.reliability``); :meth:`emoedge.text.TextModel.reliability`
    applies them."""
    n = float(n_tokens)
    if not math.isfinite(n) or n < 0:
        raise InvalidInputError(f"text_reliability: n_tokens={n_tokens} must be a non-negative count")
    cov = float(coverage)
    if not (math.isfinite(cov) and 0.0 <= cov <= 1.0 + 1e-6):
        raise InvalidInputError(f"text_reliability: coverage={coverage} must be a fraction in [0, 1]")
    if not (0.0 <= float(coverage_floor) < 1.0) or not (float(margin_scale) >= 0.0) or not float(scale) > 0:
        raise InvalidInputError("text_reliability: need scale > 0, 0 <= coverage_floor < 1 and margin_scale >= 0")
    r = 1.0 - math.exp(-n / float(scale))
    r *= min(max((cov - coverage_floor) / (1.0 - coverage_floor), 0.0), 1.0)
    if probs is not None and margin_scale > 0:
        q = np.sort(calibrate(np.asarray(probs, dtype=np.float64), labels, 1.0, eps=0.0))[::-1]
        margin = float(q[0] - q[1]) if q.size > 1 else 1.0
        r *= min(max(margin / float(margin_scale), 0.0), 1.0)
    return float(r)


def manifest_temperature(entry: dict) -> float:
    """Calibration temperature of a manifest entry (``temperature`` or ``calibration.temperature``);
    1.0 when the entry has none."""
    t = entry.get("temperature")
    if t is None and isinstance(entry.get("calibration"), dict):
        t = entry["calibration"].get("temperature")
    return float(t) if t is not None else 1.0


# --------------------------------------------------------------------------------------------------
# data classes


@dataclass
class ModalityEvidence:
    """One model output to fuse.

    modality: "face" | "voice" | "text" | any custom name (base weight/half-life from FusionOptions).
    t: seconds on the source clock at which the evidence was observed (e.g. frame time, end of the
       audio window).
    probs: the model's probabilities over ``labels`` (model order; renormalised if they do not sum
       to 1), or None when ``logits`` is given.
    labels: the model's own label names in output order (mapped onto the canonical set by name).
    temperature: calibration temperature to apply (fusion applies it; 1 = none). Typically
       :func:`manifest_temperature` of the model's manifest entry.
    reliability: in [0, 1] (:func:`face_reliability`, :func:`voice_reliability`, :func:`text_reliability`).
    track_id: face track id (per-face smoothing); None for stream-level modalities.
    logits: alternative to ``probs``: raw logits over ``labels``.
    """
    modality: str
    t: float
    probs: Optional[Union[Sequence[float], np.ndarray]] = None
    labels: Sequence[str] = CANONICAL
    temperature: float = 1.0
    reliability: float = 1.0
    track_id: Optional[int] = None
    logits: Optional[Union[Sequence[float], np.ndarray]] = None

    @classmethod
    def from_manifest(cls, entry: dict, modality: str, t: float, probs, reliability: float = 1.0,
                      track_id: Optional[int] = None) -> "ModalityEvidence":
        """Evidence from a model's output with labels and temperature taken from its manifest entry."""
        return cls(modality=modality, t=t, probs=probs, labels=tuple(entry["labels"]),
                   temperature=manifest_temperature(entry), reliability=reliability, track_id=track_id)


@dataclass
class ModalityContribution:
    """What one modality contributed to a fused estimate: ``probs`` float32 [K] over the canonical
    labels (calibrated, mapped by name, floored: the modality's calibrated output), the effective
    ``weight`` (base * reliability * decay), ``age_s`` (seconds since the evidence was observed)."""
    modality: str
    probs: np.ndarray
    weight: float
    age_s: float
    reliability: float
    t: float
    track_id: Optional[int] = None

    def to_dict(self) -> dict:
        return {"modality": self.modality, "probs": [float(x) for x in self.probs], "weight": float(self.weight),
                "age_s": float(self.age_s), "reliability": float(self.reliability), "t": float(self.t),
                "track_id": None if self.track_id is None else int(self.track_id)}


@dataclass
class FusedEstimate:
    """Fused estimate at time ``t`` (seconds): ``probs`` float32 [K] over ``labels`` (sums to 1),
    ``label`` = argmax, ``confidence`` = max probability, ``contributions`` keyed by modality
    (the evidence actually pooled), ``faces``: per-face smoothed canonical probabilities of the face
    tracks that had evidence in this update (track id -> float32 [K])."""
    t: float
    label: str
    probs: np.ndarray
    confidence: float
    labels: Tuple[str, ...]
    contributions: Dict[str, ModalityContribution] = field(default_factory=dict)
    faces: Dict[int, np.ndarray] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-serializable dict."""
        return {"t": float(self.t), "label": self.label, "confidence": float(self.confidence),
                "labels": list(self.labels), "probs": [float(x) for x in self.probs],
                "contributions": {k: v.to_dict() for k, v in self.contributions.items()},
                "faces": {str(k): [float(x) for x in v] for k, v in self.faces.items()}}


@dataclass
class FusionOptions:
    """Fusion settings (all times in seconds).

    weights: base weight per modality (``default_weight`` for others). 1.0 for every modality means
        a plain product of calibrated posteriors.
    half_life_s: evidence weight halves every half-life of age (``default_half_life_s`` for others).
    max_age_s: evidence older than this drops out (``default_max_age_s`` for others).
    tau_s: stream-level smoothing time constant (0 = off).
    face_tau_s: per-face-track smoothing time constant (0 = off).
    track_max_age_s: per-face state is forgotten when a track has no evidence for this long.
    eps: probability floor added before the log (keeps one-hot inputs from vetoing other modalities).
    labels: output label set (canonical names, see emoedge.labels).
    bias: per modality, per canonical label, a log-probability offset added to that modality's
        calibrated output before pooling (fitted on development streams; see :meth:`from_manifest`).
    """
    weights: Dict[str, float] = field(default_factory=lambda: {"face": 1.0, "voice": 1.0, "text": 0.7})
    default_weight: float = 1.0
    half_life_s: Dict[str, float] = field(default_factory=lambda: {"face": 1.0, "voice": 3.0, "text": 15.0})
    default_half_life_s: float = 2.0
    max_age_s: Dict[str, float] = field(default_factory=lambda: {"face": 3.0, "voice": 8.0, "text": 45.0})
    default_max_age_s: float = 6.0
    tau_s: float = 0.5
    face_tau_s: float = 0.3
    track_max_age_s: float = 2.0
    eps: float = 1e-4
    labels: Tuple[str, ...] = CANONICAL
    bias: Dict[str, Dict[str, float]] = field(default_factory=dict)

    def validate(self) -> "FusionOptions":
        """Raise InvalidInputError naming the field, the value and the fix; returns self."""
        def nonneg(name, v, positive=False):
            ok = isinstance(v, (int, float)) and math.isfinite(v) and (v > 0 if positive else v >= 0)
            if not ok:
                raise InvalidInputError(f"FusionOptions.{name}={v!r} must be a finite number "
                                        f"{'> 0' if positive else '>= 0'}")
        for d, name, positive in ((self.weights, "weights", False), (self.half_life_s, "half_life_s", True),
                                  (self.max_age_s, "max_age_s", False)):
            if not isinstance(d, dict):
                raise InvalidInputError(f"FusionOptions.{name} must be a dict modality -> seconds/weight, got {d!r}")
            for k, v in d.items():
                nonneg(f"{name}[{k!r}]", v, positive)
        nonneg("default_weight", self.default_weight)
        nonneg("default_half_life_s", self.default_half_life_s, positive=True)
        nonneg("default_max_age_s", self.default_max_age_s)
        nonneg("tau_s", self.tau_s)
        nonneg("face_tau_s", self.face_tau_s)
        nonneg("track_max_age_s", self.track_max_age_s)
        if not (isinstance(self.eps, (int, float)) and 0 < self.eps < 1):
            raise InvalidInputError(f"FusionOptions.eps={self.eps!r} must be in (0, 1); 1e-4 is a good value")
        labels = tuple(self.labels)
        if not labels or len(set(labels)) != len(labels) or any(lab not in CANONICAL for lab in labels):
            raise InvalidInputError(f"FusionOptions.labels={self.labels!r} must be distinct canonical names from {CANONICAL}")
        if not isinstance(self.bias, dict):
            raise InvalidInputError(f"FusionOptions.bias must be a dict modality -> {{label: log offset}}, got {self.bias!r}")
        for mod, b in self.bias.items():
            if not isinstance(b, dict):
                raise InvalidInputError(f"FusionOptions.bias[{mod!r}] must be a dict label -> log offset, got {b!r}")
            for lab, v in b.items():
                if lab not in CANONICAL:
                    raise InvalidInputError(f"FusionOptions.bias[{mod!r}] has label {lab!r}; use canonical names {CANONICAL}")
                if not (isinstance(v, (int, float)) and math.isfinite(v)):
                    raise InvalidInputError(f"FusionOptions.bias[{mod!r}][{lab!r}]={v!r} must be a finite number")
        return self

    @classmethod
    def from_manifest(cls, entries: Dict[str, dict], **overrides) -> "FusionOptions":
        """Options with each modality's fitted ``weight`` and ``bias`` taken from the ``fusion`` block of
        its model's manifest entry (``entries``: modality -> manifest entry, e.g. ``{"face": ..., "voice":
        ..., "text": ...}``); modalities whose entry has no fitted block keep the defaults. ``overrides``
        are FusionOptions fields that win over everything."""
        base = cls()
        weights, bias = dict(base.weights), {}
        for mod, entry in entries.items():
            fb = (entry or {}).get("fusion")
            if not isinstance(fb, dict):
                continue
            if "weight" in fb:
                weights[mod] = float(fb["weight"])
            if fb.get("bias"):
                bias[mod] = {str(k): float(v) for k, v in fb["bias"].items()}
        kw: Dict[str, Any] = {"weights": weights, "bias": bias}
        kw.update(overrides)
        return dataclasses.replace(base, **kw).validate()

    def weight(self, modality: str) -> float:
        return float(self.weights.get(modality, self.default_weight))

    def half_life(self, modality: str) -> float:
        return float(self.half_life_s.get(modality, self.default_half_life_s))

    def max_age(self, modality: str) -> float:
        return float(self.max_age_s.get(modality, self.default_max_age_s))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["labels"] = list(self.labels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "FusionOptions":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise InvalidInputError(f"unknown FusionOptions fields {sorted(unknown)}; known: {sorted(names)}")
        d = dict(d)
        if "labels" in d:
            d["labels"] = tuple(d["labels"])
        return cls(**d).validate()


# --------------------------------------------------------------------------------------------------
# kernel dispatch and calibration


def kernel_backend() -> str:
    """'native' (C++) or 'numba': the implementation :func:`fusion_step` uses."""
    return "native" if get_native() is not None else "numba"


def fusion_step(log_probs: np.ndarray, weights: np.ndarray, state: np.ndarray, has_state: bool, alpha: float,
                out: Optional[np.ndarray] = None, mask: Optional[np.ndarray] = None) -> np.ndarray:
    """Low-level kernel: float32 ``log_probs`` [M, K] (finite), ``weights`` [M] (>= 0), ``state`` [K]
    (updated in place), ``alpha`` in [0, 1], ``mask`` None or uint8/bool [M, K] (1 = modality i models
    class j; an unmodelled class takes the row's largest modelled log-probability, so it is never
    lowered). Returns float32 [K] probabilities; see the module doc. Runs in C++ (GIL released) or,
    without the extension, in numba."""
    nat = get_native()
    if nat is not None:
        return nat.fusion_step(log_probs, weights, state, bool(has_state), float(alpha), out, mask)
    from .kernels._numba_fusion import fusion_step as nb_step
    return nb_step(log_probs, weights, state, bool(has_state), float(alpha), out, mask)


def effective_log_evidence(log_probs: np.ndarray, mask: Optional[np.ndarray] = None) -> np.ndarray:
    """float64 [M, K]: ``log_probs`` with each row's unmodelled classes (mask 0) set to that row's
    largest modelled value (rows that model nothing become all zero: no evidence). The pooling kernel
    computes ``log_softmax(weights @ effective_log_evidence(log_probs, mask))``."""
    lp = np.asarray(log_probs, dtype=np.float64)
    if mask is None:
        return lp.copy()
    mk = np.asarray(mask).astype(bool)
    r = np.where(mk, lp, -np.inf).max(1, keepdims=True) if lp.shape[1] else np.zeros((lp.shape[0], 1))
    out = np.where(mk, lp, r)
    out[~mk.any(1)] = 0.0
    return out


def fusion_step_reference(log_probs: np.ndarray, weights: np.ndarray, state: np.ndarray, has_state: bool,
                          alpha: float, out: Optional[np.ndarray] = None, mask: Optional[np.ndarray] = None) -> np.ndarray:
    """Plain numpy (float64) reference of :func:`fusion_step`, same contract; for tests and benchmarks."""
    lp = effective_log_evidence(log_probs, mask)
    w = np.asarray(weights, dtype=np.float64)
    z = w @ lp if lp.shape[0] else np.zeros(state.shape[0])
    z = z - (z.max() + np.log(np.exp(z - z.max()).sum()))
    if has_state:
        z = (1.0 - alpha) * state.astype(np.float64) + alpha * z
    z = z - (z.max() + np.log(np.exp(z - z.max()).sum()))
    np.maximum(z, -1e4, out=z)
    state[:] = z
    p = np.exp(z)
    p /= p.sum()
    if out is None:
        return p.astype(np.float32)
    out[:] = p
    return out


@functools.lru_cache(maxsize=256)
def _mapping(model_labels: Tuple[str, ...], canonical: Tuple[str, ...]) -> np.ndarray:
    """float64 [K, L] 0/1 matrix mapping a model's labels onto ``canonical`` by name."""
    m = np.zeros((len(canonical), len(model_labels)), dtype=np.float64)
    for j, lab in enumerate(model_labels):
        try:
            c = to_canonical(lab)
        except KeyError as e:
            raise InvalidInputError(str(e.args[0])) from None
        if c is not None and c in canonical:
            m[canonical.index(c), j] = 1.0
    m.setflags(write=False)
    return m


def _model_dist(probs, labels, temperature, logits) -> Tuple[np.ndarray, Tuple[str, ...]]:
    """Temperature-applied distribution over the model's own labels (validated)."""
    if type(labels) is not tuple:
        labels = tuple(labels)
    T = float(temperature)
    if not (math.isfinite(T) and T > 0):
        raise InvalidInputError(f"temperature={temperature!r} must be a finite number > 0 (1 = uncalibrated)")
    if (probs is None) == (logits is None):
        raise InvalidInputError("pass exactly one of probs= or logits=")
    x = np.asarray(probs if logits is None else logits, dtype=np.float64)
    what = "probs" if logits is None else "logits"
    if x.ndim != 1 or x.shape[0] != len(labels):
        raise InvalidInputError(f"{what} must be a 1-D vector with one value per label ({len(labels)} labels: "
                                f"{list(labels)}), got shape {x.shape}")
    s = float(x.sum())
    if not math.isfinite(s):  # any NaN/Inf makes the sum non-finite
        raise InvalidInputError(f"{what} contains NaN or Inf; check the model output")
    if logits is not None:
        z = np.exp((x - x.max()) / T)
        return z / z.sum(), labels
    if float(x.min()) < 0:
        raise InvalidInputError("probs must be >= 0 (pass raw scores as logits= instead)")
    if s <= 0:
        raise InvalidInputError("probs sum to 0; pass a probability vector (or logits=)")
    if T != 1.0:
        y = (x / x.max()) ** (1.0 / T)
        return y / y.sum(), labels
    return x / s, labels


def _bias_vector(bias, canonical: Tuple[str, ...]) -> Optional[np.ndarray]:
    if not bias:
        return None
    b = np.zeros(len(canonical))
    for lab, v in dict(bias).items():
        v = float(v)
        if not math.isfinite(v):
            raise InvalidInputError(f"bias[{lab!r}]={v!r} must be finite (a log-probability offset)")
        if lab in canonical:
            b[canonical.index(lab)] = v
        elif lab not in CANONICAL:
            raise InvalidInputError(f"bias label {lab!r} is not a canonical label {CANONICAL}")
    return b


def calibrate_partial(probs=None, labels: Sequence[str] = CANONICAL, temperature: float = 1.0, *, logits=None,
                      canonical: Sequence[str] = CANONICAL, eps: float = 1e-4,
                      bias: Optional[Dict[str, float]] = None) -> Tuple[np.ndarray, np.ndarray]:
    """(c float64 [K], modelled bool [K]): a model's output over ``canonical`` restricted to the classes
    it models. Temperature applied (``softmax(logits / T)`` or ``p**(1/T)`` renormalised), mapped by
    name (several model labels onto one class add up; labels without a counterpart are dropped),
    multiplied by ``exp(bias[class])`` (fitted per-class offsets, optional), renormalised over the
    modelled classes and floored there: ``c = (q + eps) / (1 + |S| * eps)`` on S, 0 elsewhere.
    Rows whose mass falls entirely on labels without a counterpart come out uniform over S."""
    q, labels = _model_dist(probs, labels, temperature, logits)
    if type(canonical) is not tuple:
        canonical = tuple(canonical)
    mp = _mapping(labels, canonical)
    modelled: np.ndarray = np.asarray(mp.any(1), dtype=bool)
    n = int(modelled.sum())
    qc = mp @ q
    b = _bias_vector(bias, canonical)
    if b is not None:
        qc = qc * np.exp(b - b[modelled].max()) if n else qc
    s = qc.sum()
    if n == 0:
        return np.zeros(len(canonical)), modelled
    if s <= 0:
        qc = np.where(modelled, 1.0 / n, 0.0)
    else:
        qc = qc / s
    return np.where(modelled, (qc + eps) / (1.0 + n * eps), 0.0), modelled


def calibrate(probs=None, labels: Sequence[str] = CANONICAL, temperature: float = 1.0, *, logits=None,
              canonical: Sequence[str] = CANONICAL, eps: float = 1e-4,
              bias: Optional[Dict[str, float]] = None) -> np.ndarray:
    """A model's output as a calibrated float64 distribution [K] over ``canonical``: temperature
    applied (``softmax(logits / T)`` or ``p**(1/T)`` renormalised), mapped by name, optionally
    multiplied by ``exp(bias)``, floored with ``eps`` and renormalised: ``(q + eps) / (1 + K * eps)``.
    Rows whose mass falls entirely on labels without a counterpart come out uniform. (Fusion itself
    uses :func:`calibrate_partial`, which leaves classes the model does not model out instead of
    flooring them.)"""
    q, labels = _model_dist(probs, labels, temperature, logits)
    if type(canonical) is not tuple:
        canonical = tuple(canonical)
    qc = _mapping(labels, canonical) @ q
    b = _bias_vector(bias, canonical)
    if b is not None:
        qc = qc * np.exp(b - b.max())
    s = qc.sum()
    if s <= 0:
        qc = np.full(len(canonical), 1.0 / len(canonical))
    else:
        qc = qc / s
    return (qc + eps) / (1.0 + len(canonical) * eps)


# --------------------------------------------------------------------------------------------------
# state


@dataclass
class _Stored:
    ev: ModalityEvidence
    probs: np.ndarray      # float64 [K] calibrated canonical (0 on classes the model does not model)
    logp: np.ndarray       # float32 [K] (0 on unmodelled classes; the kernel ignores them via mask)
    mask: np.ndarray       # uint8 [K]: 1 = the model models this class


_ONE = np.ones(1, dtype=np.float32)
_ONE.setflags(write=False)


def _safe_log(c: np.ndarray) -> np.ndarray:
    """float32 log of a calibrated vector; unmodelled classes (0) get 0 (the kernel's mask ignores them)."""
    out = np.zeros(c.shape, dtype=np.float32)
    pos = c > 0
    out[pos] = np.log(c[pos])
    return out


class _Smoother:
    """Log-space exponential smoother with time-aware gain and redo-at-same-t semantics."""

    def __init__(self, k: int, kernel=None):
        self.k = k
        self.kernel = kernel if kernel is not None else fusion_step
        self.reset()

    def reset(self) -> None:
        self.state = np.zeros(self.k, dtype=np.float32)
        self.has_state = False
        self.t: Optional[float] = None
        self._before: Optional[Tuple[np.ndarray, bool, float]] = None  # (state copy, has_state, alpha) before the step at t

    def step(self, t: float, log_probs: np.ndarray, weights: np.ndarray, tau: float,
             mask: Optional[np.ndarray] = None) -> np.ndarray:
        if self.t is not None and t == self.t and self._before is not None:
            st, has, alpha = self._before
            self.state[:] = st
            self.has_state = has
        else:
            dt = 0.0 if self.t is None else t - self.t
            alpha = 1.0 if (tau <= 0 or not self.has_state) else float(-math.expm1(-dt / tau))
            self._before = (self.state.copy(), self.has_state, alpha)
        if mask is None:
            out = self.kernel(log_probs, weights, self.state, self.has_state, alpha)
        else:
            out = self.kernel(log_probs, weights, self.state, self.has_state, alpha, None, mask)
        self.has_state = True
        self.t = t
        return out


def _check_time(t, what: str) -> float:
    try:
        tf = float(t)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{what}={t!r} must be a number of seconds") from None
    if not math.isfinite(tf):
        raise InvalidInputError(f"{what}={t!r} must be finite (seconds on the source clock)")
    return tf


def _same_output(a: ModalityEvidence, b: ModalityEvidence, bt: float) -> bool:
    """True when ``b`` (at time ``bt``) is the same model output as the held ``a``: same time, probabilities,
    labels and temperature (no logits), so its calibration can be reused."""
    if a.logits is not None or b.logits is not None or a.probs is None or b.probs is None:
        return False
    if float(a.t) != bt or a.temperature != b.temperature:
        return False
    pa, pb = a.probs, b.probs
    if pa is not pb:
        if not (isinstance(pa, np.ndarray) and isinstance(pb, np.ndarray)) or pa.shape != pb.shape \
                or not np.array_equal(pa, pb):
            return False
    return a.labels is b.labels or list(a.labels) == list(b.labels)


class FusionState:
    """Per-stream fusion state: latest evidence per (modality, track id), the smoothing state, and
    per-face-track smoothing. Not thread-safe (one per stream); cheap to create.

    >>> st = FusionState()
    >>> est = st.update(0.0, [ModalityEvidence("voice", 0.0, probs=[...], labels=voice_labels,
    ...                                        temperature=1.3, reliability=voice_reliability(0.9))])
    >>> est.label, est.probs, est.contributions["voice"].weight
    """

    def __init__(self, options: Optional[FusionOptions] = None, *, kernel=None):
        """``kernel``: optional replacement for :func:`fusion_step` with the same contract (e.g.
        :func:`fusion_step_reference` in tests and benchmarks); default: C++ / numba."""
        self._kernel = kernel
        self.options = (options if options is not None else FusionOptions()).validate()
        self.labels: Tuple[str, ...] = tuple(self.options.labels)
        self.k = len(self.labels)
        self._latest: Dict[Tuple[str, Optional[int]], _Stored] = {}
        self._smoother = _Smoother(self.k, kernel)
        self._faces: Dict[int, _Smoother] = {}
        self._face_seen: Dict[int, float] = {}
        self.last_t: Optional[float] = None

    # -- public -----------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget all evidence and smoothing state (timestamps may start again from any value)."""
        self._latest.clear()
        self._smoother.reset()
        self._faces.clear()
        self._face_seen.clear()
        self.last_t = None

    def update(self, t: float, evidence: Iterable[ModalityEvidence] = ()) -> FusedEstimate:
        """Add ``evidence`` (any modalities, possibly none) and return the fused estimate at ``t``
        (seconds). ``t`` must not go backwards; evidence must not be newer than ``t``. Evidence older
        than what is already held for the same (modality, track id) is ignored."""
        t = _check_time(t, "t")
        if self.last_t is not None and t < self.last_t:
            raise InvalidInputError(f"fusion timestamps must not go backwards: t={t} s after t={self.last_t} s; "
                                    "pass increasing source-clock times (or reset() the state)")
        # validate and calibrate everything first, so a bad item leaves the state untouched
        prepared = [self._prepare(ev, t) for ev in evidence]
        stored = [self._commit(s) for s in prepared]
        self.last_t = t
        self._expire(t)
        # per-face smoothing for face tracks with evidence in this update
        faces: Dict[int, np.ndarray] = {}
        for s in stored:
            if s is not None and s.ev.track_id is not None and s.ev.modality == "face":
                faces[s.ev.track_id] = self._face_step(s.ev.track_id, t, s.logp, s.mask)
        # pick the evidence to pool: per modality the entry with the largest effective weight
        chosen: Dict[str, Tuple[float, float, _Stored]] = {}
        for (mod, _tid), s in self._latest.items():
            age = t - s.ev.t
            w = self.options.weight(mod) * float(s.ev.reliability) * 0.5 ** (age / self.options.half_life(mod))
            if mod not in chosen or w > chosen[mod][0]:
                chosen[mod] = (w, age, s)
        mods = sorted(chosen)
        mask = None
        if mods:
            if len(mods) == 1:  # the common case of a frame: one modality (numpy's stack costs more than the work)
                only = chosen[mods[0]][2]
                lp, mk = only.logp[None, :], only.mask[None, :]
            else:
                lp = np.stack([chosen[m][2].logp for m in mods])
                mk = np.stack([chosen[m][2].mask for m in mods])
            w = np.array([chosen[m][0] for m in mods], dtype=np.float32)
            if not mk.all():  # some modality lacks some class: it carries no evidence about it
                mask = mk
        else:
            lp = np.zeros((0, self.k), dtype=np.float32)
            w = np.zeros(0, dtype=np.float32)
        probs = self._smoother.step(t, lp, w, self.options.tau_s, mask)
        contrib = {m: ModalityContribution(modality=m, probs=chosen[m][2].probs.astype(np.float32), weight=chosen[m][0],
                                           age_s=chosen[m][1], reliability=float(chosen[m][2].ev.reliability),
                                           t=float(chosen[m][2].ev.t), track_id=chosen[m][2].ev.track_id)
                   for m in mods}
        i = int(np.argmax(probs))
        if mask is not None:
            # A class no pooled modality models ties with the best modelled class by construction (no evidence
            # cannot lower it); for the label, break such ties in favour of a class that has evidence.
            seen = (mk[w > 0].any(0) if (w > 0).any() else mk.any(0)).astype(bool)
            top = probs >= probs[i] * (1.0 - 1e-6)
            if not seen[i] and (top & seen).any():
                i = int(np.flatnonzero(top & seen)[np.argmax(probs[top & seen])])
        return FusedEstimate(t=t, label=self.labels[i], probs=probs, confidence=float(probs[i]), labels=self.labels,
                             contributions=contrib, faces=faces)

    def update_face(self, track_id: int, t: float, probs=None, labels: Sequence[str] = CANONICAL,
                    temperature: float = 1.0, *, logits=None) -> np.ndarray:
        """Per-face smoothing only (not pooled into the stream estimate): calibrate a face model's
        output for ``track_id`` at ``t`` (seconds; must not go backwards per track) and return its
        smoothed float32 [K] distribution over the canonical labels (time constant face_tau_s)."""
        t = _check_time(t, "t")
        c, mk = calibrate_partial(probs, labels, temperature, logits=logits, canonical=self.labels,
                                  eps=self.options.eps, bias=self.options.bias.get("face"))
        self._check_track_time(track_id, t)
        return self._face_step(track_id, t, _safe_log(c), mk.astype(np.uint8))

    def drop_track(self, track_id: int) -> None:
        """Forget a face track (its evidence and its smoothing state)."""
        self._faces.pop(track_id, None)
        self._face_seen.pop(track_id, None)
        for key in [k for k in self._latest if k[1] == track_id]:
            del self._latest[key]

    @property
    def tracks(self) -> List[int]:
        """Face track ids that currently hold per-face smoothing state."""
        return sorted(self._faces)

    # -- internals --------------------------------------------------------------------------------

    def _check_track_time(self, track_id, t):
        sm = self._faces.get(track_id)
        if sm is not None and sm.t is not None and t < sm.t:
            raise InvalidInputError(f"face track {track_id}: timestamps must not go backwards: t={t} s after t={sm.t} s")

    def _face_step(self, track_id: int, t: float, logp: np.ndarray, mask: np.ndarray) -> np.ndarray:
        sm = self._faces.get(track_id)
        if sm is None:
            sm = self._faces[track_id] = _Smoother(self.k, self._kernel)
        self._face_seen[track_id] = t
        return sm.step(t, logp[None, :], _ONE, self.options.face_tau_s, None if mask.all() else mask[None, :])

    def _prepare(self, ev: ModalityEvidence, t: float) -> _Stored:
        if not isinstance(ev, ModalityEvidence):
            raise InvalidInputError(f"evidence must be ModalityEvidence objects, got {type(ev).__name__}")
        if not isinstance(ev.modality, str) or not ev.modality:
            raise InvalidInputError(f"ModalityEvidence.modality={ev.modality!r} must be a non-empty string")
        et = _check_time(ev.t, f"{ev.modality} evidence t")
        if et > t + 1e-9:
            raise InvalidInputError(f"{ev.modality} evidence at t={et} s is newer than the update time t={t} s; "
                                    "update with the latest time")
        r = float(ev.reliability)
        if not (math.isfinite(r) and 0.0 <= r <= 1.0):
            raise InvalidInputError(f"{ev.modality} reliability={ev.reliability!r} must be in [0, 1]")
        if ev.track_id is not None and ev.modality == "face":
            self._check_track_time(ev.track_id, t)
        held = self._latest.get((ev.modality, ev.track_id))
        if held is not None and _same_output(held.ev, ev, et):
            # the same model output again (a face track's reused classification, see emoedge.faces
            # classify_every): its calibration is already held; only the reliability may differ
            return _Stored(ev=ev, probs=held.probs, logp=held.logp, mask=held.mask)
        c, mk = calibrate_partial(ev.probs, ev.labels, ev.temperature, logits=ev.logits, canonical=self.labels,
                                  eps=self.options.eps, bias=self.options.bias.get(ev.modality))
        return _Stored(ev=ev, probs=c, logp=_safe_log(c), mask=mk.astype(np.uint8))

    def _commit(self, s: _Stored) -> Optional[_Stored]:
        key = (s.ev.modality, s.ev.track_id)
        old = self._latest.get(key)
        if old is not None and float(old.ev.t) > float(s.ev.t):
            return None  # older than what we hold: ignored
        self._latest[key] = s
        return s

    def _expire(self, t: float) -> None:
        for key in [k for k, s in self._latest.items() if t - s.ev.t > self.options.max_age(k[0])]:
            del self._latest[key]
        for tid in [tid for tid, seen in self._face_seen.items() if t - seen > self.options.track_max_age_s]:
            self._faces.pop(tid, None)
            self._face_seen.pop(tid, None)
