"""FP16 variants of the face-expression, voice and text models for GPUs, with manifest entries and dev accuracy.

    python export/fp16_export.py [--data ../shared/data] [--only face-expr,voice-ser | --all] [--limit N] [--no-eval]

One command regenerates the FP16 variants from whatever models the manifest holds now, so it can be
re-run after a model is replaced. For the family of each default model of the tasks face_expression, voice
and text (``--all``: every family of those tasks):

1. Source: the family's FP32 entry. A family shipped only as INT8 (the text models: weight table W int8
   per-column scale, idf uint8) is first turned into the FP32 graph its INT8 graph computes:
   DequantizeLinear of a constant (directly or through a row Gather) is folded into an FP32 initializer
   (:func:`fold_constant_dequantize`), checked equal to the INT8 graph on the dev texts (max abs logit
   difference printed and stored). The FP16 variant then holds the INT8 model's weights, not retrained ones.
2. Conversion with a maintained converter: ``onnxruntime.transformers.float16.convert_float_to_float16``
   (onnxruntime's fork of onnxconverter-common's; onnxconverter-common 1.16.0 itself crashes on the text
   graph in ``remove_unnecessary_cast_node`` when a Cast has several consumers) with ``keep_io_types=True``
   (graph inputs and outputs stay FP32: callers feed and read float32) and an op block list per task
   (:data:`BLOCK`, reasons beside each entry) on top of the converter's default list; Constant nodes that
   feed only blocked nodes are kept FP32 too (the converter would otherwise round e.g. the voice ensemble's
   Clip floor of 1e-6 to FP16). The converter leaves FP32 -> FP16 -> FP32 Cast round trips between two
   blocked nodes; :func:`drop_cast_round_trips` removes them (so blocked paths really run in FP32), and
   :func:`toposort` restores the topological node order ONNX requires.
3. Accuracy on the dev splits (FER2013 PublicTest; the held-out voice speakers named in the source
   entry's metrics; CARER val / GoEmotions dev for text models whose labels cover them), FP32 source and
   FP16 variant in the same run, through the project's evaluators (emoedge.evaluation.*). How FP16 is
   computed here (no GPU): ``onnx.reference.ReferenceEvaluator`` runs the FP16 graph op by op with every
   tensor between ops in float16; Conv/Gemm/MatMul read float16 operands and accumulate in float32 before
   rounding their output to float16 (:class:`Fp16Runner`), as cuDNN/cuBLAS do for FP16 with FP32
   accumulation. onnxruntime's CPU EP also loads the FP16 graphs, but it is no FP16 measurement: it has no
   FP16 Conv/Gemm kernels on x86, inserts casts to FP32 and then removes the FP32->FP16->FP32 cast pairs,
   so it computes in FP32 with FP16-rounded weights only (:func:`ort_cpu_fp16_placement` shows it); that
   number is stored as ``ort_cpu_fp16w_accuracy`` for comparison. Required: |FP16 - FP32| <= 0.3 points.
4. Manifest entry ``<family>-fp16`` (precision "fp16", same family, sha256, bytes, the source's labels,
   preprocessing and temperature, ``fp16`` provenance block, dev metrics) via emoedge.manifest.update_entry;
   no other entry is touched and the defaults stay as they are (FP16 is chosen with precision="fp16").

Exit status 1 when a variant misses the 0.3-point bound (its file and entry are still written, marked
``within_bound: false``, so the failure is visible in review).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "export"))

from emoedge.manifest import MODELS_DIR, load_manifest, update_entry  # noqa: E402
from shared_paths import shared_dir  # noqa: E402

MADE_BY = "python export/fp16_export.py"
TASKS = ("face_expression", "voice", "text")
BOUND_PT = 0.3

#: Extra ops kept FP32 per task (added to the converter's DEFAULT_OP_BLOCK_LIST).
BLOCK: Dict[str, Dict[str, str]] = {
    "face_expression": {},  # Conv/Relu/Add/GlobalAveragePool/Gemm: all fine in FP16 (measured below)
    "voice": {
        # the ensemble tail: log(mean of member softmax probabilities). Probabilities < 6e-8 are 0 in FP16
        # and log(0) = -inf, so softmax, the mean and the log stay FP32 (the member logits come in FP16).
        "Softmax": "probabilities below the FP16 subnormal range vanish",
        "Add": "sum of member probabilities (ensemble mean) in FP32",
        "Div": "ensemble mean",
        "Clip": "floor (1e-6) before the log, kept exact",
        "Log": "log of probabilities: FP16 underflow would give -inf",
    },
    # text: every op of the graph except the Gathers of weight tables (see text_block_lists): the featurizer
    # path (TF-IDF weights, per-(text, block) squared sums, L2 norms, segment sums: eps = 1e-12 is 0 in FP16,
    # so an empty block would give 0/0 = NaN, and sums over hundreds of n-grams lose ~1e-3 relative) and the
    # classifier head (softmax, log, sigmoid of the multi-expert text models) stay FP32; only the weight
    # table W and idf are stored and gathered in FP16.
    "text": {},
}
TEXT_RULE = ("all ops except Gathers of weight tables stay FP32 (featurizer: TF-IDF, segment sums, L2 norms with "
             "eps=1e-12; head: softmax/log/sigmoid); W and idf are stored and gathered in FP16")


def name_nodes(model: onnx.ModelProto) -> None:
    """Give every unnamed node a unique name (node block lists match by name)."""
    taken = {n.name for n in model.graph.node if n.name}
    for i, n in enumerate(model.graph.node):
        if not n.name:
            name = f"{n.op_type}_{i}"
            while name in taken:
                name += "_"
            n.name = name
            taken.add(name)


def text_block_lists(model: onnx.ModelProto):
    """(op types, node names) to keep FP32 in a text model: every op type but Gather, and the Gathers that
    read activations rather than an initializer (a weight table)."""
    inits = {i.name for i in model.graph.initializer}
    ops = sorted({n.op_type for n in model.graph.node} - {"Gather"})
    nodes = [n.name for n in model.graph.node if n.op_type == "Gather" and n.input[0] not in inits]
    return ops, nodes


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


# --------------------------------------------------------------------------------------------- graph edits

def fold_constant_dequantize(model: onnx.ModelProto) -> onnx.ModelProto:
    """The FP32 graph an INT8 weight-only graph computes: each DequantizeLinear whose input is a constant
    initializer, or a Gather (axis 0) of one with a scale that does not vary along axis 0, becomes an FP32
    initializer (gathered in place of the quantized one). Activation QDQ pairs are left alone (none in the
    text models; the face/voice INT8 graphs are never sources, their FP32 entries are)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    inits = {i.name: i for i in g.initializer}
    producers = {o: n for n in g.node for o in n.output}
    consumers: Dict[str, List[onnx.NodeProto]] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    remove, new_inits = [], []
    for n in list(g.node):
        if n.op_type != "DequantizeLinear":
            continue
        x, scale = n.input[0], n.input[1]
        zp = n.input[2] if len(n.input) > 2 and n.input[2] else None
        if scale not in inits or (zp is not None and zp not in inits):
            continue
        axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
        s = numpy_helper.to_array(inits[scale]).astype(np.float32)
        z = numpy_helper.to_array(inits[zp]).astype(np.float32) if zp else np.zeros_like(s)
        gather = producers.get(x)
        if x in inits:
            q, src = numpy_helper.to_array(inits[x]), x
        elif (gather is not None and gather.op_type == "Gather" and gather.input[0] in inits
              and next((a.i for a in gather.attribute if a.name == "axis"), 0) == 0
              and (s.ndim == 0 or axis != 0) and len(consumers.get(x, [])) == 1):
            q, src = numpy_helper.to_array(inits[gather.input[0]]), gather.input[0]
        else:
            continue
        if s.ndim == 0:
            w = (q.astype(np.float32) - z) * s
        else:
            shape = [1] * q.ndim
            shape[axis % q.ndim] = -1
            w = (q.astype(np.float32) - z.reshape(shape)) * s.reshape(shape)
        name = f"{src}_dequantized"
        new_inits.append(numpy_helper.from_array(w.astype(np.float32), name))
        if x in inits:
            # the DQ node becomes an Identity of the folded constant
            n.CopyFrom(helper.make_node("Identity", [name], [n.output[0]], name=n.name or f"{name}_id"))
        else:
            gather.input[0] = name
            gather.output[0] = n.output[0]
            remove.append(n)
    for n in remove:
        g.node.remove(n)
    g.initializer.extend(new_inits)
    used = {i for n in g.node for i in n.input}
    for i in list(g.initializer):
        if i.name not in used:
            g.initializer.remove(i)
    onnx.checker.check_model(m)
    return m


