"""`emoedge bench`: every stage (frame and log-mel kernels, fusion, each bundled model, the engine end to
end) timed against its anchors, ratios measured side by side in one run; medians with p95/p99. ``--out DIR``
writes bench.json, bench.md and bench.png. Anchor libraries come with ``pip install 'emoedge[bench]'``;
a missing one leaves a row saying so."""
from __future__ import annotations

import importlib
import json
import pathlib
import sys
import time
import uuid
from typing import Any, Dict

from ..errors import InvalidInputError

FAMILIES = ("frame", "logmel", "fusion", "models", "e2e", "streams", "peers")


def available_families():
    out = []
    for f in FAMILIES:
        try:
            importlib.import_module(f"emoedge.bench.{f}")
            out.append(f)
        except ModuleNotFoundError as e:
            if e.name != f"emoedge.bench.{f}":
                raise
    return out


def collect(quick: bool, only=None, peers: bool = False, progress=None) -> dict:
    from ..bench import machine, single_thread
    single_thread()
    fams = [f for f in available_families() if (not only or f in only) and (f != "peers" or peers)]
    res: Dict[str, Any] = {"run_id": uuid.uuid4().hex[:12], "machine": machine(), "quick": quick, "sections": {},
           "section_seconds": {}, "started": time.time()}
    for f in fams:
        if progress:
            progress(f"[{f}] ...")
        t0 = time.perf_counter()
        mod = importlib.import_module(f"emoedge.bench.{f}")
        try:
            rows = mod.run(quick=quick)
        except Exception as ex:  # one broken section must not hide the others; it is reported
            rows = [{"name": f"{f} (failed)", "error": f"{type(ex).__name__}: {ex}", "ours_ms": float("nan"),
                     "anchor": None, "ratio": None, "threads": 1}]
        for r in rows:
            r.setdefault("measured_at", time.time())
            r["run_id"] = res["run_id"]
        res["sections"][f] = rows
        res["section_seconds"][f] = time.perf_counter() - t0
        if progress:
            progress(f"[{f}] {len(rows)} rows in {res['section_seconds'][f]:.1f} s")
    res["finished"] = time.time()
    return res


def _fmt(v, nd=4):
    return "-" if v is None or (isinstance(v, float) and v != v) else f"{v:.{nd}f}"


def _notes(r: dict) -> str:
    """Extra measurements a row carries (p99, per-stage medians, RTF, memory, targets)."""
    out = []
    if r.get("ours_p99_ms") is not None and r.get("unit") == "ms":
        out.append(f"p99 {r['ours_p99_ms']:.3f} ms")
    if r.get("stage_p50_ms"):
        out.append("stages p50: " + ", ".join(f"{k} {v:.2f}" for k, v in r["stage_p50_ms"].items()))
    if r.get("faces_per_frame") is not None:
        out.append(f"{r['faces_per_frame']:.2f} faces/frame detected")
    if r.get("rtf") is not None:
        out.append(f"RTF {r['rtf']:.4f} ({r.get('unit', '')}, {r.get('audio_seconds', 0):.1f} s audio)")
    if r.get("value") is not None:
        out.append(f"{r['value']:.1f} {r.get('unit', '')}")
    for k in ("target_ms", "target_p99_ms", "target_rtf", "target"):
        if r.get(k) is not None:
            out.append(f"{k} {r[k]}")
    if "meets_target" in r:
        out.append("meets target" if r["meets_target"] else "MISSES target")
    if r.get("skipped"):
        out.append(r["skipped"])
    return "; ".join(out)


def format_table(res: dict) -> str:
    m = res["machine"]
    lines = [f"Measured on: {m.get('cpu_model', '?')} ({m.get('cores')} cores, flags: {m.get('cpu_flags')}), "
             f"onnxruntime {m.get('onnxruntime')}, OpenCV {m.get('cv2')}, numpy {m.get('numpy')}, kernels: {m.get('kernels')}; "
             f"run {res['run_id']}", "",
             "| section | case | threads | ours p50 (ms) | p95 (ms) | anchor | anchor p50 (ms) | ratio (x) | target | notes |",
             "|---|---|---:|---:|---:|---|---:|---:|---:|---|"]
    for sec, rows in res["sections"].items():
        for r in rows:
            if r.get("error") or r.get("skipped"):
                what = f"error: {r['error'][:80]}" if r.get("error") else f"skipped: {r['skipped'][:80]}"
                lines.append(f"| {sec} | {r['name']} | {r.get('threads', '')} | {what} | | | | | | |")
                continue
            anc = f"{r['anchor']} {r.get('anchor_version') or ''}".strip() if r.get("anchor") else "-"
            tg = f">= {r['target_ratio']}" if r.get("target_ratio") else "-"
            lines.append(f"| {sec} | {r['name']} | {r.get('threads', 1)} | {_fmt(r.get('ours_ms'))} | {_fmt(r.get('ours_p95_ms'))} | "
                         f"{anc} | {_fmt(r.get('anchor_ms'))} | {_fmt(r.get('ratio'), 2)} | {tg} | {_notes(r)} |")
    return "\n".join(lines)


