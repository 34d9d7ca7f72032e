"""Model latency: every bundled ONNX model at each precision it ships, on every available backend,
batch 1 and 8 (where the model takes a dynamic batch): p50/p95/p99 and throughput. For INT8 models the
anchor is the FP32 model of the same family, measured interleaved in the same run (ratio = speed-up)."""
from __future__ import annotations

from typing import Dict

import numpy as np

from . import compare, row
from ..compile import sample_feeds as _feeds


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
    by_family: Dict[str, Dict[str, str]] = {}
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
                        so = SessionOptions(backend=backend, intra_threads=th, use_compiled=False)
                        sessions[prec] = make_session(m.model_path(name), so)
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
