"""`emoedge compile`: ahead-of-time model preparation per target.

- cpu: the offline-optimized ONNX (ORT_ENABLE_ALL, for this CPU) and the ORT format (.ort, also loadable
  by minimal/mobile onnxruntime builds); the engine prefers them when present (emoedge.session).
- cuda: checks the CUDA EP loads each model (no artifact needed; IO binding at run time).
- tensorrt: builds ORT TensorRT-EP engines into caches keyed by model sha256, GPU, TensorRT/ORT versions,
  precision and shape profile (face batch 1..16).
- jetson: the same on the board with JetPack's system TensorRT (trt-native when the TensorRT Python API
  is importable, else the ORT TensorRT EP).
Every build takes a file lock and publishes its folder with one atomic rename.
"""
from __future__ import annotations

import json
import pathlib
import shutil
import tempfile
import threading
import time
from typing import Any, Callable, Dict, Optional

import numpy as np

from .backends import (CPU_ARTIFACTS, FileLock, cached_sha256, atomic_publish_dir, check_backend, cpu_dir, find_compiled_cpu,  # noqa: F401
                       is_jetson, make_cache_key)
from .errors import BackendUnavailableError, InvalidInputError
from .manifest import load_manifest, sha256_file

def sample_feeds(sess, batch, rng, task=""):
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


def _dummy_feeds(sess, batch: int = 1) -> dict:
    return sample_feeds(sess, batch, np.random.default_rng(0))


def _time_load(path, so_factory, repeats=5) -> float:
    import onnxruntime as ort
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        ort.InferenceSession(str(path), so_factory(), providers=["CPUExecutionProvider"])
        ts.append(time.perf_counter_ns() - t0)
    return float(np.median(ts)) / 1e6


def _time_run(sess, feeds, repeats=50) -> float:
    for _ in range(5):
        sess.run(None, feeds)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        sess.run(None, feeds)
        ts.append(time.perf_counter_ns() - t0)
    return float(np.median(ts)) / 1e6


