"""Actor-grouped cross-validation of voice recipes (recipe selection; export/ only, needs torch).

A recipe = a set of export/voice_train.py options. Its CV = five runs, fold k trained on every speaker
except voice_data.FOLDS[*][k] (RAVDESS: 4 actors of 1-20, 2 male + 2 female; EmoDB: 1-2 of its 8
speakers) and scored on them (out-of-fold): full clips, and the centre 1.0 s / 0.6 s of each clip (short
utterances; every released clip is longer than 1.2 s, so the crops are the only clips <= 1.2 s).

    # train the 5 folds of a recipe (resumable: finished folds are skipped; nohup it)
    python export/voice_cv.py train RECIPE -- --seed 11 --epochs 40 --pool stats --mask 1 --short-p 0.3
    python export/voice_cv.py summary A40 B40          # per-fold table, mean +- std, paired differences
    python export/voice_cv.py export-folds B40         # fold models -> ONNX FP32 + INT8 + manifest, then
                                                       # the same CV through the runtime (emoedge eval voice --folds)
    python export/voice_cv.py publish A200             # the INT8 fold models -> export/results/voice_cv/A200 (tracked)

Everything goes under runs/cv/RECIPE/ (git-ignored): foldK/voice_cnn.pt, foldK/fold_eval.{json,npz},
summary.json, models/{manifest.json, voice-cv-foldK-{fp32,int8}.onnx}, runtime.json. `publish` copies the
shipped recipe's INT8 fold models (about 1 MB each) with their manifest, summary and runtime CV into the tracked
folder export/results/voice_cv/RECIPE, so the CV (`emoedge eval voice --folds --fold-models`) and the fusion fit
and evaluation (which score voices out of fold) can be reproduced from a checkout, without retraining.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "export"))

import voice_data as vd  # noqa: E402

CV_ROOT = ROOT / "runs" / "cv"
PUBLISHED_ROOT = ROOT / "export" / "results" / "voice_cv"
N_FOLDS = 5
SETS = ("full", "crop1s", "crop0.6s")


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def cv_dir(recipe) -> pathlib.Path:
    p = pathlib.Path(recipe)
    return p if p.is_dir() and (p / "fold0").exists() else CV_ROOT / str(recipe)


def train(recipe: str, train_args) -> int:
    d = cv_dir(recipe)
    for k in range(N_FOLDS):
        f = d / f"fold{k}"
        if (f / "fold_eval.json").is_file():
            log(f"fold {k}: done already")
            continue
        cmd = [sys.executable, str(ROOT / "export" / "voice_train.py"), "--fold", str(k), "--out", str(f), *train_args]
        log("run", " ".join(cmd))
        rc = subprocess.call(cmd)
        if rc:
            return rc
    return 0


def fold_ckpts(d: pathlib.Path, k: int) -> list:
    """A fold's model: foldK/voice_cnn.pt (one CNN, export/voice_train.py) or the members
    foldK/seed*/voice_cnn.pt of an ensemble trained at once (export/voice_group.py)."""
    one = d / f"fold{k}" / "voice_cnn.pt"
    return [one] if one.is_file() else sorted((d / f"fold{k}").glob("seed*/voice_cnn.pt"))


def _stats(v):
    v = np.asarray(v, np.float64)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else None,
            "min": float(v.min()), "max": float(v.max()), "per_fold": [float(x) for x in v]}


def folds_done(recipe) -> list:
    d = cv_dir(recipe)
    return [k for k in range(N_FOLDS) if (d / f"fold{k}" / "fold_eval.json").is_file()]


def summarize(recipe: str, write: bool = True, folds=None) -> dict:
    """Per-fold and mean/std (sample std over the folds) out-of-fold accuracy per corpus and clip set,
    plus the pooled accuracy over all out-of-fold clips. ``folds``: only these (default: the finished ones;
    the summary records which)."""
    d = cv_dir(recipe)
    folds = folds_done(recipe) if folds is None else list(folds)
    if not folds:
        raise SystemExit(f"no finished fold in {d}")
    reps = [json.loads((d / f"fold{k}" / "fold_eval.json").read_text()) for k in folds]
    args = None
    cks = fold_ckpts(d, folds[0])
    if cks:
        import torch
        a = torch.load(cks[0], map_location="cpu", weights_only=False)["args"]
        args = {k: v for k, v in a.items() if k not in ("fold", "out", "smoke", "no_export", "seed")}
        args["seeds"] = [torch.load(c, map_location="cpu", weights_only=False)["args"]["seed"] for c in cks]
    out = {"recipe": str(recipe), "train_args": args, "folds_scored": folds,
           "folds": {c: [list(vd.FOLDS[c][k]) for k in folds] for c in vd.FOLDS},
           "std": f"sample standard deviation over the {len(folds)} folds (ddof=1)"}
    for s in SETS:
        for c in ("ravdess", "emodb"):
            acc = [r[s][c]["accuracy"] for r in reps]
            n = [r[s][c]["n"] for r in reps]
            out[f"{c}_{s}"] = {**_stats(acc), "pooled": float(np.dot(acc, n) / np.sum(n)), "n": int(np.sum(n))}
    if write:
        (d / "summary.json").write_text(json.dumps(out, indent=1))
    return out


def print_summary(recipes) -> None:
    common = sorted(set.intersection(*[set(folds_done(r)) for r in recipes]))
    print(f"folds scored by every recipe: {common} (of {N_FOLDS})")
    sums = {r: summarize(r, folds=common) for r in recipes}
    for key in [f"{c}_{s}" for s in SETS for c in ("ravdess", "emodb")]:
        print(f"\n{key}")
        for r, sm in sums.items():
            v = sm[key]
            folds = " ".join(f"{x * 100:5.1f}" for x in v["per_fold"])
            sd = "  -  " if v["std"] is None else f"{v['std'] * 100:4.1f}"
            print(f"  {r:<14} mean {v['mean'] * 100:5.1f} +- {sd}  folds [{folds}]  pooled {v['pooled'] * 100:5.1f}")
        rs = list(sums)
        for r in rs[1:]:
            diff = np.array(sums[r][key]["per_fold"]) - np.array(sums[rs[0]][key]["per_fold"])
            print(f"  {r} - {rs[0]}: per fold [{' '.join(f'{x * 100:+5.1f}' for x in diff)}]  mean {diff.mean() * 100:+.1f}, "
                  f"better in {int((diff > 0).sum())}/{len(diff)} folds")


def oof_windows(recipe: str):
    """Out-of-fold window logits of the recipe's fold models (torch, FP32) and their labels (full clips)."""
    import torch
    import voice_export as ve
    from voice_train import clip_windows
    from emoedge import kernels
    torch.set_num_threads(1)
    d = cv_dir(recipe)
    xs, ys = [], []
    clips = None
    for k in folds_done(recipe):
        members, cks = ve.load_members(fold_ckpts(d, k))
        model, ck = ve.build_graph(members, cks)     # the exported function: log of the mean member probability
        if clips is None:
            clips, _ = vd.load_clips(kernels.LogMelOptions(**ck["logmel"]), log=log)
        _, held = vd.split(clips, k)
        W, H, mf, pad = ck["window_frames"], ck["hop_frames"], ck["min_fill_frames"], ck["pad_value"]
        win = np.concatenate([clip_windows(c, W, H, mf, pad) for c in held])
        lab = np.concatenate([np.full(len(clip_windows(c, W, H, mf, pad)), c.label) for c in held])
        with torch.no_grad():
            lg = np.concatenate([model(torch.from_numpy(win[i:i + 256])).numpy() for i in range(0, len(win), 256)])
        xs.append(lg)
        ys.append(lab)
    return np.concatenate(xs), np.concatenate(ys)


