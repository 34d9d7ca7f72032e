"""Export the trained voice CNN: ONNX FP32 (opset 17, dynamic batch) -> static INT8 QDQ (per-channel,
calibrated on real training windows) -> temperature fitted on held-out speakers -> speaker-independent
metrics through the runtime (emoedge.voice / emoedge eval voice) -> latency FP32 vs INT8 (same run,
1 thread) -> manifest entries ``voice-ser-fp32`` / ``voice-ser-int8`` (family ``voice-ser``, task ``voice``).

    /work/venv/bin/python export/voice_export.py --ckpt /work/cache/voice/voice_cnn.pt
(run automatically at the end of export/voice_train.py)

    /work/venv/bin/python export/voice_export.py --ckpt A.pt B.pt C.pt
exports a probability-average ensemble of the checkpoints as ONE graph (voice_model.VoiceEnsemble; input
window = the longest member window, shorter members see its end); only the members' layers are quantized,
the softmax/average/log tail stays FP32.
"""
from __future__ import annotations

import argparse
import pathlib
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "export"))

import voice_data as vd  # noqa: E402

MODELS = ROOT / "emoedge" / "models"
MADE_BY = ("python export/voice_train.py "
           "(defaults: three CNNs, --seed 5,6,7, trained one after the other and exported as one ensemble graph; "
           "export only: python export/voice_export.py --ckpt runs/voice/seed5/voice_cnn.pt "
           "runs/voice/seed6/voice_cnn.pt runs/voice/seed7/voice_cnn.pt)")


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """T > 0 minimising the mean NLL of softmax(logits / T) (grid in log space, then golden refinement)."""
    def nll(T):
        z = logits / T
        z = z - z.max(1, keepdims=True)
        lse = np.log(np.exp(z).sum(1))
        return float(np.mean(lse - z[np.arange(len(y)), y]))
    grid = np.exp(np.linspace(np.log(0.25), np.log(8.0), 61))
    i = int(np.argmin([nll(t) for t in grid]))
    lo, hi = grid[max(0, i - 1)], grid[min(len(grid) - 1, i + 1)]
    g = (np.sqrt(5) - 1) / 2
    for _ in range(40):
        a, b = hi - g * (hi - lo), lo + g * (hi - lo)
        if nll(a) < nll(b):
            hi = b
        else:
            lo = a
    return float((lo + hi) / 2)


def heldout_windows(held, W, H, min_fill, pad):
    from voice_data import clip_windows
    xs, ys = [], []
    for c in held:
        w = clip_windows(c, W, H, min_fill, pad)
        xs.append(w)
        ys.append(np.full(len(w), c.label))
    return np.concatenate(xs), np.concatenate(ys)


def calibration_windows(train, W, min_fill, pad, n=400, seed=123):
    from emoedge.voice import window_at
    rng = np.random.default_rng(seed)
    out = []
    for i in rng.choice(len(train), size=min(n, len(train)), replace=False):
        c = train[int(i)]
        nfr = len(c.frames)
        e = int(rng.integers(min(nfr, min_fill), nfr + 1))
        out.append(window_at(c.frames, e, W, pad))
    return np.stack(out)


def bench(paths: dict, W: int, M: int, iters: int = 400, warm: int = 50) -> dict:
    """Median ms per window (batch 1), 1 intra-op thread, sessions interleaved in one run."""
    from emoedge.session import SessionOptions, make_session
    ss = {k: make_session(p, SessionOptions(intra_threads=1)) for k, p in paths.items()}
    x = np.random.default_rng(0).normal(-40, 15, (1, W, M)).astype(np.float32)
    t = {k: [] for k in ss}
    for it in range(iters + warm):
        for k, s in ss.items():
            t0 = time.perf_counter_ns()
            s.run(None, {"logmel": x})
            dt = time.perf_counter_ns() - t0
            if it >= warm:
                t[k].append(dt)
    return {k: {"p50_ms": float(np.median(v) / 1e6), "p95_ms": float(np.percentile(v, 95) / 1e6)} for k, v in t.items()}


