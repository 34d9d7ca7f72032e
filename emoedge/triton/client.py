"""Run the bundled models on a Triton Inference Server over gRPC, behind the session surface the
components already use for onnxruntime (``run(output_names, feeds)``, ``get_inputs()``, ``get_outputs()``),
so face detection, face expression, voice, VAD and text code is the same for every backend.

    from emoedge.triton.client import TritonOptions, connection
    conn = connection(TritonOptions(url="triton-host:8001", timeout_s=5.0))
    sess = conn.session(path_of_bundled_onnx)          # checks readiness, IO and the graph's sha256
    logits, = sess.run(None, {"input": crops})          # one request (split at the server's max_batch_size)

Failure rules: no tritonclient -> BackendUnavailableError naming ``pip install 'emoedge[triton]'``; no server
at the URL, or no answer within ``timeout_s`` -> BackendUnavailableError naming the URL (every call carries a
gRPC deadline, so nothing hangs); a model missing, not ready, or served with other inputs/outputs/graph ->
BackendUnavailableError naming each model and what differs, and how to export the repository.
"""
from __future__ import annotations

import atexit
import contextlib
import pathlib
import threading
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..errors import BackendUnavailableError, InvalidInputError, ModelError

#: manifest tasks (what ``local_tasks`` may name)
TASKS = ("face_detector", "face_expression", "face_expression_baseline", "voice", "vad", "text")
INSTALL_HINT = "pip install 'emoedge[triton]' (tritonclient[grpc])"
EXPORT_HINT = ("export the models with `emoedge export triton --out REPO` and start tritonserver with "
               "--model-repository=REPO (command in REPO/README.md)")


@dataclass(frozen=True)
class TritonOptions:
    """``url``: host:port of the server's gRPC endpoint (default port 8001). ``timeout_s``: deadline of every
    inference call (seconds). ``connect_timeout_s``: deadline of the health and metadata checks at start.
    ``local_tasks``: manifest tasks whose graphs stay in-process (onnxruntime CPU) instead of on the server,
    e.g. ``("vad", "face_detector")``: Silero VAD is one call per 32 ms of audio (its state travels with each
    call when served), and the detector's float32 128x128 input is ~20x the bytes of a face crop.
    ``verify_sha256``: refuse a model whose config names another graph sha256 than the local file.
    ``ssl``: TLS channel (system root certificates)."""
    url: str = "127.0.0.1:8001"
    timeout_s: float = 5.0
    connect_timeout_s: float = 5.0
    local_tasks: Tuple[str, ...] = ()
    verify_sha256: bool = True
    ssl: bool = False

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> TritonOptions:
        if not isinstance(self.url, str) or not self.url.strip():
            raise InvalidInputError(f"triton_url must be 'host:port' (gRPC, usually port 8001), got {self.url!r}")
        u = self.url.strip()
        if "://" in u:
            raise InvalidInputError(f"triton_url {u!r}: give host:port without a scheme (gRPC), e.g. 'localhost:8001'")
        bad = [t for t in self.local_tasks if t not in TASKS]
        if isinstance(self.local_tasks, str) or bad:
            raise InvalidInputError(f"TritonOptions.local_tasks={self.local_tasks!r}: give a tuple of tasks from {TASKS}")
        object.__setattr__(self, "local_tasks", tuple(self.local_tasks))
        for name in ("timeout_s", "connect_timeout_s"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and v > 0 and v == v and v != float("inf")):
                raise InvalidInputError(f"TritonOptions.{name}={v!r} must be a positive number of seconds")
        object.__setattr__(self, "url", u)
        return self


def _client_module():
    try:
        import tritonclient.grpc as grpcclient  # type: ignore
        from tritonclient.utils import InferenceServerException, triton_to_np_dtype  # type: ignore
    except ImportError as e:
        raise BackendUnavailableError(f"backend 'triton' needs the Triton gRPC client ({e}): {INSTALL_HINT}") from None
    return grpcclient, InferenceServerException, triton_to_np_dtype