def draw(res: dict, path) -> None:
    """PNG: speed-up over anchors (with targets) and latency distributions per stage."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ratios = [(f"{s}:{r['name']}", r["ratio"], r.get("target_ratio")) for s, rows in res["sections"].items()
              for r in rows if r.get("ratio")]
    stages = {}
    for s, rows in res["sections"].items():
        for r in rows:
            for k, v in (r.get("stage_samples_ms") or {}).items():
                if v:
                    stages[f"{r['name']}:{k}"] = v
    fig, axes = plt.subplots(1, 2, figsize=(15, max(4, 0.32 * max(len(ratios), len(stages), 8))))
    ax = axes[0]
    if ratios:
        y = range(len(ratios))
        ax.barh(list(y), [r[1] for r in ratios], color=["tab:green" if (r[2] is None or r[1] >= r[2]) else "tab:red" for r in ratios])
        for i, r in enumerate(ratios):
            if r[2]:
                ax.plot([r[2], r[2]], [i - 0.4, i + 0.4], color="k", lw=1)
        ax.set_yticks(list(y))
        ax.set_yticklabels([r[0] for r in ratios], fontsize=7)
        ax.set_xscale("log")
        ax.axvline(1.0, color="gray", lw=0.5)
    ax.set_xlabel("speed-up over anchor (x, same run; black tick = target)")
    ax.set_title("emoedge vs anchors")
    ax = axes[1]
    if stages:
        ax.boxplot(list(stages.values()), vert=False, showfliers=False)
        ax.set_yticks(range(1, len(stages) + 1))
        ax.set_yticklabels(list(stages), fontsize=7)
    ax.set_xlabel("latency per call (ms)")
    ax.set_title("latency distributions per stage")
    m = res["machine"]
    fig.suptitle(f"{m.get('cpu_model', '?')}, {m.get('cores')} cores, 1 thread unless noted; run {res['run_id']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_only(text: str) -> set:
    """argparse type of --only: comma-separated section names, each one of FAMILIES."""
    import argparse
    names = {x.strip() for x in text.split(",") if x.strip()}
    unknown = sorted(names - set(FAMILIES))
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"unknown section(s) {', '.join(unknown) or '(none given)'}; "
                                         f"choose from {','.join(FAMILIES)}")
    return names


def _main(args) -> int:
    from .._atomic import AtomicOutput, atomic_write_text, check_outputs
    only = args.only
    say = (lambda msg: print(msg, file=sys.stderr, flush=True))
    if only:
        missing = sorted(set(only) - set(available_families()))
        if missing:
            say(f"note: section(s) {', '.join(missing)} are not part of this build")
        if "peers" in only and not args.peers:
            say("note: --only peers runs nothing without --peers")
    out = None
    if args.out:
        out = pathlib.Path(args.out)
        if out.exists() and not out.is_dir():
            raise InvalidInputError(f"{out}: --out takes a folder (for bench.json, bench.md, bench.png); this is a file")
        out.mkdir(parents=True, exist_ok=True)
        check_outputs([out / "bench.json", out / "bench.md", out / "bench.png"])
    res = collect(args.quick, only, peers=args.peers, progress=say)
    rows = [r for sec in res["sections"].values() for r in sec]
    if not rows:
        raise InvalidInputError(f"no benchmark ran (sections asked for: {','.join(sorted(only or FAMILIES))}; "
                                f"available here: {','.join(available_families())})")
    table = format_table(res)
    if any("emoedge[bench]" in str(r.get("skipped", "")) for r in rows):
        say("note: some anchor comparisons were skipped because their packages are missing: "
            "pip install 'emoedge[bench]' (librosa, kaldi-native-fbank, matplotlib)")
    if out is not None:
        wrote = [atomic_write_text(out / "bench.json", json.dumps(res, indent=2, default=float)),
                 atomic_write_text(out / "bench.md", table + "\n")]
        png = AtomicOutput(out / "bench.png")
        try:
            draw(res, png.tmp)
        except ImportError:
            png.discard()
            say("note: matplotlib is not installed, so no bench.png was written (pip install 'emoedge[bench]')")
        except BaseException:
            png.discard()
            raise
        else:
            wrote.append(png.commit())
        say("wrote " + ", ".join(str(w) for w in wrote))
    if args.json:
        print(json.dumps(res, indent=2, default=float))
    else:
        print(table)
    return 0


def register(sub) -> None:
    p = sub.add_parser("bench", help="latency benchmarks against their anchors (ratios in one run)",
                       description=__doc__)
    p.add_argument("--quick", action="store_true", help="fewer repeats (under a minute)")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="folder for bench.json, bench.md and bench.png (each written atomically)")
    p.add_argument("--only", default=None, type=parse_only, metavar="SECTION[,SECTION...]",
                   help=f"run only these sections: {','.join(FAMILIES)}")
    p.add_argument("--peers", action="store_true", help="also run peer libraries (fer) when installed")
    p.set_defaults(func=_main)
