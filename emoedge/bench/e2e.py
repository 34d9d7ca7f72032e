"""End-to-end engine numbers (`emoedge bench --only e2e`), 1 thread unless noted:

* ``e2e_frame_640x480_1face``: ``stream.push_frame`` on 640x480 frames with one real face (the bundled
  demo clip: detect + align + classify + fuse), median/p95/p99; targets median <= 5 ms, p99 <= 10 ms.
  Also 2 and 4 faces per frame (the face tiled), and 2 threads.
* ``engine_to_first_event``: a fresh interpreter; seconds from ``Engine()`` (all default models) to the
  first event of a pushed frame; target <= 1 s. Import time is reported beside it.
* ``peak_rss_all_models``: a fresh interpreter loads every default model and pushes frames, audio and text;
  peak RSS (MB, VmHWM of that process); target <= 250 MB.
* ``audio_rtf``: voice path (resample, log-mel, VAD, voice model, fusion) on the demo clip's audio pushed in
  100 ms chunks: processing seconds per second of audio; target <= 0.02. ``audio_rtf_ungated``: the same
  with the VAD gate off (the model runs every hop: the worst case).
"""
from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import time

import numpy as np

from . import row, timings_ns

SAMPLES = pathlib.Path(__file__).resolve().parents[1] / "samples"


def sample_frames(n: int = 60, start_s: float = 1.0):
    """Up to ``n`` 640x480 BGR frames with one real face from the bundled demo clip (t >= start_s)."""
    from ..sources import VideoFileSource
    out = []
    with VideoFileSource(SAMPLES / "demo.mp4", audio=False) as src:
        for it in src.items():
            if it.t >= start_s:
                out.append(it.image)
                if len(out) >= n:
                    break
    return out


def sample_audio():
    """(float32 mono pcm, sample_rate) of the demo clip's audio track."""
    from ..sources import VideoFileSource
    parts, sr = [], None
    with VideoFileSource(SAMPLES / "demo.mp4") as src:
        for it in src.items():
            if it.kind == "audio":
                parts.append(it.pcm)
                sr = it.sample_rate
    return np.concatenate(parts), sr