def load_members(paths):
    """(members [VoiceCNN, eval mode], checkpoints) from voice_train checkpoints."""
    import torch
    from voice_model import VoiceCNN
    cks, members = [], []
    for path in paths:
        ck = torch.load(path, map_location="cpu", weights_only=False)
        m = VoiceCNN(n_mels=ck["n_mels"], n_classes=len(ck["labels"]), widths=tuple(ck["widths"]),
                     cmn=bool(ck.get("cmn", False)), pad_value=ck["pad_value"], pool=ck.get("pool", "mean"),
                     mask=bool(ck.get("mask", False)))
        m.load_state_dict(ck["state_dict"])
        cks.append(ck)
        members.append(m.eval())
    ck = cks[0]
    for c in cks[1:]:
        for k in ("hop_frames", "min_fill_frames", "pad_value", "n_mels", "labels", "logmel", "hop_s", "min_fill_s"):
            if c[k] != ck[k]:
                raise SystemExit(f"ensemble members disagree on {k}: {c[k]!r} vs {ck[k]!r}")
    return members, cks


def build_graph(members, cks):
    """(torch module to export, checkpoint-like dict with the graph's window settings). Several members, or
    any member with the padding mask / statistics pooling: VoiceEnsemble (time-major, BN folded)."""
    from voice_model import VoiceEnsemble
    ck = cks[0]
    if len(members) == 1 and not members[0].mask and members[0].pool != "stats":
        return members[0], dict(ck)
    model = VoiceEnsemble(members, [c["window_frames"] for c in cks]).eval()
    return model, {**ck, "window_frames": model.W, "window_s": max(c["window_s"] for c in cks)}


def export_pair(model, n_members: int, W: int, M: int, fp32, int8, calib, fp32_stem: bool = True,
                bodies_only: bool = False) -> None:
    """ONNX FP32 (opset 17, dynamic batch) + static INT8 QDQ (per-channel weights, calibrated on ``calib``
    windows). Several members: the tail (softmax, average, log) stays FP32; ``fp32_stem``: so do the first
    convolutions and the normalisation; ``bodies_only``: only the members' conv bodies are quantized (the
    padding mask and the statistics pooling stay FP32)."""
    import onnx
    import torch
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process
    from voice_model import count_params
    fp32, int8 = pathlib.Path(fp32), pathlib.Path(int8)
    x = torch.zeros(1, W, M)
    torch.onnx.export(model, (x,), str(fp32), input_names=["logmel"], output_names=["logits"],
                      dynamic_axes={"logmel": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17, dynamo=False)
    onnx.checker.check_model(str(fp32))
    log(f"exported {fp32} ({fp32.stat().st_size} B, {count_params(model)} params)")

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"logmel": calib[i:i + 1]} for i in range(len(calib))])

        def get_next(self):
            return next(self.it, None)

    pre = fp32.parent / f".{fp32.stem}-pre.onnx"
    quant_pre_process(str(fp32), str(pre))
    exclude = None
    g = onnx.load(str(pre)).graph
    if bodies_only:
        exclude = [n.name for n in g.node if not n.name.startswith("/bodies.")]
        if not fp32_stem:
            exclude = [n for n in exclude if not n.startswith("/stems.")]
    elif n_members > 1:   # keep the ensemble tail (softmax, average, log) in FP32
        tail = {o for n in g.node if n.op_type == "Gemm" for o in n.output}
        exclude = []
        for n in g.node:   # topological order: everything downstream of the members' heads
            if any(i in tail for i in n.input):
                exclude.append(n.name)
                tail.update(n.output)
        if fp32_stem:   # the stems, their ReLU, and everything feeding them (normalisation) stay FP32
            prod = {o: n for n in g.node for o in n.output}
            stems = [n for n in g.node if n.name.startswith("/stems.")]
            keep, todo = set(), list(stems)
            while todo:
                n = todo.pop()
                if n.name in keep:
                    continue
                keep.add(n.name)
                todo += [prod[i] for i in n.input if i in prod]
            outs = {o for n in stems for o in n.output}
            keep |= {n.name for n in g.node if n.op_type == "Relu" and outs & set(n.input)}
            exclude += sorted(keep)
    quantize_static(str(pre), str(int8), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=exclude)
    pre.unlink()
    log(f"quantized {int8} ({int8.stat().st_size} B) with {len(calib)} calibration windows")


