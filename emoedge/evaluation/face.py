"""Evaluate a facial-expression model on a labelled face file (accuracy, macro-F1, recall, confusion).

``emoedge eval face --data FILE.npz [--model NAME] [--precision int8|fp32] [--json] [--limit N]``

The file is in the format of shared/data/faces: ``images`` uint8 [N,H,W] grayscale face crops,
``labels`` int [N] indexing ``class_names``. Each face is pre-processed with the manifest entry's
``preprocess`` parameters through ``emoedge.kernels.preprocess`` (the kernel used in training), run
through the entry's ONNX model in batches, and labels are matched by *name* (model labels and the file's
class names are both mapped through ``emoedge.labels.to_canonical``), never by position.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import time
from typing import Dict, Sequence

import numpy as np

from . import load_npz
from ..errors import InvalidInputError, ModelError
from ..labels import to_canonical
from .metrics import classification_report, format_report

TASK_PREFIX = "face_expression"
OTHER = "(other)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, metavar="FILE", help="npz with images uint8 [N,H,W], labels [N], class_names")
    p.add_argument("--model", default=None, help="manifest entry name (default: the face_expression default)")
    p.add_argument("--precision", choices=("int8", "fp32"), default=None, help="switch to this precision of the model family")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--limit", type=int, metavar="N", default=0, help="evaluate only the first N faces")
    p.add_argument("--batch", type=int, metavar="N", default=64, help="faces per inference call")
    p.add_argument("--threads", type=int, metavar="N", default=1, help="onnxruntime intra-op threads")
    p.add_argument("--manifest", default=None, help=argparse.SUPPRESS)


def load_faces(path, limit: int = 0):
    """(images uint8 [N,H,W], labels int64 [N], class_names list[str]) from a face npz; errors name the
    file, the problem and the fix."""
    p = pathlib.Path(path)
    z = load_npz(p, "face data file", "pass an .npz in the format of shared/data/faces (images, labels, class_names)")
    missing = [k for k in ("images", "labels", "class_names") if k not in z.files]
    if missing:
        raise InvalidInputError(f"{p} lacks the array(s) {missing} (has {z.files}); a face file needs images uint8 "
                                "[N,H,W], labels int [N] and class_names str [K]")
    images, labels = z["images"], z["labels"]
    names = [str(c) for c in z["class_names"]]
    if limit and limit > 0:
        images, labels = images[:limit], labels[:limit]
    if images.dtype != np.uint8 or images.ndim != 3:
        raise InvalidInputError(f"{p}: images must be uint8 [N,H,W] grayscale, got {images.dtype} {list(images.shape)}; "
                                "convert with .astype(np.uint8) / cv2.cvtColor(..., COLOR_BGR2GRAY)")
    if labels.ndim != 1 or len(labels) != len(images):
        raise InvalidInputError(f"{p}: labels must be [N] with N = {len(images)} images, got shape {list(labels.shape)}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise InvalidInputError(f"{p}: labels must be integers indexing class_names, got {labels.dtype}")
    if len(images) == 0:
        raise InvalidInputError(f"{p}: no images to evaluate")
    labels = labels.astype(np.int64)
    if labels.min() < 0 or labels.max() >= len(names):
        raise InvalidInputError(f"{p}: labels must lie in [0, {len(names)}) (class_names {names}), got {labels.min()}..{labels.max()}")
    return images, labels, names


def preprocess_kwargs(entry: dict) -> dict:
    """The entry's ``preprocess`` params as kwargs of emoedge.kernels.preprocess (lists -> tuples)."""
    pp = dict(entry.get("preprocess") or {})
    if "size" not in pp:
        raise ModelError(f"manifest entry has no preprocess.size: {entry.get('file')}")
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in pp.items()}


def preprocess_faces(images: np.ndarray, entry: dict) -> np.ndarray:
    """float32 [N, C, H, W]: every face through kernels.preprocess with the entry's parameters."""
    from .. import kernels
    kw = preprocess_kwargs(entry)
    w, h = kw["size"]
    first = np.asarray(kernels.preprocess(images[0], **kw), dtype=np.float32)
    out = np.empty((len(images),) + first.reshape(-1, h, w).shape, np.float32)
    out[0] = first.reshape(out.shape[1:])
    for i in range(1, len(images)):
        out[i] = np.asarray(kernels.preprocess(images[i], **kw)).reshape(out.shape[1:])
    return out