def tiled(frame, k: int):
    """A 640x480 frame holding ``k`` copies (2 or 4) of the frame, scaled down side by side."""
    import cv2
    h, w = frame.shape[:2]
    if k == 2:
        half = cv2.resize(frame, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        out = np.full_like(frame, 30)
        out[h // 4:h // 4 + h // 2, :w // 2] = half
        out[h // 4:h // 4 + h // 2, w // 2:w // 2 * 2] = half
        return out
    half = cv2.resize(frame, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    return np.vstack([np.hstack([half, half]), np.hstack([half, half])])


def _frame_row(name, frames, repeats, threads=1, target=True):
    from ..engine import Engine
    eng = Engine(voice=False, text=False, threads=threads)
    s = eng.stream()
    i = [0]

    def push():
        s.push_frame(frames[i[0] % len(frames)], i[0] / 15.0)
        i[0] += 1
    ns = timings_ns(push, repeats, warmup=10)
    faces = s.stats.faces / max(1, s.stats.frames_processed)
    stages = {k: [float(x) for x in s.stats.latency.samples(k)[-repeats:]] for k in ("detect", "align", "classify", "fuse")}
    p99 = float(np.percentile(ns, 99)) / 1e6
    r = row(name, ns, threads=threads, p99_ms=p99, faces_per_frame=round(faces, 3),
            stage_p50_ms={k: float(np.median(v)) for k, v in stages.items() if v}, stage_samples_ms=stages)
    if target:
        r.update(target_ms=5.0, target_p99_ms=10.0, meets_target=bool(r["ours_ms"] <= 5.0 and p99 <= 10.0))
    return r


_FIRST_EVENT = r"""
import json, resource, sys, time
t_imp = time.perf_counter()
import numpy as np
from emoedge.engine import Engine
from emoedge.bench.e2e import sample_frames, sample_audio
imp = time.perf_counter() - t_imp
frame = sample_frames(1)[0]
pcm, sr = sample_audio()
t0 = time.perf_counter()
eng = Engine(skip_missing=True)
s = eng.stream()
ev = s.push_frame(frame, 0.0)[0]
first = time.perf_counter() - t0
assert ev.faces, "no face found in the sample frame"
for i, f in enumerate(sample_frames(30)):
    s.push_frame(f, (i + 1) / 15.0)
for k in range(0, pcm.size, sr // 10):
    s.push_audio(pcm[k:k + sr // 10], sr, k / sr)
s.push_text("I am really happy to see you today!", 9.0)
s.flush()
def hwm_mb():
    # VmHWM belongs to this program's address space; ru_maxrss can carry the forking parent's peak
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
print(json.dumps({"first_event_s": first, "import_s": imp, "load_s": eng.load_seconds,
                  "peak_rss_mb": hwm_mb(), "modalities": eng.info()["modalities"]}))
"""


def _fresh_process():
    out = subprocess.run([sys.executable, "-c", _FIRST_EVENT], capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"fresh-process measurement failed: {out.stderr.strip()[-400:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _audio_rows(quick: bool):
    from ..engine import Engine
    pcm, sr = sample_audio()
    reps = 2 if quick else 5
    chunk = sr // 10
    rows = []
    try:
        import emoedge.voice  # noqa: F401
    except ImportError as e:
        return [{"name": "audio_rtf", "skipped": f"voice pipeline not installed ({e})", "ours_ms": float("nan"),
                 "anchor": None, "ratio": None, "threads": 1}]
    for name, gated in (("audio_rtf", True), ("audio_rtf_ungated", False)):
        eng = Engine(face=False, text=False, voice_options=None if gated else _ungated())
        times = []
        for r in range(reps + 1):
            s = eng.stream()
            t0 = time.perf_counter_ns()
            n_ev = 0
            for k in range(0, pcm.size, chunk):
                n_ev += len(s.push_audio(pcm[k:k + chunk], sr, k / sr))
            n_ev += len(s.flush())
            dt = time.perf_counter_ns() - t0
            if r > 0:  # the first pass is warm-up
                times.append(dt)
        dur = pcm.size / sr
        rtf = np.array(times, dtype=np.float64) / 1e9 / dur
        rows.append(row(name, np.array(times), threads=1, unit="ms per clip", rtf=float(np.median(rtf)),
                        audio_seconds=round(dur, 3), voice_windows=n_ev, target_rtf=0.02,
                        meets_target=bool(np.median(rtf) <= 0.02)))
    return rows


def _ungated():
    from ..voice import VoiceOptions
    return VoiceOptions(vad_gate=False)


def run(quick: bool = True) -> list:
    frames = sample_frames(30 if quick else 120)
    reps = 150 if quick else 1000
    rows = [_frame_row("e2e_frame_640x480_1face", frames, reps)]
    if not quick:
        rows.append(_frame_row("e2e_frame_640x480_1face_2threads", frames, reps, threads=2, target=False))
        for k in (2, 4):
            rows.append(_frame_row(f"e2e_frame_640x480_{k}faces", [tiled(f, k) for f in frames[:30]], reps // 2,
                                   target=False))
    fp = _fresh_process()
    rows.append(row("engine_to_first_event", [fp["first_event_s"] * 1e9], threads=1, unit="ms",
                    import_s=fp["import_s"], load_s=fp["load_s"], target_ms=1000.0,
                    meets_target=bool(fp["first_event_s"] <= 1.0), modalities=fp["modalities"]))
    rows.append({"name": "peak_rss_all_models", "ours_ms": None, "value": fp["peak_rss_mb"], "unit": "MB",
                 "anchor": None, "ratio": None, "threads": 1, "target": 250.0,
                 "meets_target": bool(fp["peak_rss_mb"] <= 250.0), "modalities": fp["modalities"]})
    rows += _audio_rows(quick)
    return rows


def main() -> None:
    """`python -m emoedge.bench.e2e [--full]`: print the rows as a small table."""
    quick = "--full" not in sys.argv
    for r in run(quick):
        extra = {k: r[k] for k in ("p99_ms", "rtf", "value", "faces_per_frame", "import_s", "load_s", "meets_target",
                                   "stage_p50_ms") if k in r}
        print(f"{r['name']:<34} p50={r['ours_ms'] if r.get('ours_ms') is None else round(r['ours_ms'], 3)} ms  {extra}")


if __name__ == "__main__":
    main()
