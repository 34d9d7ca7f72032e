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

#: actor-/speaker-grouped cross-validation folds used to choose the voice recipe (export/voice_data.py
#: trains fold k's model on every other speaker of both corpora). RAVDESS fold k: actors k+1, k+6, k+11,
#: k+16 (2 male + 2 female); EmoDB: its 8 released speakers in 5 groups.
CV_FOLDS = {"ravdess": ((1, 6, 11, 16), (2, 7, 12, 17), (3, 8, 13, 18), (4, 9, 14, 19), (5, 10, 15, 20)),
            "emodb": ((3, 8), (9, 10), (11, 12), (13,), (14,))}


def pack_corpus(d, path) -> Optional[str]:
    """'ravdess' / 'emodb' for the project's speech packs (by file name, else by label names), else None."""
    name = pathlib.Path(path).name.lower()
    for c in CV_FOLDS:
        if c in name:
            return c
    names = {str(n).lower() for n in d["label_names"]}
    if "calm" in names and "surprised" in names:
        return "ravdess"
    if "boredom" in names:
        return "emodb"
    return None


def parse_folds(text: Optional[str], d=None, path=None):
    """'auto' -> the CV_FOLDS groups of the pack's corpus; '1,6,11,16/2,7,12,17/...' -> explicit groups."""
    if text is None:
        return None
    if str(text).strip().lower() in ("", "auto"):
        c = None if d is None else pack_corpus(d, path)
        if c is None:
            raise InvalidInputError(f"--folds auto: {path} is not a RAVDESS or EmoDB pack; give the groups "
                                    "explicitly, e.g. --folds 1,2/3,4/5,6")
        return CV_FOLDS[c]
    groups = tuple(parse_speakers(g) for g in str(text).split("/") if g.strip())
    if len(groups) < 2 or any(not g for g in groups):
        raise InvalidInputError(f"--folds {text!r}: give 'auto' or at least two speaker groups separated by '/', "
                                "e.g. 1-4/5-8")
    seen = [s for g in groups for s in g]
    if len(set(seen)) != len(seen):
        raise InvalidInputError(f"--folds {text!r}: a speaker appears in more than one group")
    return groups


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
                  vad_gate: bool = False, crop_s: Optional[float] = None, data=None) -> dict:
    """Classification report (emoedge.evaluation.metrics) for one pack, plus skipped/folded classes.
    ``crop_s``: score only the centre ``crop_s`` seconds of each clip (short-utterance evaluation; a clip
    already shorter is used whole). ``data``: the loaded pack (saves re-reading it)."""
    from ..voice import VoiceModel
    from .metrics import classification_report
    if crop_s is not None and not (isinstance(crop_s, (int, float)) and 0 < crop_s < 1e4):
        raise InvalidInputError(f"--crop {crop_s!r}: use a positive number of seconds, e.g. 1.0")
    d = load_pack(path) if data is None else data
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
    n_crop = None if crop_s is None else int(round(crop_s * sr))
    for i in keep:
        x = audio[offs[i]:offs[i + 1]]
        if n_crop is not None and len(x) > n_crop:
            s0 = (len(x) - n_crop) // 2
            x = x[s0:s0 + n_crop]
        r = model.predict_clip(x, sr, vad_gate=vad_gate)
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
        "crop_s": crop_s,
    })
    return rep


def trained_speakers(entry: dict, corpus: Optional[str]):
    """Speaker ids of ``corpus`` the manifest entry says it was trained on (None: not recorded)."""
    ts = entry.get("trained_speakers")
    if not isinstance(ts, dict) or corpus is None or corpus not in ts:
        return None
    return set(int(s) for s in ts[corpus])


