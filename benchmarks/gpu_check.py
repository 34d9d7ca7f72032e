#!/usr/bin/env python
"""GPU proof in one script: every bundled model and the Engine on the onnxruntime CUDA EP, FP32 and FP16.

    python benchmarks/gpu_check.py                       # GPU machine: benchmarks/results/gpu_h200.{json,md}
    python benchmarks/gpu_check.py --cpu-dry-run --quick # the same code on the CPU EP (no GPU needed);
                                                         # writes benchmarks/results/gpu_check_cpu_dryrun.{json,md}

What it does (``--backend cuda``, the default):
1. Environment: GPU name, driver, CUDA (nvidia-smi), cuDNN (cudnnGetVersion), onnxruntime version and build.
2. Provider verification, per session: the first provider must be the one asked for (emoedge.session
   raises otherwise); a session or Engine that runs elsewhere makes the run invalid: no "cuda" result file
   is written, a *.invalid.json instead (see :func:`write_outputs`). A profiled run must also place every
   node with a float output on the asked provider (nodes that only compute shapes, int64 outputs, may stay
   on the CPU); a model with float nodes on the CPU fails its row, named in the results.
3. Parity of every bundled .onnx model on the GPU against CPU FP32 (the family's FP32 model, or its INT8
   model for the INT8-only text families, whose FP16 variant is made from it; INT8 files
   also against their own file on CPU, which is what their pass/fail uses): max abs difference of outputs
   and of softmax probabilities, top-1 agreement (tolerances: PROB_TOL, AGREE_MIN). Inputs: FER2013
   PublicTest faces for face-expression models, held-out voice windows (the speakers named in the voice
   entry) for voice models, CARER val texts for text models, demo-clip frames for the detector, demo-clip
   audio chunks for the VAD. PublicTest accuracy per face variant.
4. Latency with IO binding (input on the device, output bound on the device; host copies excluded) at batch
   1/8/64 (batch 1 only for fixed-batch models), p50/p99 ms over --repeats runs, and the plain host-array
   ``run`` at the same batch for comparison.
5. Engine end to end on the bundled demo clip (frames + audio, decoded beforehand; per-frame push_frame
   latency p50/p99, frames per second of the whole push loop) for each precision, and the same with
   --streams concurrent streams on one Engine (one thread each).

Exit status: 0 when everything ran on the asked provider and within tolerance; 1 on parity failures;
2 when a session fell back to the CPU (nothing written to the result file then, a *.invalid.json instead).
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

#: max abs difference of softmax probabilities vs CPU FP32 (FP32 on CUDA may use TF32 Tensor Core math)
PROB_TOL = {"fp32": 5e-3, "fp16": 3e-2, "int8": 5e-2}
#: minimal top-1 agreement with CPU FP32 on the dev inputs
AGREE_MIN = {"fp32": 0.995, "fp16": 0.98, "int8": 0.97}
DEVICE_PROVIDER = {"cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider", "cpu": "CPUExecutionProvider"}
FLOAT_TYPES = ("float", "float16", "double", "bfloat16")


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


# ------------------------------------------------------------------------------------------------ environment

def _smi(query: str) -> Optional[str]:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, f"--query-gpu={query}", "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip().splitlines()[0].strip() if out.returncode == 0 and out.stdout.strip() else None


def cuda_version_smi() -> Optional[str]:
    """The 'CUDA Version' nvidia-smi prints in its header (the driver's CUDA API level)."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    with contextlib.suppress(Exception):
        out = subprocess.run([exe], capture_output=True, text=True, timeout=20).stdout
        for tok in out.split("CUDA Version:")[1:2]:
            return tok.split()[0].strip("|")
    return None


def cudnn_version() -> Optional[str]:
    """cudnnGetVersion() of the libcudnn.so.9 this process can load (after onnxruntime loaded it)."""
    for name in ("libcudnn.so.9", "libcudnn.so"):
        with contextlib.suppress(OSError, AttributeError):
            lib = ctypes.CDLL(name)
            lib.cudnnGetVersion.restype = ctypes.c_size_t
            v = int(lib.cudnnGetVersion())
            return f"{v // 10000}.{(v % 10000) // 100}.{v % 100}"
    return None


def environment(backend: str) -> dict:
    import onnxruntime as ort
    from emoedge import backends
    d = {"backend": backend, "python": platform.python_version(), "machine": platform.machine(),
         "onnxruntime": ort.__version__, "ort_device": ort.get_device(), "providers": ort.get_available_providers(),
         "gpu": backends.gpu_name(), "driver": _smi("driver_version"), "gpu_memory": _smi("memory.total"),
         "cuda_driver_api": cuda_version_smi(), "cpu_count": os.cpu_count()}
    with contextlib.suppress(Exception):
        from onnxruntime.capi import build_and_package_info as bi  # type: ignore
        d["ort_cuda_build"] = getattr(bi, "cuda_version", None)
    return d


# ------------------------------------------------------------------------------------------------ sessions

def make(path, backend: str, threads: int = 1):
    """A session on ``backend`` through emoedge.session.make_session (which raises when the first provider
    is not the one asked for), compiled CPU artifacts off so every backend loads the same file."""
    from emoedge.session import SessionOptions, make_session
    return make_session(path, SessionOptions(backend=backend, intra_threads=threads, use_compiled=False))


def verify(sess, backend: str) -> dict:
    """{'asked', 'providers', 'used', 'ok', 'reason'}: ``used`` is the provider that really runs the graph;
    a session asked for cuda whose first provider is the CPU is reported as used='cpu', ok=False."""
    want = DEVICE_PROVIDER[backend]
    provs = list(sess.get_providers())
    first = provs[0] if provs else None
    used = next((b for b, p in DEVICE_PROVIDER.items() if p == first), str(first))
    ok = first == want
    return {"asked": backend, "providers": provs, "used": used, "ok": ok,
            "reason": "" if ok else f"asked {want}, onnxruntime runs {first} (silent fallback)"}


def placement(path, backend: str, feeds: dict) -> dict:
    """Per-node providers from an onnxruntime profile of one run: counts per provider and the nodes with a
    float output that did not run on the asked provider (a silent CPU fallback of real compute)."""
    import onnxruntime as ort
    from emoedge.session import SessionOptions
    want = DEVICE_PROVIDER[backend]
    so = ort.SessionOptions()
    so.enable_profiling = True
    so.log_severity_level = 3
    so.intra_op_num_threads = 1
    with tempfile.TemporaryDirectory() as d:
        so.profile_file_prefix = str(pathlib.Path(d) / "prof")
        provs = list(dict.fromkeys([want, "CPUExecutionProvider"]))
        opts = [{"device_id": SessionOptions().device_id} if p == "CUDAExecutionProvider" else {} for p in provs]
        sess = ort.InferenceSession(str(path), so, providers=provs, provider_options=opts)
        sess.run(None, feeds)
        trace = json.loads(pathlib.Path(sess.end_profiling()).read_text())
    return placement_from_trace(trace, want)


def placement_from_trace(trace: list, want: str) -> dict:
    """See :func:`placement`; split out so the rule is unit-tested on synthetic traces."""
    by_provider: Dict[str, int] = {}
    off: Dict[str, str] = {}
    for ev in trace:
        a = ev.get("args") or {}
        if ev.get("cat") != "Node" or "provider" not in a or not str(ev.get("name", "")).endswith("_kernel_time"):
            continue
        node = ev["name"][: -len("_kernel_time")]
        prov = a["provider"]
        by_provider.setdefault(prov, 0)
        by_provider[prov] += 1
        outs = a.get("output_type_shape") or []
        is_float = any(k in FLOAT_TYPES for o in outs for k in (o if isinstance(o, dict) else {}))
        if prov != want and is_float:
            off[node] = f"{a.get('op_name', '?')} on {prov}"
    return {"nodes_by_provider": by_provider, "float_nodes_off_device": off, "ok": not off}


class Bound:
    """IO binding with the inputs copied to the device once and outputs left on the device: ``run()``
    times the device work plus launch overhead, not host<->device copies."""

    def __init__(self, sess, feeds: dict, device: str, device_id: int = 0):
        import onnxruntime as ort
        self.sess = sess
        self.io = sess.io_binding()
        self._keep = []
        for name, arr in feeds.items():
            v = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(arr), device, device_id)
            self._keep.append(v)
            self.io.bind_ortvalue_input(name, v)
        for o in sess.get_outputs():
            self.io.bind_output(o.name, device, device_id)

    def run(self):
        self.sess.run_with_iobinding(self.io)

    def outputs(self):
        return self.io.copy_outputs_to_cpu()


