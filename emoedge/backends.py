"""Execution backends: platform detection (NVIDIA GPU, Jetson), compile-cache keys, and the file
lock + atomic rename that keep concurrent processes from corrupting a cache.

Backends: ``cpu`` (onnxruntime CPU EP), ``cuda`` (ORT CUDA EP), ``tensorrt`` (ORT TensorRT EP, then
CUDA, then CPU for unsupported nodes), ``trt-native`` (a serialized TensorRT engine built with the
TensorRT Python API, run with cuda-python). Unknown or unavailable backends raise
:class:`~emoedge.errors.BackendUnavailableError` naming what to install; nothing falls back silently.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import pathlib
import platform
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass
from typing import Optional

from .errors import BackendUnavailableError, InvalidInputError
from .manifest import sha256_file

BACKENDS = ("cpu", "cuda", "tensorrt", "trt-native")
PRECISIONS = ("fp32", "fp16", "int8")
INSTALL_HINT = {
    "cuda": "on an x86-64 NVIDIA machine, after installing emoedge: pip uninstall -y onnxruntime onnxruntime-gpu && "
            "pip install onnxruntime-gpu (the emoedge[gpu] extra; the CPU onnxruntime must not stay beside it, both "
            "install the same 'onnxruntime' folder). Its 1.31 wheels need CUDA 13 + cuDNN 9, from the system or "
            "'onnxruntime-gpu[cuda,cudnn]'. On Jetson use the onnxruntime-gpu build for your JetPack (not on PyPI for aarch64)",
    "tensorrt": "pip install 'emoedge[gpu]' plus TensorRT (pip install tensorrt) on x86-64; on Jetson use JetPack's "
                "system TensorRT with a JetPack onnxruntime-gpu build",
    "trt-native": "pip install 'emoedge[tensorrt]' (tensorrt + cuda-python) on x86-64; on Jetson use JetPack's "
                  "python3-libnvinfer and pip install cuda-python",
}


def cache_root() -> pathlib.Path:
    """Where compiled artifacts live: $EMOEDGE_CACHE_DIR, else $XDG_CACHE_HOME/emoedge, else ~/.cache/emoedge."""
    env = os.environ.get("EMOEDGE_CACHE_DIR")
    if env:
        return pathlib.Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (pathlib.Path(xdg) if xdg else pathlib.Path.home() / ".cache") / "emoedge"


def is_jetson() -> bool:
    """True on an NVIDIA Jetson (L4T): /etc/nv_tegra_release or a device-tree model naming Jetson/Tegra."""
    if os.path.exists("/etc/nv_tegra_release"):
        return True
    try:
        model = pathlib.Path("/proc/device-tree/model").read_bytes().decode("utf-8", "replace").lower()
        return "jetson" in model or "tegra" in model
    except OSError:
        return False


def jetson_info() -> dict:
    """L4T release line and device-tree model (empty dict off Jetson)."""
    if not is_jetson():
        return {}
    d = {}
    with contextlib.suppress(OSError):
        d["l4t"] = pathlib.Path("/etc/nv_tegra_release").read_text().splitlines()[0].strip()
    with contextlib.suppress(OSError):
        d["model"] = pathlib.Path("/proc/device-tree/model").read_bytes().decode("utf-8", "replace").strip("\x00 \n")
    return d


def gpu_name() -> Optional[str]:
    """Name of GPU 0 (nvidia-smi, else the Jetson model), or None when there is no NVIDIA GPU."""
    if is_jetson():
        return jetson_info().get("model", "jetson")
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    name = out.stdout.strip().splitlines()[0].strip() if out.returncode == 0 and out.stdout.strip() else None
    return name


def cpu_device_id() -> str:
    """CPU identity for CPU-compiled artifacts: ORT_ENABLE_ALL layouts depend on the SIMD level."""
    flags = ""
    with contextlib.suppress(Exception):
        from ._native_loader import get_native
        nat = get_native()
        flags = nat.cpu_flags() if nat is not None else ""
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"cpu-{platform.machine()}-{hashlib.sha256((model + '|' + flags).encode()).hexdigest()[:8]}"


def tensorrt_version() -> Optional[str]:
    try:
        import tensorrt  # type: ignore
        return tensorrt.__version__
    except ImportError:
        pass
    with contextlib.suppress(Exception):
        from importlib.metadata import version
        return version("tensorrt")
    return None


def ort_version() -> Optional[str]:
    try:
        import onnxruntime as ort
        return ort.__version__
    except ImportError:
        return None


@dataclass(frozen=True)
class CacheKey:
    """Everything a compiled artifact depends on. Any change gives a new cache entry."""
    model_sha256: str
    backend: str
    precision: str
    device: str               # GPU name, or "cpu-<machine>" for CPU artifacts
    ort_version: Optional[str]
    trt_version: Optional[str]
    profile: str              # shape profile, e.g. "input:1..16" or "static"

    def digest(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:24]

    def dirname(self) -> str:
        return f"{self.model_sha256[:12]}-{self.backend}-{self.precision}-{self.digest()}"


def make_cache_key(model_sha256: str, backend: str, precision: str, profile: str = "static",
                   device: Optional[str] = None) -> CacheKey:
    if backend not in BACKENDS:
        raise BackendUnavailableError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if precision not in PRECISIONS + ("native",):
        raise InvalidInputError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if device is None:
        device = cpu_device_id() if backend == "cpu" else (gpu_name() or "no-gpu")
    trt = tensorrt_version() if backend in ("tensorrt", "trt-native") else None
    return CacheKey(model_sha256, backend, precision, device, ort_version(), trt, profile)


class FileLock:
    """Advisory exclusive lock on ``path`` (fcntl.flock), so two processes never build the same cache
    entry at once. ``timeout`` seconds (None waits forever) -> TimeoutError naming the lock file."""

    def __init__(self, path, timeout: Optional[float] = None, poll: float = 0.05):
        self.path = pathlib.Path(path)
        self.timeout = timeout
        self.poll = poll
        self._fd = None

    def acquire(self):
        import fcntl
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(str(self.path), os.O_RDWR | os.O_CREAT, 0o644)
        start = time.monotonic()
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._fd = fd
                return self
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
                if self.timeout is not None and time.monotonic() - start > self.timeout:
                    os.close(fd)
                    raise TimeoutError(f"could not lock {self.path} within {self.timeout} s: another process is "
                                       "building this cache entry; wait for it or remove a stale lock file") from None
                time.sleep(self.poll)

    def release(self):
        import fcntl
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to a temp file in the same folder, fsync, then rename over ``path``: readers see
    the old file or the new one, never a partial one (emoedge._atomic; the folder is created)."""
    from ._atomic import atomic_write_bytes as _write
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write(path, data)


