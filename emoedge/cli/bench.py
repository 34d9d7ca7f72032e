"""`emoedge bench [--quick] [--json] [--only FAMILY,...]`: every stage against its anchors, ratios
measured side by side in one run."""
from __future__ import annotations

import importlib
import json
import sys
import time

FAMILIES = ("frame", "logmel", "fusion", "models", "e2e")


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


def collect(quick: bool, only=None, progress=None) -> dict:
    from ..bench import machine, single_thread
    single_thread()
    fams = [f for f in available_families() if not only or f in only]
    res = {"machine": machine(), "quick": quick, "sections": {}, "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    for f in fams:
        if progress:
            progress(f"[{f}] ...")
        t0 = time.perf_counter()
        mod = importlib.import_module(f"emoedge.bench.{f}")
        res["sections"][f] = mod.run(quick=quick)
        if progress:
            progress(f"[{f}] done in {time.perf_counter() - t0:.1f} s")
    return res


def format_table(res: dict) -> str:
    lines = ["| section | case | ours (ms, median) | anchor | anchor (ms) | ratio (x faster) | target |",
             "|---|---|---:|---|---:|---:|---:|"]
    for sec, rows in res["sections"].items():
        for r in rows:
            anc = f"{r['anchor']} {r.get('anchor_version') or ''}".strip() if r.get("anchor") else "-"
            am = f"{r['anchor_ms']:.4f}" if r.get("anchor_ms") is not None else "-"
            ra = f"{r['ratio']:.2f}" if r.get("ratio") is not None else "-"
            tg = f">= {r['target_ratio']}" if r.get("target_ratio") else "-"
            lines.append(f"| {sec} | {r['name']} | {r['ours_ms']:.4f} | {anc} | {am} | {ra} | {tg} |")
    return "\n".join(lines)


def _main(args) -> int:
    only = set(args.only.split(",")) if args.only else None
    say = (lambda m: print(m, file=sys.stderr, flush=True))
    res = collect(args.quick, only, progress=say)
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        m = res["machine"]
        print(f"machine: {m.get('cpu_model', '?')} | flags: {m.get('cpu_flags')} | kernels: {m['kernels']} | threads: 1")
        print(format_table(res))
    return 0


def register(sub) -> None:
    p = sub.add_parser("bench", help="latency benchmarks against their anchors (ratios in one run)")
    p.add_argument("--quick", action="store_true", help="fewer repeats (under a minute)")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.add_argument("--only", default=None, help=f"comma-separated subset of {','.join(FAMILIES)}")
    p.set_defaults(func=_main)
