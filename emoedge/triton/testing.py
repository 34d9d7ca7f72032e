"""A local, real Triton server for tests and benchmarks: :class:`LocalTritonServer` starts
``pytriton_server.py`` (nvidia-pytriton's bundled ``tritonserver``, Python backend) on free 127.0.0.1 ports
with the models of an exported repository, waits a bounded time until every model is ready, and always
tears the process group down.

    from emoedge.triton.testing import LocalTritonServer, find_server_python
    python, why = find_server_python()          # None + the reason when no interpreter can host it
    with LocalTritonServer("triton-repo", ["face-expr-int8"], python=python) as srv:
        engine = Engine(backend="triton", triton_url=srv.url)

The server interpreter: ``$EMOEDGE_PYTRITON_PYTHON`` (e.g. a venv made from Debian's /usr/bin/python3 with
``nvidia-pytriton onnxruntime`` installed; .ci/run makes one), else this interpreter if it has pytriton.
pytriton's backend stub is known to fail under some self-built CPython 3.11 interpreters; Debian's works.
"""
from __future__ import annotations

import contextlib
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import List, Optional, Tuple

SERVER_SCRIPT = pathlib.Path(__file__).with_name("pytriton_server.py")
READY_LINE = "EMOEDGE_PYTRITON_READY"
_DTYPES = {"TYPE_FP32": "float32", "TYPE_FP16": "float16", "TYPE_FP64": "float64", "TYPE_INT64": "int64",
           "TYPE_INT32": "int32", "TYPE_INT16": "int16", "TYPE_INT8": "int8", "TYPE_UINT8": "uint8", "TYPE_BOOL": "bool"}
#: log fragments of the backend-stub failure mode (an environment problem, not an emoedge one)
#: (e.g. a pyenv CPython 3.11.7 stdlib under the stub's libpython 3.11.2: "'_thread.RLock' object has no
#: attribute '_recursion_count'" in multiprocessing during the model's initialize)
STUB_FAILURE_MARKERS = ("triton_python_backend_stub", "stub process", "libpython", "failed to initialize python stub",
                        "python backend", "_recursion_count", "model initialize error")


PORT_IN_USE_MARKERS = ("address already in use", "failed to listen", "failed to start grpc", "failed to start http",
                       "failed to start metrics")


class ServerStartError(RuntimeError):
    """The local server did not become ready; ``log_tail`` holds the end of its log, ``stub_failure`` says
    whether it looks like the known backend-stub/interpreter problem."""

    def __init__(self, msg: str, log_tail: str = "", stub_failure: bool = False):
        super().__init__(msg + (f"\n--- server log (tail) ---\n{log_tail}" if log_tail else ""))
        self.log_tail = log_tail
        self.stub_failure = stub_failure
        hits = [ln.strip() for ln in log_tail.splitlines() if any(m in ln.lower() for m in STUB_FAILURE_MARKERS)]
        #: the log line that identifies the failure (for skip reasons), else the message
        self.reason = hits[-1] if hits else msg