def compile_cpu(model_path, compiled_dir=None, threads: int = 1, force: bool = False,
                log: Callable[[str], None] = print) -> dict:
    """Write the optimized .onnx and .ort for ``model_path``; measure load time and latency of the
    original vs both artifacts (same run, ``threads`` threads) and record them in meta.json."""
    import onnxruntime as ort
    model_path = pathlib.Path(model_path)
    model_sha = sha256_file(model_path)  # by content: the folder and meta.json are keyed by it
    final = cpu_dir(model_path, compiled_dir, model_sha)
    with FileLock(final.parent / (final.name + ".lock"), timeout=600):
        if (final / "meta.json").is_file() and not force:
            return json.loads((final / "meta.json").read_text())
        tmp = pathlib.Path(tempfile.mkdtemp(dir=str(final.parent), prefix=f".{final.name}."))
        try:
            def so_full(opt_path=None, fmt=None):
                so = ort.SessionOptions()
                so.intra_op_num_threads = threads
                so.inter_op_num_threads = 1
                so.log_severity_level = 3
                so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                if opt_path:
                    so.optimized_model_filepath = str(opt_path)
                if fmt:
                    so.add_session_config_entry("session.save_model_format", fmt)
                return so

            def so_preopt(fmt=None):
                so = ort.SessionOptions()
                so.intra_op_num_threads = threads
                so.inter_op_num_threads = 1
                so.log_severity_level = 3
                so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
                if fmt:
                    so.add_session_config_entry("session.load_model_format", fmt)
                return so

            ort.InferenceSession(str(model_path), so_full(tmp / "model.opt.onnx"), providers=["CPUExecutionProvider"])
            ort.InferenceSession(str(model_path), so_full(tmp / "model.ort", "ORT"), providers=["CPUExecutionProvider"])
            base = ort.InferenceSession(str(model_path), so_full(), providers=["CPUExecutionProvider"])
            opt = ort.InferenceSession(str(tmp / "model.opt.onnx"), so_preopt(), providers=["CPUExecutionProvider"])
            orts = ort.InferenceSession(str(tmp / "model.ort"), so_preopt("ORT"), providers=["CPUExecutionProvider"])
            feeds = _dummy_feeds(base)
            ref = base.run(None, feeds)
            for name, s in (("model.opt.onnx", opt), ("model.ort", orts)):
                out = s.run(None, feeds)
                for a, b in zip(ref, out):
                    if not np.allclose(a, b, rtol=1e-4, atol=1e-5):
                        raise RuntimeError(f"compiled {name} differs from {model_path.name} (max abs diff "
                                           f"{float(np.max(np.abs(a - b))):.3g}); not publishing")
            load = {"original": _time_load(model_path, so_full),
                    "model.opt.onnx": _time_load(tmp / "model.opt.onnx", so_preopt),
                    "model.ort": _time_load(tmp / "model.ort", lambda: so_preopt("ORT"))}
            run = {"original": _time_run(base, feeds), "model.opt.onnx": _time_run(opt, feeds),
                   "model.ort": _time_run(orts, feeds)}
            preferred = min(("model.opt.onnx", "model.ort"), key=lambda k: (load[k] + 20 * run[k]))
            meta = {"model": str(model_path), "model_sha256": model_sha,
                    "key": make_cache_key(model_sha, "cpu", "native").__dict__,
                    # checked when the artifact is loaded (emoedge.backends.load_compiled_cpu)
                    "artifacts_sha256": {name: sha256_file(tmp / name) for name in CPU_ARTIFACTS},
                    "preferred": preferred, "threads": threads, "load_ms": load, "run_ms_b1": run,
                    "load_speedup": load["original"] / load[preferred], "run_speedup": run["original"] / run[preferred],
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
            atomic_publish_dir(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    log(f"  {model_path.name}: load {load['original']:.1f} -> {load[preferred]:.1f} ms ({preferred}), "
        f"run {run['original']:.3f} -> {run[preferred]:.3f} ms")
    return meta


class _Ticker:
    """Prints elapsed time every few seconds while a slow build runs (TensorRT builds take minutes on Jetson)."""

    def __init__(self, what: str, log, every: float = 10.0):
        self.what, self.log, self.every = what, log, every
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        t0 = time.monotonic()
        while not self._stop.wait(self.every):
            self.log(f"  ... still building {self.what} ({time.monotonic() - t0:.0f} s)")

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()


def default_profile(sess, max_batch: int = 16) -> dict:
    """TensorRT shape profile: dynamic batch 1..max_batch (opt 8), other dims as declared."""
    prof = {}
    for i in sess.get_inputs():
        dims = [d if isinstance(d, int) and d > 0 else None for d in i.shape]
        if dims and dims[0] is None and all(d is not None for d in dims[1:]):
            prof[i.name] = ((1, *dims[1:]), (min(8, max_batch), *dims[1:]), (max_batch, *dims[1:]))
    return prof


def compile_tensorrt_ep(model_path, precision: str, profile: Optional[dict] = None, log=print, out=None) -> dict:
    """Build (or reuse) the ORT TensorRT-EP engine for ``model_path`` by creating the session and running
    the min/opt/max shapes once; the engine and timing caches land in the keyed folder under ``out``/trt-ep
    (None: the cache root; a run finds them with EMOEDGE_CACHE_DIR=out)."""
    import onnxruntime as ort
    from .session import SessionOptions, make_session, session_info
    check_backend("tensorrt")
    probe = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    profile = profile if profile is not None else default_profile(probe)
    opts = SessionOptions(backend="tensorrt", precision=precision, trt_profile=profile or None,
                          compiled_dir=None if out is None else str(out))
    t0 = time.perf_counter()
    with _Ticker(pathlib.Path(model_path).name, log):
        sess = make_session(model_path, opts)
        for shapes in zip(*[[(n, s) for s in profile[n]] for n in profile]) if profile else [()]:
            feeds = _dummy_feeds(sess)
            for n, s in shapes:
                feeds[n] = np.zeros(s, dtype=np.float32)
            sess.run(None, feeds)
    info = session_info(sess)
    info.update(build_s=time.perf_counter() - t0, precision=precision, profile={k: list(map(list, v)) for k, v in profile.items()})
    log(f"  {pathlib.Path(model_path).name}: TensorRT EP {precision} ready in {info['build_s']:.1f} s ({info['providers'][0]})")
    return info


def compile_models(target: str, precision: str = "fp32", names=None, out=None, threads: int = 1, force: bool = False,
                   log=print) -> dict:
    """Compile the bundled models (all, or ``names``) for ``target``: cpu | cuda | tensorrt | jetson."""
    if target not in ("cpu", "cuda", "tensorrt", "jetson"):
        raise InvalidInputError(f"unknown target {target!r}; choose cpu, cuda, tensorrt or jetson")
    if target == "jetson" and not is_jetson():
        raise BackendUnavailableError("--target jetson must run on the Jetson itself (no /etc/nv_tegra_release or "
                                      "Jetson device-tree model found): TensorRT engines are built for the GPU they run on")
    m = load_manifest()
    names = list(names) if names else [n for n in m.names() if m.entry(n).get("file", "").endswith(".onnx")]
    res: Dict[str, Any] = {"target": target, "precision": precision, "models": {}}
    for n in names:
        path = m.model_path(n)
        e = m.entry(n)
        log(f"[{n}] {target}" + ("" if target in ("cpu", "cuda") else f" {precision}"))
        if target == "cpu":
            res["models"][n] = compile_cpu(path, out, threads=threads, force=force, log=log)
        elif target == "cuda":
            from .session import SessionOptions, make_session, session_info
            res["models"][n] = session_info(make_session(path, SessionOptions(backend="cuda")))
        else:
            want = precision
            if precision == "int8" and e.get("precision") != "int8":
                log(f"  {n} is {e.get('precision')}; INT8 engines are built from the QDQ-INT8 variant")
                continue
            if target == "jetson":
                try:
                    from .trt_native import build_engine
                    res["models"][n] = build_engine(path, want, out_dir=out, log=log)
                    continue
                except BackendUnavailableError:
                    pass
            res["models"][n] = compile_tensorrt_ep(path, want, log=log, out=out)
    return res