class _Node:
    """onnxruntime NodeArg look-alike: name, shape (None / str for variable dims), type ('tensor(float)')."""

    _ORT = {"FP32": "float", "FP16": "float16", "FP64": "double", "INT64": "int64", "INT32": "int32",
            "INT16": "int16", "INT8": "int8", "UINT8": "uint8", "BOOL": "bool", "BYTES": "string"}

    def __init__(self, name: str, shape: list, datatype: str):
        self.name = name
        self.shape = shape
        self.type = f"tensor({self._ORT.get(datatype, datatype.lower())})"

    def __repr__(self):
        return f"NodeArg(name={self.name!r}, type={self.type!r}, shape={self.shape!r})"


@dataclass
class _Tensor:
    name: str
    datatype: str          # Triton wire type, e.g. 'FP32'
    dims: List[int]        # config dims (without the batch dim when max_batch_size > 0)
    scalar: bool           # the graph takes a scalar; the wire carries [1]


def _status(e) -> str:
    s = e.status() if callable(getattr(e, "status", None)) else None
    return str(s or "")


class TritonConnection:
    """One gRPC channel to one server, shared by all sessions of all engines using that URL (tritonclient's
    gRPC ``infer`` is thread-safe). Sessions are checked once per model and cached."""

    def __init__(self, options: TritonOptions):
        self.options = options
        grpcclient, self._exc, self._np_dtype = _client_module()
        self._grpc = grpcclient
        try:
            self.client = grpcclient.InferenceServerClient(self.options.url, ssl=self.options.ssl)
        except Exception as e:  # malformed URL and the like
            raise BackendUnavailableError(f"cannot open a gRPC channel to Triton at {self.options.url!r}: {e}") from None
        self._lock = threading.Lock()
        self._sessions: Dict[str, TritonSession] = {}
        self._live = False
        self._collect = threading.local()

    @contextlib.contextmanager
    def collect_problems(self):
        """Within this block, sessions for unusable models are still returned (built from the local graph)
        and their problems collected; at the end one BackendUnavailableError names them all. An engine loads
        its components inside one, so a user learns everything missing on the server at once."""
        self._collect.problems = problems = []
        try:
            yield problems
        finally:
            self._collect.problems = None
        if problems:
            raise BackendUnavailableError(f"Triton at {self.options.url} cannot serve what this engine needs: "
                                          + "; ".join(problems) + f". {EXPORT_HINT}")

    # ------------------------------------------------------------------ errors
    def unavailable(self, e, what: str) -> BackendUnavailableError:
        st = _status(e)
        msg = e.message() if callable(getattr(e, "message", None)) else str(e)
        url = self.options.url
        if "DEADLINE_EXCEEDED" in st:
            return BackendUnavailableError(f"Triton at {url} did not answer {what} within its deadline "
                                           f"({self.options.timeout_s:g} s): server overloaded or unreachable; raise "
                                           "triton_timeout_s / --triton-timeout or add server instances")
        if "UNIMPLEMENTED" in st:
            return BackendUnavailableError(f"something answered at {url} but it is not a Triton gRPC endpoint ({msg}); "
                                           "use the gRPC port (8001 by default), not HTTP (8000)")
        return BackendUnavailableError(f"no Triton server reachable at {url} for {what} ({st or 'error'}: {msg}); "
                                       f"start it or fix triton_url / --triton-url; {EXPORT_HINT}")

    def _call(self, what: str, fn, *a, **kw):
        try:
            return fn(*a, **kw)
        except self._exc as e:
            raise self.unavailable(e, what) from None

    # ------------------------------------------------------------------ checks
    def check_live(self) -> None:
        """Raise BackendUnavailableError unless the server is live and ready (once per connection)."""
        if self._live:
            return
        t = self.options.connect_timeout_s
        live = self._call("the health check", self.client.is_server_live, client_timeout=t)
        if not live:
            raise BackendUnavailableError(f"Triton at {self.options.url} is not live; check its log")
        self._live = True

    def model_problems(self, name: str, graph_path, sha256: Optional[str] = None) -> tuple:
        """(problems, tensors) for serving ``name`` in place of the local graph: ``problems`` is a list of
        sentences (empty = usable); ``tensors`` = (inputs, outputs, max_batch_size) from the server's config."""
        from .export import _tensor_specs, graph_io
        t = self.options.connect_timeout_s
        try:
            ready = self.client.is_model_ready(name, client_timeout=t)
        except self._exc as e:
            if "NOT_FOUND" in _status(e) or "unknown model" in str(e.message()).lower():
                ready = False
            else:
                raise self.unavailable(e, f"the readiness check of {name!r}") from None
        if not ready:
            return [f"{name}: not in the server's repository or not ready (load failed? see the server log)"], None
        cfg = self._call(f"the config of {name!r}", self.client.get_model_config, name, as_json=True,
                         client_timeout=t)
        cfg = cfg.get("config", cfg)
        mbs = int(cfg.get("max_batch_size", 0) or 0)
        problems = []
        want_in, want_out = _tensor_specs(graph_io(graph_path), batched=mbs > 0)

        def tensors(kind, want):
            have = {d["name"]: d for d in cfg.get(kind, [])}
            out = []
            for w in want:
                h = have.get(w.name)
                if h is None:
                    problems.append(f"{name}: the server has no {kind} {w.name!r} (has {sorted(have) or 'none'})")
                    continue
                dt = str(h.get("data_type", "")).replace("TYPE_", "")
                dims = [int(d) for d in h.get("dims", [])]
                if dt != w.data_type.replace("TYPE_", ""):
                    problems.append(f"{name}: {kind} {w.name!r} is {dt} on the server, the graph has {w.data_type[5:]}")
                if len(dims) != len(w.dims) or any(s != -1 and s != g for s, g in zip(dims, w.dims)):
                    problems.append(f"{name}: {kind} {w.name!r} has dims {dims} on the server, the graph needs {w.dims} "
                                    f"(max_batch_size {mbs})")
                out.append(_Tensor(w.name, dt, dims, scalar=w.reshape == []))
            return out
        ins, outs = tensors("input", want_in), tensors("output", want_out)
        served_sha = ((cfg.get("parameters") or {}).get("emoedge_sha256") or {}).get("string_value")
        if self.options.verify_sha256 and sha256 and served_sha and served_sha != sha256:
            problems.append(f"{name}: the server's graph sha256 {served_sha[:12]}... differs from this emoedge's "
                            f"{sha256[:12]}...: re-export the repository with this emoedge version")
        return problems, (ins, outs, mbs)

    def session(self, graph_path, name: Optional[str] = None, sha256: Optional[str] = None) -> TritonSession:
        """A checked session for the local graph ``graph_path`` served as ``name`` (default: its manifest name)."""
        graph_path = pathlib.Path(graph_path)
        if name is None or sha256 is None:
            n, s = model_identity(graph_path)
            name, sha256 = name or n, sha256 or s
        with self._lock:
            s = self._sessions.get(name)
        if s is not None:
            return s
        self.check_live()
        problems, tensors = self.model_problems(name, graph_path, sha256)
        collecting = getattr(self._collect, "problems", None)
        if problems and collecting is not None:
            collecting.extend(problems)
            from .export import _tensor_specs, graph_io
            gi = graph_io(graph_path)
            ins, outs = _tensor_specs(gi, batched=gi.batch_symbol() is not None)
            conv = [[_Tensor(t.name, t.data_type[5:], t.dims, t.reshape == []) for t in ts] for ts in (ins, outs)]
            return TritonSession(self, name, conv[0], conv[1], 0)   # not cached: the block raises anyway
        if problems:
            raise BackendUnavailableError(f"Triton at {self.options.url} cannot serve {name}: " + "; ".join(problems)
                                          + f". {EXPORT_HINT}")
        ins, outs, mbs = tensors
        s = TritonSession(self, name, ins, outs, mbs)
        with self._lock:
            self._sessions.setdefault(name, s)
            return self._sessions[name]

    def statistics(self, names=None) -> Dict[str, dict]:
        """Per model: requests (``inference_count``: samples), executions (batches run), their ratio
        (mean batch size) and the executed batch sizes with their counts (``batch_sizes``)."""
        st = self._call("the statistics", self.client.get_inference_statistics, as_json=True,
                        client_timeout=self.options.connect_timeout_s)
        out = {}
        for m in st.get("model_stats", []):
            if names is not None and m.get("name") not in names:
                continue
            inf, ex = int(m.get("inference_count", 0) or 0), int(m.get("execution_count", 0) or 0)
            sizes = {int(b["batch_size"]): int(b.get("compute_infer", {}).get("count", 0) or 0)
                     for b in m.get("batch_stats", [])}
            out[m["name"]] = {"inference_count": inf, "execution_count": ex,
                              "mean_batch": (inf / ex) if ex else 0.0, "batch_sizes": dict(sorted(sizes.items()))}
        return out

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:   # closing a dead channel must not raise
            pass