def find_server_python() -> Tuple[Optional[str], str]:
    """(interpreter that has nvidia-pytriton + onnxruntime, "") or (None, precise reason)."""
    cands = []
    env = os.environ.get("EMOEDGE_PYTRITON_PYTHON")
    if env:
        cands.append(env)
    cands.append(sys.executable)
    tried = []
    for py in cands:
        if not (os.path.isfile(py) and os.access(py, os.X_OK)):
            tried.append(f"{py}: not an executable file")
            continue
        try:
            r = subprocess.run([py, "-c", "import pytriton, onnxruntime, numpy, sys; print(sys.version.split()[0])"],
                               capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as e:
            tried.append(f"{py}: {type(e).__name__}")
            continue
        if r.returncode == 0:
            return py, ""
        last = (r.stderr.strip().splitlines() or ["?"])[-1]
        tried.append(f"{py}: {last}")
    return None, ("no interpreter with nvidia-pytriton + onnxruntime (" + "; ".join(tried) + "); set "
                  "EMOEDGE_PYTRITON_PYTHON to one, e.g. /usr/bin/python3 -m venv V && V/bin/pip install "
                  "nvidia-pytriton onnxruntime (Debian's python3 hosts the backend stub; .ci/run does this)")


def free_ports(n: int) -> List[int]:
    """n distinct free TCP ports on 127.0.0.1 (kernel-chosen)."""
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def spec_from_repository(repo, models: Optional[Sequence[str]] = None, threads: int = 1) -> dict:
    """The server spec from the repository's config.pbtxt files (parsed into Triton's ModelConfig, the
    message tritonserver itself reads): names, IO, dims, reshape, batching and queue delay."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc
    repo = pathlib.Path(repo)
    names = list(models) if models else sorted(p.name for p in repo.iterdir() if (p / "config.pbtxt").is_file())
    out = []
    for n in names:
        cfg = text_format.Parse((repo / n / "config.pbtxt").read_text(), mc.ModelConfig())

        def tensor(t, is_input):
            d = {"name": t.name, "dtype": _DTYPES[mc.DataType.Name(t.data_type)], "dims": [int(x) for x in t.dims]}
            if is_input:
                d["scalar"] = t.HasField("reshape") and len(t.reshape.shape) == 0
            return d
        db = cfg.dynamic_batching if cfg.HasField("dynamic_batching") else None
        out.append({"name": cfg.name, "onnx": str((repo / n / "1" / "model.onnx").resolve()),
                    "max_batch_size": int(cfg.max_batch_size),
                    "preferred_batch_size": [int(b) for b in db.preferred_batch_size] if db else [],
                    "max_queue_delay_microseconds": int(db.max_queue_delay_microseconds) if db else 0,
                    "inputs": [tensor(t, True) for t in cfg.input], "outputs": [tensor(t, False) for t in cfg.output]})
    return {"models": out, "threads": int(threads)}


class LocalTritonServer:
    """See module docstring. ``startup_timeout_s`` bounds the wait for readiness (the process group is
    killed on timeout); ``log_path`` keeps the server log (default: a temp file, removed on stop)."""

    def __init__(self, repo, models: Optional[Sequence[str]] = None, *, python: Optional[str] = None,
                 startup_timeout_s: float = 150.0, threads: int = 1, log_path=None):
        self.repo = pathlib.Path(repo)
        self.models = list(models) if models else None
        self.python = python
        self.startup_timeout_s = float(startup_timeout_s)
        self.threads = threads
        self.proc: Optional[subprocess.Popen] = None
        self._tmp: Optional[tempfile.TemporaryDirectory] = None
        self.log_path = pathlib.Path(log_path) if log_path else None
        self._own_log = log_path is None
        self.grpc_port = self.http_port = self.metrics_port = 0
        self.startup_s = 0.0

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def log_tail(self, n: int = 40) -> str:
        if self.log_path is None:
            return ""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def start(self) -> LocalTritonServer:
        """Start and wait until every model is ready. A port taken between choosing and binding it (another
        process won the race) is retried with new ports, twice at most."""
        for attempt in range(3):
            try:
                return self._start_once()
            except ServerStartError as e:
                if attempt == 2 or not any(m in e.log_tail.lower() for m in PORT_IN_USE_MARKERS):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _start_once(self) -> LocalTritonServer:
        if self.python is None:
            py, why = find_server_python()
            if py is None:
                raise ServerStartError(why)
            self.python = py
        self._tmp = tempfile.TemporaryDirectory(prefix="emoedge-pytriton-")
        tmp = pathlib.Path(self._tmp.name)
        if self._own_log:
            self.log_path = None
        spec = spec_from_repository(self.repo, self.models, self.threads)
        (tmp / "spec.json").write_text(json.dumps(spec))
        if self.log_path is None:
            self.log_path = tmp / "server.log"
        self.grpc_port, self.http_port, self.metrics_port = free_ports(3)
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
        # the server venv must not see this process's site-packages
        env.pop("PYTHONPATH", None)
        env.pop("PYTHONHOME", None)
        t0 = time.monotonic()
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [self.python, str(SERVER_SCRIPT), "--spec", str(tmp / "spec.json"), "--grpc-port", str(self.grpc_port),
                 "--http-port", str(self.http_port), "--metrics-port", str(self.metrics_port),
                 "--parent-pid", str(os.getpid()), "--workspace", str(tmp / "workspace")],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=str(tmp),
                start_new_session=True)   # own process group: teardown reaches tritonserver and the stubs
        try:
            self._wait_ready(t0, [m["name"] for m in spec["models"]])
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - t0
        return self

    def _wait_ready(self, t0: float, names: List[str]) -> None:
        import tritonclient.grpc as g
        deadline = t0 + self.startup_timeout_s
        proc = self.proc
        assert proc is not None
        client = g.InferenceServerClient(self.url)
        try:
            while True:
                if proc.poll() is not None:
                    tail = self.log_tail()
                    raise ServerStartError(f"pytriton server ({self.python}) exited with code {proc.returncode} "
                                           "before it was ready", tail, _is_stub_failure(tail))
                if READY_LINE in self.log_tail(400):
                    try:
                        if client.is_server_ready(client_timeout=2) and all(
                                client.is_model_ready(n, client_timeout=2) for n in names):
                            return
                    except Exception:  # not listening yet
                        pass
                if time.monotonic() > deadline:
                    tail = self.log_tail()
                    raise ServerStartError(f"pytriton server ({self.python}) not ready within "
                                           f"{self.startup_timeout_s:.0f} s", tail, _is_stub_failure(tail))
                time.sleep(0.25)
        finally:
            client.close()

    def stop(self) -> None:
        """Terminate the server's process group (SIGTERM, then SIGKILL after 20 s). Idempotent."""
        p, self.proc = self.proc, None
        if p is not None and p.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)
        if p is not None:   # stubs left behind in the group (the leader already gone)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)
        if self._tmp is not None:
            if self.log_path is not None and str(self.log_path).startswith(self._tmp.name):
                self._last_log = self.log_tail(200)
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _is_stub_failure(tail: str) -> bool:
    t = tail.lower()
    return any(m in t for m in STUB_FAILURE_MARKERS)
