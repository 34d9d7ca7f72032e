"""Long live-mode soak: the real default models (faces, voice, text) driven by ``engine.run`` in live mode
for ``--minutes`` of wall-clock time, with inputs paced at real time (15 fps frames from the demo clip,
100 ms audio chunks of its speech, a text line every 20 s). The live driver keeps only the newest frame
and counts the rest as dropped, so a loaded machine shows up as drops, not as a backlog.

Writes one JSON line per checkpoint (every ``--every`` seconds) to ``--out`` (RSS MB, counters, per-stage
latency percentiles) and a final summary line ``{"final": true, ...}`` with the RSS slope over the second
half. Resumable in the sense that every checkpoint is on disk; a killed run keeps its record.

    nohup nice -n 10 python benchmarks/soak_live.py --minutes 35 --out runs/soak_live.jsonl > runs/soak_live.log 2>&1 &
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import pathlib
import sys
import time

import numpy as np


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def rss_anon_mb() -> float:
    """Anonymous resident memory (heap, arrays): unlike RSS it does not drop when the kernel reclaims
    file-backed pages (shared libraries, mapped files) under machine-wide memory pressure."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def paced_items(minutes: float, frames, speech, sr: int, fps: float = 15.0, chunk: float = 0.1,
                text_every: float = 20.0):
    """Frames, audio chunks and text lines, each yielded when its time arrives on the wall clock."""
    from emoedge import sources as S
    texts = ["I am so happy and delighted today", "this is really sad news", "I am furious about the delay",
             "okay, see you tomorrow"]
    t0 = time.monotonic()
    end = minutes * 60.0
    i = j = k = 0
    n = int(chunk * sr)
    while True:
        tf, ta, tt = i / fps, (j + 1) * chunk, (k + 1) * text_every
        t = min(tf, ta, tt)
        if t > end:
            return
        wait = t - (time.monotonic() - t0)
        if wait > 0:
            time.sleep(wait)
        if t == ta:
            k0 = (j * n) % (speech.size - n)
            yield S.AudioChunk(t=j * chunk, pcm=speech[k0:k0 + n], sample_rate=sr)
            j += 1
        elif t == tf:
            # a face-free stretch of 2 s every 8 s exercises track birth and death
            img = frames[i % len(frames)] if (i // 30) % 4 != 3 else np.full_like(frames[0], 30)
            yield S.VideoFrame(t=tf, image=img, index=i)
            i += 1
        else:
            yield S.TextItem(t=tt, text=texts[k % len(texts)])
            k += 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=35.0)
    ap.add_argument("--every", type=float, default=30.0, help="checkpoint period, seconds")
    ap.add_argument("--out", default="runs/soak_live.jsonl")
    a = ap.parse_args(argv)
    from emoedge import sources as S
    from emoedge.bench.e2e import sample_audio, sample_frames
    from emoedge.engine import Engine

    out = pathlib.Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    frames = sample_frames(60)
    speech, sr = sample_audio()
    t_load = time.perf_counter()
    eng = Engine()
    load_s = time.perf_counter() - t_load
    src = S.ArraySource(paced_items(a.minutes, frames, speech, sr), kinds=("video", "audio", "text"), live=True,
                        name="paced")
    run = eng.run(video=src)
    rows = []
    t_start = time.monotonic()
    next_cp = a.every
    events = 0
    with out.open("w") as f:
        f.write(json.dumps({"start": True, "minutes": a.minutes, "load_s": round(load_s, 3),
                            "info": eng.info(), "pid": os.getpid()}) + "\n")
        f.flush()
        for _ev in run:
            events += 1
            el = time.monotonic() - t_start
            if el >= next_cp:
                next_cp += a.every
                gc.collect()
                st = run.stats
                row = {"wall_s": round(el, 1), "stream_t": round(run.t, 2), "rss_mb": round(rss_mb(), 2),
                       "rss_anon_mb": round(rss_anon_mb(), 2),
                       "frames_processed": st.frames_processed, "frames_dropped": st.frames_dropped,
                       "voice_windows": st.voice_windows, "texts": st.texts, "events": events,
                       "audio_dropped": st.audio_dropped, "faces": st.faces,
                       "cpu_s": round(time.process_time(), 1)}
                rows.append(row)
                f.write(json.dumps(row) + "\n")
                f.flush()
        st = run.stats
        half = [r for r in rows if r["wall_s"] >= rows[-1]["wall_s"] / 2] if rows else []
        slope = None
        if len(half) >= 2:
            x = np.array([r["wall_s"] for r in half]) / 3600.0
            y = np.array([r["rss_anon_mb"] for r in half])
            slope = float(np.polyfit(x, y, 1)[0])
        summary = {"final": True, "wall_s": round(time.monotonic() - t_start, 1), "events": events,
                   "rss_first_mb": rows[0]["rss_mb"] if rows else None,
                   "rss_last_mb": rows[-1]["rss_mb"] if rows else None,
                   "rss_second_half_growth_mb": round(half[-1]["rss_mb"] - half[0]["rss_mb"], 2) if half else None,
                   "rss_anon_first_mb": rows[0]["rss_anon_mb"] if rows else None,
                   "rss_anon_last_mb": rows[-1]["rss_anon_mb"] if rows else None,
                   "rss_anon_second_half_growth_mb":
                       round(half[-1]["rss_anon_mb"] - half[0]["rss_anon_mb"], 2) if half else None,
                   "rss_anon_second_half_slope_mb_per_h": None if slope is None else round(slope, 3),
                   "rss_max_mb": max(r["rss_mb"] for r in rows) if rows else None,
                   "cpu_s": round(time.process_time(), 1), "stats": st.to_dict()}
        f.write(json.dumps(summary) + "\n")
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
