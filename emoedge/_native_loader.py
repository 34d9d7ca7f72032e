"""Loads the C++ extension, or falls back to the numba kernels.

``EMOEDGE_NATIVE=0`` forces the numba fallback (warned once). If the extension cannot be
imported (e.g. a source checkout that was never built) the fallback is used and the reason
is warned once.
"""
from __future__ import annotations

import os
import warnings

_state: dict = {}


def get_native():
    """Return the ``emoedge._native`` module, or ``None`` when the numba fallback is in use."""
    if "mod" in _state:
        return _state["mod"]
    mod = None
    if os.environ.get("EMOEDGE_NATIVE", "1").strip().lower() in ("0", "false", "no", "off"):
        warnings.warn("EMOEDGE_NATIVE=0: using the numba fallback kernels (slower than the C++ extension)",
                      RuntimeWarning, stacklevel=2)
        _state["reason"] = "EMOEDGE_NATIVE=0"
    else:
        try:
            from . import _native as mod  # type: ignore[attr-defined]
        except ImportError as e:  # pragma: no cover - depends on the install
            warnings.warn(f"emoedge._native could not be imported ({e}); using the numba fallback kernels. "
                          "Reinstall with `pip install .` to build the C++ extension.", RuntimeWarning,
                          stacklevel=2)
            _state["reason"] = str(e)
            mod = None
    _state["mod"] = mod
    return mod


def backend_name() -> str:
    """'native' or 'numba': which kernel implementation is in use."""
    return "native" if get_native() is not None else "numba"
