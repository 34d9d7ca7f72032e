#!/usr/bin/env python
"""All GPU checks in one go, for a machine with an NVIDIA GPU (x86-64 or Jetson).

    python benchmarks/gpu_check.py [--json OUT.json] [--data ../shared/data] [--quick]

For every bundled ONNX model: builds the engines (ORT CUDA EP; ORT TensorRT EP FP32/FP16, INT8 for the
QDQ models; trt-native FP16/INT8 for the face-expression models when the TensorRT Python API and
cuda-python are importable), checks parity against onnxruntime CPU (tolerances below), accuracy of
the face-expression models on FER2013 PublicTest per backend when the data is present, and prints a
latency table (p50/p95, batch 1 and 8). Without a GPU it says so and exits 0 having checked nothing
(it is a device script, not a test).

Parity tolerances (max abs diff of softmax probabilities, same inputs, vs CPU with the same file):
  fp32: 1e-3;  fp16: 2e-2;  int8: 5e-2.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import numpy as np

TOL = {"fp32": 1e-3, "fp16": 2e-2, "int8": 5e-2}


def softmax(x):
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 2:
        return x
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def lat(fn, n=100, warm=10):
    for _ in range(warm):
        fn()
    ts = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        fn()
        ts.append(time.perf_counter_ns() - t0)
    ts = np.array(ts) / 1e6
    return float(np.median(ts)), float(np.percentile(ts, 95))


def inputs_for(sess, batch, rng):
    from emoedge.compile import sample_feeds
    return sample_feeds(sess, batch, rng)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", default=None)
    ap.add_argument("--data", default=str(pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    import onnxruntime as ort
    from emoedge import backends
    from emoedge.compile import default_profile
    from emoedge.manifest import load_manifest
    from emoedge.session import SessionOptions, make_session, session_info

    gpu = backends.gpu_name()
    info = {"gpu": gpu, "jetson": backends.jetson_info(), "onnxruntime": ort.__version__,
            "providers": ort.get_available_providers(), "tensorrt": backends.tensorrt_version()}
    print(json.dumps(info, indent=2))
    if gpu is None or "CUDAExecutionProvider" not in ort.get_available_providers():
        print("no NVIDIA GPU with onnxruntime-gpu here: nothing checked (install emoedge[gpu] on a GPU machine)")
        return 0
    m = load_manifest()
    rng = np.random.default_rng(0)
    rows, failures = [], []
    n_rep = 30 if a.quick else 200
    for name in m.names():
        e = m.entry(name)
        if not e.get("file", "").endswith(".onnx"):
            continue
        path = m.model_path(name)
        cpu = make_session(path, SessionOptions(use_compiled=False))
        bs = [1, 8] if any(not isinstance(i.shape[0], int) for i in cpu.get_inputs()) else [1]
        if e.get("precision") == "int8":
            variants = [("cuda", "int8"), ("tensorrt", "int8")]
        else:
            variants = [("cuda", "fp32"), ("tensorrt", "fp32"), ("tensorrt", "fp16")]
        for backend, prec in variants:
            try:
                t0 = time.perf_counter()
                prof = default_profile(cpu) or None if backend == "tensorrt" else None
                s = make_session(path, SessionOptions(backend=backend, precision=prec if backend == "tensorrt" else "fp32",
                                                      trt_profile=prof))
                for b in bs:
                    s.run(None, inputs_for(cpu, b, rng))  # builds the engine for this shape on first use
                build_s = time.perf_counter() - t0
            except Exception as ex:  # report and go on: one table for everything
                rows.append({"model": name, "backend": backend, "precision": prec, "error": f"{type(ex).__name__}: {ex}"})
                failures.append(f"{name} {backend} {prec}: {ex}")
                continue
            for b in bs:
                f = inputs_for(cpu, b, rng)
                ref = softmax(cpu.run(None, f)[0])
                got = softmax(s.run(None, f)[0])
                diff = float(np.max(np.abs(ref - got)))
                p50, p95 = lat(lambda: s.run(None, f), n_rep)
                c50, _ = lat(lambda: cpu.run(None, f), max(10, n_rep // 4))
                ok = diff <= TOL[prec]
                if not ok:
                    failures.append(f"{name} {backend} {prec} b{b}: max abs diff {diff:.3g} > {TOL[prec]}")
                rows.append({"model": name, "backend": backend, "precision": prec, "batch": b,
                             "providers": session_info(s)["providers"], "build_s": build_s, "p50_ms": p50,
                             "p95_ms": p95, "cpu_p50_ms": c50, "max_abs_diff": diff, "parity_ok": ok})
    # trt-native (TensorRT Python API) for the face-expression models
    try:
        backends.check_backend("trt-native")
        from emoedge.trt_native import TrtEngine, build_engine
        for name in m.names():
            e = m.entry(name)
            if e.get("task") != "face_expression":
                continue
            prec = "int8" if e.get("precision") == "int8" else "fp16"
            meta = build_engine(m.model_path(name), prec)
            eng = TrtEngine(meta["engine"])
            cpu = make_session(m.model_path(name), SessionOptions(use_compiled=False))
            for b in (1, 8):
                f = inputs_for(cpu, b, rng)
                ref = softmax(cpu.run(None, f)[0])
                got = softmax(eng.run(f)[0])
                diff = float(np.max(np.abs(ref - got)))
                p50, p95 = lat(lambda: eng.run(f), n_rep)
                ok = diff <= TOL[prec]
                if not ok:
                    failures.append(f"{name} trt-native {prec} b{b}: max abs diff {diff:.3g}")
                rows.append({"model": name, "backend": "trt-native", "precision": prec, "batch": b,
                             "build_s": meta["build_s"], "p50_ms": p50, "p95_ms": p95, "max_abs_diff": diff, "parity_ok": ok})
            eng.close()
    except Exception as ex:
        rows.append({"model": "*", "backend": "trt-native", "error": f"{type(ex).__name__}: {ex}"})
    # accuracy of the face-expression models on PublicTest per backend
    val = pathlib.Path(a.data) / "faces" / "fer2013_val.npz"
    acc = {}
    if val.is_file():
        from emoedge import kernels
        from emoedge.labels import to_canonical
        d = np.load(val)
        n = 500 if a.quick else len(d["labels"])
        imgs, y = d["images"][:n], d["labels"][:n].astype(int)
        cls = [str(c) for c in d["class_names"]]
        for name in m.names():
            e = m.entry(name)
            if not e.get("task", "").startswith("face_expression"):
                continue
            pp = {k: (tuple(v) if isinstance(v, list) else v) for k, v in e["preprocess"].items()}
            x = np.concatenate([kernels.preprocess(im, **pp).reshape(1, *e["input"]["shape"][1:]) for im in imgs])
            for backend in ("cpu", "cuda", "tensorrt"):
                try:
                    prec = "int8" if e.get("precision") == "int8" and backend == "tensorrt" else "fp32"
                    s = make_session(m.model_path(name), SessionOptions(backend=backend, use_compiled=False, precision=prec))
                    iname = s.get_inputs()[0].name
                    pred = np.concatenate([s.run(None, {iname: x[i:i + 8]})[0] for i in range(0, n, 8)]).argmax(1)
                    acc[f"{name}/{backend}"] = float(np.mean([to_canonical(cls[t]) == to_canonical(e["labels"][p])
                                                              for t, p in zip(y, pred)]))
                except Exception as ex:
                    acc[f"{name}/{backend}"] = f"{type(ex).__name__}: {ex}"
    print("\n| model | backend | precision | batch | p50 ms | p95 ms | CPU p50 ms | max abs diff | parity | build s |")
    print("|---|---|---|---:|---:|---:|---:|---:|---|---:|")
    for r in rows:
        if "error" in r:
            print(f"| {r['model']} | {r['backend']} | {r.get('precision', '')} | | | | | | ERROR: {r['error'][:100]} | |")
            continue
        print(f"| {r['model']} | {r['backend']} | {r['precision']} | {r['batch']} | {r['p50_ms']:.3f} | {r['p95_ms']:.3f} | "
              f"{r.get('cpu_p50_ms', float('nan')):.3f} | {r['max_abs_diff']:.2e} | {'ok' if r['parity_ok'] else 'FAIL'} | "
              f"{r['build_s']:.1f} |")
    if acc:
        print("\nPublicTest accuracy by backend:")
        for k, v in acc.items():
            print(f"  {k}: {v if isinstance(v, str) else f'{v:.4f}'}")
    if a.json:
        pathlib.Path(a.json).write_text(json.dumps({"info": info, "rows": rows, "accuracy": acc, "failures": failures}, indent=2))
    print(f"\n{len(failures)} failures" + "".join(f"\n  {f}" for f in failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