def percentiles(ms) -> dict:
    a = np.asarray(ms, np.float64)
    return {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)), "mean_ms": float(a.mean()), "n": int(a.size)}


def timed(fn: Callable[[], object], repeats: int, warmup: int = 5) -> dict:
    for _ in range(warmup):
        fn()
    ts = np.empty(repeats)
    for i in range(repeats):
        t0 = time.perf_counter_ns()
        fn()
        ts[i] = (time.perf_counter_ns() - t0) / 1e6
    return percentiles(ts)


# ------------------------------------------------------------------------------------------------ inputs

@dataclass
class Inputs:
    """Dev inputs for one model kind: a list of feed dicts (each one run call) and optional labels."""
    kind: str
    feeds: List[dict]
    note: str
    labels: Optional[np.ndarray] = None
    class_names: Optional[List[str]] = None


def face_inputs(entry: dict, data: pathlib.Path, n: int, batch: int = 64) -> Inputs:
    from emoedge.evaluation.face import load_faces, preprocess_faces
    images, labels, names = load_faces(data / "faces" / "fer2013_val.npz", n)
    x = preprocess_faces(images, entry)
    name = entry["input"]["name"]
    return Inputs("face", [{name: x[i:i + batch]} for i in range(0, len(x), batch)],
                  f"FER2013 PublicTest, {len(x)} faces", labels, names)


