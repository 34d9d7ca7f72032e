"""Write a Triton Inference Server model repository for the bundled ONNX graphs.

    from emoedge.triton import ExportOptions, export_repository
    res = export_repository("triton-repo", ExportOptions(max_batch=32, instances=2))
    for m in res.models:
        print(m.name, m.max_batch_size, m.kind)

Layout (one model per bundled graph, named like its manifest entry)::

    triton-repo/
      README.md                      # tritonserver command (NGC container, Jetson) and client settings
      emoedge-repository.json        # machine-readable summary (models, IO, sha256); Triton ignores files here
      face-expr-int8/
        config.pbtxt                 # platform onnxruntime_onnx, IO from the graph, batching, instances
        labels.txt                   # output labels, one a line, in model output order
        1/model.onnx                 # the bundled graph, byte for byte (sha256 in the config's parameters)

Batching: a graph whose inputs and outputs all start with the same symbolic dimension (face expression,
voice) gets ``max_batch_size`` = ``--max-batch`` and a dynamic batcher; every other graph (BlazeFace has a
fixed batch of 1, the text model takes ragged concatenated features, Silero VAD carries its state) gets
``max_batch_size: 0`` with its full shape and no dynamic batching. Scalar inputs (VAD ``sr``) travel as
``dims: [1]`` reshaped to ``[]`` for the model.

The folder is written to a temp folder beside ``out`` and renamed into place; an existing non-empty
``out`` is replaced only with ``force=True`` and only when it is an emoedge repository itself.
"""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

from ..errors import InvalidInputError, ModelError

SUMMARY_FILE = "emoedge-repository.json"
LABELS_FILE = "labels.txt"
#: Triton data types for ONNX element types.
ONNX_TO_TRITON = {"FLOAT": "TYPE_FP32", "FLOAT16": "TYPE_FP16", "DOUBLE": "TYPE_FP64", "BFLOAT16": "TYPE_BF16",
                  "INT8": "TYPE_INT8", "INT16": "TYPE_INT16", "INT32": "TYPE_INT32", "INT64": "TYPE_INT64",
                  "UINT8": "TYPE_UINT8", "UINT16": "TYPE_UINT16", "UINT32": "TYPE_UINT32", "UINT64": "TYPE_UINT64",
                  "BOOL": "TYPE_BOOL", "STRING": "TYPE_STRING"}
#: Tasks whose models run on GPU instances with --gpu. VAD (recurrent, one 32 ms chunk per call) and the
#: text model (sparse gather/scatter over a few hundred hashed features) are too small to gain from a GPU
#: and stay on CPU instances.
GPU_TASKS = ("face_detector", "face_expression", "face_expression_baseline", "voice")
#: NGC release named in the generated README (any release with the onnxruntime backend and opset 17 works).
NGC_RELEASE = "24.08"


@dataclass
class TensorSpec:
    """One model input or output as Triton sees it. ``dims`` exclude the batch dimension when the model
    batches (-1 = variable); ``reshape`` is the shape the graph expects when it differs (scalars: [])."""
    name: str
    data_type: str
    dims: List[int]
    reshape: Optional[List[int]] = None
    label_filename: Optional[str] = None


@dataclass
class GraphIO:
    """Inputs and outputs of an ONNX graph: (name, ONNX element type name, shape) with None for unknown
    dimensions and a str for symbolic ones; initializers are not inputs."""
    inputs: List[tuple]
    outputs: List[tuple]

    def batch_symbol(self) -> Optional[str]:
        """The shared symbolic first dimension of every input and output (the batch), else None."""
        syms = {t[2][0] if t[2] else None for t in self.inputs + self.outputs}
        if len(syms) == 1:
            s = next(iter(syms))
            return s if isinstance(s, str) else None
        return None


def graph_io(path) -> GraphIO:
    """Read the IO of an ONNX file (weights are not loaded into memory twice: external data is skipped)."""
    import onnx
    try:
        m = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # onnx raises DecodeError and friends
        raise ModelError(f"could not read ONNX graph {path}: {type(e).__name__}: {e}") from None
    inits = {i.name for i in m.graph.initializer}

    def one(v):
        tt = v.type.tensor_type
        dims = []
        for d in tt.shape.dim:
            if d.HasField("dim_param") and d.dim_param:
                dims.append(d.dim_param)
            elif d.HasField("dim_value") and d.dim_value > 0:
                dims.append(int(d.dim_value))
            else:   # unknown (or a meaningless 0): variable
                dims.append(None)
        return (v.name, onnx.TensorProto.DataType.Name(tt.elem_type), dims)

    return GraphIO([one(v) for v in m.graph.input if v.name not in inits], [one(v) for v in m.graph.output])


