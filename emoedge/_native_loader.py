"""Loads the C++ extension, or falls back to the numba kernels.

``EMOEDGE_NATIVE=0`` forces the numba fallback (warned once). If the extension cannot be imported the
fallback is used and a warning says why and what to do. The common case is Python started in a source
checkout (the repository root, a notebook there, ``python -m emoedge``): the current folder puts the
source tree's ``emoedge/`` ahead of the installed package, and the source tree has no compiled extension.
:func:`native_status` (also in ``emoedge info``) reports the same.
"""
from __future__ import annotations

import os
import pathlib
import warnings
from typing import Any, Dict, Optional

_state: Dict[str, Any] = {}

_PKG = pathlib.Path(__file__).resolve().parent
EDITABLE_INSTALL = "pip install --no-build-isolation -e ."


def is_source_checkout(pkg_dir: pathlib.Path = _PKG) -> bool:
    """True when ``pkg_dir`` is the ``emoedge/`` folder of a source checkout (pyproject.toml and csrc/ beside it)."""
    root = pkg_dir.parent
    return (root / "pyproject.toml").is_file() and (root / "csrc").is_dir()


def installed_extension(pkg_dir: pathlib.Path = _PKG) -> Optional[pathlib.Path]:
    """The compiled extension of an installed emoedge elsewhere (the copy a source checkout shadows), if any."""
    try:
        from importlib.metadata import PackageNotFoundError, distribution
        files = distribution("emoedge").files or []
    except (ImportError, PackageNotFoundError, OSError):
        return None
    for f in files:
        name = f.name
        if name.startswith("_native") and name.endswith((".so", ".pyd")):
            loc = pathlib.Path(str(f.locate())).resolve()
            if loc.is_file() and loc.parent != pkg_dir:
                return loc
    return None


def fallback_message(error: str, pkg_dir: pathlib.Path = _PKG, installed: Optional[pathlib.Path] = None) -> str:
    """What happened and what to do, for an ``emoedge._native`` import failure (``error``)."""
    slow = ("the numba fallback kernels run instead of the C++ ones: log-mel is ~8x slower and the first "
            "results take 5-10 s while numba compiles")
    if is_source_checkout(pkg_dir):
        where = f" (the emoedge installed at {installed.parent} has it)" if installed is not None else ""
        return (f"emoedge was imported from the source checkout {pkg_dir}, not from the installed package: the "
                f"current folder or PYTHONPATH puts the source tree first, and it has no compiled extension "
                f"({error}). So {slow}. Fix: start Python from another folder{where}, or build the extension into "
                f"this checkout with the editable install `{EDITABLE_INSTALL}` (contributors: see README, "
                f"'Working on emoedge').")
    return (f"emoedge._native could not be imported from {pkg_dir} ({error}), so {slow}. Fix: reinstall emoedge "
            f"so that the extension is built: `pip install --force-reinstall --no-deps .` in the source folder "
            f"(needs a C++17 compiler and CMake; see README).")


def get_native() -> Any:
    """Return the ``emoedge._native`` module, or ``None`` when the numba fallback is in use."""
    if "mod" in _state:
        return _state["mod"]
    mod: Any = None
    if os.environ.get("EMOEDGE_NATIVE", "1").strip().lower() in ("0", "false", "no", "off"):
        warnings.warn("EMOEDGE_NATIVE=0: using the numba fallback kernels (slower than the C++ extension)",
                      RuntimeWarning, stacklevel=2)
        _state["reason"] = "EMOEDGE_NATIVE=0"
    else:
        try:
            from . import _native as mod  # type: ignore[no-redef]
        except ImportError as e:  # depends on the install; tested in tests/test_safety.py with a fake checkout
            msg = fallback_message(str(e), _PKG, installed_extension(_PKG))
            warnings.warn(msg, RuntimeWarning, stacklevel=2)
            _state["reason"] = str(e)
            _state["hint"] = msg
            mod = None
    _state["mod"] = mod
    return mod


def backend_name() -> str:
    """'native' or 'numba': which kernel implementation is in use."""
    return "native" if get_native() is not None else "numba"


def native_status() -> Dict[str, Any]:
    """Which kernels run, from where, and (for the fallback) why and what to do."""
    name = backend_name()
    d = {"kernels": name, "package_dir": str(_PKG), "source_checkout": is_source_checkout(_PKG)}
    if name != "native":
        d["reason"] = _state.get("reason")
        if _state.get("hint"):
            d["fix"] = _state["hint"]
    return d
