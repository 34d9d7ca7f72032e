"""Export the trained face-expression model: ONNX FP32 + static INT8 (QDQ, per-channel), measured
side by side, temperature-calibrated, written into emoedge/models with manifest entries.

    python export/face_export.py --ckpt /work/cache/face_run/best.pt

Steps: torch -> ONNX (opset 17, dynamic batch, input "input" NCHW float32, output "logits");
parity check against torch; onnxruntime ``quant_pre_process`` then ``quantize_static`` (QDQ,
per-channel int8 weights, uint8 activations, MinMax) calibrated on ``--calib`` random *training* faces
pre-processed by ``emoedge.kernels.preprocess``; both precisions evaluated on PublicTest by
``emoedge.evaluation.face.evaluate`` (the code behind ``emoedge eval face``); latency at batch 1 and 8,
1 thread, interleaved in one run (warm-up discarded, medians of perf_counter_ns); one temperature per
precision fitted on PublicTest logits (minimum NLL), or the dev-split temperature of a face_distill.py
checkpoint (``--temperature``), whose dev-fitted logit biases ``--logit-bias`` adds to the graph; manifest entries ``face-expr-fp32`` and
``face-expr-int8``; the faster precision (at batch 1, if its accuracy is within 1 point) becomes
``defaults.face_expression``.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
import time

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))
import face_data  # noqa: E402

SPLIT = "FER2013 PublicTest (fer2013_val.npz)"


def export_onnx(ckpt: dict, path: pathlib.Path) -> None:
    import torch
    from face_model import FaceNet
    arch = ckpt["meta"].get("arch") or {}  # face_distill.py students may use other widths/blocks
    model = FaceNet(n_classes=len(face_data.LABELS), dropout=ckpt["meta"].get("dropout", 0.3),
                    **{k: tuple(v) for k, v in arch.items()})
    model.load_state_dict(ckpt["model"])
    model.eval()
    x = torch.zeros(1, 1, face_data.SIZE, face_data.SIZE)
    torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=17, input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                      do_constant_folding=True)
    return model


class _Reader:
    def __init__(self, x: np.ndarray, batch: int = 16):
        self.batches = [x[i:i + batch] for i in range(0, len(x), batch)]
        self.i = 0

    def get_next(self):
        if self.i >= len(self.batches):
            return None
        self.i += 1
        return {"input": self.batches[self.i - 1]}

    def rewind(self):
        self.i = 0


def quantize(fp32: pathlib.Path, int8: pathlib.Path, calib: np.ndarray) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process
    with tempfile.TemporaryDirectory() as td:
        pre = pathlib.Path(td) / "pre.onnx"
        quant_pre_process(str(fp32), str(pre))
        quantize_static(str(pre), str(int8), _Reader(calib), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax)


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """Scalar T > 0 minimising the NLL of softmax(logits / T) (golden-section search on log T)."""
    def nll(logt):
        z = logits / np.exp(logt)
        z = z - z.max(1, keepdims=True)
        return float(np.mean(np.log(np.exp(z).sum(1)) - z[np.arange(len(y)), y]))
    a, b = np.log(0.05), np.log(20.0)
    g = (np.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    for _ in range(80):
        if nll(c) < nll(d):
            b = d
        else:
            a = c
        c, d = b - g * (b - a), a + g * (b - a)
    return float(np.exp((a + b) / 2))


def latency(sessions: dict, faces: np.ndarray, reps_b1: int = 300, reps_b8: int = 150, warmup: int = 20) -> dict:
    """ms per face at batch 1 and 8 for each session, interleaved call by call (medians)."""
    res = {k: {} for k in sessions}
    for bs, reps in ((1, reps_b1), (8, reps_b8)):
        t = {k: [] for k in sessions}
        for r in range(warmup + reps):
            xb = np.ascontiguousarray(faces[(r * bs) % (len(faces) - bs):][:bs])
            for k, s in sessions.items():
                t0 = time.perf_counter_ns()
                s.run(None, {"input": xb})
                dt = time.perf_counter_ns() - t0
                if r >= warmup:
                    t[k].append(dt)
        for k in sessions:
            res[k][f"ms_per_face_b{bs}"] = float(np.median(t[k])) / 1e6 / bs
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", required=True)
    p.add_argument("--val", default=str(face_data.FACES / "fer2013_val.npz"))
    p.add_argument("--train", default=str(face_data.FACES / "fer2013_train.npz"))
    p.add_argument("--calib", type=int, default=400, help="number of training faces for INT8 calibration")
    p.add_argument("--models-dir", default=str(REPO / "emoedge" / "models"))
    p.add_argument("--manifest", default=None, help="manifest.json to update (default: the bundled one in --models-dir)")
    p.add_argument("--limit-val", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--temperature", choices=("auto", "publictest", "dev"), default="auto",
                   help="fit the temperature on PublicTest, or take the one face_distill.py fitted on its dev split "
                        "(auto: dev when the checkpoint has one)")
    p.add_argument("--logit-bias", action="store_true", help="add the checkpoint's dev-fitted per-class logit biases "
                   "(face_distill.py) to the graph's logits before quantisation")
    args = p.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    from emoedge.evaluation.face import evaluate
    from emoedge.manifest import update_entry
    from emoedge.session import SessionOptions, make_session

    ckpt = torch.load(args.ckpt, map_location="cpu", weights_only=False)
    meta = ckpt["meta"]
    if meta["preprocess"] != face_data.PREPROCESS:
        raise SystemExit(f"checkpoint was trained with preprocess {meta['preprocess']}, export/face_data.py now has "
                         f"{face_data.PREPROCESS}: retrain or restore the parameters")
    mdir = pathlib.Path(args.models_dir)
    mdir.mkdir(parents=True, exist_ok=True)
    manifest = pathlib.Path(args.manifest) if args.manifest else mdir / "manifest.json"
    f32, i8 = mdir / "face-expr-fp32.onnx", mdir / "face-expr-int8.onnx"
    model = export_onnx(ckpt, f32)
    bias = None
    if args.logit_bias:
        if not meta.get("logit_bias_dev"):
            raise SystemExit(f"{args.ckpt} has no dev-fitted logit_bias_dev (made by export/face_distill.py)")
        from face_tta import add_bias_graph
        bias = np.asarray(meta["logit_bias_dev"], np.float32)
        add_bias_graph(f32, f32, bias)
    t_dev = meta.get("temperature_dev") if args.temperature in ("auto", "dev") else None
    if args.temperature == "dev" and t_dev is None:
        raise SystemExit(f"{args.ckpt} has no dev-fitted temperature_dev (made by export/face_distill.py)")

    va = face_data.load_split(args.val)
    n = args.limit_val or len(va["images"])
    imgs, y = va["images"][:n], va["labels"][:n]
    x = face_data.preprocess_many(imgs)
    s32 = make_session(f32, SessionOptions(intra_threads=1))
    o32 = s32.run(None, {"input": x[:64]})[0]
    with torch.no_grad():
        ot = model(torch.from_numpy(x[:64])).numpy() + (0 if bias is None else bias)
    err = float(np.abs(o32 - ot).max())
    print(f"ONNX FP32 vs torch max |diff| on 64 faces: {err:.2e}", flush=True)
    assert err < 1e-3, err

    tr = face_data.load_split(args.train)
    rng = np.random.default_rng(args.seed)
    calib = face_data.preprocess_many(tr["images"][rng.choice(len(tr["images"]), args.calib, replace=False)])
    quantize(f32, i8, calib)
    s8 = make_session(i8, SessionOptions(intra_threads=1))

    # Same training framing (FER2013 48x48 crops) as the fer baseline, whose crop the detector work
    # calibrated; reuse it when present, else a placeholder for that calibration.
    crop = {"margin": 0.0, "note": "placeholder: FER2013 framing; to be calibrated by export/face_crop_calibrate.py"}
    if manifest.is_file():
        base = json.loads(manifest.read_text()).get("models", {}).get("fer-minixception", {})
        if base.get("crop"):
            crop = dict(base["crop"], source="copied from fer-minixception (same FER2013 framing)")
    sessions = {"fp32": s32, "int8": s8}
    lat = latency(sessions, x)
    entries = {}
    for prec, s in sessions.items():
        path = f32 if prec == "fp32" else i8
        e = {"file": path.name, "task": "face_expression", "family": "face-expr", "precision": prec,
             "labels": list(face_data.LABELS), "output": "logits",
             "input": {"name": "input", "shape": [None, 1, face_data.SIZE, face_data.SIZE], "layout": "nchw"},
             "preprocess": {k: v for k, v in face_data.PREPROCESS.items()},
             "crop": crop}
        rep = evaluate(e, path, imgs, y, [str(c) for c in va["class_names"]], batch=64, threads=1, session=s)
        logits = np.concatenate([s.run(None, {"input": x[i:i + 256]})[0] for i in range(0, len(x), 256)])
        T = float(t_dev) if t_dev is not None else fit_temperature(logits, y)
        e["temperature"] = T
        e["metrics"] = [{"split": SPLIT, "n": rep["n"], "accuracy": rep["accuracy"], "macro_f1": rep["macro_f1"],
                         "per_class_recall": rep["per_class_recall"], "confusion_matrix": rep["confusion_matrix"],
                         **lat[prec], "threads": 1, "nll_T1": None, "nll_T": None}]
        z = logits - logits.max(1, keepdims=True)
        e["metrics"][0]["nll_T1"] = float(np.mean(np.log(np.exp(z).sum(1)) - z[np.arange(len(y)), y]))
        zt = logits / T
        zt = zt - zt.max(1, keepdims=True)
        e["metrics"][0]["nll_T"] = float(np.mean(np.log(np.exp(zt).sum(1)) - zt[np.arange(len(y)), y]))
        e["params"] = int(meta["params"])
        e["mflops"] = round(meta["flops"] / 1e6, 1)
        e["flops_counted_as"] = "2 x multiply-accumulates of all Conv and Gemm layers, per face"
        e["train"] = {"epochs_run": ckpt["epoch"], "best_epoch_val_acc": ckpt["val_acc"],
                      "seed": meta["args"]["seed"], "ferplus_weight": meta["args"]["ferplus_weight"]}
        if meta.get("selection"):  # face_distill.py: selection, temperature and biases on a dev split
            e["train"].update(selection=meta["selection"], dev_acc=meta.get("dev_acc"),
                              teacher_dev_acc=meta.get("teacher_dev_acc"),
                              temperature_fitted_on="dev split" if t_dev is not None else "PublicTest",
                              logit_bias=None if bias is None else [round(float(v), 4) for v in bias])
        e["made_by"] = meta["command"] + " && python export/face_export.py " + " ".join(argv if argv is not None else sys.argv[1:])
        entries[prec] = e
        m = e["metrics"][0]
        print(f"{prec}: acc {m['accuracy']:.4f} macro-F1 {m['macro_f1']:.4f} T {T:.3f} NLL {m['nll_T1']:.4f}->{m['nll_T']:.4f} "
              f"b1 {m['ms_per_face_b1']:.3f} ms/face b8 {m['ms_per_face_b8']:.3f} ms/face "
              f"recall {json.dumps({k: round(v, 3) for k, v in m['per_class_recall'].items()})}", flush=True)
    a32, a8 = entries["fp32"]["metrics"][0], entries["int8"]["metrics"][0]
    sp1 = a32["ms_per_face_b1"] / a8["ms_per_face_b1"]
    sp8 = a32["ms_per_face_b8"] / a8["ms_per_face_b8"]
    default = "int8" if (sp1 > 1.0 and a32["accuracy"] - a8["accuracy"] <= 0.01) else "fp32"
    print(f"INT8 speed-up: {sp1:.2f}x at batch 1, {sp8:.2f}x at batch 8; accuracy drop {100 * (a32['accuracy'] - a8['accuracy']):.2f} points; "
          f"default -> face-expr-{default}", flush=True)
    for prec, e in entries.items():
        e["metrics"][0]["int8_speedup_b1"] = sp1
        e["metrics"][0]["int8_speedup_b8"] = sp8
        update_entry(f"face-expr-{prec}", e, path=manifest, default_for="face_expression" if prec == default else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
