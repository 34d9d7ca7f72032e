"""emoedge: edge-optimized, streaming, multimodal emotion recognition.

ONNX models (no PyTorch at run time), C++ kernels behind pybind11 for frame
preprocessing, log-mel features and fusion, and a streaming Python API.
"""
from __future__ import annotations

try:
    from importlib.metadata import PackageNotFoundError, version as _version
    try:
        __version__ = _version("emoedge")
    except PackageNotFoundError:  # source checkout
        __version__ = "0.0.0+src"
except ImportError:  # pragma: no cover
    __version__ = "0.0.0+src"

from typing import TYPE_CHECKING, Any

from .errors import (BackendUnavailableError, EmoEdgeError, InvalidInputError, ModelError, ModelNotFoundError,
                     OutputError, StreamClosedError, VariantNotFoundError)
from .options import RunningMode, RuntimeOptions

# Heavy modules (onnxruntime sessions, PyAV) load on first use, so `import emoedge` stays cheap; the
# TYPE_CHECKING block shows the same names to IDEs and type checkers.
_LAZY = {"Engine": "engine", "Run": "runner", "Stream": "stream", "EmotionEvent": "events",
         "FaceResult": "events", "ModalityResult": "events", "FusionOptions": "fusion", "TextModel": "text",
         "TextPrediction": "text", "VoiceModel": "voice", "VoiceOptions": "voice", "VoiceEvidence": "voice",
         "FaceAnalyzer": "faces", "FaceAnalyzerOptions": "faces", "Face": "faces", "Manifest": "manifest",
         "FaceComponent": "components", "VoiceComponent": "components", "TextComponent": "components",
         "FrameScheduler": "scheduler", "SchedulerOptions": "scheduler"}

if TYPE_CHECKING:  # pragma: no cover
    from .components import FaceComponent, TextComponent, VoiceComponent
    from .engine import Engine
    from .events import EmotionEvent, FaceResult, ModalityResult
    from .faces import Face, FaceAnalyzer, FaceAnalyzerOptions
    from .fusion import FusionOptions
    from .manifest import Manifest
    from .runner import Run
    from .scheduler import FrameScheduler, SchedulerOptions
    from .stream import Stream
    from .text import TextModel, TextPrediction
    from .voice import VoiceEvidence, VoiceModel, VoiceOptions


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'emoedge' has no attribute {name!r}")


def __dir__() -> "list[str]":
    return sorted(set(globals()) | set(_LAZY))


__all__ = ["Engine", "Run", "Stream", "EmotionEvent", "FaceResult", "ModalityResult", "RuntimeOptions", "RunningMode",
           "FusionOptions", "TextModel", "TextPrediction", "VoiceModel", "VoiceOptions", "VoiceEvidence",
           "FaceAnalyzer", "FaceAnalyzerOptions", "Face", "Manifest", "FaceComponent", "VoiceComponent",
           "TextComponent", "FrameScheduler", "SchedulerOptions", "__version__", "EmoEdgeError", "InvalidInputError",
           "ModelError", "ModelNotFoundError", "VariantNotFoundError", "BackendUnavailableError", "StreamClosedError",
           "OutputError"]
