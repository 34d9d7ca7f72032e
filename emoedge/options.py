"""The configuration vocabulary shared by every component: :class:`RuntimeOptions` (where and how models
run) and :class:`RunningMode` (how a stream treats its inputs).

One :class:`RuntimeOptions` is made per :class:`~emoedge.engine.Engine` and passed unchanged to the face,
voice and text components (see :func:`emoedge.components.build_components`), so backend, threads, device
and GPU precision mean the same thing everywhere::

    from emoedge import Engine, RuntimeOptions
    engine = Engine(runtime=RuntimeOptions(backend="cuda", device_id=1))
    engine = Engine(backend="cpu", threads=2)           # the same vocabulary as plain keywords

Model *variants* (the manifest's ``int8`` / ``fp32`` files of a model family) are chosen by
``Engine(precision=...)``; :attr:`RuntimeOptions.gpu_precision` is the arithmetic TensorRT builds its
engines with, which is a different thing.
"""
from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple, Union

from .errors import InvalidInputError

if TYPE_CHECKING:  # pragma: no cover
    from .session import SessionOptions

__all__ = ["RuntimeOptions", "RunningMode", "MODEL_PRECISIONS", "GPU_PRECISIONS"]

#: Precisions a manifest model family may ship (``Engine(precision=...)``).
MODEL_PRECISIONS = ("int8", "fp32", "fp16")
#: Arithmetic a GPU engine may be built with (``RuntimeOptions.gpu_precision``; TensorRT builder flags).
GPU_PRECISIONS = ("fp32", "fp16", "int8")


class RunningMode(str, enum.Enum):
    """How a stream treats its inputs. ``FILE``: every pushed frame is processed (deterministic).
    ``LIVE``: a driver keeps only the newest frame and counts the skipped ones. Equal to its string value
    (``RunningMode.LIVE == "live"``), and every API that takes a mode also takes the string."""
    FILE = "file"
    LIVE = "live"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, value: Union["RunningMode", str]) -> "RunningMode":
        """The mode named by ``value`` (a RunningMode or 'file' / 'live'); InvalidInputError otherwise."""
        if isinstance(value, cls):
            return value
        try:
            return cls(value)
        except ValueError:
            raise InvalidInputError(f"mode must be one of {tuple(m.value for m in cls)}, got {value!r}") from None


@dataclass(frozen=True)
class RuntimeOptions:
    """Where and how models run; one per engine, the same object for every component.

    ``backend``: 'cpu' | 'cuda' | 'tensorrt' (onnxruntime execution providers; an unknown or unavailable
    backend raises BackendUnavailableError when a model is loaded, naming what to install).
    ``threads``: onnxruntime intra-op threads per session (1 suits many small models on edge CPUs).
    ``device_id``: GPU index for the cuda / tensorrt backends.
    ``gpu_precision``: arithmetic of TensorRT engines: 'fp32' | 'fp16' | 'int8' (int8 expects the QDQ-INT8
    model variant); None = fp32. Ignored by cpu and cuda, where the model file decides.
    ``triton_url`` / ``triton_timeout_s`` / ``triton_local_tasks``: backend 'triton' only (model calls on a
    Triton Inference Server over gRPC, see :mod:`emoedge.triton`): the server's gRPC host:port (default
    127.0.0.1:8001), the deadline of every call in seconds, and the manifest tasks whose models stay
    in-process (e.g. ``("vad", "face_detector")``; default: every model on the server)."""
    backend: str = "cpu"
    threads: int = 1
    device_id: int = 0
    gpu_precision: Optional[str] = None
    triton_url: Optional[str] = None
    triton_timeout_s: float = 5.0
    triton_local_tasks: Tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> "RuntimeOptions":
        if not isinstance(self.backend, str) or not self.backend:
            raise InvalidInputError(f"RuntimeOptions.backend={self.backend!r} must be a backend name such as 'cpu', "
                                    "'cuda' or 'tensorrt'")
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1:
            raise InvalidInputError(f"threads must be an integer >= 1, got {self.threads!r}")
        if isinstance(self.device_id, bool) or not isinstance(self.device_id, int) or self.device_id < 0:
            raise InvalidInputError(f"RuntimeOptions.device_id={self.device_id!r} must be an integer >= 0 (GPU index)")
        if self.gpu_precision is not None and self.gpu_precision not in GPU_PRECISIONS:
            raise InvalidInputError(f"RuntimeOptions.gpu_precision={self.gpu_precision!r} must be one of "
                                    f"{GPU_PRECISIONS} or None")
        if isinstance(self.triton_local_tasks, str) or not isinstance(self.triton_local_tasks, (tuple, list)):
            raise InvalidInputError(f"triton_local_tasks={self.triton_local_tasks!r} must be a tuple of task names, "
                                    "e.g. ('vad', 'face_detector')")
        object.__setattr__(self, "triton_local_tasks", tuple(self.triton_local_tasks))   # frozen: stays hashable
        if self.backend != "triton" and (self.triton_url is not None or self.triton_local_tasks):
            raise InvalidInputError(f"triton_url / triton_local_tasks need backend='triton' (got {self.backend!r})")
        t = self.triton_timeout_s
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not (0 < t < float("inf")):
            raise InvalidInputError(f"triton_timeout_s={t!r} must be a positive number of seconds")
        if self.backend == "triton":
            self.triton_options()   # validates the URL
        return self

    def triton_options(self) -> Any:
        """The :class:`emoedge.triton.client.TritonOptions` of backend 'triton' (None for other backends)."""
        if self.backend != "triton":
            return None
        from .triton.client import TritonOptions
        return TritonOptions(url=self.triton_url or "127.0.0.1:8001", timeout_s=float(self.triton_timeout_s),
                             connect_timeout_s=float(self.triton_timeout_s), local_tasks=tuple(self.triton_local_tasks))

    def session_options(self) -> "SessionOptions":
        """The onnxruntime settings of one model session under these options."""
        from .session import SessionOptions
        return SessionOptions(backend=self.backend, intra_threads=self.threads, device_id=self.device_id,
                              precision=self.gpu_precision or "fp32", triton=self.triton_options())

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "RuntimeOptions":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise InvalidInputError(f"unknown RuntimeOptions fields {sorted(unknown)}; valid: {sorted(names)}")
        return cls(**d)