def run_model(sess, x: np.ndarray, batch: int = 64):
    """(outputs float32 [N, K], inference seconds) running ``sess`` over ``x`` in batches."""
    name = sess.get_inputs()[0].name
    outs, secs = [], 0
    for i in range(0, len(x), batch):
        xb = np.ascontiguousarray(x[i:i + batch])
        t = time.perf_counter_ns()
        outs.append(sess.run(None, {name: xb})[0])
        secs += time.perf_counter_ns() - t
    return np.concatenate(outs).astype(np.float32), secs / 1e9


def label_map(model_labels: Sequence[str], file_names: Sequence[str]) -> np.ndarray:
    """int [len(model_labels)]: index into file_names (+ one 'other' slot = len(file_names)) for each
    model output, matched through emoedge.labels.to_canonical."""
    canon_file: Dict[str, int] = {}
    for j, n in enumerate(file_names):
        c = to_canonical(n)
        if c is not None:
            canon_file.setdefault(c, j)
    out = np.full(len(model_labels), len(file_names), dtype=np.int64)
    for i, lab in enumerate(model_labels):
        c = to_canonical(lab)
        if c is not None and c in canon_file:
            out[i] = canon_file[c]
    return out


def evaluate(entry: dict, model_path, images: np.ndarray, labels: np.ndarray, class_names: Sequence[str],
             batch: int = 64, threads: int = 1, session=None) -> dict:
    """Metrics dict (see classification_report) plus timing for one manifest entry on one face set."""
    from ..session import SessionOptions, make_session
    sess = session or make_session(model_path, SessionOptions(intra_threads=threads))
    model_labels = list(entry.get("labels") or [])
    if not model_labels:
        raise ModelError(f"manifest entry for {model_path} has no labels")
    t = time.perf_counter_ns()
    x = preprocess_faces(images, entry)
    pre_s = (time.perf_counter_ns() - t) / 1e9
    out, inf_s = run_model(sess, x, batch)
    if out.shape[1] != len(model_labels):
        raise ModelError(f"{model_path} outputs {out.shape[1]} classes but its manifest lists {len(model_labels)} labels")
    m = label_map(model_labels, class_names)
    pred = m[out.argmax(1)]
    names = list(class_names) + ([OTHER] if (m == len(class_names)).any() else [])
    # predictions of model labels the file lacks go to OTHER; file classes the model lacks count as errors
    rep = classification_report(labels, pred, names)
    rep["per_class_recall"] = {k: v["recall"] for k, v in rep["per_class"].items() if v["support"] > 0}
    rep["ms_per_face"] = 1000.0 * inf_s / len(x)
    rep["preprocess_ms_per_face"] = 1000.0 * pre_s / len(x)
    rep["batch"] = batch
    rep["threads"] = threads
    rep["unmatched_model_labels"] = [l for l, j in zip(model_labels, m) if j == len(class_names)]
    return rep


def main(args) -> int:
    from ..manifest import load_manifest
    man = load_manifest(args.manifest)
    task = TASK_PREFIX
    if args.model is not None:
        e = man.entry(args.model)
        if not str(e.get("task", "")).startswith(TASK_PREFIX):
            faces = [n for n, v in man.models.items() if str(v.get('task', '')).startswith(TASK_PREFIX)]
            raise InvalidInputError(f"model {args.model!r} has task {e.get('task')!r}, not a face expression model; "
                                    f"choose one of {faces}")
        task = e["task"]
    name = man.find(task, precision=args.precision, name=args.model)
    entry = man.entry(name)
    path = man.model_path(name)
    images, labels, names = load_faces(args.data, args.limit)
    rep = evaluate(entry, path, images, labels, names, batch=args.batch, threads=args.threads)
    rep = {"model": name, "precision": entry.get("precision"), "file": str(args.data), **rep}
    if args.json:
        print(json.dumps(rep))
    else:
        print(f"model {name} ({entry.get('precision')}) on {args.data}")
        print(format_report(rep))
        print("\nconfusion matrix (rows = true, columns = predicted): " + ", ".join(rep["labels"]))
        for lab, row in zip(rep["labels"], rep["confusion_matrix"]):
            print(f"{lab:>12} " + " ".join(f"{v:5d}" for v in row))
        print(f"\n{rep['ms_per_face']:.3f} ms per face inference (batch {args.batch}, {args.threads} thread), "
              f"{rep['preprocess_ms_per_face']:.3f} ms per face preprocessing")
    return 0