def comparison_speaker_sets(entry: dict) -> List[dict]:
    """Speaker sets to compare variants of a voice model on (FP16 vs FP32, GPU vs CPU): the held-out sets named
    in the entry's metrics ({key, file, speakers}). A final fit on every speaker (metrics = its recipe's CV) has
    none; it gets RAVDESS actors 17-20 and EmoDB 03/08 with a ``note`` that they were trained on, so the numbers
    compare the variants only."""
    mets = entry.get("metrics") or {}
    sets = [{"key": k, "file": v["file"], "speakers": [int(x) for x in v["speakers"]]}
            for k, v in sorted(mets.items()) if isinstance(v, dict) and v.get("file") and v.get("speakers")]
    if not sets and mets.get("cv"):
        note = ("speakers the model trained on (final fit on every speaker): compares variants only; "
                "the model's accuracy is its cross-validation (metrics.cv)")
        sets = [{"key": "ravdess_trained_17-20", "file": "ravdess_speech_actors01-20_16k.npz",
                 "speakers": [17, 18, 19, 20], "note": note},
                {"key": "emodb_trained_03-08", "file": "emodb_speakers_no15-16_16k.npz", "speakers": [3, 8],
                 "note": note}]
    return sets


def evaluate_folds(path, folds, *, name: Optional[str] = None, precision: Optional[str] = None, manifest=None,
                   fold_models: Optional[str] = None, crop_s: Optional[float] = None, vad_gate: bool = False,
                   limit: Optional[int] = None) -> dict:
    """Per speaker-group accuracy, mean and spread over the groups.

    ``fold_models``: manifest entry names with ``{k}`` (e.g. ``voice-cv-fold{k}-fp32``): group k is scored
    with its own model, trained without that group (export/voice_cv.py), which reproduces the recipe's
    cross-validation numbers: every score is out-of-fold. Without it one model scores every group; a group
    is marked ``out_of_fold`` only when the manifest entry's ``trained_speakers`` shows none of its
    speakers was trained on (the summary counts only those)."""
    from ..voice import VoiceModel
    d = load_pack(path)
    corpus = pack_corpus(d, path)
    if not isinstance(folds, (list, tuple)):
        folds = parse_folds(folds, d, path)
    if fold_models is not None and "{k}" not in fold_models:
        raise InvalidInputError(f"--fold-models {fold_models!r} must contain {{k}} (the fold index), "
                                "e.g. voice-cv-fold{k}-fp32")
    single: Optional[VoiceModel] = None
    if fold_models is None:
        single = VoiceModel(name=name, precision=precision, manifest=manifest, vad=vad_gate)
    per = []
    labels: List[str] = []
    for k, group in enumerate(folds):
        if group is None:           # a fold left out by the caller (e.g. its model is not trained yet)
            continue
        if single is not None:
            model = single
        else:
            assert fold_models is not None
            model = VoiceModel(name=fold_models.format(k=k), manifest=manifest, vad=vad_gate)
        labels = list(model.labels)
        rep = evaluate_file(path, model=model, speakers=group, crop_s=crop_s, vad_gate=vad_gate, limit=limit,
                            data=d)
        ts = trained_speakers(model.entry, corpus)
        if ts is None:
            oof = None          # unknown: the entry does not record its training speakers
        else:
            oof = not (ts & set(group))
        per.append({"fold": k, "speakers": list(group), "model": model.name, "n": rep["n"],
                    "accuracy": rep["accuracy"], "macro_f1": rep["macro_f1"], "out_of_fold": oof,
                    "confusion_matrix": rep["confusion_matrix"]})
    scored = [f for f in per if f["out_of_fold"]] if fold_models is None else per
    acc = np.array([f["accuracy"] for f in scored], np.float64)
    n = np.array([f["n"] for f in scored], np.float64)
    summary = {
        "data": str(path), "corpus": corpus, "crop_s": crop_s, "folds": per,
        "labels": labels,
        "mode": ("per-fold models (each group scored by the model trained without it: out-of-fold)"
                 if fold_models is not None else
                 "one model scored per group; summary over the groups it was not trained on (out_of_fold)"),
        "n_folds_summarised": int(len(scored)),
        "mean_accuracy": float(acc.mean()) if len(acc) else None,
        "std_accuracy": float(acc.std(ddof=1)) if len(acc) > 1 else None,
        "min_accuracy": float(acc.min()) if len(acc) else None,
        "max_accuracy": float(acc.max()) if len(acc) else None,
        "pooled_accuracy": float((acc * n).sum() / n.sum()) if len(acc) else None,
    }
    return summary