@dataclass
class ExportOptions:
    """``precision``: None exports every bundled graph; 'int8' / 'fp32' export one variant per model family
    (a family without it keeps its default variant, noted); 'fp16' needs ``gpu`` (TensorRT builds FP16
    engines from the fp32 graphs). ``max_batch``: Triton ``max_batch_size`` of batchable models (>= 1).
    ``instances``: model instances per device. ``gpu``: conv nets on KIND_GPU instances; ``tensorrt``: with
    ``gpu``, the ONNX Runtime TensorRT accelerator (engine cache in ``trt_cache_dir`` on the server).
    ``queue_delay_us``: dynamic batcher's max queue delay (microseconds). ``threads``: ONNX Runtime
    intra-op threads per CPU instance. ``models``: manifest names to export (None = as ``precision`` says).
    ``force``: replace an existing emoedge repository at ``out``."""
    precision: Optional[str] = None
    max_batch: int = 32
    instances: int = 1
    gpu: bool = False
    tensorrt: bool = True
    queue_delay_us: int = 500
    threads: int = 1
    trt_cache_dir: str = "/tmp/emoedge-trt-cache"
    models: Optional[Sequence[str]] = None
    force: bool = False

    def validate(self) -> ExportOptions:
        if self.precision not in (None, "int8", "fp32", "fp16"):
            raise InvalidInputError(f"precision must be int8, fp32 or fp16, got {self.precision!r}")
        if self.precision == "fp16" and not self.gpu:
            raise InvalidInputError("--precision fp16 means TensorRT FP16 engines on GPU: add --gpu (CPU instances "
                                    "run the fp32 graphs; use --precision fp32 for a CPU repository)")
        for name, lo in (("max_batch", 1), ("instances", 1), ("threads", 1), ("queue_delay_us", 0)):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise InvalidInputError(f"{name} must be an integer >= {lo}, got {v!r}")
        return self


@dataclass
class ModelExport:
    """One exported model: Triton name, source manifest entry, batching and placement."""
    name: str
    task: str
    file: str
    sha256: str
    max_batch_size: int
    kind: str
    inputs: List[TensorSpec]
    outputs: List[TensorSpec]
    labels: Optional[List[str]] = None
    tensorrt_precision: Optional[str] = None


