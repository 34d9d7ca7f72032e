"""onnxruntime session creation with explicit settings (threads, providers, optimization level).

Sessions are thread-safe for concurrent ``run`` calls and are shared by all streams of an engine.
For the ``cpu`` backend a model compiled by ``emoedge compile --target cpu`` (an offline-optimized
.onnx and an .ort file, keyed by the model's sha256, the CPU and the onnxruntime version) is preferred
when present; ``session_info(sess)`` says which file and providers were actually used.
"""
from __future__ import annotations

import json
import pathlib
import weakref
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from .errors import BackendUnavailableError, ModelError, ModelNotFoundError

#: backend name -> onnxruntime execution providers, in preference order.
BACKEND_PROVIDERS = {
    "cpu": ("CPUExecutionProvider",),
    "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "tensorrt": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
}

# What make_session did for each live session; entries go away with their session.
_info: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()


@dataclass
class SessionOptions:
    """Execution settings.

    backend: 'cpu' | 'cuda' | 'tensorrt' (ORT execution providers; 'trt-native' is emoedge.trt_native).
    intra_threads: threads inside one op (1 suits many small models on edge CPUs).
    precision: 'fp32' | 'fp16' | 'int8' — for TensorRT: fp16 builds FP16 engines from the FP32 model,
      int8 expects the QDQ-INT8 model. Ignored by cpu/cuda (the model file decides).
    use_compiled: prefer artifacts from ``emoedge compile --target cpu`` when present.
    compiled_dir: artifact root (``emoedge compile --out DIR``; None = the cache root, see
      emoedge.backends.cache_root): CPU artifacts under DIR/cpu, TensorRT-EP engine caches under DIR/trt-ep.
    trt_profile: TensorRT shape profile {input_name: (min_shape, opt_shape, max_shape)}.
    triton: emoedge.triton.client.TritonOptions for backend 'triton' (the model runs on a Triton server;
      make_session returns a session-like adapter, see emoedge.triton.client).
    """
    backend: str = "cpu"
    intra_threads: int = 1
    inter_threads: int = 1
    log_severity: int = 3
    precision: str = "fp32"
    use_compiled: bool = True
    compiled_dir: Optional[str] = None
    trt_profile: Optional[dict] = None
    device_id: int = 0
    extra_provider_options: dict = field(default_factory=dict)
    triton: Optional[Any] = None


def _profile_str(profile: Optional[dict]) -> str:
    if not profile:
        return "static"
    parts = []
    for name in sorted(profile):
        mn, opt, mx = profile[name]
        parts.append(f"{name}:{'x'.join(map(str, mn))}/{'x'.join(map(str, opt))}/{'x'.join(map(str, mx))}")
    return ",".join(parts)


def tensorrt_provider_options(model_sha256: str, opts: SessionOptions, cache_dir=None) -> dict:
    """ORT TensorRT EP options with engine + timing caches in a folder keyed by model sha256, GPU name,
    TensorRT and onnxruntime versions, precision and shape profile."""
    from .backends import atomic_write_bytes, cache_root, make_cache_key
    key = make_cache_key(model_sha256, "tensorrt", opts.precision, _profile_str(opts.trt_profile))
    root = pathlib.Path(cache_dir) if cache_dir else cache_root() / "trt-ep"
    d = root / key.dirname()
    d.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(d / "key.json", json.dumps(key.__dict__, indent=2, sort_keys=True).encode())
    po = {"device_id": opts.device_id,
          "trt_engine_cache_enable": True, "trt_engine_cache_path": str(d),
          "trt_timing_cache_enable": True, "trt_timing_cache_path": str(d),
          "trt_fp16_enable": opts.precision == "fp16", "trt_int8_enable": opts.precision == "int8",
          "trt_max_workspace_size": 1 << 30}
    if opts.trt_profile:
        def fmt(i):
            return ",".join(f"{n}:{'x'.join(map(str, opts.trt_profile[n][i]))}" for n in sorted(opts.trt_profile))
        po.update(trt_profile_min_shapes=fmt(0), trt_profile_opt_shapes=fmt(1), trt_profile_max_shapes=fmt(2))
    po.update(opts.extra_provider_options)
    return po


