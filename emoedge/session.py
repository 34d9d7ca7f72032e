"""onnxruntime session creation with explicit settings (threads, providers, optimization level).
Sessions are thread-safe for concurrent ``run`` calls and are shared by all streams of an engine."""
from __future__ import annotations

import pathlib
from dataclasses import dataclass
from typing import Sequence

from .errors import BackendUnavailableError, ModelError, ModelNotFoundError

#: backend name -> onnxruntime execution providers, in preference order.
BACKEND_PROVIDERS = {
    "cpu": ("CPUExecutionProvider",),
    "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "tensorrt": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
}
BACKEND_EXTRA = {"cuda": "emoedge[gpu] (onnxruntime-gpu)", "tensorrt": "emoedge[gpu] with TensorRT, or JetPack on Jetson"}


@dataclass
class SessionOptions:
    """Execution settings. ``intra_threads``: threads inside one op (1 is best for many small models on
    edge CPUs); ``backend``: 'cpu' | 'cuda' | 'tensorrt'."""
    backend: str = "cpu"
    intra_threads: int = 1
    inter_threads: int = 1
    log_severity: int = 3


def make_session(path, opts: SessionOptions = SessionOptions(), provider_options: Sequence[dict] = None):
    """Create an ``onnxruntime.InferenceSession`` for ``path``; raises ModelError naming the file if
    it cannot be loaded and BackendUnavailableError (with the extra to install) for a missing backend."""
    import onnxruntime as ort
    path = pathlib.Path(path)
    if not path.is_file():
        raise ModelNotFoundError(f"model file {path} not found")
    if opts.backend not in BACKEND_PROVIDERS:
        raise BackendUnavailableError(f"unknown backend {opts.backend!r}; choose one of {sorted(BACKEND_PROVIDERS)}")
    wanted = BACKEND_PROVIDERS[opts.backend]
    avail = ort.get_available_providers()
    if wanted[0] not in avail:
        raise BackendUnavailableError(f"backend {opts.backend!r} needs {wanted[0]}, which this onnxruntime "
                                      f"({ort.__version__}) lacks (available: {avail}); install {BACKEND_EXTRA.get(opts.backend, '')}")
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(opts.intra_threads)
    so.inter_op_num_threads = int(opts.inter_threads)
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = int(opts.log_severity)
    providers = [p for p in wanted if p in avail]
    try:
        if provider_options is not None:
            return ort.InferenceSession(str(path), so, providers=providers, provider_options=list(provider_options))
        return ort.InferenceSession(str(path), so, providers=providers)
    except Exception as e:  # onnxruntime raises its own Fail/InvalidProtobuf/... types
        raise ModelError(f"could not load model {path}: {type(e).__name__}: {e}. The file may be corrupt or "
                         "truncated; reinstall emoedge or re-run its export step") from None