def format_folds(rep: dict) -> str:
    lines = [f"{rep['mode']}", f"{'fold':>4} {'speakers':<16} {'model':<24} {'n':>4} {'acc':>7} {'F1':>7}  out-of-fold"]
    for f in rep["folds"]:
        oof = {True: "yes", False: "NO (trained on)", None: "unknown"}[f["out_of_fold"]]
        lines.append(f"{f['fold']:>4} {','.join(map(str, f['speakers'])):<16} {f['model']:<24} {f['n']:>4} "
                     f"{f['accuracy']:7.4f} {f['macro_f1']:7.4f}  {oof}")
    if rep["mean_accuracy"] is None:
        lines.append("no out-of-fold group: nothing to summarise (every group was trained on, or it is unknown)")
    else:
        sd = "-" if rep["std_accuracy"] is None else f"{rep['std_accuracy']:.4f}"
        lines.append(f"over {rep['n_folds_summarised']} folds: mean {rep['mean_accuracy']:.4f}  std {sd}  "
                     f"min {rep['min_accuracy']:.4f}  max {rep['max_accuracy']:.4f}  pooled {rep['pooled_accuracy']:.4f}")
    return "\n".join(lines)


def add_arguments(p) -> None:
    p.add_argument("--data", required=True, metavar="FILE", help="speech .npz (layout of ../shared/data/speech)")
    p.add_argument("--model", default=None, help="manifest entry name (default: the task default)")
    p.add_argument("--precision", default=None, choices=("fp32", "int8"), help="pick this precision of the family")
    p.add_argument("--speakers", default=None, metavar="IDS", help="only these speaker ids, e.g. 17-20 or 3,8 (held-out speakers)")
    p.add_argument("--limit", type=int, metavar="N", default=None, help="only the first N clips (after filtering)")
    p.add_argument("--vad-gate", action="store_true", help="run windows only where the VAD detects speech")
    p.add_argument("--manifest", default=None, metavar="PATH", help="manifest.json (default: the bundled one)")
    p.add_argument("--crop", type=float, default=None, metavar="S",
                   help="score only the centre S seconds of each clip (short utterances, e.g. 1.0)")
    p.add_argument("--folds", nargs="?", const="auto", default=None, metavar="GROUPS",
                   help="speaker-grouped folds: per-fold accuracy, mean and spread. 'auto' (default when "
                        "given bare) = the project's CV groups for RAVDESS/EmoDB packs; or explicit groups "
                        "like 1,6,11,16/2,7,12,17/...")
    p.add_argument("--fold-models", default=None, metavar="NAME{k}",
                   help="with --folds: score group k with manifest entry NAME{k} (the CV fold models of "
                        "export/voice_cv.py, with --manifest runs/cv/RECIPE/models/manifest.json): "
                        "reproduces the out-of-fold CV numbers")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def main(args) -> int:
    from .metrics import format_report
    if getattr(args, "folds", None) is not None:
        if args.speakers:
            raise InvalidInputError("--folds and --speakers exclude each other (the folds choose the speakers)")
        rep = evaluate_folds(args.data, args.folds, name=args.model, precision=args.precision,
                             manifest=args.manifest, fold_models=args.fold_models, crop_s=args.crop,
                             vad_gate=args.vad_gate, limit=args.limit)
        if args.json:
            json.dump(rep, sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            print(f"{rep['data']} ({rep['corpus'] or 'unknown corpus'})" + (f", centre {args.crop:g} s of each clip" if args.crop else ""))
            print(format_folds(rep))
        return 0
    if args.fold_models:
        raise InvalidInputError("--fold-models needs --folds")
    rep = evaluate_file(args.data, name=args.model, precision=args.precision, manifest=args.manifest,
                        speakers=parse_speakers(args.speakers), limit=args.limit, vad_gate=args.vad_gate,
                        crop_s=args.crop)
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