@dataclass
class ExportResult:
    out: pathlib.Path
    models: List[ModelExport]
    notes: List[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- model selection

def select_models(manifest, precision: Optional[str], names: Optional[Sequence[str]] = None) -> tuple:
    """(manifest names to export, notes). All graphs by default; with a precision one variant per family."""
    notes: List[str] = []
    if names:
        for n in names:
            manifest.entry(n)  # raises ModelNotFoundError naming the available ones
        return list(names), notes
    all_names = [n for n in manifest.names() if "file" in manifest.entry(n)]
    if precision is None:
        return all_names, notes
    want = "fp32" if precision == "fp16" else precision
    families: Dict[str, List[str]] = {}
    for n in all_names:
        families.setdefault(manifest.entry(n).get("family", n), []).append(n)
    defaults = set(manifest.data.get("defaults", {}).values())
    out = []
    for fam, members in sorted(families.items()):
        hit = [n for n in members if manifest.entry(n).get("precision") == want]
        if hit:
            out.append(hit[0])
        else:
            keep = next((n for n in members if n in defaults), members[0])
            out.append(keep)
            notes.append(f"{fam}: no {want} variant; exported {keep} ({manifest.entry(keep).get('precision')})")
    return out, notes


def _tensor_specs(io: GraphIO, batched: bool) -> tuple:
    def spec(t, is_input):
        name, et, shape = t
        if et not in ONNX_TO_TRITON:
            raise ModelError(f"tensor {name!r} has element type {et}, which Triton cannot serve")
        dims = [d if isinstance(d, int) else -1 for d in (shape[1:] if batched else shape)]
        reshape = None
        if not dims:            # scalar: Triton needs at least one dim on the wire
            dims, reshape = [1], []
        return TensorSpec(name=name, data_type=ONNX_TO_TRITON[et], dims=dims, reshape=reshape)
    return [spec(t, True) for t in io.inputs], [spec(t, False) for t in io.outputs]


def plan_model(manifest, name: str, opts: ExportOptions) -> ModelExport:
    """The Triton model for one manifest entry (reads the graph's IO; does not write anything)."""
    e = manifest.entry(name)
    path = manifest.model_path(name)   # checks the file exists and matches its sha256
    io = graph_io(path)
    batched = io.batch_symbol() is not None
    ins, outs = _tensor_specs(io, batched)
    labels = list(e["labels"]) if e.get("labels") else None
    if labels is not None:
        # the label file belongs to the output whose last dimension is one score per label
        for o in outs:
            if o.dims and o.dims[-1] == len(labels):
                o.label_filename = LABELS_FILE
                break
    task = e.get("task", "")
    kind = "KIND_GPU" if opts.gpu and task in GPU_TASKS else "KIND_CPU"
    trt = None
    if kind == "KIND_GPU" and opts.tensorrt:
        trt = {"int8": "INT8", "fp16": "FP16"}.get(e.get("precision"), "FP16" if opts.precision == "fp16" else "FP32")
    return ModelExport(name=name, task=task, file=e["file"], sha256=e.get("sha256", ""),
                       max_batch_size=opts.max_batch if batched else 0, kind=kind, inputs=ins, outputs=outs,
                       labels=labels, tensorrt_precision=trt)


# ----------------------------------------------------------------------------- config.pbtxt

def _q(s: str) -> str:
    return json.dumps(str(s))   # a protobuf text-format string literal (ASCII-safe double quotes)


def _tensor_text(t: TensorSpec) -> str:
    lines = ["  {", f"    name: {_q(t.name)}", f"    data_type: {t.data_type}", f"    dims: [ {', '.join(map(str, t.dims))} ]"]
    if t.reshape is not None:
        lines.append(f"    reshape: {{ shape: [ {', '.join(map(str, t.reshape))} ] }}")
    if t.label_filename:
        lines.append(f"    label_filename: {_q(t.label_filename)}")
    lines.append("  }")
    return "\n".join(lines)


def preferred_batch_sizes(max_batch: int) -> List[int]:
    """Preferred dynamic-batch sizes: powers of two from 4 up to max_batch, plus max_batch itself."""
    out = [b for b in (4, 8, 16, 32, 64, 128) if b < max_batch]
    return out + [max_batch]


def _trt_profile(m: ModelExport, opts: ExportOptions) -> Dict[str, str]:
    """TensorRT shape profile (min/opt/max) over the batch dimension of a batched model."""
    if m.max_batch_size == 0 or any(d < 0 for t in m.inputs for d in t.dims):
        return {}
    opt = min(8, m.max_batch_size)

    def fmt(b):
        return ",".join(f"{t.name}:{'x'.join(map(str, [b] + t.dims))}" for t in m.inputs)
    return {"trt_profile_min_shapes": fmt(1), "trt_profile_opt_shapes": fmt(opt), "trt_profile_max_shapes": fmt(m.max_batch_size)}


def config_text(m: ModelExport, opts: ExportOptions) -> str:
    """The config.pbtxt of one model (protobuf text format of Triton's ModelConfig)."""
    parts = [f"# emoedge export triton: {m.file} (task {m.task}); see ../README.md",
             f"name: {_q(m.name)}",
             'platform: "onnxruntime_onnx"',
             f"max_batch_size: {m.max_batch_size}",
             "version_policy: { latest: { num_versions: 1 } }",
             "input [\n" + ",\n".join(_tensor_text(t) for t in m.inputs) + "\n]",
             "output [\n" + ",\n".join(_tensor_text(t) for t in m.outputs) + "\n]",
             f"instance_group [ {{ count: {opts.instances} kind: {m.kind} }} ]"]
    if m.max_batch_size > 0:
        parts.append("dynamic_batching {\n"
                     f"  preferred_batch_size: [ {', '.join(map(str, preferred_batch_sizes(m.max_batch_size)))} ]\n"
                     f"  max_queue_delay_microseconds: {opts.queue_delay_us}\n}}")
    if m.tensorrt_precision:
        params = {"precision_mode": m.tensorrt_precision, "max_workspace_size_bytes": str(1 << 30),
                  "trt_engine_cache_enable": "1",
                  "trt_engine_cache_path": f"{opts.trt_cache_dir.rstrip('/')}/{m.name}"}
        params.update(_trt_profile(m, opts))
        ptxt = "\n".join(f"      parameters {{ key: {_q(k)} value: {_q(v)} }}" for k, v in params.items())
        parts.append("optimization { execution_accelerators {\n  gpu_execution_accelerator: [ {\n"
                     f'      name: "tensorrt"\n{ptxt}\n  }} ]\n}}}}')
    params = {"emoedge_sha256": m.sha256, "emoedge_task": m.task}
    if m.kind == "KIND_CPU":
        params["intra_op_thread_count"] = str(opts.threads)
        params["inter_op_thread_count"] = "1"
    parts += [f"parameters {{ key: {_q(k)} value: {{ string_value: {_q(v)} }} }}" for k, v in params.items()]
    return "\n".join(parts) + "\n"


# ----------------------------------------------------------------------------- repository README

def readme_text(res_models: List[ModelExport], opts: ExportOptions, notes: List[str]) -> str:
    rows = "\n".join(f"| `{m.name}` | {m.task} | {m.max_batch_size} | {m.kind}"
                     f"{' + TensorRT ' + m.tensorrt_precision if m.tensorrt_precision else ''} | "
                     f"{', '.join(t.name for t in m.inputs)} -> {', '.join(t.name for t in m.outputs)} |"
                     for m in res_models)
    gpus = "--gpus all " if opts.gpu else ""
    cmd_args = [f"emoedge export triton --out REPO --max-batch {opts.max_batch} --instances {opts.instances}"]
    if opts.precision:
        cmd_args.append(f"--precision {opts.precision}")
    if opts.gpu:
        cmd_args.append("--gpu" + ("" if opts.tensorrt else " --no-tensorrt"))
    note_txt = "".join(f"- {n}\n" for n in notes) or "- none\n"
    trt_note = (f"TensorRT engines are built on first load and cached under {opts.trt_cache_dir} in the container: "
                "mount a volume there to keep them across restarts.\n" if opts.gpu and opts.tensorrt else "")
    return f"""# emoedge model repository for NVIDIA Triton Inference Server

Written by `{' '.join(cmd_args)}`. One model per bundled ONNX graph, `platform: "onnxruntime_onnx"`,
version folder `1/`. The graphs are the files shipped with emoedge, byte for byte (their sha256 is in each
`config.pbtxt` under `parameters.emoedge_sha256`; the emoedge client refuses a server whose graph differs).

| model | task | max_batch_size | instances | IO |
|---|---|---|---|---|
{rows}

Models with `max_batch_size: 0` cannot be batched by Triton: BlazeFace has a fixed batch of 1, the text
model takes ragged concatenated features, Silero VAD carries its recurrent state as explicit input/output
(`state` -> `stateN`; the client keeps each stream's state). Face expression and voice batch dynamically
(preferred sizes {preferred_batch_sizes(opts.max_batch)}, queue delay {opts.queue_delay_us} us): the faces of one
frame go in one request, and requests of many streams are merged on the server.
Tracking, the voice ring buffer, VAD state and fusion stay in emoedge on the client.

Export notes:
{note_txt}
## Start the server

NGC container (x86-64 or SBSA; the onnxruntime backend ships in the `-py3` images):

    docker run --rm {gpus}-p 8000:8000 -p 8001:8001 -p 8002:8002 \\
        -v "$PWD/REPO":/models:ro nvcr.io/nvidia/tritonserver:{NGC_RELEASE}-py3 \\
        tritonserver --model-repository=/models --disable-auto-complete-config --exit-on-error=true

Jetson (JetPack 6: the `-igpu` container of the same release, published since 23.11; JetPack 5: the
Jetson tarball attached to the matching GitHub release of triton-inference-server/server, then
`./bin/tritonserver --model-repository=REPO --backend-directory=./backends`):

    docker run --rm --runtime nvidia --network host -v "$PWD/REPO":/models:ro \\
        nvcr.io/nvidia/tritonserver:{NGC_RELEASE}-py3-igpu \\
        tritonserver --model-repository=/models --disable-auto-complete-config --exit-on-error=true

Check it: `curl -sf localhost:8000/v2/health/ready && echo ready`. gRPC is port 8001, HTTP 8000, metrics 8002
(`nv_inference_exec_count` / `nv_inference_request_success`: their ratio is the mean server batch size).
{trt_note}
## Client settings (emoedge on each edge box)

    pip install "emoedge[triton]"
    emoedge run clip.mp4 --backend triton --triton-url TRITON_HOST:8001 [--triton-timeout 5] \
        [--triton-local vad,face_detector]      # tasks kept in-process on the edge box

    from emoedge import Engine
    engine = Engine(backend="triton", triton_url="TRITON_HOST:8001", triton_timeout_s=5.0)

The engine checks at start that the server is live and that every model it needs is ready with the
expected inputs, outputs and graph sha256, and names what is missing. Every call has a deadline
(`triton_timeout_s`); an unreachable server raises `emoedge.BackendUnavailableError`, never hangs.
Model names are the emoedge manifest names: `--precision int8|fp32` on the client picks the same variants
as locally, so export the variants your clients ask for (all of them by default).
"""


# ----------------------------------------------------------------------------- writing

def _version() -> str:
    try:
        from importlib.metadata import version
        return version("emoedge")
    except Exception:   # a source checkout without metadata
        return "0.0.0+src"


def _is_emoedge_repo(p: pathlib.Path) -> bool:
    return (p / SUMMARY_FILE).is_file()


def export_repository(out, options: Optional[ExportOptions] = None, *, manifest=None, log=None) -> ExportResult:
    """Write the model repository to ``out`` (see module docstring); returns what was written."""
    from ..manifest import load_manifest
    opts = (options or ExportOptions()).validate()
    out = pathlib.Path(out)
    if out.exists():
        if not out.is_dir():
            raise InvalidInputError(f"--out {out} exists and is not a folder; choose another path")
        if any(out.iterdir()):
            if not opts.force:
                raise InvalidInputError(f"--out {out} exists and is not empty; choose a new folder or pass --force "
                                        "to replace an earlier emoedge repository there")
            if not _is_emoedge_repo(out):
                raise InvalidInputError(f"--out {out} is not empty and is not an emoedge Triton repository (no "
                                        f"{SUMMARY_FILE}); --force only replaces those: choose another folder")
    man = manifest if manifest is not None else load_manifest()
    names, notes = select_models(man, opts.precision, opts.models)
    plans = [plan_model(man, n, opts) for n in names]
    if opts.gpu:
        cpu_left = [m.name for m in plans if m.kind == "KIND_CPU"]
        if cpu_left:
            notes.append(f"on CPU instances even with --gpu (too small to gain from a GPU): {', '.join(cpu_left)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(dir=str(out.parent), prefix=f".{out.name}.tmp-"))
    try:
        for m in plans:
            d = tmp / m.name
            (d / "1").mkdir(parents=True)
            shutil.copyfile(man.model_path(m.name), d / "1" / "model.onnx")
            (d / "config.pbtxt").write_text(config_text(m, opts), encoding="utf-8")
            if m.labels:
                (d / LABELS_FILE).write_text("\n".join(m.labels) + "\n", encoding="utf-8")
            if log:
                log(f"{m.name}: max_batch_size {m.max_batch_size}, {opts.instances} x {m.kind}"
                    + (f", TensorRT {m.tensorrt_precision}" if m.tensorrt_precision else ""))
        summary = {"schema": 1, "emoedge_version": _version(), "options": {k: v for k, v in asdict(opts).items()
                                                                            if k not in ("force",)},
                   "notes": notes, "models": {m.name: asdict(m) for m in plans}}
        (tmp / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        (tmp / "README.md").write_text(readme_text(plans, opts, notes), encoding="utf-8")
        for p in [tmp, *tmp.rglob("*")]:   # mkdtemp makes 0700; a repository is mounted read-only by others
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
        old = None
        if out.exists():
            if any(out.iterdir()):   # force + an emoedge repository: move it aside, swap, then delete it
                old = pathlib.Path(tempfile.mkdtemp(dir=str(out.parent), prefix=f".{out.name}.old-"))
                os.rename(out, old / "repo")
            else:
                out.rmdir()
        os.rename(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ExportResult(out=out, models=plans, notes=notes)