def constants_feeding_only(model: onnx.ModelProto, blocked_ops: Sequence[str]) -> List[str]:
    """Names of Constant nodes whose every consumer is a blocked op (kept FP32 by name)."""
    consumers: Dict[str, List[str]] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n.op_type)
    out = []
    for n in model.graph.node:
        if n.op_type == "Constant" and n.name:
            c = consumers.get(n.output[0], [])
            if c and all(op in blocked_ops for op in c):
                out.append(n.name)
    return out


def convert(model: onnx.ModelProto, task: str):
    """(FP16 model, op block list, node block list) via onnxruntime.transformers.float16 with keep_io_types=True."""
    import warnings
    from onnxruntime.transformers import float16
    name_nodes(model)
    extra, extra_nodes = text_block_lists(model) if task == "text" else (list(BLOCK.get(task, {})), [])
    ops = list(float16.DEFAULT_OP_BLOCK_LIST) + [op for op in extra if op not in float16.DEFAULT_OP_BLOCK_LIST]
    nodes = constants_feeding_only(model, ops) + extra_nodes
    with warnings.catch_warnings():
        # the converter warns for every weight below 1e-7 it rounds up to 1e-7; counted in the entry instead
        warnings.simplefilter("ignore", UserWarning)
        m16 = float16.convert_float_to_float16(model, keep_io_types=True, op_block_list=ops, node_block_list=nodes)
    n_pairs = drop_cast_round_trips(m16.graph)
    toposort(m16.graph)  # the converter appends its boundary Casts at the end; ONNX requires topological order
    onnx.checker.check_model(m16)
    m16.metadata_props.add(key="fp16_cast_round_trips_removed", value=str(n_pairs))
    return m16, ops, nodes


