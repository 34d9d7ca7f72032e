"""Model latency: every bundled ONNX model at each precision it ships, on every available backend,
batch 1 and 8 (where the model takes a dynamic batch): p50/p95/p99 and throughput. For INT8 models the
anchor is the FP32 model of the same family, measured interleaved in the same run (ratio = speed-up)."""
from __future__ import annotations

import numpy as np

from . import compare, row


def _feeds(sess, batch, rng, task=""):
    """Realistic inputs per model kind: VAD (576-sample chunks + state + sr), text (hashed n-gram
    features of ~60 per text), everything else: random float tensors with the batch in dim 0."""
    names = [i.name for i in sess.get_inputs()]
    if task == "vad" or {"state", "sr"} <= set(names):
        return {"input": (rng.standard_normal((batch, 576)) * 0.05).astype(np.float32),
                "state": np.zeros((2, batch, 128), np.float32), "sr": np.array(16000, dtype=np.int64)}
    if {"indices", "tf", "segment", "n_texts"} <= set(names):
        n = 60 * batch
        return {"indices": rng.integers(0, 1 << 18, n).astype(np.int64), "tf": np.ones(n, np.float32),
                "segment": np.repeat(np.arange(batch, dtype=np.int64), 60), "n_texts": np.array([batch], np.int64)}
    feeds = {}
    for i in sess.get_inputs():
        shape = [batch if (j == 0 and not isinstance(s, int)) else (s if isinstance(s, int) and s > 0 else 1)
                 for j, s in enumerate(i.shape)]
        if i.type == "tensor(float)":
            feeds[i.name] = rng.standard_normal(shape).astype(np.float32)
        elif i.type == "tensor(int64)":
            feeds[i.name] = np.zeros(shape, np.int64)
        else:
            feeds[i.name] = np.zeros(shape, dtype=np.float32)
    return feeds


def backends_available():
    import onnxruntime as ort
    av = ort.get_available_providers()
    out = ["cpu"]
    if "CUDAExecutionProvider" in av:
        out.append("cuda")
    if "TensorrtExecutionProvider" in av:
        out.append("tensorrt")
    return out


def run(quick: bool = True, threads=(1,)) -> list:
    from ..manifest import load_manifest
    from ..session import SessionOptions, make_session, session_info
    m = load_manifest()
    rng = np.random.default_rng(0)
    reps = 60 if quick else 300
    rows = []
    by_family = {}
    for n in m.names():
        e = m.entry(n)
        if e.get("file", "").endswith(".onnx"):
            by_family.setdefault(e.get("family", n), {})[e.get("precision", "fp32")] = n
    for fam, variants in sorted(by_family.items()):
        for backend in backends_available():
            for th in threads:
                sessions = {}
                for prec, name in variants.items():
                    try:
                        sessions[prec] = make_session(m.model_path(name), SessionOptions(backend=backend, intra_threads=th, use_compiled=False))
                    except Exception as ex:  # reported, not hidden
                        rows.append({"name": f"{name}/{backend}", "error": f"{type(ex).__name__}: {ex}", "ours_ms": float("nan"),
                                     "anchor": None, "ratio": None, "threads": th})
                if not sessions:
                    continue
                any_s = next(iter(sessions.values()))
                task = m.entry(next(iter(variants.values()))).get("task", "")
                dyn = any(i.shape and not isinstance(i.shape[0], int) for i in any_s.get_inputs())
                for b in ([1, 8] if dyn else [1]):
                    feeds = _feeds(any_s, b, rng, task)
                    fp32 = sessions.get("fp32")
                    for prec, s in sorted(sessions.items()):
                        anchor = fp32 if (prec != "fp32" and fp32 is not None) else None
                        try:
                            s.run(None, feeds)
                        except Exception as ex:  # reported per model, the rest still runs
                            rows.append({"name": f"{variants[prec]}/{backend}/b{b}", "error": f"{type(ex).__name__}: {ex}"[:300],
                                         "ours_ms": float("nan"), "anchor": None, "ratio": None, "threads": th})
                            continue
                        ours_ns, anc_ns = compare(lambda: s.run(None, feeds),
                                                  (lambda: anchor.run(None, feeds)) if anchor is not None else None, reps)
                        r = row(f"{variants[prec]}/{backend}/b{b}", ours_ns, anc_ns,
                                anchor=f"{variants['fp32']} (FP32, same run)" if anchor is not None else None,
                                anchor_version=None, threads=th, batch=b, precision=prec, backend=backend,
                                providers=session_info(s)["providers"], family=fam)
                        r["throughput_per_s"] = b / (r["ours_ms"] / 1e3) if r["ours_ms"] > 0 else None
                        rows.append(r)
    return rows