class TritonSession:
    """A model on the server behind onnxruntime's session surface: ``run(output_names, feeds)`` returns numpy
    arrays in the requested (or graph) order; batches larger than the server's ``max_batch_size`` are split."""

    def __init__(self, conn: TritonConnection, name: str, inputs: List[_Tensor], outputs: List[_Tensor],
                 max_batch_size: int):
        self.conn, self.name = conn, name
        self.inputs, self.outputs = inputs, outputs
        self.max_batch_size = int(max_batch_size)
        self._np = {t.name: np.dtype(conn._np_dtype(t.datatype)) for t in inputs}

    def get_inputs(self):
        b = ["batch"] if self.max_batch_size else []
        return [_Node(t.name, [] if t.scalar else b + [d if d >= 0 else None for d in t.dims], t.datatype)
                for t in self.inputs]

    def get_outputs(self):
        b = ["batch"] if self.max_batch_size else []
        return [_Node(t.name, b + [d if d >= 0 else None for d in t.dims], t.datatype) for t in self.outputs]

    def get_providers(self):
        return ["TritonServer"]

    def _infer(self, arrays: Dict[str, np.ndarray], names: List[str]) -> List[np.ndarray]:
        g = self.conn._grpc
        ins = []
        for t in self.inputs:
            a = arrays[t.name]
            i = g.InferInput(t.name, list(a.shape), t.datatype)
            i.set_data_from_numpy(a)
            ins.append(i)
        req = [g.InferRequestedOutput(n) for n in names]
        try:
            res = self.conn.client.infer(self.name, ins, outputs=req, client_timeout=self.conn.options.timeout_s)
        except self.conn._exc as e:
            st = _status(e)
            if any(k in st for k in ("UNAVAILABLE", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "CANCELLED")) or not st:
                raise self.conn.unavailable(e, f"a {self.name} call") from None
            raise ModelError(f"Triton model {self.name} at {self.conn.options.url} failed ({st}): {e.message()}") from None
        return [res.as_numpy(n) for n in names]

    def run(self, output_names, feeds, run_options=None) -> List[np.ndarray]:
        names = list(output_names) if output_names else [t.name for t in self.outputs]
        known = {t.name for t in self.outputs}
        bad = [n for n in names if n not in known]
        if bad:
            raise InvalidInputError(f"{self.name}: unknown outputs {bad}; the model has {sorted(known)}")
        missing = [t.name for t in self.inputs if t.name not in feeds]
        if missing:
            raise InvalidInputError(f"{self.name}: missing inputs {missing}")
        arrays = {}
        for t in self.inputs:
            a = np.asarray(feeds[t.name])
            if a.dtype != self._np[t.name]:
                raise InvalidInputError(f"{self.name}: input {t.name!r} must be {self._np[t.name]}, got {a.dtype}")
            if t.scalar:
                a = a.reshape(1)
            arrays[t.name] = np.ascontiguousarray(a)
        mbs = self.max_batch_size
        if not mbs:
            return self._infer(arrays, names)
        n = {a.shape[0] if a.ndim else -1 for a in arrays.values()}
        if len(n) != 1 or -1 in n:
            raise InvalidInputError(f"{self.name}: all inputs need the same batch size, got shapes "
                                    f"{ {k: a.shape for k, a in arrays.items()} }")
        b = n.pop()
        if b == 0:
            spec = {t.name: t for t in self.outputs}
            return [np.zeros((0, *[max(d, 0) for d in spec[n].dims]), dtype=self.conn._np_dtype(spec[n].datatype))
                    for n in names]
        if b <= mbs:
            return self._infer(arrays, names)
        parts = [self._infer({k: a[s:s + mbs] for k, a in arrays.items()}, names) for s in range(0, b, mbs)]
        return [np.concatenate([p[i] for p in parts]) for i in range(len(names))]


