"""Text emotion model: hashed n-gram featurizer (emoedge.text_features) + a linear ONNX graph.

    from emoedge.text import TextModel
    with TextModel.load() as m:                       # default text model (manifest "defaults"/"text")
        p = m.predict("i feel so happy today")         # TextPrediction
        p.label, dict(zip(p.labels, p.probs)), p.n_tokens, p.latency_ms

Input rules (documented behaviour, never a crash):
- ``str`` or UTF-8 ``bytes``; invalid UTF-8 bytes are decoded with errors='replace' and the
  replacement characters are dropped. Other types raise InvalidInputError.
- Empty, whitespace-only or control-character-only text: no evidence. The prediction has
  ``n_tokens == 0``, ``label is None`` and uniform ``probs`` (fusion should give it zero weight).
- Long text: only the first ``max_chars`` characters (4096) and then the first ``max_tokens``
  tokens (256) are used (``truncated`` is set), so a 100 kB string costs about as much as 4 kB.
- Any script: tokens are runs of Unicode word characters or single symbols (emoji, punctuation);
  long unsegmented runs (e.g. CJK) contribute their first ``max_word_chars`` characters' n-grams.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, List, Optional, Sequence, Tuple

import numpy as np

from .errors import InvalidInputError, ModelError
from .manifest import load_manifest
from .session import SessionOptions, make_session
from .text_features import N_BLOCKS, FeaturizerOptions, TextFeaturizer

if TYPE_CHECKING:  # pragma: no cover
    from .options import RuntimeOptions

TASK = "text"


@dataclass
class TextPrediction:
    """One text's prediction. ``labels``: model labels in output order; ``probs``: float32 [C],
    temperature-calibrated softmax; ``label``: argmax label (None when n_tokens == 0); ``n_tokens``:
    tokens used; ``truncated``: input was cut to the limits; ``latency_ms``: featurize + inference
    (for a batch: the batch time divided by its size)."""
    label: Optional[str]
    labels: Tuple[str, ...]
    probs: np.ndarray
    n_tokens: int
    latency_ms: float
    truncated: bool = False
    multilabel: Tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict:
        return {"label": self.label, "probs": {l: float(p) for l, p in zip(self.labels, self.probs)},
                "n_tokens": self.n_tokens, "truncated": self.truncated, "latency_ms": self.latency_ms,
                "multilabel": list(self.multilabel)}


_sessions: dict = {}
_sessions_lock = threading.Lock()


def _shared_session(path, opts: SessionOptions):
    if opts.backend == "triton":   # the Triton connection keeps its own checked sessions
        return make_session(path, opts)
    key = (str(path), opts.backend, opts.intra_threads, opts.inter_threads, opts.device_id, opts.precision)
    with _sessions_lock:
        s = _sessions.get(key)
        if s is None:
            s = _sessions[key] = make_session(path, opts)
        return s


class TextModel:
    """A text emotion model from the manifest. Thread-safe; the ORT session is shared between
    TextModel instances loading the same file with the same session options."""

    def __init__(self, *, name: str, entry: dict, session, featurizer: TextFeaturizer):
        self.name = name
        self.entry = entry
        self.labels: Tuple[str, ...] = tuple(entry["labels"])
        self.temperature = float(entry.get("temperature", 1.0))
        if not self.temperature > 0:
            raise ModelError(f"manifest entry {name!r}: temperature must be > 0, got {self.temperature}")
        th = entry.get("thresholds")
        self.thresholds = None if th is None else np.asarray(th, dtype=np.float32)
        self.featurizer = featurizer
        self._session = session
        self._n_blocks = N_BLOCKS

    @classmethod
    def load(cls, name: Optional[str] = None, precision: Optional[str] = None, *, manifest=None,
             session_options: Optional[SessionOptions] = None, runtime: "Optional[RuntimeOptions]" = None) -> "TextModel":
        """Load entry ``name`` (default: the manifest's default text model), optionally switched to
        another ``precision`` of the same family ('int8', 'fp32'). Checks the file's sha256. ``runtime``
        (an engine's RuntimeOptions) takes precedence over ``session_options``."""
        if runtime is not None:
            session_options = runtime.session_options()
        man = load_manifest(manifest)
        name = man.find(TASK, precision=precision, name=name)
        entry = man.entry(name)
        if entry.get("task") != TASK:
            raise InvalidInputError(f"manifest entry {name!r} is a {entry.get('task')!r} model, not a text model")
        for k in ("labels", "featurizer"):
            if k not in entry:
                raise ModelError(f"manifest entry {name!r} lacks {k!r}; re-run its export step ({entry.get('made_by', 'export/')})")
        path = man.model_path(name)
        sess = _shared_session(path, session_options or SessionOptions())
        return cls(name=name, entry=entry, session=sess,
                   featurizer=TextFeaturizer(FeaturizerOptions.from_dict(entry["featurizer"])))

    # context manager / close: the session is shared, so close only drops our reference
    def close(self) -> None:
        self._session = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _run(self, feats) -> Tuple[np.ndarray, np.ndarray]:
        """(calibrated probs [B, C], raw logits [B, C]) for a list of Features; rows with no features
        come out uniform (logits 0)."""
        if self._session is None:
            raise InvalidInputError(f"text model {self.name!r} is closed; load it again")
        B, C = len(feats), len(self.labels)
        out = np.full((B, C), 1.0 / C, dtype=np.float32)
        raw = np.zeros((B, C), dtype=np.float32)
        live = [i for i, f in enumerate(feats) if f.indices.size]
        if not live:
            return out, raw
        K = self._n_blocks
        if len(live) == 1:
            f = feats[live[0]]
            idx, tf, seg = f.indices, f.tf, f.blocks
        else:
            idx = np.concatenate([feats[i].indices for i in live])
            tf = np.concatenate([feats[i].tf for i in live])
            seg = np.concatenate([feats[i].blocks + r * K for r, i in enumerate(live)])
        logits = self._session.run(None, {"indices": idx, "tf": tf, "segment": seg,
                                          "n_texts": np.array([len(live)], np.int64)})[0]
        raw[live] = logits
        z = logits / np.float32(self.temperature)
        z -= z.max(1, keepdims=True)
        e = np.exp(z)
        out[live] = e / e.sum(1, keepdims=True)
        return out, raw

    def decide_multilabel(self, probs, logits) -> np.ndarray:
        """bool [B, C]: classes at or above their manifest threshold (multi-label models; thresholds
        apply to raw logits or to probs as the entry's ``thresholds_on`` says)."""
        if self.thresholds is None:
            raise InvalidInputError(f"model {self.name!r} has no per-class thresholds (it is single-label)")
        s = logits if self.entry.get("thresholds_on", "probs") == "logits" else probs
        return np.asarray(s) >= self.thresholds[None, :]

    def _pred(self, f, p, z, ms) -> TextPrediction:
        if f.n_tokens == 0 or f.indices.size == 0:
            return TextPrediction(None, self.labels, p, f.n_tokens, ms, f.truncated, ())
        ml = () if self.thresholds is None else tuple(
            l for l, on in zip(self.labels, self.decide_multilabel(p[None], z[None])[0]) if on)
        return TextPrediction(self.labels[int(np.argmax(p))], self.labels, p, f.n_tokens, ms, f.truncated, ml)

    def predict(self, text) -> TextPrediction:
        """Predict one text (str or UTF-8 bytes)."""
        t0 = time.perf_counter_ns()
        f = self.featurizer.featurize(text)
        p, z = self._run([f])
        return self._pred(f, p[0], z[0], (time.perf_counter_ns() - t0) / 1e6)

    def predict_batch(self, texts: Sequence, batch_size: int = 16) -> List[TextPrediction]:
        """Predict many texts; runs the graph on chunks of ``batch_size`` texts."""
        if isinstance(texts, (str, bytes)):
            raise InvalidInputError("predict_batch takes a sequence of texts; use predict() for one text")
        out = []
        texts = list(texts)
        for s in range(0, len(texts), max(int(batch_size), 1)):
            t0 = time.perf_counter_ns()
            chunk = texts[s:s + batch_size]
            feats = [self.featurizer.featurize(t) for t in chunk]
            probs, logits = self._run(feats)
            ms = (time.perf_counter_ns() - t0) / 1e6 / max(len(chunk), 1)
            out += [self._pred(f, p, z, ms) for f, p, z in zip(feats, probs, logits)]
        return out

    def scores(self, texts: Sequence, batch_size: int = 16) -> Tuple[np.ndarray, np.ndarray]:
        """(calibrated probs, raw logits), both float32 [len(texts), C]."""
        if isinstance(texts, (str, bytes)):
            raise InvalidInputError("scores/predict_proba take a sequence of texts; use predict() for one text")
        texts = list(texts)
        probs = np.empty((len(texts), len(self.labels)), dtype=np.float32)
        logits = np.empty_like(probs)
        for s in range(0, len(texts), batch_size):
            probs[s:s + batch_size], logits[s:s + batch_size] = self._run(
                [self.featurizer.featurize(t) for t in texts[s:s + batch_size]])
        return probs, logits

    def predict_proba(self, texts: Sequence, batch_size: int = 16) -> np.ndarray:
        """Calibrated probabilities float32 [len(texts), C]."""
        return self.scores(texts, batch_size)[0]

    def canonical_probs(self, probs) -> np.ndarray:
        """Map probs [..., C] onto emoedge.labels.CANONICAL by name (see emoedge.labels)."""
        from .labels import to_canonical_probs
        return to_canonical_probs(probs, self.labels)