def make_session(path, opts: Optional[SessionOptions] = None, provider_options: Optional[Sequence[dict]] = None):
    """Create an ``onnxruntime.InferenceSession`` for ``path``; raises ModelError naming the file if
    it cannot be loaded and BackendUnavailableError (with the extra to install) for a missing backend.
    Never falls back silently: the providers used are in ``session_info(sess)``."""
    import onnxruntime as ort
    from .backends import check_backend
    opts = opts or SessionOptions()
    path = pathlib.Path(path)
    if not path.is_file():
        raise ModelNotFoundError(f"model file {path} not found")
    if opts.backend == "triton":   # same graph, run by a Triton server: an adapter with the session surface
        from .triton.client import runs_in_process, triton_session
        if not runs_in_process(path, opts.triton):
            return triton_session(path, opts)
        import dataclasses
        opts = dataclasses.replace(opts, backend="cpu", triton=None)
    if opts.backend not in BACKEND_PROVIDERS:
        if opts.backend == "trt-native":
            raise BackendUnavailableError("backend 'trt-native' runs serialized TensorRT engines, not ORT sessions: "
                                          "use emoedge.trt_native.TrtEngine")
        raise BackendUnavailableError(f"unknown backend {opts.backend!r}; choose one of {sorted(BACKEND_PROVIDERS)}, "
                                      "'triton' or 'trt-native'")
    check_backend(opts.backend)
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(opts.intra_threads)
    so.inter_op_num_threads = int(opts.inter_threads)
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = int(opts.log_severity)
    # The bytes are read once, checked and handed to onnxruntime (not the path): a file that a manifest
    # verified cannot be swapped between that check and this load.
    import hashlib
    from .manifest import expected_sha256
    try:
        model_bytes = path.read_bytes()
    except OSError as e:
        raise ModelError(f"could not read model {path}: {e}") from None
    model_sha = hashlib.sha256(model_bytes).hexdigest()
    want = expected_sha256(path)
    if want is not None and model_sha != want:
        raise ModelError(f"model file {path} changed after it was verified against its manifest sha256 "
                         f"({want[:12]}..., now {model_sha[:12]}...): the file was replaced; reinstall emoedge")
    load_path, compiled, load_bytes = path, None, model_bytes
    if opts.backend == "cpu" and opts.use_compiled:
        from .backends import load_compiled_cpu
        found = load_compiled_cpu(path, opts.compiled_dir, model_sha)
        if found is not None:
            compiled, load_bytes = found
            load_path = compiled
            # Already optimized offline: skip the optimizer at load time (that is the load-time gain).
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            if load_path.suffix == ".ort":
                so.add_session_config_entry("session.load_model_format", "ORT")
    wanted = BACKEND_PROVIDERS[opts.backend]
    providers = list(wanted)
    if provider_options is None:
        provider_options = [{} for _ in providers]
        if opts.backend == "tensorrt":
            trt_dir = pathlib.Path(opts.compiled_dir) / "trt-ep" if opts.compiled_dir else None
            provider_options[0] = tensorrt_provider_options(model_sha, opts, cache_dir=trt_dir)
        if opts.backend in ("cuda", "tensorrt"):
            provider_options[providers.index("CUDAExecutionProvider")] = {"device_id": opts.device_id}
    preload = _preload_gpu_libraries() if opts.backend in ("cuda", "tensorrt") else ""
    try:
        # CPU: the checked bytes. GPU execution providers get the path (the TensorRT EP names its engine
        # cache after the model file); its bytes were checked just above.
        src = load_bytes if opts.backend == "cpu" else str(load_path)
        sess = ort.InferenceSession(src, so, providers=providers, provider_options=list(provider_options))
    except Exception as e:  # onnxruntime raises its own Fail/InvalidProtobuf/... types
        msg = f"{type(e).__name__}: {e}"
        if opts.backend != "cpu" and any(k in msg.lower() for k in ("cuda", "cudnn", "cublas", "tensorrt", "provider")):
            raise BackendUnavailableError(f"backend {opts.backend!r} could not create a session for {path.name}: {msg}. "
                                          f"{GPU_LIBRARY_HINT}{preload}") from None
        raise ModelError(f"could not load model {load_path}: {msg}. The file may be corrupt or "
                         "truncated; reinstall emoedge or re-run its export step") from None
    used = sess.get_providers()
    if used[0] != wanted[0]:
        raise BackendUnavailableError(f"backend {opts.backend!r} asked for {wanted[0]} but onnxruntime used {used} "
                                      f"for {path.name} (it logs why above). {GPU_LIBRARY_HINT}{preload}")
    _info[sess] = {"model": str(path), "loaded": str(load_path), "compiled": compiled is not None,
                   "providers": used, "backend": opts.backend, "threads": opts.intra_threads, "sha256": model_sha}
    return sess


