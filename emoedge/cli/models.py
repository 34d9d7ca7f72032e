"""`emoedge models`: the models bundled with this install (from the manifest): name, task, precision, size on
disk, labels in output order, and the measured metrics recorded with them (split, accuracy, macro-F1, N).
A ``*`` marks the default model of its task."""
from __future__ import annotations

import json
import pathlib
from typing import Any, Dict

# metric keys shown, in this order, with their display names
_SHOWN = (("accuracy", "accuracy"), ("macro_f1", "macro-F1"), ("exact_match", "exact match"),
          ("single_label_accuracy", "single-label accuracy"))


def _metric_rows(metrics) -> list:
    """[{split, accuracy, macro_f1, ..., n}] from a manifest ``metrics`` field (a list of dicts with 'split',
    or a dict split -> dict)."""
    if isinstance(metrics, dict):
        items = [(k, v) for k, v in metrics.items() if isinstance(v, dict)]
    elif isinstance(metrics, list):
        items = [(m.get("split", "?"), m) for m in metrics if isinstance(m, dict)]
    else:
        return []
    out = []
    for split, m in items:
        r: Dict[str, Any] = {"split": str(m.get("split") or split)}
        for k, _ in _SHOWN:
            if isinstance(m.get(k), (int, float)):
                r[k] = float(m[k])
        if isinstance(m.get("n"), int):
            r["n"] = m["n"]
        if len(r) > 1:
            out.append(r)
    return out


def collect(manifest=None) -> list:
    """One dict per bundled model: name, task, family, precision, default, file, bytes, present, labels, metrics."""
    from ..manifest import load_manifest
    m = load_manifest(manifest)
    defaults = set((m.data.get("defaults") or {}).values()) if hasattr(m, "data") else set()
    rows = []
    for name in m.names():
        e = m.entry(name)
        path = pathlib.Path(m.path).parent / str(e.get("file", ""))
        present = path.is_file()
        labels = e.get("labels")
        rows.append({"name": name, "task": e.get("task"), "family": e.get("family"), "precision": e.get("precision"),
                     "default": name in defaults, "file": e.get("file"),
                     "bytes": path.stat().st_size if present else e.get("bytes"), "present": present,
                     "labels": list(labels) if isinstance(labels, (list, tuple)) else None,
                     "metrics": _metric_rows(e.get("metrics"))})
    return rows


def format_models(rows) -> str:
    lines = [f"{'model':<24} {'task':<26} {'precision':<9} {'size':>8}  labels (output order)"]
    for r in rows:
        size = f"{r['bytes'] / 1e6:.2f} MB" if r["bytes"] else "?"
        if not r["present"]:
            size += " MISSING"
        name = r["name"] + (" *" if r["default"] else "")
        lines.append(f"{name:<24} {str(r['task']):<26} {str(r['precision']):<9} {size:>8}  "
                     f"{', '.join(r['labels']) if r['labels'] else '-'}")
        for mt in r["metrics"]:
            vals = ", ".join(f"{disp} {mt[k]:.4f}" for k, disp in _SHOWN if k in mt)
            n = f" (n={mt['n']})" if "n" in mt else ""
            lines.append(f"{'':<26}{mt['split']}: {vals}{n}")
    lines.append("* = default model of its task; metrics as recorded in the manifest when the model was exported")
    return "\n".join(lines)


def _main(args) -> int:
    rows = collect(args.manifest)
    if args.task:
        rows = [r for r in rows if str(r["task"]).startswith(args.task)]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(format_models(rows))
    return 0


def register(sub) -> None:
    p = sub.add_parser("models", help="list the bundled models: task, precision, size, labels, measured metrics",
                       description=__doc__)
    p.add_argument("--task", default=None, help="only models whose task starts with this (face, voice, text, vad)")
    p.add_argument("--json", action="store_true", help="print JSON (one object per model)")
    p.add_argument("--manifest", default=None, metavar="PATH", help="a manifest.json other than the bundled one")
    p.set_defaults(func=_main)