def drop_cast_round_trips(graph: onnx.GraphProto) -> int:
    """Remove FP32 -> Cast(FP16) -> Cast(FP32) round trips the converter leaves between two FP32 (blocked)
    nodes: the consumer reads the FP32 tensor directly, so blocked paths really stay FP32 (e.g. a 1e-8
    probability is not flushed to 0 before the Log). Returns the number of round trips removed."""
    f16, f32 = onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT

    def cast_to(n):
        return next((a.i for a in n.attribute if a.name == "to"), None) if n.op_type == "Cast" else None

    producer = {o: n for n in graph.node for o in n.output}
    outputs = {o.name for o in graph.output}
    removed = 0
    for c2 in list(graph.node):
        if cast_to(c2) != f32:
            continue
        c1 = producer.get(c2.input[0])
        if c1 is None or cast_to(c1) != f16:
            continue
        src = c1.input[0]  # FP32 (a Cast to FP16 only ever reads a float32 tensor in these graphs)
        if c2.output[0] in outputs:
            c2.op_type = "Identity"
            del c2.attribute[:]
            c2.input[0] = src
        else:
            for n in graph.node:
                for i, name in enumerate(n.input):
                    if name == c2.output[0]:
                        n.input[i] = src
            graph.node.remove(c2)
        removed += 1
    used = {i for n in graph.node for i in n.input} | outputs
    for n in list(graph.node):
        if n.op_type == "Cast" and cast_to(n) == f16 and n.output[0] not in used:
            graph.node.remove(n)
    return removed