def oof_temperature(recipe: str) -> float:
    import voice_export as ve
    d = cv_dir(recipe)
    f = d / "temperature.json"
    if f.is_file():
        t = json.loads(f.read_text())
        if t.get("folds") == folds_done(recipe):
            return float(t["temperature"])
    lg, y = oof_windows(recipe)
    t = ve.fit_temperature(lg, y)
    f.write_text(json.dumps({"temperature": t, "windows": int(len(y)), "folds": folds_done(recipe),
                             "fitted_on": "out-of-fold windows of the finished fold models (FP32, torch), full clips"}))
    return t


def export_folds(recipe: str, crops=(None, 1.0)) -> dict:
    """Each fold model -> ONNX FP32 + INT8 in runs/cv/RECIPE/models with a manifest, then the CV through
    the runtime (`emoedge eval voice --folds --fold-models ...`) for both precisions -> runtime.json."""
    import voice_export as ve
    from emoedge import kernels
    from emoedge.evaluation.voice import evaluate_folds
    from emoedge.manifest import update_entry
    d = cv_dir(recipe)
    md = d / "models"
    md.mkdir(parents=True, exist_ok=True)
    man = md / "manifest.json"
    t = oof_temperature(recipe)
    clips = None
    done = folds_done(recipe)
    for k in done:
        members, cks = ve.load_members(fold_ckpts(d, k))
        model, ck = ve.build_graph(members, cks)
        if clips is None:
            opts = kernels.LogMelOptions(**ck["logmel"])
            clips, _ = vd.load_clips(opts, log=log)
        train_clips, _ = vd.split(clips, k)
        W, M = ck["window_frames"], ck["n_mels"]
        calib = ve.calibration_windows(train_clips, W, ck["min_fill_frames"], ck["pad_value"])
        paths = {p: md / f"voice-cv-fold{k}-{p}.onnx" for p in ("fp32", "int8")}
        bodies_only = any(m.mask or m.pool == "stats" for m in members)
        ve.export_pair(model, len(members), W, M, paths["fp32"], paths["int8"], calib, bodies_only=bodies_only)
        for p, path in paths.items():
            update_entry(f"voice-cv-fold{k}-{p}", {
                "task": "voice", "family": f"voice-cv-fold{k}", "precision": p, "file": path.name,
                "labels": list(ck["labels"]), "output": "logits", "logmel": vd.opts_dict(opts),
                "window_frames": W, "hop_frames": ck["hop_frames"], "window_s": ck["window_s"], "hop_s": ck["hop_s"],
                "min_fill_s": ck["min_fill_s"], "pad_value": ck["pad_value"], "temperature": round(t, 4),
                "trained_speakers": ve.trained_speakers(k),
                "input": {"name": "logmel", "shape": ["batch", W, M], "dtype": "float32"}}, path=man)
    rt = {}
    for p in ("fp32", "int8"):
        rt[p] = {}
        for corpus, fname in (("ravdess", vd.RAVDESS), ("emodb", vd.EMODB)):
            for crop in crops:
                groups = vd.FOLDS[corpus]
                if len(done) < N_FOLDS:       # only the finished folds (the groups keep their fold index)
                    groups = tuple(groups[k] if k in done else None for k in range(N_FOLDS))
                rep = evaluate_folds(vd.DATA / fname, groups, manifest=man, fold_models="voice-cv-fold{k}-" + p,
                                     crop_s=crop)
                key = corpus if crop is None else f"{corpus}_crop{crop:g}s"
                rt[p][key] = {k2: rep[k2] for k2 in ("mean_accuracy", "std_accuracy", "min_accuracy", "max_accuracy",
                                                     "pooled_accuracy")}
                rt[p][key]["per_fold"] = [f["accuracy"] for f in rep["folds"]]
                rt[p][key]["command"] = (f"emoedge eval voice --data ../shared/data/speech/{fname} --folds "
                                         f"--fold-models 'voice-cv-fold{{k}}-{p}' --manifest "
                                         f"runs/cv/{d.name}/models/manifest.json" + (f" --crop {crop:g}" if crop else ""))
                log(f"runtime CV {p} {key}: mean {rep['mean_accuracy']:.4f} per fold {rt[p][key]['per_fold']}")
    (d / "runtime.json").write_text(json.dumps(rt, indent=1))
    return rt


