"""`emoedge info [--json]`: versions, kernel backend, CPU flags, available ORT providers."""
from __future__ import annotations

import json
import platform


def collect() -> dict:
    import numpy as np
    from .. import __version__
    from .._native_loader import backend_name, get_native
    info = {"emoedge": __version__, "python": platform.python_version(), "machine": platform.machine(),
            "numpy": np.__version__, "kernels": backend_name()}
    nat = get_native()
    info["cpu_flags"] = nat.cpu_flags() if nat is not None else ""
    try:
        import onnxruntime as ort
        info["onnxruntime"] = ort.__version__
        info["ort_available_providers"] = ort.get_available_providers()
    except ImportError:
        info["onnxruntime"] = None
    try:   # backend 'triton' (pip install 'emoedge[triton]')
        from importlib.metadata import version
        info["tritonclient"] = version("tritonclient")
    except Exception:
        info["tritonclient"] = None
    try:
        import cv2
        info["opencv"] = cv2.__version__
    except ImportError:
        info["opencv"] = None
    return info


def _main(args) -> int:
    info = collect()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for k, v in info.items():
            print(f"{k:>24}: {v}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("info", help="versions, kernel backend, CPU flags, execution providers")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_main)