def trained_speakers(fold) -> dict:
    """Speakers a voice_train run with ``--fold`` trained on, per corpus (manifest ``trained_speakers``)."""
    all_spk = {"ravdess": list(range(1, 21)), "emodb": [3, 8, 9, 10, 11, 12, 13, 14]}
    if fold == -1:
        return all_spk
    held = vd.HELDOUT if fold is None else {c: vd.FOLDS[c][fold] for c in vd.FOLDS}
    return {c: [s for s in v if s not in held[c]] for c, v in all_spk.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", nargs="+", default=[str(ROOT / "runs" / "voice" / "voice_cnn.pt")],
                    help="one checkpoint, or several: probability-average ensemble in one graph")
    ap.add_argument("--models-dir", default=str(MODELS))
    ap.add_argument("--manifest", default=None)
    ap.add_argument("--selection-note", default=None,
                    help="how the checkpoint(s) were chosen (recorded in the manifest's split.heldout)")
    ap.add_argument("--fp32-stem", type=int, default=1, help="ensemble: keep each member's first (1-channel) "
                    "convolution in FP32 in the INT8 graph (faster than QLinearConv there)")
    ap.add_argument("--cv", default=None, metavar="RUNS/CV/RECIPE",
                    help="final fit (checkpoints trained with --fold -1 on every speaker): there is no held-out "
                         "speaker left, so the temperature is fitted on the out-of-fold windows of this "
                         "recipe's CV fold models and the manifest metrics are its cross-validation numbers "
                         "(export/voice_cv.py summary/export-folds must have run)")
    args = ap.parse_args(argv)
    import torch

    from emoedge import kernels
    from emoedge.manifest import update_entry
    from voice_model import count_params
    torch.set_num_threads(1)
    members, cks = load_members(args.ckpt)
    model, ck = build_graph(members, cks)
    W = ck["window_frames"]
    folds = {c.get("fold") for c in cks}
    if len(folds) != 1:
        raise SystemExit(f"members were trained on different speakers (folds {folds})")
    fold = folds.pop()
    final_fit = fold == -1
    if final_fit and not args.cv:
        raise SystemExit("checkpoints trained on every speaker (--fold -1): pass --cv runs/cv/RECIPE for the "
                         "temperature and the cross-validation metrics")
    H, min_fill, pad = ck["hop_frames"], ck["min_fill_frames"], ck["pad_value"]
    M = ck["n_mels"]
    out = pathlib.Path(args.models_dir)
    fp32 = out / "voice-ser-fp32.onnx"
    int8 = out / "voice-ser-int8.onnx"
    opts = kernels.LogMelOptions(**ck["logmel"])
    clips, skipped = vd.load_clips(opts, log=log)
    train, held = vd.split(clips, fold)
    calib = calibration_windows(train, W, min_fill, pad)
    bodies_only = any(m.mask or m.pool == "stats" for m in members)
    export_pair(model, len(members), W, M, fp32, int8, calib, fp32_stem=bool(args.fp32_stem), bodies_only=bodies_only)

    from emoedge.session import SessionOptions, make_session
    temps = {}
    cv = None
    if final_fit:
        import voice_cv
        cv = voice_cv.load_cv(args.cv)
        t = voice_cv.oof_temperature(args.cv)
        temps = {"fp32": t, "int8": t}
        log(f"temperature {t:.3f} fitted on the out-of-fold windows of {args.cv} (FP32 fold models)")
    else:
        # held-out window logits through onnxruntime -> temperature per precision
        xh, yh = heldout_windows(held, W, H, min_fill, pad)
        for prec, p in (("fp32", fp32), ("int8", int8)):
            lg = make_session(p, SessionOptions()).run(None, {"logmel": xh})[0]
            temps[prec] = fit_temperature(lg, yh)
            log(f"{prec}: temperature {temps[prec]:.3f} on {len(yh)} held-out windows")

    lat = bench({"fp32": fp32, "int8": int8}, W, M)
    speedup = lat["fp32"]["p50_ms"] / lat["int8"]["p50_ms"]
    log(f"latency per window (1 thread, batch 1, medians): {lat}; INT8 speed-up {speedup:.2f}x")

    if final_fit:
        split_desc = {"train": "every released speaker: RAVDESS actors 1-20 + EmoDB speakers 03 08 09 10 11 12 13 14 "
                               "(boredom excluded); fitted after the recipe was fixed by cross-validation",
                      "heldout": "none left (RAVDESS actors 21-24 and EmoDB 15-16 are withheld by the data "
                                 "provider); metrics are the recipe's actor-grouped 5-fold cross-validation "
                                 "(out-of-fold; see metrics.cv and README 'Voice')"
                                 + ("; " + args.selection_note if args.selection_note else "")}
    else:
        split_desc = {"train": "RAVDESS actors 1-16 + EmoDB speakers 09-14 (boredom excluded)",
                      "heldout": "RAVDESS actors 17-20 (240 clips) + EmoDB speakers 03, 08 (boredom skipped); "
                                 "never trained on; used for temperature fitting and reporting (fixed schedule, no "
                                 "checkpoint selection; how the checkpoints were chosen is not recorded: pass "
                                 "--selection-note)"}
        if args.selection_note:
            split_desc["heldout"] = ("RAVDESS actors 17-20 (240 clips) + EmoDB speakers 03, 08 (boredom skipped); "
                                     "never trained on; used for temperature fitting and reporting; " + args.selection_note)
    group = cks[0].get("args", {}).get("group")
    trained_by = ""
    if group:   # trained at once by export/voice_group.py (e.g. in the GPU job)
        a = cks[0]["args"]
        trained_by = (f"; trained by: python export/voice_group.py --fold {fold} --seeds "
                      f"{','.join(str(s) for s in group['seeds'])} --epochs {a['epochs']} --out "
                      f"{_rel(pathlib.Path(args.ckpt[0]).parent.parent)} (on {group['device']}; export/voice_gpu_job.py)")
    made_by = MADE_BY + trained_by + "; this export: python export/voice_export.py --ckpt " + " ".join(
        _rel(a) for a in args.ckpt) + (f" --cv {_rel(args.cv)}" if args.cv else "")
    common = {
        "task": "voice", "family": "voice-ser", "labels": list(ck["labels"]), "output": "logits",
        "input": {"name": "logmel", "shape": ["batch", W, M], "dtype": "float32",
                  "description": "raw log-mel frames (dB) from emoedge.kernels.log_mel/LogMelStream with the "
                                 "'logmel' options, oldest first; frames before the stream start = pad_value"
                                 + ("; the model leaves padding frames out (mask), so a short utterance is "
                                    "classified from the frames that exist" if bodies_only else "")},
        "logmel": vd.opts_dict(opts), "window_frames": W, "hop_frames": H, "window_s": ck["window_s"],
        "hop_s": ck["hop_s"], "min_fill_s": ck["min_fill_s"], "pad_value": pad,
        "label_map": {"calm": "neutral (fusion)", "emodb boredom": "no counterpart, excluded"},
        "params": sum(count_params(m) for m in members), "made_by": made_by, "split": split_desc,
        "trained_speakers": trained_speakers(fold),
        "training": ({"steps": ck["steps"], "seconds": round(ck["train_seconds"]), "args": _rel_args(ck["args"])}
                     if len(cks) == 1 else
                     {"ensemble": "mean of member softmax probabilities (output = log of it)",
                      "members": [{"steps": c["steps"], "seconds": round(c["train_seconds"]), "args": _rel_args(c["args"]),
                                   "window_frames": c["window_frames"], "params": count_params(m)}
                                  for c, m in zip(cks, members)]}),
    }
    for prec, p in (("fp32", fp32), ("int8", int8)):
        update_entry(f"voice-ser-{prec}", {**common, "file": p.name, "precision": prec,
                                           "temperature": round(temps[prec], 4),
                                           "latency_ms_1thread": lat[prec]}, path=args.manifest)

    metrics = {}
    if final_fit:
        # the recipe's cross-validation (out-of-fold) numbers; INT8 vs FP32 from the fold models through the runtime
        for prec in ("fp32", "int8"):
            metrics[prec] = {"cv": cv["summary"], "cv_runtime": cv.get("runtime", {}).get(prec),
                             "cv_dir": cv["recipe_dir"],
                             "note": "out-of-fold numbers of the recipe's 5 fold models (same recipe, trained "
                                     "without the scored speakers); this model itself trained on every speaker"}
        rt = cv.get("runtime", {})
        try:
            d_acc = rt["fp32"]["ravdess"]["mean_accuracy"] - rt["int8"]["ravdess"]["mean_accuracy"]
        except (KeyError, TypeError):
            d_acc = 1.0
    else:
        # metrics through the runtime path (streaming windows, clip decision), reproducible with
        # `emoedge eval voice --data ... --speakers ...`
        from emoedge.evaluation.voice import evaluate_file
        for prec in ("fp32", "int8"):
            metrics[prec] = {}
            for corpus, fname in (("ravdess", vd.RAVDESS), ("emodb", vd.EMODB)):
                rep = evaluate_file(vd.DATA / fname, name=f"voice-ser-{prec}", manifest=args.manifest,
                                    speakers=vd.HELDOUT[corpus])
                metrics[prec][f"{corpus}_heldout"] = {
                    "accuracy": rep["accuracy"], "macro_f1": rep["macro_f1"], "n": rep["n"],
                    "per_class_recall": {k: v["recall"] for k, v in rep["per_class"].items()},
                    "speakers": list(vd.HELDOUT[corpus]), "file": fname,
                    "command": f"emoedge eval voice --data ../shared/data/speech/{fname} --model voice-ser-{prec} "
                               f"--speakers {','.join(str(s) for s in vd.HELDOUT[corpus])} --json"}
                log(f"{prec} {corpus} held-out: acc {rep['accuracy']:.4f} macro-F1 {rep['macro_f1']:.4f} N={rep['n']}")
        d_acc = metrics["fp32"]["ravdess_heldout"]["accuracy"] - metrics["int8"]["ravdess_heldout"]["accuracy"]
    int8_default = speedup >= 1.0 and d_acc <= 0.015
    for prec, p in (("fp32", fp32), ("int8", int8)):
        update_entry(f"voice-ser-{prec}", {**common, "file": p.name, "precision": prec,
                                           "temperature": round(temps[prec], 4),
                                           "latency_ms_1thread": lat[prec], "int8_speedup": round(speedup, 3),
                                           "metrics": metrics[prec]}, path=args.manifest,
                     default_for="voice" if (prec == "int8") == int8_default else None)
    log(f"manifest updated; default voice model: voice-ser-{'int8' if int8_default else 'fp32'} "
        f"(INT8 - FP32 RAVDESS accuracy {-d_acc * 100:+.2f} points, speed-up {speedup:.2f}x)")
    return 0


def _rel(path) -> str:
    """A path relative to the repository when it is inside it (manifest commands carry no machine paths)."""
    try:
        return str(pathlib.Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _rel_args(a: dict) -> dict:
    return {k: (_rel(v) if k == "out" else v) for k, v in a.items()}


if __name__ == "__main__":
    sys.exit(main())