def voice_inputs(name: str, manifest, data: pathlib.Path, n_clips: int, batch: int = 64) -> Inputs:
    """Log-mel windows of held-out clips (a final fit on every speaker: actors 17-20, for the GPU-vs-CPU
    comparison only), made by the voice pipeline itself (VoiceModel.predict_clip on a CPU session whose
    feeds are recorded)."""
    from emoedge.evaluation.voice import comparison_speaker_sets, load_pack
    from emoedge.voice import VoiceModel
    sets = [(v["file"], v["speakers"]) for v in comparison_speaker_sets(manifest.entry(name))]
    sets.sort(key=lambda s: not s[0].startswith("ravdess"))
    if not sets:
        raise RuntimeError(f"{name}: no held-out speaker set in its manifest metrics")
    file, speakers = sets[0]
    z = load_pack(data / "speech" / file)
    d = {k: z[k] for k in ("audio", "offsets", "speaker", "sample_rate")}  # NpzFile decompresses on every access
    idx = np.flatnonzero(np.isin(d["speaker"], speakers))[:n_clips]
    model = VoiceModel(name=name, manifest=manifest.path, vad=False)
    wins = []
    real = model.session

    class Rec:
        def get_inputs(self):
            return real.get_inputs()

        def run(self, names, feeds):
            wins.append(next(iter(feeds.values())).copy())
            return real.run(names, feeds)

    model.session = Rec()
    for i in idx:
        model.predict_clip(d["audio"][d["offsets"][i]:d["offsets"][i + 1]], int(d["sample_rate"]))
    w = np.concatenate(wins)
    iname = real.get_inputs()[0].name
    return Inputs("voice", [{iname: w[i:i + batch]} for i in range(0, len(w), batch)],
                  f"{file} speakers {speakers}: {len(idx)} clips, {len(w)} windows")


def text_inputs(entry: dict, data: pathlib.Path, n: int, batch: int = 16) -> Inputs:
    from emoedge.evaluation.text import load_carer
    from emoedge.text_features import FeaturizerOptions, TextFeaturizer
    texts, _ = load_carer(data / "text" / "carer_emotion" / "val.txt")
    texts = texts[:n]
    f = TextFeaturizer(FeaturizerOptions.from_dict(entry["featurizer"]))
    feeds = []
    for s in range(0, len(texts), batch):
        fs = [f.featurize(t) for t in texts[s:s + batch]]
        fs = [x for x in fs if x.indices.size]
        feeds.append({"indices": np.concatenate([x.indices for x in fs]), "tf": np.concatenate([x.tf for x in fs]),
                      "segment": np.concatenate([x.blocks + r * f.n_blocks for r, x in enumerate(fs)]),
                      "n_texts": np.array([len(fs)], np.int64)})
    return Inputs("text", feeds, f"CARER val, first {len(texts)} texts, batches of {batch}")


def detector_inputs(entry: dict, frames: list) -> Inputs:
    from emoedge import kernels
    pp = entry["preprocess"]
    size = tuple(pp["size"])
    feeds = []
    for fr in frames:
        x = kernels.preprocess(fr, size=size, letterbox=bool(pp.get("letterbox")), color=pp.get("color", "swap_rb"),
                               mean=tuple(pp["mean"]), std=tuple(pp["std"]), layout="nchw")
        feeds.append({entry["input"]["name"]: np.ascontiguousarray(x.reshape(1, 3, *size[::-1]), np.float32)})
    return Inputs("detector", feeds, f"demo clip, {len(frames)} frames")


