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
from .text_features import FeaturizerOptions, TextFeaturizer

if TYPE_CHECKING:  # pragma: no cover
    from .options import RuntimeOptions

TASK = "text"


@dataclass
class TextPrediction:
    """One text's prediction. ``labels``: model labels in output order; ``probs``: float32 [C],
    temperature-calibrated softmax; ``label``: argmax label (None when n_tokens == 0); ``n_tokens``:
    tokens used; ``truncated``: input was cut to the limits; ``latency_ms``: featurize + inference
    (for a batch: the batch time divided by its size); ``coverage``: fraction of the text's words the
    model saw in training (1.0 for models that do not report it); ``reliability``: in [0, 1], how much
    fusion should trust this line (:func:`emoedge.fusion.text_reliability`: length, coverage and
    margin; low for short, out-of-domain or undecided lines)."""
    label: Optional[str]
    labels: Tuple[str, ...]
    probs: np.ndarray
    n_tokens: int
    latency_ms: float
    truncated: bool = False
    multilabel: Tuple[str, ...] = field(default_factory=tuple)
    coverage: float = 1.0
    reliability: float = 0.0

    def as_dict(self) -> dict:
        return {"label": self.label, "probs": {l: float(p) for l, p in zip(self.labels, self.probs)},
                "n_tokens": self.n_tokens, "truncated": self.truncated, "latency_ms": self.latency_ms,
                "multilabel": list(self.multilabel), "coverage": float(self.coverage),
                "reliability": float(self.reliability)}


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
        # multi-label thresholds may live in another label space (e.g. the Ekman classes of a model whose
        # outputs split one of them): scores there are log of the probabilities mapped by name
        self.threshold_labels: Tuple[str, ...] = tuple(entry.get("thresholds_labels", self.labels))
        self._threshold_map: Optional[np.ndarray] = None  # [C, len(threshold_labels)] 0/1, built on first use
        self._ml_output = str(entry.get("thresholds_output", ""))
        try:
            self._out_index = {o.name: i for i, o in enumerate(session.get_outputs())}
        except AttributeError:  # a stand-in session without output metadata
            self._out_index = {}
        rel = (entry.get("fusion") or {}).get("reliability") or {}
        self.reliability_params = {k: float(v) for k, v in rel.items() if k in ("scale", "coverage_floor", "margin_scale")}
        self.featurizer = featurizer
        self._session = session
        self._n_blocks = featurizer.n_blocks  # segment = text * n_blocks + block

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

    def _run(self, feats, coverage: Optional[np.ndarray] = None,
             ml: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
        """(calibrated probs [B, C], raw logits [B, C]) for a list of Features; rows with no features
        come out uniform (logits 0). ``coverage`` (float32 [B], optional) receives the graph's coverage
        output where the model has one (else stays as given); ``ml`` (float32 [B, len(threshold_labels)],
        optional) receives the graph output the multi-label thresholds apply to, for models whose entry
        names one (``thresholds_on: "output"``, ``thresholds_output``)."""
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
        res = self._session.run(None, {"indices": idx, "tf": tf, "segment": seg,
                                       "n_texts": np.array([len(live)], np.int64)})
        logits = res[0]
        if coverage is not None and "coverage" in self._out_index:
            coverage[live] = res[self._out_index["coverage"]]
        if ml is not None and self._ml_output in self._out_index:
            ml[live] = res[self._out_index[self._ml_output]]
        raw[live] = logits
        z = logits / np.float32(self.temperature)
        z -= z.max(1, keepdims=True)
        e = np.exp(z)
        out[live] = e / e.sum(1, keepdims=True)
        return out, raw

    def decide_multilabel(self, probs, logits, ml=None) -> np.ndarray:
        """bool [B, len(threshold_labels)]: classes at or above their manifest threshold (multi-label
        models; the scores are chosen by the entry's ``thresholds_on``, see :meth:`multilabel_scores`)."""
        if self.thresholds is None:
            raise InvalidInputError(f"model {self.name!r} has no per-class thresholds (it is single-label)")
        return np.asarray(self.multilabel_scores(probs, logits, ml)) >= self.thresholds[None, :]

    def multilabel_scores(self, probs, logits, ml=None) -> np.ndarray:
        """[B, len(threshold_labels)] scores the thresholds apply to: raw logits ('logits'), probs
        ('probs'), a graph output named by ``thresholds_output`` ('output', passed as ``ml``; e.g. the
        GoEmotions expert's raw per-class scores) or log of the probabilities mapped by name onto
        ``threshold_labels`` ('ekman_log_probs')."""
        on = self.entry.get("thresholds_on", "probs")
        if on == "logits":
            return np.asarray(logits)
        if on == "probs":
            return np.asarray(probs)
        if on == "output":
            if ml is None:
                raise InvalidInputError(f"model {self.name!r} thresholds apply to its {self._ml_output!r} output; "
                                        "use predict()/predict_batch()/multilabel_output()")
            return np.asarray(ml)
        if self._threshold_map is None:
            from .labels import to_canonical
            m = np.zeros((len(self.labels), len(self.threshold_labels)))
            for k, lab in enumerate(self.threshold_labels):
                for j, ml in enumerate(self.labels):
                    m[j, k] = float(to_canonical(ml) == to_canonical(lab))
            self._threshold_map = m
        return np.log(np.maximum(np.asarray(probs, dtype=np.float64) @ self._threshold_map, 1e-12))

    def reliability(self, n_tokens: int, probs, coverage: float = 1.0) -> float:
        """How much fusion should trust a prediction (see :func:`emoedge.fusion.text_reliability`), with
        the parameters fitted for this model (manifest ``fusion.reliability``) where it has them."""
        from .fusion import text_reliability
        return text_reliability(n_tokens, coverage=coverage, probs=probs, labels=self.labels, **self.reliability_params)

    def _pred(self, f, p, z, ms, cov: float = 1.0, mls=None) -> TextPrediction:
        if f.n_tokens == 0 or f.indices.size == 0:
            return TextPrediction(None, self.labels, p, f.n_tokens, ms, f.truncated, (), float(cov), 0.0)
        ml = () if self.thresholds is None else tuple(
            l for l, on in zip(self.threshold_labels,
                               self.decide_multilabel(p[None], z[None], None if mls is None else mls[None])[0]) if on)
        return TextPrediction(self.labels[int(np.argmax(p))], self.labels, p, f.n_tokens, ms, f.truncated, ml,
                              float(cov), self.reliability(f.n_tokens, p, float(cov)))

    def predict(self, text) -> TextPrediction:
        """Predict one text (str or UTF-8 bytes)."""
        t0 = time.perf_counter_ns()
        f = self.featurizer.featurize(text)
        cov = np.ones(1, np.float32)
        mls = self._ml_buffer(1)
        p, z = self._run([f], cov, mls)
        return self._pred(f, p[0], z[0], (time.perf_counter_ns() - t0) / 1e6, float(cov[0]),
                          None if mls is None else mls[0])

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
            cov = np.ones(len(feats), np.float32)
            mls = self._ml_buffer(len(feats))
            probs, logits = self._run(feats, cov, mls)
            ms = (time.perf_counter_ns() - t0) / 1e6 / max(len(chunk), 1)
            out += [self._pred(f, p, z, ms, float(c), None if mls is None else mls[i])
                    for i, (f, p, z, c) in enumerate(zip(feats, probs, logits, cov))]
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

    def _ml_buffer(self, n: int) -> Optional[np.ndarray]:
        if self.thresholds is None or self.entry.get("thresholds_on") != "output":
            return None
        return np.zeros((n, len(self.threshold_labels)), np.float32)

    def multilabel_output(self, texts: Sequence, batch_size: int = 16) -> np.ndarray:
        """float32 [len(texts), len(threshold_labels)]: the scores the multi-label thresholds apply to."""
        if isinstance(texts, (str, bytes)):
            raise InvalidInputError("multilabel_output takes a sequence of texts")
        texts = list(texts)
        if self.entry.get("thresholds_on") != "output":
            probs, logits = self.scores(texts, batch_size)
            return np.asarray(self.multilabel_scores(probs, logits), np.float32)
        out = np.zeros((len(texts), len(self.threshold_labels)), np.float32)
        for s in range(0, len(texts), batch_size):
            buf = out[s:s + batch_size]
            self._run([self.featurizer.featurize(t) for t in texts[s:s + batch_size]], None, buf)
        return out

    def predict_proba(self, texts: Sequence, batch_size: int = 16) -> np.ndarray:
        """Calibrated probabilities float32 [len(texts), C]."""
        return self.scores(texts, batch_size)[0]

    def canonical_probs(self, probs) -> np.ndarray:
        """Map probs [..., C] onto emoedge.labels.CANONICAL by name (see emoedge.labels)."""
        from .labels import to_canonical_probs
        return to_canonical_probs(probs, self.labels)