def toposort(graph: onnx.GraphProto) -> None:
    """Reorder ``graph.node`` topologically (stable: keeps the existing order where it is valid)."""
    known = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending = list(graph.node)
    ordered = []
    while pending:
        rest = []
        for n in pending:
            if all(i in known for i in n.input):
                ordered.append(n)
                known.update(n.output)
            else:
                rest.append(n)
        if len(rest) == len(pending):
            raise ValueError(f"graph has a cycle or a dangling input near {rest[0].name!r}")
        pending = rest
    copies = [onnx.NodeProto() for _ in ordered]
    for c, n in zip(copies, ordered):
        c.CopyFrom(n)
    del graph.node[:]
    graph.node.extend(copies)


def io_signature(model: onnx.ModelProto):
    def sig(vs):
        return [(v.name, v.type.tensor_type.elem_type) for v in vs]
    return sig(model.graph.input), sig(model.graph.output)


def fp16_stats(m16: onnx.ModelProto) -> dict:
    """Counts of FP16 initializers/values, Cast nodes and ops left FP32."""
    f16 = onnx.TensorProto.FLOAT16
    n_init16 = sum(1 for i in m16.graph.initializer if i.data_type == f16)
    n_init32 = sum(1 for i in m16.graph.initializer if i.data_type == onnx.TensorProto.FLOAT)
    casts = sum(1 for n in m16.graph.node if n.op_type == "Cast")
    return {"fp16_initializers": n_init16, "fp32_initializers": n_init32, "cast_nodes": casts,
            "nodes": len(m16.graph.node)}