def vad_inputs(pcm16k: np.ndarray, n: int) -> Inputs:
    """Consecutive 576-sample chunks (64 context + 512) of the demo audio, zero state (parity per call)."""
    feeds = []
    for i in range(min(n, (len(pcm16k) - 576) // 512)):
        feeds.append({"input": pcm16k[i * 512:i * 512 + 576][None].astype(np.float32),
                      "state": np.zeros((2, 1, 128), np.float32), "sr": np.array(16000, np.int64)})
    return Inputs("vad", feeds, f"demo clip audio, {len(feeds)} chunks")


# ------------------------------------------------------------------------------------------------ parity

def softmax(x):
    x = np.asarray(x, np.float64)
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def run_all(sess, inputs: Inputs) -> np.ndarray:
    return np.concatenate([np.asarray(sess.run(None, f)[0], np.float32).reshape(len(next(iter(f.values()))) if inputs.kind != "text"
                                                                                else int(f["n_texts"][0]), -1)
                           for f in inputs.feeds])


def compare_outputs(ref: np.ndarray, got: np.ndarray, classifier: bool, log_probs: bool = False) -> dict:
    d = {"max_abs_diff": float(np.max(np.abs(ref - got))), "rows": int(len(ref))}
    if classifier:
        pr, pg = (np.exp(ref), np.exp(got)) if log_probs else (softmax(ref), softmax(got))
        d["max_abs_prob_diff"] = float(np.max(np.abs(pr - pg)))
        d["top1_agreement"] = float(np.mean(ref.argmax(1) == got.argmax(1)))
    return d


def face_accuracy(out: np.ndarray, inputs: Inputs, labels: List[str]) -> Optional[float]:
    if inputs.labels is None:
        return None
    from emoedge.evaluation.face import label_map
    m = label_map(labels, inputs.class_names)
    return float(np.mean(m[out.argmax(1)] == inputs.labels))


def families(man) -> Dict[str, Dict[str, str]]:
    fam: Dict[str, Dict[str, str]] = {}
    for n, e in man.models.items():
        if str(e.get("file", "")).endswith(".onnx"):
            fam.setdefault(e.get("family", n), {})[e.get("precision", "fp32")] = n
    return fam


# ------------------------------------------------------------------------------------------------ engine

@dataclass
class Item:
    """A decoded source item (the fields of emoedge.sources' video/audio items that push_all reads)."""
    kind: str
    t: float
    image: Optional[np.ndarray] = None
    pcm: Optional[np.ndarray] = None
    sample_rate: int = 0

    @property
    def duration(self) -> float:
        return 0.0 if self.pcm is None else len(self.pcm) / float(self.sample_rate)


def bundle_items(path) -> list:
    """Items from a demo bundle made by benchmarks/gpu_prepare.py (frames as JPEG, audio chunks as int16):
    for a GPU machine without PyAV."""
    import cv2
    f = np.load(path)
    z = {k: f[k] for k in f.files}  # NpzFile re-reads an array on every access
    jo, po = z["jpeg_offsets"], z["pcm_offsets"]
    items = [Item("video", float(t), image=cv2.imdecode(z["jpeg"][jo[i]:jo[i + 1]], cv2.IMREAD_COLOR))
             for i, t in enumerate(z["frame_t"])]
    items += [Item("audio", float(t), pcm=z["pcm"][po[i]:po[i + 1]].astype(np.float32) / 32768.0, sample_rate=int(r))
              for i, (t, r) in enumerate(zip(z["audio_t"], z["audio_rate"]))]
    return items


def demo_items(bundle: Optional[str] = None):
    """(items in time order, number of frames) of the bundled demo clip, decoded once (PyAV through
    emoedge.sources, or a demo bundle made by benchmarks/gpu_prepare.py)."""
    if bundle:
        items = bundle_items(bundle)
    else:
        from emoedge.bench.e2e import SAMPLES
        from emoedge.sources import VideoFileSource
        with VideoFileSource(SAMPLES / "demo.mp4") as src:
            items = list(src.items())
    items.sort(key=lambda it: (it.t + it.duration) if it.kind == "audio" else it.t)
    return items, sum(1 for it in items if it.kind == "video")


def push_all(stream, items, frame_ms: list) -> None:
    for it in items:
        if it.kind == "video":
            t0 = time.perf_counter_ns()
            stream.push_frame(it.image, it.t)
            frame_ms.append((time.perf_counter_ns() - t0) / 1e6)
        elif it.kind == "audio":
            stream.push_audio(it.pcm, it.sample_rate, it.t)
    stream.flush()


@contextlib.contextmanager
def watch_sessions(seen: list):
    """Record (model file, providers) of every session emoedge.session.make_session creates meanwhile."""
    import importlib
    import emoedge.session as S
    for mod in ("emoedge.text", "emoedge.voice", "emoedge.faces", "emoedge.detect"):
        with contextlib.suppress(ImportError):
            importlib.import_module(mod)
    orig = S.make_session

    def wrapped(path, opts=None, *a, **k):
        s = orig(path, opts, *a, **k)
        seen.append((pathlib.Path(path).name, list(s.get_providers())))
        return s
    # modules that imported the function itself (from .session import make_session) are patched too
    holders = [m for n, m in list(sys.modules.items())
               if n.startswith("emoedge") and getattr(m, "make_session", None) is orig]
    for m in holders:
        m.make_session = wrapped
    try:
        yield
    finally:
        for m in holders:
            m.make_session = orig


def engine_rows(backend: str, precision: str, items, n_frames: int, streams: int, threads: int) -> List[dict]:
    from emoedge import Engine
    seen: list = []
    with watch_sessions(seen):
        t0 = time.perf_counter()
        eng = Engine(backend=backend, precision=precision, threads=threads)
        load_s = time.perf_counter() - t0
    want = DEVICE_PROVIDER[backend]
    fell_back = sorted({f for f, p in seen if not p or p[0] != want})
    info = eng.info()
    base = {"backend": backend, "precision": precision, "models": {k: v for k, v in info.items() if k.endswith("_model")},
            "sessions": [{"file": f, "providers": p} for f, p in seen], "load_s": round(load_s, 3),
            "notes": info.get("notes", []), "ok": bool(seen) and not fell_back,
            "reason": "" if seen and not fell_back else (f"sessions not on {want}: {fell_back}" if seen else
                                                         "no session seen (emoedge.session.make_session not used?)")}
    rows = []
    # one stream (warm-up pass first: CUDA kernels, cuDNN algorithm search)
    with eng.stream() as s:
        push_all(s, items, [])
    ms: list = []
    t0 = time.perf_counter()
    with eng.stream() as s:
        push_all(s, items, ms)
    wall = time.perf_counter() - t0
    rows.append({**base, "streams": 1, **percentiles(ms), "fps": n_frames / wall, "wall_s": wall})
    # N concurrent streams, one thread each, all on the shared engine
    if streams > 1:
        per = [[] for _ in range(streams)]
        errs: list = []
        barrier = threading.Barrier(streams + 1)

        def work(k):
            try:
                with eng.stream(stream_id=f"s{k}") as st:
                    barrier.wait()
                    push_all(st, items, per[k])
            except BaseException as e:  # reported, not swallowed
                errs.append(f"{type(e).__name__}: {e}")
                with contextlib.suppress(threading.BrokenBarrierError):
                    barrier.abort()
        th = [threading.Thread(target=work, args=(k,)) for k in range(streams)]
        for t in th:
            t.start()
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait()
        t0 = time.perf_counter()
        for t in th:
            t.join()
        wall = time.perf_counter() - t0
        allms = [x for p in per for x in p]
        row = {**base, "streams": streams, "fps": streams * n_frames / wall, "wall_s": wall,
               "fps_per_stream": n_frames / wall}
        row.update(percentiles(allms) if allms else {})
        if errs:
            row.update(ok=False, reason=f"stream errors: {errs[:3]}")
        rows.append(row)
    eng.close()
    return rows


# ------------------------------------------------------------------------------------------------ outputs

def result_paths(backend: str, dry_run: bool, out: Optional[str]) -> pathlib.Path:
    if out:
        return pathlib.Path(out)
    if dry_run:
        return RESULTS / "gpu_check_cpu_dryrun.json"
    return RESULTS / "gpu_h200.json"


def write_outputs(result: dict, path: pathlib.Path) -> pathlib.Path:
    """Write the JSON and the Markdown table atomically. A run in which any session or Engine asked for a
    GPU provider and got another one is not a GPU result: it goes to ``<name>.invalid.json``/``.md`` and the
    official file is left untouched. A dry run never writes gpu_h200.json."""
    # a session that runs on another provider than asked invalidates the file; a model with some float nodes
    # placed on the CPU (placement) is a failure of that row, reported in the file, not a wrong label
    bad = [r for sec in ("verification", "engine") for r in result.get(sec, []) if not r.get("ok", False)]
    if result.get("dry_run") and path.name == "gpu_h200.json":
        raise ValueError("a --cpu-dry-run result is not a GPU result: refusing to write gpu_h200.json")
    if bad:
        path = path.with_name(path.stem + ".invalid.json")
        result["invalid"] = [r.get("reason") or r for r in bad][:20]
    path.parent.mkdir(parents=True, exist_ok=True)
    for p, text in ((path, json.dumps(result, indent=2, sort_keys=True, default=str) + "\n"),
                    (path.with_suffix(".md"), markdown(result))):
        fd, tmp = tempfile.mkstemp(dir=str(p.parent), prefix=f".{p.name}.")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, p)
    return path


def _f(v, fmt=".3f"):
    return "" if v is None else (format(v, fmt) if isinstance(v, (int, float)) else str(v))


def markdown(r: dict) -> str:
    env = r.get("environment", {})
    title = "GPU check" + (" (CPU DRY RUN: no GPU numbers)" if r.get("dry_run") else "")
    lines = [f"# {title}", "",
             f"Device: {env.get('gpu') or 'none'}; driver {env.get('driver')}; CUDA (driver API) {env.get('cuda_driver_api')}; "
             f"cuDNN {env.get('cudnn')}; onnxruntime {env.get('onnxruntime')} ({env.get('ort_device')}); "
             f"backend under test: {env.get('backend')}; measured {r.get('date')}.", ""]
    if r.get("invalid"):
        lines += ["**INVALID: a session did not run on the asked provider:** " + "; ".join(map(str, r["invalid"])), ""]
    lines += ["## Parity vs CPU FP32", "",
              "| model | precision | backend used | inputs | max abs diff | max prob diff | top-1 agree | accuracy | ok |",
              "|---|---|---|---|---:|---:|---:|---:|---|"]
    for p in r.get("parity", []):
        lines.append(f"| {p['model']} | {p['precision']} | {p.get('used', '')} | {p.get('inputs', '')} | "
                     f"{_f(p.get('max_abs_diff'), '.2e')} | "
                     f"{_f(p.get('max_abs_prob_diff'), '.2e')} | {_f(p.get('top1_agreement'), '.4f')} | {_f(p.get('accuracy'), '.4f')} | "
                     f"{'ok' if p.get('ok') else 'FAIL ' + str(p.get('reason', ''))[:80]} |")
    lines += ["", "## Latency (IO binding: input and output on the device)", "",
              "| model | precision | batch | p50 ms | p99 ms | items/s | host-array run p50 ms |", "|---|---|---:|---:|---:|---:|---:|"]
    for x in r.get("latency", []):
        lines.append(f"| {x['model']} | {x['precision']} | {x['batch']} | {_f(x.get('p50_ms'))} | {_f(x.get('p99_ms'))} | "
                     f"{_f(x.get('items_per_s'), '.0f')} | {_f(x.get('host_p50_ms'))} |")
    lines += ["", "## Engine end to end (demo clip, per pushed frame)", "",
              "| backend | precision | streams | frame p50 ms | frame p99 ms | fps (all streams) | ok |",
              "|---|---|---:|---:|---:|---:|---|"]
    for e in r.get("engine", []):
        lines.append(f"| {e['backend']} | {e['precision']} | {e['streams']} | {_f(e.get('p50_ms'))} | {_f(e.get('p99_ms'))} | "
                     f"{_f(e.get('fps'), '.1f')} | {'ok' if e.get('ok') else 'FAIL ' + str(e.get('reason', ''))[:80]} |")
    if r.get("failures"):
        lines += ["", "## Failures", ""] + [f"- {f}" for f in r["failures"]]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------ main

@dataclass
class Plan:
    backend: str
    dry_run: bool
    precisions: tuple = ("fp32", "fp16")
    n_faces: int = 0          # 0 = the whole split
    n_voice_clips: int = 240
    n_texts: int = 2000
    batches: tuple = (1, 8, 64)
    repeats: int = 200
    streams: int = 16
    threads: int = 1
    skipped: List[str] = field(default_factory=list)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="GPU proof: parity, latency and Engine on the CUDA EP (see module doc)")
    ap.add_argument("--backend", default="cuda", choices=("cuda", "tensorrt"))
    ap.add_argument("--cpu-dry-run", action="store_true", help="run everything on the CPU EP (tests the script, no GPU numbers)")
    ap.add_argument("--quick", action="store_true", help="small inputs and few repeats (smoke run)")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--out", default=None, help="result JSON (default benchmarks/results/gpu_h200.json, or "
                    "gpu_check_cpu_dryrun.json with --cpu-dry-run); the Markdown table goes beside it")
    ap.add_argument("--streams", type=int, default=None)
    ap.add_argument("--skip-engine", action="store_true")
    ap.add_argument("--demo-bundle", default=None, help="demo clip decoded by benchmarks/gpu_prepare.py (no PyAV needed)")
    ap.add_argument("--preload-dlls", action="store_true", help="call onnxruntime.preload_dlls() first "
                    "(CUDA/cuDNN from the nvidia-* pip packages)")
    a = ap.parse_args(argv)
    backend = "cpu" if a.cpu_dry_run else a.backend
    plan = Plan(backend=backend, dry_run=a.cpu_dry_run)
    if a.quick:
        plan.n_faces, plan.n_voice_clips, plan.n_texts, plan.repeats, plan.streams = 256, 12, 256, 20, 4
        plan.batches = (1, 8, 64)
    if a.streams is not None:
        plan.streams = a.streams
    import onnxruntime as ort
    if a.preload_dlls and hasattr(ort, "preload_dlls"):
        ort.preload_dlls()
    env = environment(backend)
    log(json.dumps(env))
    if not a.cpu_dry_run and DEVICE_PROVIDER[backend] not in ort.get_available_providers():
        log(f"{DEVICE_PROVIDER[backend]} is not available in this onnxruntime ({ort.__file__}): nothing checked. "
            "Install onnxruntime-gpu (see benchmarks/gpu_device_run.sh) or use --cpu-dry-run")
        return 2
    from emoedge.manifest import load_manifest
    man = load_manifest()
    data = pathlib.Path(a.data)
    result: dict = {"dry_run": plan.dry_run, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                    "command": "python benchmarks/gpu_check.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                    "environment": env, "plan": plan.__dict__, "verification": [], "placement": [], "parity": [],
                    "latency": [], "engine": [], "failures": []}
    failures = result["failures"]
    items, n_frames = demo_items(a.demo_bundle)
    result["environment"]["demo"] = "demo bundle (JPEG q=95 frames)" if a.demo_bundle else "emoedge/samples/demo.mp4 via PyAV"
    frames = [it.image for it in items if it.kind == "video"][:32 if a.quick else 135]
    from emoedge.audio import resample
    pcm = np.concatenate([it.pcm for it in items if it.kind == "audio"])
    sr = next(it.sample_rate for it in items if it.kind == "audio")
    pcm16 = resample(pcm, sr, 16000)
    gpu_precisions = [p for p in ("fp32", "fp16", "int8")]
    fams = families(man)
    inputs_cache: Dict[str, Inputs] = {}
    for fam, by_prec in sorted(fams.items()):
        ref_name = by_prec.get("fp32") or by_prec.get("int8") or next(iter(by_prec.values()))
        ref_entry = man.entry(ref_name)
        task = ref_entry.get("task", "")
        try:
            if task.startswith("face_expression"):
                inputs = face_inputs(ref_entry, data, plan.n_faces)
            elif task == "voice":
                inputs = voice_inputs(ref_name, man, data, plan.n_voice_clips)
            elif task == "text":
                inputs = text_inputs(ref_entry, data, plan.n_texts)
            elif task == "face_detector":
                inputs = detector_inputs(ref_entry, frames)
            elif task == "vad":
                inputs = vad_inputs(pcm16, 256 if not a.quick else 32)
            else:
                plan.skipped.append(f"{fam}: task {task!r} has no input builder")
                continue
        except (OSError, RuntimeError, ValueError) as ex:
            plan.skipped.append(f"{fam}: inputs unavailable ({type(ex).__name__}: {ex})")
            continue
        inputs_cache[fam] = inputs
        log(f"{fam}: {inputs.note}")
        cpu_ref = run_all(make(man.model_path(ref_name), "cpu", plan.threads), inputs)
        classifier = task in ("face_expression", "face_expression_baseline", "voice", "text")
        log_probs = task == "voice"
        for prec in gpu_precisions:
            name = by_prec.get(prec)
            if name is None:
                continue
            e = man.entry(name)
            path = man.model_path(name)
            row = {"model": name, "family": fam, "precision": prec, "task": task, "inputs": inputs.note, "asked": backend,
                   "reference": f"{ref_name} on CPU"}
            try:
                sess = make(path, backend, plan.threads)
            except Exception as ex:  # BackendUnavailableError / ModelError: reported per model, the run goes on
                row.update(ok=False, reason=f"{type(ex).__name__}: {ex}", used=None)
                result["parity"].append(row)
                result["verification"].append({"model": name, "ok": False, "reason": row["reason"]})
                failures.append(f"{name}: {row['reason']}")
                continue
            v = verify(sess, backend)
            result["verification"].append({"model": name, **v})
            row["used"] = v["used"]
            row["provider_options"] = ({k: dict(o) for k, o in sess.get_provider_options().items()}
                                       if hasattr(sess, "get_provider_options") else {})
            pl = placement(path, backend, inputs.feeds[0])
            result["placement"].append({"model": name, **pl, "reason": "" if pl["ok"] else
                                        f"float nodes off {backend}: {pl['float_nodes_off_device']}"})
            out = run_all(sess, inputs)
            row.update(compare_outputs(cpu_ref, out, classifier, log_probs))
            if prec == "int8":  # the same INT8 file on CPU: EP parity without the quantization effect
                own = run_all(make(path, "cpu", plan.threads), inputs)
                row["vs_own_file_on_cpu"] = compare_outputs(own, out, classifier, log_probs)
            if inputs.kind == "face":
                row["accuracy"] = face_accuracy(out, inputs, e["labels"])
                row["cpu_fp32_accuracy"] = face_accuracy(cpu_ref, inputs, ref_entry["labels"])
            ok, why = v["ok"] and pl["ok"], [] if v["ok"] else [v["reason"]]
            if not pl["ok"]:
                off = pl["float_nodes_off_device"]
                why.append(f"{len(off)} node(s) with float outputs ran on the CPU: {sorted(set(off.values()))[:5]}")
            if classifier:
                # INT8: the EP is judged against the same INT8 file on CPU; the difference to FP32 is the
                # quantization itself (reported, not judged here)
                judged = row["vs_own_file_on_cpu"] if prec == "int8" else row
                if judged["max_abs_prob_diff"] > PROB_TOL[prec]:
                    ok = False
                    why.append(f"prob diff {judged['max_abs_prob_diff']:.2e} > {PROB_TOL[prec]}")
                if judged["top1_agreement"] < AGREE_MIN[prec]:
                    ok = False
                    why.append(f"top-1 agreement {judged['top1_agreement']:.4f} < {AGREE_MIN[prec]}")
                if row.get("accuracy") is not None and prec == "fp16" and abs(row["accuracy"] - row["cpu_fp32_accuracy"]) > 0.003:
                    ok = False
                    why.append("accuracy more than 0.3 pt from CPU FP32")
            row.update(ok=ok, reason="; ".join(why))
            if not ok:
                failures.append(f"{name} on {backend}: {row['reason']}")
            result["parity"].append(row)
            log(f"  {name} [{prec}] on {v['used']}: max|d| {row['max_abs_diff']:.2e}"
                + (f", top-1 {row['top1_agreement']:.4f}" if classifier else "") + ("" if ok else f"  FAIL {row['reason']}"))
            # latency with IO binding at batch 1/8/64 (fixed-batch models: batch 1)
            dynamic = not isinstance(sess.get_inputs()[0].shape[0], int) and inputs.kind not in ("vad", "text")
            device = "cuda" if backend in ("cuda", "tensorrt") else "cpu"
            for b in (plan.batches if dynamic else (1,)):
                f0 = inputs.feeds[0]
                if inputs.kind == "text":
                    feeds = f0
                else:
                    k = next(iter(f0))
                    src = np.concatenate([f[k] for f in inputs.feeds])[:b] if dynamic else f0[k]
                    if dynamic and len(src) < b:
                        src = np.resize(src, (b,) + src.shape[1:])
                    feeds = {**f0, k: np.ascontiguousarray(src)}
                try:
                    bound = Bound(sess, feeds, device)
                    t = timed(bound.run, plan.repeats)
                    h = timed(lambda s=sess, f=feeds: s.run(None, f), max(10, plan.repeats // 2))
                except Exception as ex:
                    result["latency"].append({"model": name, "precision": prec, "batch": b, "error": f"{type(ex).__name__}: {ex}"})
                    failures.append(f"{name} latency b{b}: {ex}")
                    continue
                n_items = int(feeds["n_texts"][0]) if inputs.kind == "text" else b
                result["latency"].append({"model": name, "precision": prec, "batch": b if inputs.kind != "text" else n_items,
                                          "used": v["used"], **t, "items_per_s": n_items / (t["p50_ms"] / 1e3),
                                          "host_p50_ms": h["p50_ms"], "host_p99_ms": h["p99_ms"]})
    if not a.skip_engine:
        eng_precisions = ["fp32"] if plan.dry_run else ["fp32", "fp16"]
        if plan.dry_run:
            plan.skipped.append("engine fp16: Engine(backend='cpu', precision='fp16') is refused by design (FP16 is for GPUs)")
        for prec in eng_precisions:
            try:
                rows = engine_rows(backend, prec, items, n_frames, plan.streams, plan.threads)
            except Exception as ex:
                rows = [{"backend": backend, "precision": prec, "streams": 1, "ok": False, "reason": f"{type(ex).__name__}: {ex}"}]
            for rr in rows:
                log(f"engine {backend}/{prec} x{rr['streams']}: p50 {rr.get('p50_ms', float('nan')):.2f} ms, "
                    f"p99 {rr.get('p99_ms', float('nan')):.2f} ms, {rr.get('fps', float('nan')):.1f} fps"
                    + ("" if rr["ok"] else f"  FAIL {rr['reason']}"))
                if not rr["ok"]:
                    failures.append(f"engine {backend}/{prec} x{rr['streams']}: {rr['reason']}")
            result["engine"].extend(rows)
    env["cudnn"] = cudnn_version() if backend != "cpu" else None
    path = write_outputs(result, result_paths(backend, plan.dry_run, a.out))
    log(f"wrote {path} and {path.with_suffix('.md').name}")
    print(markdown(result))
    if path.name.endswith(".invalid.json"):
        return 2
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
