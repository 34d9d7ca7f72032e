"""Classification metrics (numpy only)."""
from __future__ import annotations

import numpy as np


def confusion_matrix(y_true, y_pred, n_classes: int) -> np.ndarray:
    """[n_classes, n_classes] counts, rows = true class, columns = predicted class."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def classification_report(y_true, y_pred, labels) -> dict:
    """accuracy, macro-F1 (over classes present in y_true or y_pred), per-class recall/precision/F1,
    support and the confusion matrix, as a JSON-ready dict."""
    labels = list(labels)
    n = len(labels)
    cm = confusion_matrix(y_true, y_pred, n)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(1)
    predicted = cm.sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(support > 0, tp / np.maximum(support, 1), np.nan)
        precision = np.where(predicted > 0, tp / np.maximum(predicted, 1), 0.0)
        f1 = np.where(support > 0, 2 * precision * np.nan_to_num(recall) / np.maximum(precision + np.nan_to_num(recall), 1e-12), np.nan)
    present = support > 0
    total = int(cm.sum())
    return {
        "n": total,
        "accuracy": float(tp.sum() / total) if total else float("nan"),
        "macro_f1": float(np.nanmean(f1[present])) if present.any() else float("nan"),
        "labels": labels,
        "per_class": {lab: {"recall": None if not present[i] else float(recall[i]),
                            "precision": float(precision[i]),
                            "f1": None if not present[i] else float(f1[i]),
                            "support": int(support[i])} for i, lab in enumerate(labels)},
        "confusion_matrix": cm.tolist(),
    }


def format_report(rep: dict) -> str:
    """Human-readable table of a classification_report()."""
    lines = [f"N={rep['n']}  accuracy={rep['accuracy']:.4f}  macro-F1={rep['macro_f1']:.4f}", "",
             f"{'class':>12} {'recall':>7} {'prec':>7} {'f1':>7} {'n':>6}"]
    for lab, d in rep["per_class"].items():
        r = "   -   " if d["recall"] is None else f"{d['recall']:7.3f}"
        f = "   -   " if d["f1"] is None else f"{d['f1']:7.3f}"
        lines.append(f"{lab:>12} {r} {d['precision']:7.3f} {f} {d['support']:6d}")
    return "\n".join(lines)