# ----------------------------------------------------------------------------- registry

def triton_session(path, session_options):
    """make_session for backend 'triton': a checked TritonSession for the bundled graph ``path``."""
    opts = session_options.triton if session_options.triton is not None else TritonOptions()
    return connection(opts).session(path)


def runs_in_process(path, options: Optional[TritonOptions]) -> bool:
    """True for the graphs that stay in-process under backend 'triton' (their task is in ``local_tasks``)."""
    return options is not None and bool(options.local_tasks) and _task(path) in options.local_tasks


def _task(path) -> Optional[str]:
    from ..manifest import load_manifest
    p = pathlib.Path(path).resolve()
    name, _ = model_identity(p)
    try:
        return load_manifest(p.parent / "manifest.json").entry(name).get("task")
    except Exception:   # not a bundled graph
        return None


@contextlib.contextmanager
def engine_checks(runtime):
    """Around loading an engine's components: for backend 'triton', the server must be live (else
    BackendUnavailableError at once) and every missing or mismatching model is named in one error."""
    if getattr(runtime, "backend", None) != "triton":
        yield
        return
    conn = connection(runtime.triton_options())
    conn.check_live()
    with conn.collect_problems():
        yield


_conns: Dict[tuple, TritonConnection] = {}
_conns_lock = threading.Lock()
_identity: Dict[str, tuple] = {}


