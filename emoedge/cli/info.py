"""`emoedge info`: versions, which kernels run (C++ or the numba fallback, and why), CPU flags, onnxruntime
execution providers available and the ones a session actually uses for ``--backend``, the compile cache
folder and the compiled artefacts in it."""
from __future__ import annotations

import json
import os
import pathlib
import platform
from typing import Any, Dict


def _dir_bytes(d: pathlib.Path) -> int:
    return sum(f.stat().st_size for f in d.rglob("*") if f.is_file())


def compiled_artifacts(root: pathlib.Path) -> list:
    """One dict per artefact folder under the cache ``root`` (cpu/, trt-ep/, trt-native/): kind, folder,
    model file name, size in bytes and the preferred file (CPU)."""
    out = []
    for kind in ("cpu", "trt-ep", "trt-native"):
        base = root / kind
        if not base.is_dir():
            continue
        for d in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
            meta = {}
            for name in ("meta.json", "key.json"):
                if (d / name).is_file():
                    try:
                        meta = json.loads((d / name).read_text())
                    except (OSError, ValueError):
                        meta = {"error": f"unreadable {name}"}
                    break
            out.append({"kind": kind, "dir": str(d), "model": pathlib.Path(str(meta.get("model", "?"))).name,
                        "preferred": meta.get("preferred"), "bytes": _dir_bytes(d)})
    return out


def providers_in_use(backend: str) -> dict:
    """The execution providers an onnxruntime session gets for ``backend`` (a real session of the smallest
    bundled model), or the error that backend raises here."""
    from ..errors import EmoEdgeError
    from ..manifest import load_manifest
    from ..session import SessionOptions, make_session
    try:
        m = load_manifest()
        name = min((n for n in m.names() if str(m.entry(n).get("file", "")).endswith(".onnx")),
                   key=lambda n: int(m.entry(n).get("bytes") or 1 << 40))
        sess = make_session(m.model_path(name), SessionOptions(backend=backend))
        return {"backend": backend, "providers": list(sess.get_providers()), "probe_model": name}
    except EmoEdgeError as e:
        return {"backend": backend, "providers": [], "error": str(e)}


def collect(backend: str = "cpu") -> dict:
    import numpy as np
    from .. import __version__
    from .._native_loader import get_native, native_status
    from ..backends import cache_root
    info: Dict[str, Any] = {"emoedge": __version__, "python": platform.python_version(), "machine": platform.machine(),
            "numpy": np.__version__}
    st = native_status()
    info["kernels"] = st["kernels"]
    info["package_dir"] = st["package_dir"]
    if st["kernels"] != "native":
        info["kernels_reason"] = st.get("reason")
        if st.get("fix"):
            info["kernels_fix"] = st["fix"]
    nat = get_native()
    info["cpu_flags"] = nat.cpu_flags() if nat is not None else ""
    try:
        import onnxruntime as ort
        info["onnxruntime"] = ort.__version__
        info["ort_available_providers"] = ort.get_available_providers()
        info["providers_in_use"] = providers_in_use(backend)
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
    root = cache_root()
    info["cache_dir"] = str(root)
    info["cache_dir_from"] = ("EMOEDGE_CACHE_DIR" if os.environ.get("EMOEDGE_CACHE_DIR") else
                              "XDG_CACHE_HOME" if os.environ.get("XDG_CACHE_HOME") else "default")
    info["use_compiled"] = os.environ.get("EMOEDGE_USE_COMPILED", "1").lower() not in ("0", "false", "no", "off")
    info["compiled_artifacts"] = compiled_artifacts(root)
    return info


def _main(args) -> int:
    info = collect(args.backend)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    for k, v in info.items():
        if k == "compiled_artifacts":
            print(f"{k:>24}: {len(v)}" + ("" if v else "  (none: `emoedge compile --target cpu` makes them)"))
            for a in v:
                print(f"{'':>26}{a['kind']:<11} {a['model']:<32} {a['bytes'] / 1e6:6.1f} MB  {a['dir']}")
        elif k == "providers_in_use":
            print(f"{k:>24}: {', '.join(v['providers']) or v.get('error')} (backend {v['backend']})")
        else:
            print(f"{k:>24}: {v}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("info", help="versions, kernels, execution providers, compile cache",
                       description=__doc__)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--backend", default="cpu", choices=("cpu", "cuda", "tensorrt"),
                   help="backend whose providers in use are reported (default cpu)")
    p.set_defaults(func=_main)
