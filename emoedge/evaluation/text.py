"""Evaluate a text model on CARER (`text;label`) or GoEmotions (`text<TAB>ids<TAB>id`) files.

CARER: single-label; accuracy, macro-F1, per-class recall/precision, confusion matrix.
GoEmotions: the 28 labels are mapped onto the 7 Ekman classes (official ekman_mapping); rows are
multi-label. Reported:
- ``multilabel``: per-class binary precision/recall/F1 and their macro average (the GoEmotions paper's
  macro-F1), predicting class k when p_k >= threshold_k (thresholds from the manifest, tuned on dev
  by the export script, on raw logits or probs as the entry's ``thresholds_on`` says), and the
  exact-match accuracy of the predicted label set;
- ``single_label``: on rows with exactly one Ekman class, argmax prediction -> accuracy, macro-F1,
  per-class recall and confusion matrix (emoedge.evaluation.metrics.classification_report).
"""
from __future__ import annotations

import json
import pathlib
import sys
from typing import List, Tuple

import numpy as np

from . import read_lines
from ..errors import InvalidInputError
from .metrics import classification_report, format_report

CARER_LABELS = ("sadness", "joy", "love", "anger", "fear", "surprise")
GOEMOTIONS_LABELS = ("admiration", "amusement", "anger", "annoyance", "approval", "caring", "confusion",
                     "curiosity", "desire", "disappointment", "disapproval", "disgust", "embarrassment",
                     "excitement", "fear", "gratitude", "grief", "joy", "love", "nervousness", "optimism",
                     "pride", "realization", "relief", "remorse", "sadness", "surprise", "neutral")
EKMAN_LABELS = ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise")
EKMAN_MAPPING = {
    "anger": ("anger", "annoyance", "disapproval"),
    "disgust": ("disgust",),
    "fear": ("fear", "nervousness"),
    "joy": ("joy", "amusement", "approval", "excitement", "gratitude", "love", "optimism", "relief",
            "pride", "admiration", "desire", "caring"),
    "neutral": ("neutral",),
    "sadness": ("sadness", "disappointment", "embarrassment", "grief", "remorse"),
    "surprise": ("surprise", "realization", "confusion", "curiosity"),
}
#: GoEmotions label index -> Ekman class index.
GO_TO_EKMAN = np.array([EKMAN_LABELS.index(next(k for k, v in EKMAN_MAPPING.items() if g in v))
                        for g in GOEMOTIONS_LABELS], dtype=np.int64)


def load_carer(path) -> Tuple[List[str], np.ndarray]:
    """(texts, int64 labels in CARER_LABELS order) from a `text;label_name` file (split on the last ';')."""
    texts, ys = [], []
    p = pathlib.Path(path)
    for ln, line in enumerate(read_lines(p, "CARER data file", "pass --data path/to/val.txt ('text;label' lines)"), 1):
        if not line.strip():
            continue
        text, sep, lab = line.rpartition(";")
        lab = lab.strip()
        if not sep or lab not in CARER_LABELS:
            raise InvalidInputError(f"{p}:{ln}: expected 'text;label' with label in {CARER_LABELS}, got {line[:80]!r}")
        texts.append(text)
        ys.append(CARER_LABELS.index(lab))
    return texts, np.asarray(ys, dtype=np.int64)