def connection(options: TritonOptions) -> TritonConnection:
    """The shared connection for these options (one gRPC channel per URL, deadline and TLS setting)."""
    key = (options.url, options.ssl, float(options.timeout_s), float(options.connect_timeout_s), options.verify_sha256)
    with _conns_lock:
        c = _conns.get(key)
        if c is None:
            if not _conns and not _atexit_registered:
                _register_atexit()
            c = _conns[key] = TritonConnection(options)
        return c


_atexit_registered = False


def _register_atexit() -> None:
    # Close the shared channels while grpc is still importable: left to garbage collection at interpreter
    # exit, tritonclient's __del__ runs after grpc's module globals are gone and prints a traceback.
    global _atexit_registered
    atexit.register(close_connections)
    _atexit_registered = True


def close_connections() -> None:
    """Close every shared connection (tests; processes that switch servers)."""
    with _conns_lock:
        cs = list(_conns.values())
        _conns.clear()
    for c in cs:
        c.close()


def model_identity(graph_path) -> tuple:
    """(Triton model name, sha256) of a bundled graph: its manifest entry name and sha256 (the name the
    exporter gives it); a file no manifest beside it knows is served under its file stem."""
    p = pathlib.Path(graph_path).resolve()
    hit = _identity.get(str(p))
    if hit:
        return hit
    from ..manifest import load_manifest
    name, sha = p.stem, None
    try:
        man = load_manifest(p.parent / "manifest.json")
        for n in man.names():
            e = man.entry(n)
            if e.get("file") == p.name:
                name, sha = n, e.get("sha256")
                break
    except Exception:   # no manifest beside a user's own file: the stem names it
        pass
    _identity[str(p)] = (name, sha)
    return name, sha