GPU_LIBRARY_HINT = ("onnxruntime-gpu 1.31 is built for CUDA 13 and cuDNN 9: have them on the library path, or "
                    "install the pip wheels (pip install 'onnxruntime-gpu[cuda,cudnn]'; emoedge then loads them with "
                    "onnxruntime.preload_dlls()), and make sure the CPU 'onnxruntime' package is not installed beside "
                    "onnxruntime-gpu (pip uninstall onnxruntime onnxruntime-gpu, then pip install onnxruntime-gpu)")
_preloaded: Optional[str] = None


def _preload_gpu_libraries() -> str:
    """Once per process, before the first CUDA/TensorRT session: ``onnxruntime.preload_dlls()`` (onnxruntime-gpu
    >= 1.21) loads CUDA and cuDNN from the nvidia-* pip packages, which the CUDA EP does not find on its own.
    Its messages are kept out of stdout (CLI output may be JSON) and returned for error messages.
    EMOEDGE_ORT_PRELOAD=0 turns it off (CUDA from the system library path only)."""
    global _preloaded
    if _preloaded is None:
        import contextlib
        import io
        import os
        import onnxruntime as ort
        buf = io.StringIO()
        if os.environ.get("EMOEDGE_ORT_PRELOAD", "1") != "0" and hasattr(ort, "preload_dlls"):
            try:
                with contextlib.redirect_stdout(buf):
                    ort.preload_dlls()
            except Exception as e:  # a missing library is reported by the session that needs it
                buf.write(f"{type(e).__name__}: {e}")
        text = buf.getvalue().strip()
        _preloaded = f" (onnxruntime.preload_dlls said: {text[:500]})" if text else ""
    return _preloaded


def session_info(sess) -> dict:
    """Which file was loaded (compiled or not) and the providers actually used."""
    try:
        d = _info.get(sess)
    except TypeError:  # not weak-referenceable (a stand-in object): nothing was recorded
        d = None
    if d is None:
        d = {"providers": sess.get_providers()}
    return dict(d)


class IOBindingRunner:
    """Runs a session through IO binding so the hot input is copied to the device once per call and
    outputs stay in a bound buffer (CUDA/TensorRT backends); on CPU it is a plain ``run``."""

    def __init__(self, sess, device_id: int = 0):
        self.sess = sess
        self.device_id = device_id
        self.on_gpu = sess.get_providers()[0] in ("CUDAExecutionProvider", "TensorrtExecutionProvider")
        self.input_names = [i.name for i in sess.get_inputs()]
        self.output_names = [o.name for o in sess.get_outputs()]

    def run(self, feeds: dict):
        if not self.on_gpu:
            return self.sess.run(self.output_names, feeds)
        import numpy as np
        import onnxruntime as ort
        io = self.sess.io_binding()
        for name, arr in feeds.items():
            io.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(arr), "cuda", self.device_id))
        for name in self.output_names:
            io.bind_output(name, "cuda", self.device_id)
        self.sess.run_with_iobinding(io)
        return io.copy_outputs_to_cpu()