def load_goemotions(path, ekman: bool = True) -> Tuple[List[str], np.ndarray]:
    """(texts, float32 multi-hot [N, 7] over EKMAN_LABELS, or [N, 28] when ekman=False) from a
    GoEmotions `text<TAB>comma-separated ids<TAB>comment id` file."""
    p = pathlib.Path(path)
    texts, rows = [], []
    for ln, line in enumerate(read_lines(p, "GoEmotions data file", "pass --data path/to/dev.tsv"), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        try:
            ids = [int(v) for v in parts[1].split(",")]
            if not ids or min(ids) < 0 or max(ids) >= len(GOEMOTIONS_LABELS):
                raise ValueError
        except (IndexError, ValueError):
            raise InvalidInputError(f"{p}:{ln}: expected 'text<TAB>ids<TAB>id' with ids in 0..27, got {line[:80]!r}") from None
        texts.append(parts[0])
        rows.append(ids)
    n_out = len(EKMAN_LABELS) if ekman else len(GOEMOTIONS_LABELS)
    y = np.zeros((len(rows), n_out), dtype=np.float32)
    for i, ids in enumerate(rows):
        y[i, GO_TO_EKMAN[ids] if ekman else ids] = 1.0
    return texts, y


def multilabel_report(y_true, probs, thresholds, labels) -> dict:
    """Per-class binary precision/recall/F1 (predict k when probs[:, k] >= thresholds[k]), their macro
    mean and the exact-match accuracy of label sets. y_true: 0/1 [N, K]; probs: [N, K]."""
    y = np.asarray(y_true) > 0.5
    pred = np.asarray(probs) >= np.asarray(thresholds)[None, :]
    tp = (y & pred).sum(0).astype(np.float64)
    fp = (~y & pred).sum(0)
    fn = (y & ~pred).sum(0)
    prec = tp / np.maximum(tp + fp, 1)
    rec = tp / np.maximum(tp + fn, 1)
    f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
    return {"n": int(y.shape[0]), "macro_f1": float(f1.mean()),
            "exact_match": float((y == pred).all(1).mean()) if y.shape[0] else float("nan"),
            "thresholds": [float(t) for t in thresholds],
            "per_class": {lab: {"precision": float(prec[k]), "recall": float(rec[k]), "f1": float(f1[k]),
                                "support": int(y[:, k].sum())} for k, lab in enumerate(labels)}}


def tune_thresholds(y_true, scores, grid=None) -> np.ndarray:
    """Per-class threshold maximising that class's binary F1 (grid search; default grid: the
    1st..99th percentiles of each class's scores)."""
    y = np.asarray(y_true) > 0.5
    p = np.asarray(scores)
    out = np.empty(p.shape[1])
    for k in range(p.shape[1]):
        g = np.percentile(p[:, k], np.linspace(1, 99.5, 200)) if grid is None else np.asarray(grid)
        pred = p[:, k][:, None] >= g[None, :]
        tp = (pred & y[:, k][:, None]).sum(0)
        f1 = 2 * tp / np.maximum(pred.sum(0) + y[:, k].sum(), 1)
        out[k] = g[int(np.argmax(f1))]
    return out


def _columns(model_labels, wanted) -> List[int]:
    """Model output column of each wanted label: the same name, else the model label with the same
    canonical name (joy -> happy, sadness -> sad, ...). Raises KeyError when one is missing."""
    from ..labels import to_canonical
    labels = list(model_labels)
    out = []
    for w in wanted:
        if w in labels:
            out.append(labels.index(w))
            continue
        c = to_canonical(w)
        if c is None or c not in labels:
            raise KeyError(w)
        out.append(labels.index(c))
    return out


def evaluate(model, data, fmt: str) -> dict:
    """Evaluate ``model`` (an emoedge.text.TextModel) on a data file; returns a JSON-ready dict.

    CARER: argmax over the model's outputs for the six CARER classes (matched by name: the same label, or
    the label with the same canonical name); a model whose outputs fold love into happy cannot separate
    them (then love rows count as right when happy wins). Models with canonical outputs also get
    ``accuracy_canonical``: argmax over all canonical classes (neutral, disgusted included; love = happy),
    what fusion sees."""
    import time
    labels = list(model.labels)
    if fmt == "carer":
        texts, y = load_carer(data)
        t0 = time.perf_counter_ns()
        probs = model.predict_proba(texts)
        el = (time.perf_counter_ns() - t0) / 1e6
        try:
            col = _columns(labels, CARER_LABELS)
        except KeyError:
            raise InvalidInputError(f"model {model.name!r} labels {labels} do not cover CARER's {CARER_LABELS}; "
                                    "pick a CARER model with --model text-carer") from None
        rep = classification_report(y, np.argmax(probs[:, col], 1), CARER_LABELS)
        from ..labels import CANONICAL, to_canonical, to_canonical_probs
        if all(to_canonical(lab) is not None for lab in labels):
            canon = to_canonical_probs(probs, labels).argmax(1)
            y7 = np.array([CANONICAL.index(to_canonical(c)) for c in CARER_LABELS])[y]
            rep["accuracy_canonical"] = float((canon == y7).mean())
    elif fmt == "goemotions":
        texts, y = load_goemotions(data)
        t0 = time.perf_counter_ns()
        probs, logits = model.scores(texts)
        el = (time.perf_counter_ns() - t0) / 1e6
        from ..labels import CANONICAL, to_canonical, to_canonical_probs
        try:
            col = _columns(labels, EKMAN_LABELS)
        except KeyError:
            raise InvalidInputError(f"model {model.name!r} labels {labels} do not cover the Ekman classes "
                                    f"{EKMAN_LABELS}; pick a GoEmotions model with --model text-goemotions-ekman") from None
        if all(to_canonical(lab) is not None for lab in labels):
            # probabilities mapped by name (several outputs of one class add up, e.g. happy + love = joy)
            cp = to_canonical_probs(probs, labels)
            p = cp[:, [CANONICAL.index(to_canonical(e)) for e in EKMAN_LABELS]]
        else:
            p = probs[:, col]
        on = model.entry.get("thresholds_on", "probs")
        if model.thresholds is None:
            s, thr = p, np.full(len(col), 0.5)
        elif on in ("logits", "probs"):
            s = (logits if on == "logits" else probs)[:, col]
            thr = model.thresholds[col].astype(np.float64)
        else:  # thresholds over their own label space (entry thresholds_labels) or a graph output
            sc = model.multilabel_output(texts)
            tcol = _columns(model.threshold_labels, EKMAN_LABELS)
            s, thr = sc[:, tcol], model.thresholds[tcol].astype(np.float64)
        rep = {"multilabel": multilabel_report(y, s, thr, EKMAN_LABELS)}
        rep["multilabel"]["thresholds_on"] = model.entry.get("thresholds_on", "probs")
        single = y.sum(1) == 1
        sl = classification_report(np.argmax(y[single], 1), np.argmax(p[single], 1), EKMAN_LABELS)
        rep["single_label"] = sl
        # top-level keys shared with the CARER report
        rep.update({"n": int(len(texts)), "accuracy": sl["accuracy"], "macro_f1": rep["multilabel"]["macro_f1"],
                    "labels": list(EKMAN_LABELS),
                    "per_class": {k: {"recall": v["recall"], "precision": v["precision"], "f1": v["f1"],
                                      "support": v["support"]} for k, v in rep["multilabel"]["per_class"].items()},
                    "confusion_matrix": sl["confusion_matrix"]})
    else:
        raise InvalidInputError(f"unknown --format {fmt!r}; choose carer or goemotions")
    rep.update({"model": model.name, "format": fmt, "data": str(data),
                "mean_ms_per_text": el / max(len(texts), 1)})
    return rep


def add_arguments(p) -> None:
    p.add_argument("--data", required=True, metavar="FILE", help="data file: CARER val.txt (text;label) or GoEmotions dev.tsv")
    p.add_argument("--format", required=True, choices=("carer", "goemotions"), help="data file format")
    p.add_argument("--model", default=None, help="manifest entry (default: the manifest's default text model, "
                   "text-canonical; text-carer and text-goemotions-ekman are the single-corpus models)")
    p.add_argument("--precision", default=None, help="model precision variant (e.g. int8, fp32)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def main(args) -> int:
    from ..text import TextModel
    with TextModel.load(args.model, precision=args.precision) as model:
        rep = evaluate(model, args.data, args.format)
    if args.json:
        print(json.dumps(rep, indent=2))
    else:
        print(f"model {rep['model']} on {rep['data']} ({rep['format']}), {rep['mean_ms_per_text']:.3f} ms/text")
        if args.format == "goemotions":
            ml = rep["multilabel"]
            print(f"multi-label macro-F1 (Ekman, per-class thresholds) = {ml['macro_f1']:.4f}  "
                  f"exact match = {ml['exact_match']:.4f}")
            print("single-label rows, argmax:")
            print(format_report(rep["single_label"]))
        else:
            print(format_report(rep))
            if "accuracy_canonical" in rep:
                print(f"canonical 7-way accuracy (neutral/disgusted also possible, love = happy) = "
                      f"{rep['accuracy_canonical']:.4f}")
    sys.stdout.flush()
    return 0
