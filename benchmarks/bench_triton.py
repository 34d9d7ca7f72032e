"""N concurrent streams through the Triton backend vs in-process, on one machine.

    EMOEDGE_PYTRITON_PYTHON=/path/to/debian-venv/bin/python \
        python benchmarks/bench_triton.py [--streams 1,8,32] [--faces 2] [--out benchmarks/results/triton.json]

Each stream is one thread with its own Stream on one shared Engine, pushing the demo clip's frames (``--faces``
copies of the face tiled into each 640x480 frame, so every frame's faces go in one expression request).
Per configuration: frames per second over all streams (wall clock), p50/p99 of push_frame per frame, and,
for Triton, the batch sizes the server executed (Triton's statistics API, delta over the run).

The server is nvidia-pytriton's tritonserver (Python backend: every model call crosses a shared-memory IPC
hop into a Python process running onnxruntime), on the same machine as the clients: this measures the
client/protocol path and dynamic batching, not what Triton's onnxruntime backend on a separate GPU box does.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import sys
import tempfile
import threading
import time

import numpy as np

FACE_MODELS = ["blazeface-short", "face-expr-int8"]


def frames(n_faces: int, n: int):
    from emoedge.bench.e2e import sample_frames, tiled
    fr = sample_frames(n)
    return fr if n_faces == 1 else [tiled(f, n_faces) for f in fr]


def run_streams(engine, frs, n_streams: int, per_stream: int) -> dict:
    lat = [[] for _ in range(n_streams)]
    faces = [0] * n_streams
    errors = []
    barrier = threading.Barrier(n_streams + 1)

    def work(k):
        try:
            s = engine.stream(stream_id=str(k))
            barrier.wait()
            for i in range(per_stream):
                t0 = time.perf_counter()
                ev = s.push_frame(frs[(i + 7 * k) % len(frs)], i / 15.0)[0]   # streams at different offsets
                lat[k].append((time.perf_counter() - t0) * 1e3)
                faces[k] += len(ev.faces)
            s.close()
        except BaseException as e:  # reported, never swallowed
            errors.append(repr(e))
            barrier.abort()
    th = [threading.Thread(target=work, args=(k,), daemon=True) for k in range(n_streams)]
    for t in th:
        t.start()
    try:
        barrier.wait()
    except threading.BrokenBarrierError:
        pass   # a stream failed before the start: reported below
    t0 = time.perf_counter()
    for t in th:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"stream errors: {errors[:3]}")
    allv = np.concatenate([np.asarray(v) for v in lat])
    return {"streams": n_streams, "frames": int(allv.size), "faces": int(sum(faces)), "wall_s": round(wall, 3),
            "fps": round(allv.size / wall, 2), "p50_ms": round(float(np.percentile(allv, 50)), 2),
            "p99_ms": round(float(np.percentile(allv, 99)), 2)}


def stats_delta(before: dict, after: dict) -> dict:
    out = {}
    for name, a in after.items():
        b = before.get(name, {"inference_count": 0, "execution_count": 0, "batch_sizes": {}})
        inf, ex = a["inference_count"] - b["inference_count"], a["execution_count"] - b["execution_count"]
        sizes = {k: v - b["batch_sizes"].get(k, 0) for k, v in a["batch_sizes"].items()}
        out[name] = {"requests_samples": inf, "executions": ex, "mean_batch": round(inf / ex, 2) if ex else 0.0,
                     "batch_sizes": {str(k): v for k, v in sorted(sizes.items()) if v}}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", default="1,8,32")
    ap.add_argument("--faces", type=int, default=2, choices=(1, 2, 4))
    ap.add_argument("--frames", type=int, default=480,
                    help="frames per configuration, split over the streams (at least 16 per stream)")
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--queue-delay-us", type=int, default=500)
    ap.add_argument("--out", default="benchmarks/results/triton.json")
    a = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from emoedge.engine import Engine
    from emoedge.triton.client import TritonOptions, connection
    from emoedge.triton.export import ExportOptions, export_repository
    from emoedge.triton.testing import LocalTritonServer, find_server_python
    py, why = find_server_python()
    if py is None:
        print(why, file=sys.stderr)
        return 2
    counts = [int(x) for x in a.streams.split(",")]
    frs = frames(a.faces, 30)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        repo = pathlib.Path(tmp) / "repo"
        export_repository(repo, ExportOptions(models=FACE_MODELS, max_batch=a.max_batch, queue_delay_us=a.queue_delay_us))
        with LocalTritonServer(repo, FACE_MODELS, python=py, startup_timeout_s=240) as srv:
            print(f"server ready in {srv.startup_s:.1f} s at {srv.url}", file=sys.stderr)
            from emoedge.options import RuntimeOptions
            local = Engine(voice=False, text=False)
            remote = Engine(voice=False, text=False, backend="triton", triton_url=srv.url)
            mixed = Engine(voice=False, text=False, runtime=RuntimeOptions(
                backend="triton", triton_url=srv.url, triton_local_tasks=("face_detector",)))
            conn = connection(TritonOptions(url=srv.url))
            for eng in (local, remote, mixed):   # warm-up: sessions, numba, first requests
                run_streams(eng, frs, 2, 4)
            variants = ((local, "in-process (cpu)", False), (remote, "triton (pytriton, loopback)", True),
                        (mixed, "triton, detector in-process", True))
            for n in counts:
                per = max(16, a.frames // n)
                for eng, backend, served in variants:
                    before = conn.statistics(FACE_MODELS) if served else None
                    r = run_streams(eng, frs, n, per)
                    r["backend"] = backend
                    if served:
                        r["server"] = stats_delta(before, conn.statistics(FACE_MODELS))
                    rows.append(r)
                    print(r, file=sys.stderr)
    res = {"machine": f"{platform.machine()}, {os.cpu_count()} logical CPUs (shared with other jobs: loaded)",
           "faces_per_frame": a.faces, "max_batch": a.max_batch, "queue_delay_us": a.queue_delay_us,
           "command": "python benchmarks/bench_triton.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "rows": rows}
    out = pathlib.Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmpf = out.with_suffix(".json.tmp")
    tmpf.write_text(json.dumps(res, indent=2) + "\n")
    os.replace(tmpf, out)
    print(table(res))
    return 0


def table(res: dict) -> str:
    lines = ["| streams | backend | frames/s | p50 ms/frame | p99 ms/frame | expression batches (size: count) | mean batch |",
             "|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        s = r.get("server", {}).get("face-expr-int8")
        bs = ", ".join(f"{k}: {v}" for k, v in s["batch_sizes"].items()) if s else "-"
        lines.append(f"| {r['streams']} | {r['backend']} | {r['fps']} | {r['p50_ms']} | {r['p99_ms']} | {bs} | "
                     f"{s['mean_batch'] if s else '-'} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
