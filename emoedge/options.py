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
from typing import TYPE_CHECKING, Any, Dict, Optional, Union

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
    model variant); None = fp32. Ignored by cpu and cuda, where the model file decides."""
    backend: str = "cpu"
    threads: int = 1
    device_id: int = 0
    gpu_precision: Optional[str] = None

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
        return self

    def session_options(self) -> "SessionOptions":
        """The onnxruntime settings of one model session under these options."""
        from .session import SessionOptions
        return SessionOptions(backend=self.backend, intra_threads=self.threads, device_id=self.device_id,
                              precision=self.gpu_precision or "fp32")

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "RuntimeOptions":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise InvalidInputError(f"unknown RuntimeOptions fields {sorted(unknown)}; valid: {sorted(names)}")
        return cls(**d)