def publish(recipe: str, precision: str = "int8") -> pathlib.Path:
    """Copy the recipe's fold models of one precision (export-folds first) with a manifest of just those
    entries, and the CV summary / runtime CV / temperature JSON, into PUBLISHED_ROOT/RECIPE (replaced whole)."""
    import shutil
    from emoedge.manifest import update_entry
    d = cv_dir(recipe)
    man = d / "models" / "manifest.json"
    if not man.is_file():
        raise SystemExit(f"{man} is missing: run `python export/voice_cv.py export-folds {recipe}` first")
    entries = {n: e for n, e in json.loads(man.read_text())["models"].items() if e.get("precision") == precision}
    if not entries:
        raise SystemExit(f"{man} has no {precision} entries")
    dest = PUBLISHED_ROOT / d.name
    tmp = PUBLISHED_ROOT / f".{d.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, e in sorted(entries.items()):
        shutil.copyfile(d / "models" / e["file"], tmp / e["file"])
        update_entry(name, {k: v for k, v in e.items() if k not in ("sha256", "bytes")}, path=tmp / "manifest.json")
    for f in ("summary.json", "temperature.json"):
        if (d / f).is_file():
            shutil.copyfile(d / f, tmp / f)
    if (d / "runtime.json").is_file():      # its commands then name the published manifest (same files, same sha256)
        (tmp / "runtime.json").write_text((d / "runtime.json").read_text().replace(
            f"runs/cv/{d.name}/models/manifest.json", f"export/results/voice_cv/{d.name}/manifest.json"))
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    log(f"published {len(entries)} {precision} fold models of {recipe} to {dest}")
    return dest


def fold_models_manifest(recipe_dir: pathlib.Path) -> pathlib.Path:
    """The fold-models manifest of a recipe's CV folder: runs/cv/RECIPE/models (export-folds, this machine)
    when present, else the published copy export/results/voice_cv/RECIPE (tracked)."""
    local = recipe_dir / "models" / "manifest.json"
    return local if local.is_file() else PUBLISHED_ROOT / recipe_dir.name / "manifest.json"


def load_cv(recipe: str) -> dict:
    d = cv_dir(recipe)
    out = {"summary": summarize(recipe, write=False), "recipe_dir": f"runs/cv/{d.name}"}
    t = d / "temperature.json"
    if t.is_file():
        out["temperature"] = json.loads(t.read_text())
    if (d / "runtime.json").is_file():
        out["runtime"] = json.loads((d / "runtime.json").read_text())
    return out


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=("train", "summary", "export-folds", "temperature", "publish"))
    ap.add_argument("recipes", nargs="+")
    a = ap.parse_args(argv)
    if a.command == "train":
        return train(a.recipes[0], extra)
    if a.command == "summary":
        print_summary(a.recipes)
        return 0
    if a.command == "temperature":
        print(oof_temperature(a.recipes[0]))
        return 0
    if a.command == "publish":
        publish(a.recipes[0])
        return 0
    export_folds(a.recipes[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