def atomic_publish_dir(tmp_dir, final_dir) -> pathlib.Path:
    """Move a fully written temp folder into place with one rename. If another process won the race,
    keep theirs (identical key -> identical content) and drop ours."""
    tmp_dir, final_dir = pathlib.Path(tmp_dir), pathlib.Path(final_dir)
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(tmp_dir, final_dir)
    except OSError as e:
        if e.errno in (errno.ENOTEMPTY, errno.EEXIST) and (final_dir / "meta.json").exists():
            shutil.rmtree(tmp_dir, ignore_errors=True)
        else:
            raise
    return final_dir


def check_backend(backend: str) -> None:
    """Raise BackendUnavailableError (naming the extra to install) unless ``backend`` can run here."""
    if backend not in BACKENDS:
        raise BackendUnavailableError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "cpu":
        return
    if backend == "trt-native":
        try:
            import tensorrt  # type: ignore  # noqa: F401
        except ImportError:
            raise BackendUnavailableError(f"backend 'trt-native' needs the TensorRT Python API (import tensorrt failed): "
                                          f"{INSTALL_HINT['trt-native']}") from None
        try:
            from cuda.bindings import runtime  # type: ignore  # noqa: F401
        except ImportError:
            try:
                from cuda import cudart  # type: ignore  # noqa: F401
            except ImportError:
                raise BackendUnavailableError("backend 'trt-native' needs cuda-python (pip install cuda-python)") from None
        if gpu_name() is None:
            raise BackendUnavailableError("backend 'trt-native' needs an NVIDIA GPU; none was found (nvidia-smi)")
        return
    import onnxruntime as ort
    want = {"cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}[backend]
    avail = ort.get_available_providers()
    if want not in avail:
        raise BackendUnavailableError(f"backend {backend!r} needs {want}, which this onnxruntime {ort.__version__} "
                                      f"does not have (available: {', '.join(avail)}). Install: {INSTALL_HINT[backend]}")


# ----------------------------------------------------------------------------- compiled-artifact lookup
# (here, not in compile.py, so that session.py finds compiled models without importing the compiler)

_sha_cache: dict = {}

#: the files ``emoedge compile --target cpu`` writes; meta.json "preferred" must name one of them
CPU_ARTIFACTS = ("model.opt.onnx", "model.ort")


def cached_sha256(path: pathlib.Path) -> str:
    """sha256 of a file, memoized by (path, inode, ctime, mtime, size): replacing the file changes its
    inode or ctime even when size and mtime are forged (size + mtime alone accepted a swapped file)."""
    st = pathlib.Path(path).stat()
    k = (str(path), st.st_ino, st.st_ctime_ns, st.st_mtime_ns, st.st_size)
    if k not in _sha_cache:
        if len(_sha_cache) > 256:
            _sha_cache.clear()
        _sha_cache[k] = sha256_file(path)
    return _sha_cache[k]


def cpu_dir(model_path, compiled_dir=None, model_sha256: Optional[str] = None) -> pathlib.Path:
    """Folder holding the CPU artifacts of ``model_path`` (or of a model with sha256 ``model_sha256``) for
    this CPU and onnxruntime version."""
    sha = model_sha256 or cached_sha256(pathlib.Path(model_path))
    key = make_cache_key(sha, "cpu", "native")
    # --out DIR is the same as EMOEDGE_CACHE_DIR=DIR.
    root = (pathlib.Path(compiled_dir) if compiled_dir else cache_root()) / "cpu"
    return root / key.dirname()


def _reject(path, why: str) -> None:
    import warnings
    warnings.warn(f"ignoring the compiled model in {path}: {why}; the verified original model is used instead. "
                  "Re-create it with `emoedge compile --target cpu --force`", RuntimeWarning, stacklevel=3)


def load_compiled_cpu(model_path, compiled_dir=None, model_sha256: Optional[str] = None):
    """``(path, bytes)`` of the verified preferred CPU artifact of the model, or None.

    The artifact is checked like a model file: meta.json must belong to this model (its sha256), name one
    of :data:`CPU_ARTIFACTS` as "preferred" (no other path; links leaving the folder are refused) and
    record that file's sha256, which must match the bytes returned (the caller loads those bytes, so
    the file cannot change between check and load). Anything else is ignored with a RuntimeWarning and
    the original (manifest-verified) model is used: the cache can never override a verified model."""
    env = os.environ.get("EMOEDGE_USE_COMPILED", "1").lower()
    if env in ("0", "false", "no", "off"):
        return None
    sha = model_sha256 or cached_sha256(pathlib.Path(model_path))
    d = cpu_dir(model_path, compiled_dir, sha)
    meta_p = d / "meta.json"
    if not meta_p.is_file():
        return None
    try:
        meta = json.loads(meta_p.read_text())
        pref = meta["preferred"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, OSError):
        _reject(d, "meta.json is unreadable")
        return None
    if not isinstance(meta, dict) or pref not in CPU_ARTIFACTS:
        _reject(d, f"meta.json names {pref!r} as the preferred file (allowed: {', '.join(CPU_ARTIFACTS)})")
        return None
    if meta.get("model_sha256") != sha:
        _reject(d, "meta.json belongs to another model (its model_sha256 differs)")
        return None
    want = (meta.get("artifacts_sha256") or {}).get(pref) if isinstance(meta.get("artifacts_sha256"), dict) else None
    if not isinstance(want, str) or len(want) != 64:
        _reject(d, f"meta.json records no sha256 for {pref} (made by an older emoedge)")
        return None
    p = d / pref
    try:
        if p.is_symlink() or not p.resolve().is_relative_to(d.resolve()) or not p.is_file():
            _reject(d, f"{pref} is missing or a link")
            return None
        data = p.read_bytes()
    except OSError as e:
        _reject(d, f"{pref} cannot be read ({e})")
        return None
    if hashlib.sha256(data).hexdigest() != want.lower():
        _reject(d, f"{pref} does not match the sha256 recorded when it was compiled (corrupt or replaced)")
        return None
    return p, data


def find_compiled_cpu(model_path, compiled_dir=None, model_sha256: Optional[str] = None) -> Optional[pathlib.Path]:
    """The verified preferred CPU artifact of ``model_path`` if ``emoedge compile --target cpu`` made one,
    else None (see :func:`load_compiled_cpu`)."""
    r = load_compiled_cpu(model_path, compiled_dir, model_sha256)
    return None if r is None else r[0]