def save_atomic(model: onnx.ModelProto, path: pathlib.Path) -> None:
    data = model.SerializeToString()
    fd, tmp = tempfile.mkstemp(dir=str(path.parent), prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# --------------------------------------------------------------------------------------------- FP16 runner

class Fp16Runner:
    """A session-like object (``get_inputs()``, ``run(names, feeds)``) that evaluates an ONNX graph with
    ``onnx.reference.ReferenceEvaluator``: every tensor between ops keeps the graph's dtype (float16 in the
    converted region); Conv, Gemm and MatMul take float16 operands, accumulate in float32 (BLAS) and round
    the result to float16, the arithmetic of FP16 Tensor Core kernels with FP32 accumulation. numpy's own
    float16 matmul accumulates in float16 (1 + 2048 ones gives 2048), harsher than any GPU library."""

    def __init__(self, model: onnx.ModelProto):
        from onnx.reference import ReferenceEvaluator
        from onnx.reference.ops.op_conv import Conv as _Conv
        from onnx.reference.ops.op_gemm import Gemm_7 as _Gemm
        from onnx.reference.ops.op_matmul import MatMul as _MatMul

        def widen(fn):
            def _run(self, *args, **kw):
                dt = next((a.dtype for a in args if isinstance(a, np.ndarray)), np.float32)
                wide = [a.astype(np.float32) if isinstance(a, np.ndarray) and a.dtype == np.float16 else a for a in args]
                out = fn(self, *wide, **kw)
                return tuple(o.astype(dt) if dt == np.float16 else o for o in out)
            return _run

        class Conv(_Conv):
            _run = widen(_Conv._run)

        class Gemm(_Gemm):
            _run = widen(_Gemm._run)

        class MatMul(_MatMul):
            _run = widen(_MatMul._run)

        self._ref = ReferenceEvaluator(model, new_ops=[Conv, Gemm, MatMul])
        self._inputs = [_Arg(i.name) for i in model.graph.input]
        self._outputs = [_Arg(o.name) for o in model.graph.output]

    def get_inputs(self):
        return list(self._inputs)

    def get_outputs(self):
        return list(self._outputs)

    def get_providers(self):
        return ["onnx.reference (fp16 storage, fp32 accumulation)"]

    def run(self, output_names, feeds):
        return self._ref.run(output_names, feeds)


class _Arg:
    def __init__(self, name: str):
        self.name = name


def ort_cpu_fp16_placement(path) -> dict:
    """What onnxruntime's CPU EP makes of an FP16 graph: counts of op types after its required
    transformations (cast insertion and duplicate-cast removal) and whether any non-Cast node still has
    an FP16 output."""
    import collections
    import onnxruntime as ort
    with tempfile.TemporaryDirectory() as d:
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        so.optimized_model_filepath = str(pathlib.Path(d) / "opt.onnx")
        so.log_severity_level = 3
        ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        m = onnx.shape_inference.infer_shapes(onnx.load(so.optimized_model_filepath))
    types = {v.name: v.type.tensor_type.elem_type for v in list(m.graph.value_info) + list(m.graph.output)}
    f16_ops = sorted({n.op_type for n in m.graph.node if n.op_type != "Cast"
                      and any(types.get(o) == onnx.TensorProto.FLOAT16 for o in n.output)})
    return {"ops": dict(collections.Counter(n.op_type for n in m.graph.node)), "ops_with_fp16_outputs": f16_ops}


def ort_session(path):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


class Recording:
    """Wraps a session; keeps every first output of ``run`` (to compare runners call by call)."""

    def __init__(self, sess):
        self.sess = sess
        self.outputs: List[np.ndarray] = []

    def get_inputs(self):
        return self.sess.get_inputs()

    def get_outputs(self):  # TextModel maps its extra outputs (coverage, expert scores) by name
        return self.sess.get_outputs()

    def run(self, names, feeds):
        out = self.sess.run(names, feeds)
        self.outputs.append(np.asarray(out[0], np.float32).reshape(len(out[0]), -1).copy())
        return out

    def reset(self):
        self.outputs = []


def compare(ref: Recording, other: Recording) -> dict:
    """Max abs difference of the raw graph outputs and top-1 agreement, call by call."""
    a, b = np.concatenate(ref.outputs), np.concatenate(other.outputs)
    return {"max_abs_diff": float(np.max(np.abs(a - b))), "top1_agreement": float(np.mean(a.argmax(1) == b.argmax(1))),
            "rows": int(len(a))}


# --------------------------------------------------------------------------------------------- evaluation

def eval_face(entry: dict, runners: Dict[str, object], data: pathlib.Path, limit: int) -> dict:
    from emoedge.evaluation.face import evaluate, load_faces
    images, labels, names = load_faces(data / "faces" / "fer2013_val.npz", limit)
    out, recs = {}, {k: Recording(s) for k, s in runners.items()}
    for k, sess in recs.items():
        t0 = time.perf_counter()
        rep = evaluate(entry, None, images, labels, names, batch=64, threads=1, session=sess)
        out[k] = {"accuracy": rep["accuracy"], "macro_f1": rep["macro_f1"], "n": rep["n"],
                  "seconds": round(time.perf_counter() - t0, 1)}
    _compare_all(out, recs)
    return {"fer2013_publictest": {"split": "FER2013 PublicTest (fer2013_val.npz)", "file": "fer2013_val.npz", **_pack(out)}}


def voice_sets(entry: dict) -> List[dict]:
    """Speaker sets the FP16 variant is compared on ({key, file, speakers[, note]}; see
    emoedge.evaluation.voice.comparison_speaker_sets)."""
    from emoedge.evaluation.voice import comparison_speaker_sets
    return comparison_speaker_sets(entry)


def eval_voice(name: str, entry: dict, runners: Dict[str, object], data: pathlib.Path, limit: int,
               manifest=None) -> dict:
    from emoedge.evaluation.voice import evaluate_file
    from emoedge.voice import VoiceModel
    res = {}
    sets = voice_sets(entry)
    if not sets:
        raise SystemExit(f"{name}: its manifest metrics name no held-out speaker set (file + speakers); "
                         "cannot pick the voice dev split")
    model = VoiceModel(name=name, manifest=manifest, vad=False)
    for s in sets:
        out, recs = {}, {k: Recording(s) for k, s in runners.items()}
        for k, sess in recs.items():
            model.session = sess
            model.input_name = sess.get_inputs()[0].name
            t0 = time.perf_counter()
            rep = evaluate_file(data / "speech" / s["file"], model=model, speakers=s["speakers"], limit=limit or None)
            out[k] = {"accuracy": rep["accuracy"], "macro_f1": rep["macro_f1"], "n": rep["n"],
                      "seconds": round(time.perf_counter() - t0, 1)}
        _compare_all(out, recs)
        res[s["key"]] = {"file": s["file"], "speakers": s["speakers"], **({"note": s["note"]} if "note" in s else {}),
                         **_pack(out)}
    return res


def eval_text(name: str, entry: dict, runners: Dict[str, object], data: pathlib.Path, limit: int) -> dict:
    from emoedge.errors import InvalidInputError
    from emoedge.evaluation.text import evaluate
    from emoedge.text import TextModel
    from emoedge.text_features import FeaturizerOptions, TextFeaturizer
    # every dev split the project's evaluator can score this model on (it raises when the labels do not fit)
    splits = [("carer/val", data / "text" / "carer_emotion" / "val.txt", "carer"),
              ("goemotions-ekman/dev", data / "text" / "goemotions" / "original" / "dev.tsv", "goemotions")]
    res = {}
    feat = TextFeaturizer(FeaturizerOptions.from_dict(entry["featurizer"]))
    for key, path, fmt in splits:
        src = path
        if limit:
            tmp = pathlib.Path(tempfile.mkdtemp()) / path.name
            tmp.write_text("\n".join(path.read_text(encoding="utf-8").splitlines()[:limit]) + "\n", encoding="utf-8")
            src = tmp
        out, recs = {}, {k: Recording(s) for k, s in runners.items()}
        try:
            evaluate(TextModel(name=name, entry=entry, session=runners["fp32"], featurizer=feat), src, fmt)
        except InvalidInputError as e:
            log(f"{name}: {key} skipped ({e})")
            continue
        for k, sess in recs.items():
            model = TextModel(name=name, entry=entry, session=sess, featurizer=feat)
            t0 = time.perf_counter()
            rep = evaluate(model, src, fmt)
            r = {"accuracy": rep["accuracy"], "macro_f1": rep["macro_f1"], "n": rep["n"],
                 "seconds": round(time.perf_counter() - t0, 1)}
            if fmt == "goemotions":
                r["single_label_accuracy"] = rep["single_label"]["accuracy"]
            out[k] = r
        _compare_all(out, recs)
        res[key] = {"file": str(path.relative_to(data)), "metric": "accuracy" if fmt == "carer" else "macro_f1", **_pack(out)}
    if not res:
        raise SystemExit(f"{name}: the text evaluator scores it on neither CARER val nor GoEmotions dev; no text dev split")
    return res


def _compare_all(out: dict, recs: Dict[str, Recording]) -> None:
    for k in recs:
        if k != "fp32":
            out[k]["vs_fp32"] = compare(recs["fp32"], recs[k])


def _pack(out: dict) -> dict:
    """{'fp32': ..., 'fp16': ..., 'ort_cpu_fp16w': ...} -> flat metric fields of the fp16 entry."""
    d = {}
    for k, r in out.items():
        for m, v in r.items():
            if v is None:
                continue
            d[m if k == "fp16" else f"{k}_{m}"] = v
    return d


# --------------------------------------------------------------------------------------------- driver

def sources(man, only: Optional[Sequence[str]], every_family: bool = False) -> List[dict]:
    """One source per family: the FP32 entry, else the INT8 one (to be folded). Families: ``only``, else
    every family of the FP16 tasks with ``every_family``, else the family of each task's default model
    (what Engine(precision="fp16") loads; the other families stay CPU models, which keeps the package small)."""
    fams: Dict[str, Dict[str, str]] = {}
    for n, e in man.models.items():
        if e.get("task") in TASKS and e.get("precision") in ("fp32", "int8"):
            fams.setdefault(e.get("family", n), {})[e["precision"]] = n
    defaults = {man.entry(d).get("family", d) for t, d in man.data.get("defaults", {}).items() if t in TASKS}
    out = []
    for fam, by_prec in sorted(fams.items()):
        if (only and fam not in only) or (not only and not every_family and fam not in defaults):
            continue
        name = by_prec.get("fp32") or by_prec["int8"]
        out.append({"family": fam, "source": name, "fold": "fp32" not in by_prec})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(shared_dir() / "data"))
    ap.add_argument("--only", default=None, help="comma-separated families (default: the families of the face_expression, "
                    "voice and text default models)")
    ap.add_argument("--all", action="store_true", help="every family of those tasks (e.g. the CARER-only and GoEmotions "
                    "text models too)")
    ap.add_argument("--limit", type=int, default=0, help="evaluate only the first N items per split (smoke runs; "
                    "the manifest is then NOT updated)")
    ap.add_argument("--no-eval", action="store_true", help="convert only (manifest not updated)")
    ap.add_argument("--no-ort-cpu", action="store_true", help="skip the onnxruntime CPU comparison run")
    ap.add_argument("--out", default=str(MODELS_DIR), help="where the .onnx files and the manifest live")
    ap.add_argument("--report", default=str(ROOT / "export" / "results" / "fp16_export.json"))
    a = ap.parse_args(argv)
    data = pathlib.Path(a.data)
    out_dir = pathlib.Path(a.out)
    man = load_manifest(out_dir / "manifest.json")
    only = [s.strip() for s in a.only.split(",")] if a.only else None
    write_manifest = not a.limit and not a.no_eval
    report, failures = {"command": MADE_BY, "models": {}}, []
    for src in sources(man, only, a.all):
        fam, sname = src["family"], src["source"]
        se = man.entry(sname)
        task = se["task"]
        spath = man.model_path(sname)
        log(f"{fam}: source {sname} ({se['precision']}, {spath.name})")
        model = onnx.load(str(spath))
        if src["fold"]:
            model = fold_constant_dequantize(model)
        m16, ops, nodes = convert(model, task)
        assert io_signature(m16) == io_signature(model), "keep_io_types must keep the graph boundary FP32"
        m16.doc_string = (f"emoedge {fam} fp16: {sname} converted by onnxruntime.transformers.float16 "
                          f"(keep_io_types=True); {MADE_BY}")
        fname = f"{fam}-fp16.onnx"
        path = out_dir / fname
        save_atomic(m16, path)
        stats = fp16_stats(m16)
        log(f"{fam}: wrote {path.name} ({path.stat().st_size / 1e6:.2f} MB, {stats})")
        rec = {"source": sname, "file": fname, "bytes": path.stat().st_size, "stats": stats}
        if a.no_eval:
            report["models"][f"{fam}-fp16"] = rec
            continue
        runners = {"fp32": ort_session(spath) if not src["fold"] else None, "fp16": Fp16Runner(m16)}
        if src["fold"]:
            # the folded FP32 graph must compute what the INT8 graph computes
            import onnxruntime as ort
            so = ort.SessionOptions()
            so.intra_op_num_threads = 1
            so.log_severity_level = 3
            runners["fp32"] = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
            runners["source_int8"] = ort_session(spath)
        if not a.no_ort_cpu:
            runners["ort_cpu_fp16w"] = ort_session(path)
            rec["ort_cpu_fp16_placement"] = ort_cpu_fp16_placement(path)
        if task == "face_expression":
            mets = eval_face(se, runners, data, a.limit)
        elif task == "voice":
            mets = eval_voice(sname, se, runners, data, a.limit, manifest=man.path)
        else:
            mets = eval_text(sname, se, runners, data, a.limit)
        ok = True
        for key, m in mets.items():
            metric = m.get("metric", "accuracy")
            d_pt = 100.0 * (m[metric] - m[f"fp32_{metric}"])
            m["delta_pt"] = round(d_pt, 3)
            m["within_bound"] = abs(d_pt) <= BOUND_PT
            ok &= m["within_bound"]
            log(f"{fam} {key}: {metric} fp32 {m[f'fp32_{metric}']:.4f}  fp16 {m[metric]:.4f}  "
                f"({d_pt:+.2f} pt){'' if m['within_bound'] else '  OUTSIDE the 0.3-point bound'}"
                + (f"  ort-cpu(fp16 weights) {m['ort_cpu_fp16w_' + metric]:.4f}" if f"ort_cpu_fp16w_{metric}" in m else ""))
            if src["fold"]:
                m["fold_check"] = "fp32 = the INT8 graph with its weight DequantizeLinear folded; source_int8_* = the shipped INT8 graph"
        if not ok:
            failures.append(fam)
        rec["metrics"] = mets
        report["models"][f"{fam}-fp16"] = rec
        if write_manifest:
            entry = {k: v for k, v in se.items() if k not in ("metrics", "sha256", "bytes", "file", "precision", "made_by",
                                                              "latency_ms_1thread", "int8_speedup")}
            entry.update({
                "file": fname, "precision": "fp16", "made_by": MADE_BY, "metrics": mets,
                "fp16": {
                    "source": sname, "source_sha256": se["sha256"], "source_precision": se["precision"],
                    "converter": "onnxruntime.transformers.float16.convert_float_to_float16(keep_io_types=True) "
                                 f"from onnxruntime=={_version('onnxruntime')}, onnx=={onnx.__version__}; then "
                                 "drop_cast_round_trips + toposort (export/fp16_export.py)",
                    "folded_int8": bool(src["fold"]),
                    "op_block_list_extra": ({"rule": TEXT_RULE, "ops": [o for o in ops if o not in _default_block()]}
                                            if task == "text" else BLOCK.get(task, {})),
                    "node_block_list": nodes, "graph": stats,
                    "io": "inputs and outputs float32 (casts inside the graph)",
                    "accuracy_method": ("onnx.reference.ReferenceEvaluator on the FP16 graph: float16 tensors between ops, "
                                        "Conv/Gemm/MatMul accumulate in float32 (export/fp16_export.py Fp16Runner); "
                                        "fp32_* = the source on onnxruntime CPU, same run; ort_cpu_fp16w_* = onnxruntime CPU "
                                        "on the FP16 file, which computes in FP32 with FP16-rounded weights. No GPU number."),
                    "bound_pt": BOUND_PT,
                },
            })
            entry.pop("thresholds_source", None)
            update_entry(f"{fam}-fp16", entry, path=out_dir / "manifest.json")
            log(f"{fam}: manifest entry {fam}-fp16 written")
    rp = pathlib.Path(a.report)
    if write_manifest:
        rp.parent.mkdir(parents=True, exist_ok=True)
        if only and rp.is_file():  # a partial run updates its families in the existing report
            old = json.loads(rp.read_text())
            old.setdefault("models", {}).update(report["models"])
            report = old
        rp.write_text(json.dumps(report, indent=2, sort_keys=True, default=str) + "\n")
        log(f"report: {rp}")
    else:
        print(json.dumps(report, indent=2, default=str))
    if failures:
        log(f"outside the {BOUND_PT}-point bound: {failures}")
        return 1
    return 0


def _default_block() -> List[str]:
    from onnxruntime.transformers import float16
    return list(float16.DEFAULT_OP_BLOCK_LIST)


def _version(dist: str) -> str:
    from importlib.metadata import version
    try:
        return version(dist)
    except Exception:
        return "?"


if __name__ == "__main__":
    sys.exit(main())
