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

from .errors import (BackendUnavailableError, EmoEdgeError, InvalidInputError, ModelError,
                     ModelNotFoundError, StreamClosedError)

__all__ = ["__version__", "EmoEdgeError", "InvalidInputError", "ModelError", "ModelNotFoundError",
           "BackendUnavailableError", "StreamClosedError"]
