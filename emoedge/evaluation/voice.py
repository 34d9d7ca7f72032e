"""Voice: clip-level speech-emotion accuracy on a speech .npz pack (layout of ../shared/data/speech).

Each clip is run through :meth:`emoedge.voice.VoiceModel.predict_clip` (the streaming windows, VAD gate
off), and its decision is the argmax of the mean window probability. Data classes are mapped onto the
model's classes by name (anger->angry, ...); data classes without a counterpart (e.g. EmoDB boredom) are
reported and skipped. A model class absent from the data whose canonical counterpart is present (calm when
evaluating EmoDB) has its probability folded into that class (calm -> neutral), as fusion does.
"""
from __future__ import annotations

import json
import pathlib
import sys
import time
from typing import Dict, Iterable, List, Optional

import numpy as np

from . import load_npz
from ..errors import InvalidInputError


def parse_speakers(text: Optional[str]):
    """'17-20' / '17,18,19,20' / '3,8' -> tuple of ints (None -> None)."""
    if text is None or text == "":
        return None
    out: List[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part[1:]:
                a, b = part.split("-", 1)
                out.extend(range(int(a), int(b) + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise InvalidInputError(f"--speakers {text!r}: use comma-separated ids or ranges, e.g. 17-20 or 3,8") from None
    return tuple(out)


def _map_label(name: str, model_labels) -> Optional[str]:
    from ..labels import to_canonical
    low = name.strip().lower()
    lower = {m.lower(): m for m in model_labels}
    if low in lower:
        return lower[low]
    try:
        c = to_canonical(low)
    except KeyError:
        return None
    if c is None:
        return None
    # the model class whose canonical name is c and which is spelled like it (not calm -> neutral)
    for m in model_labels:
        if m.lower() == c:
            return m
    return None


def load_pack(path):
    p = pathlib.Path(path)
    d = load_npz(p, "speech data file", "pass a speech .npz like ../shared/data/speech/*.npz")
    need = ("audio", "offsets", "labels", "label_names")
    miss = [k for k in need if k not in d.files]
    if miss:
        raise InvalidInputError(f"data file {p} lacks {miss}; expected the layout of ../shared/data/speech/README.md")
    return d


def evaluate_file(path, *, name: Optional[str] = None, precision: Optional[str] = None, manifest=None,
                  speakers: Optional[Iterable[int]] = None, limit: Optional[int] = None, model=None,
                  vad_gate: bool = False) -> dict:
    """Classification report (emoedge.evaluation.metrics) for one pack, plus skipped/folded classes."""
    from ..voice import VoiceModel
    from .metrics import classification_report
    d = load_pack(path)
    if model is None:
        model = VoiceModel(name=name, precision=precision, manifest=manifest, vad=vad_gate)
    labels = list(model.labels)
    names = [str(n) for n in d["label_names"]]
    mapped = {n: _map_label(n, labels) for n in names}
    sr = int(d["sample_rate"]) if "sample_rate" in d.files else 16000
    audio, offs, y = d["audio"], d["offsets"], d["labels"]
    spk = d["speaker"] if "speaker" in d.files else None
    idx = np.arange(len(y))
    if speakers is not None:
        if spk is None:
            raise InvalidInputError(f"--speakers given but {path} has no 'speaker' array")
        want = set(int(s) for s in speakers)
        have = set(int(s) for s in np.unique(spk))
        if not want & have:
            raise InvalidInputError(f"none of the speakers {sorted(want)} is in {path} (it has {sorted(have)})")
        idx = idx[np.isin(spk, list(want))]
    skipped: Dict[str, int] = {}
    keep: List[int] = []
    for row in idx.tolist():
        m = mapped[names[int(y[row])]]
        if m is None:
            skipped[names[int(y[row])]] = skipped.get(names[int(y[row])], 0) + 1
        else:
            keep.append(int(row))
    if limit is not None:
        keep = keep[:int(limit)]
    present = {mapped[names[int(y[i])]] for i in keep}
    from ..labels import to_canonical
    fold = {}
    for j, m in enumerate(labels):
        if m in present:
            continue
        c = to_canonical(m)
        if c is not None and c != m and c in present:
            fold[m] = c
    fold_idx = [(labels.index(a), labels.index(b)) for a, b in fold.items()]
    t0 = time.perf_counter()
    yt, yp, nwin = [], [], 0
    for i in keep:
        r = model.predict_clip(audio[offs[i]:offs[i + 1]], sr, vad_gate=vad_gate)
        yt.append(labels.index(mapped[names[int(y[i])]]))
        if r.probs is None:            # no window (only with the VAD gate on): counts as wrong
            yp.append(-1)
            continue
        nwin += len(r.windows)
        p = r.probs.astype(np.float64).copy()
        for a, b in fold_idx:
            p[b] += p[a]
            p[a] = 0.0
        yp.append(int(np.argmax(p)))
    # clips without any window (only possible with --vad-gate) have no decision: reported, not scored
    no_window = sum(1 for v in yp if v < 0)
    ok = [j for j, v in enumerate(yp) if v >= 0]
    rep = classification_report(np.array([yt[j] for j in ok], np.int64), np.array([yp[j] for j in ok], np.int64), labels)
    rep.update({
        "data": str(path), "model": model.name, "precision": model.entry.get("precision"),
        "speakers": None if speakers is None else sorted(int(s) for s in speakers),
        "skipped_classes": skipped, "unmapped_data_classes": sorted(n for n, m in mapped.items() if m is None),
        "label_mapping": {n: m for n, m in mapped.items() if m is not None}, "folded": fold,
        "decision": "argmax of the mean window probability (temperature-calibrated) per clip",
        "window_s": model.window_s, "hop_s": model.entry.get("hop_s"), "windows": nwin,
        "clips_without_window": no_window, "seconds": round(time.perf_counter() - t0, 3),
    })
    return rep


def add_arguments(p) -> None:
    p.add_argument("--data", required=True, metavar="FILE", help="speech .npz (layout of ../shared/data/speech)")
    p.add_argument("--model", default=None, help="manifest entry name (default: the task default)")
    p.add_argument("--precision", default=None, choices=("fp32", "int8"), help="pick this precision of the family")
    p.add_argument("--speakers", default=None, metavar="IDS", help="only these speaker ids, e.g. 17-20 or 3,8 (held-out speakers)")
    p.add_argument("--limit", type=int, metavar="N", default=None, help="only the first N clips (after filtering)")
    p.add_argument("--vad-gate", action="store_true", help="run windows only where the VAD detects speech")
    p.add_argument("--manifest", default=None, metavar="PATH", help="manifest.json (default: the bundled one)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def main(args) -> int:
    from .metrics import format_report
    rep = evaluate_file(args.data, name=args.model, precision=args.precision, manifest=args.manifest,
                        speakers=parse_speakers(args.speakers), limit=args.limit, vad_gate=args.vad_gate)
    if args.json:
        json.dump(rep, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(f"model {rep['model']} ({rep['precision']}) on {rep['data']}"
              + (f" speakers {rep['speakers']}" if rep["speakers"] else ""))
        print(format_report(rep))
        if rep["skipped_classes"]:
            print(f"skipped (no counterpart in the model): {rep['skipped_classes']}")
        if rep["folded"]:
            print(f"folded model classes: {rep['folded']}")
    return 0
