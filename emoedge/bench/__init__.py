"""Benchmark building blocks shared by `emoedge bench` and benchmarks/ (pytest-benchmark).

Each family module ``emoedge/bench/<family>.py`` exposes ``run(quick: bool) -> list[dict]``; each row:

    {"name": str,                 # case, e.g. "logmel_10s"
     "ours_ms": float,            # median ms of ours
     "ours_p95_ms": float,
     "anchor": str | None,        # e.g. "librosa.feature.melspectrogram+power_to_db"
     "anchor_version": str | None,
     "anchor_ms": float | None,   # median ms of the anchor, measured in the same run, interleaved
     "ratio": float | None,       # anchor_ms / ours_ms (> 1: we are faster)
     "target_ratio": float | None,
     "threads": int, "repeats": int, "unit": "ms"}

Rules: time.perf_counter_ns, warm-up discarded, medians over repeats, anchors interleaved with ours.
"""
from __future__ import annotations

import os
import platform
import time
from typing import Any, Callable, Dict, Optional

import numpy as np


def timings_ns(fn: Callable[[], object], repeats: int, warmup: int = 3) -> np.ndarray:
    """Run ``fn`` ``warmup`` times (discarded), then ``repeats`` times; returns ns per call."""
    for _ in range(warmup):
        fn()
    out = np.empty(repeats, dtype=np.int64)
    for i in range(repeats):
        t0 = time.perf_counter_ns()
        fn()
        out[i] = time.perf_counter_ns() - t0
    return out


def compare(ours: Callable[[], object], anchor: Optional[Callable[[], object]], repeats: int, warmup: int = 3,
            rounds: int = 5):
    """Time ``ours`` and ``anchor`` interleaved in ``rounds`` blocks (so drift on a shared machine hits
    both alike). Returns (ours_ns, anchor_ns or None) arrays of all timed calls."""
    per = max(1, repeats // rounds)
    a_all, b_all = [], []
    for r in range(rounds):
        a_all.append(timings_ns(ours, per, warmup if r == 0 else 1))
        if anchor is not None:
            b_all.append(timings_ns(anchor, per, warmup if r == 0 else 1))
    a = np.concatenate(a_all)
    b = np.concatenate(b_all) if anchor is not None else None
    return a, b


def row(name: str, ours_ns, anchor_ns=None, anchor: Optional[str] = None, anchor_version: Optional[str] = None,
        target_ratio: Optional[float] = None, threads: int = 1, **extra) -> dict:
    """Build a result row from raw ns timings (medians, p95; ratio from the same run)."""
    ours_ns = np.asarray(ours_ns, dtype=np.float64)
    r: Dict[str, Any] = {"name": name, "ours_ms": float(np.median(ours_ns)) / 1e6, "ours_p95_ms": float(np.percentile(ours_ns, 95)) / 1e6,
         "ours_iqr_ms": float(np.subtract(*np.percentile(ours_ns, [75, 25]))) / 1e6,
         "anchor": anchor, "anchor_version": anchor_version, "anchor_ms": None, "ratio": None,
         "ours_p99_ms": float(np.percentile(ours_ns, 99)) / 1e6,
         "target_ratio": target_ratio, "threads": threads, "repeats": int(ours_ns.size), "unit": "ms",
         # wall-clock stamp of when this row's timings were finished; `emoedge bench` checks that every
         # row of a report falls inside that report's run window (ratios come from the same run).
         "measured_at": time.time()}
    if anchor_ns is not None:
        anchor_ns = np.asarray(anchor_ns, dtype=np.float64)
        r["anchor_ms"] = float(np.median(anchor_ns)) / 1e6
        r["anchor_iqr_ms"] = float(np.subtract(*np.percentile(anchor_ns, [75, 25]))) / 1e6
        r["ratio"] = r["anchor_ms"] / r["ours_ms"] if r["ours_ms"] > 0 else None
    if target_ratio is not None and r["ratio"] is not None:
        r["meets_target"] = bool(r["ratio"] >= target_ratio)
    r.update(extra)
    return r


def machine() -> dict:
    """Description of this machine for benchmark output."""
    from .._native_loader import backend_name, get_native
    d = {"platform": platform.platform(), "machine": platform.machine(), "python": platform.python_version(),
         "cores": os.cpu_count(), "numpy": np.__version__, "kernels": backend_name()}
    nat = get_native()
    d["cpu_flags"] = nat.cpu_flags() if nat is not None else ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    d["cpu_model"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    for mod in ("onnxruntime", "cv2"):
        try:
            d[mod] = __import__(mod).__version__
        except ImportError:
            d[mod] = None
    return d


def single_thread() -> None:
    """Pin the anchors to one thread (OpenCV, BLAS via threadpoolctl when present)."""
    try:
        import cv2
        cv2.setNumThreads(1)
    except ImportError:
        pass
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(1)
    except ImportError:
        pass
