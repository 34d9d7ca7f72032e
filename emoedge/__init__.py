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

from .errors import (BackendUnavailableError, EmoEdgeError, InvalidInputError, ModelError, OutputError,
                     ModelNotFoundError, StreamClosedError)

_LAZY = {"Engine": "engine", "EmotionEvent": "events", "FusionOptions": "fusion", "TextModel": "text",
         "VoiceModel": "voice", "FaceAnalyzer": "faces"}


def __getattr__(name):
    # Heavy modules (onnxruntime sessions, PyAV) load on first use, so `import emoedge` stays cheap.
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'emoedge' has no attribute {name!r}")


__all__ = ["Engine", "EmotionEvent", "FusionOptions", "TextModel", "VoiceModel", "FaceAnalyzer", "__version__", "EmoEdgeError", "InvalidInputError", "ModelError", "ModelNotFoundError",
           "BackendUnavailableError", "StreamClosedError", "OutputError"]
