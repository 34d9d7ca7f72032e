"""`emoedge compile`: prepare the bundled models ahead of time for a target. ``cpu``: optimized .onnx and .ort
files (faster start-up; load and run times measured side by side, kept in meta.json); ``cuda``: checks the
CUDA session; ``tensorrt`` / ``jetson``: builds and caches TensorRT engines. Artefacts go to the compile
cache ($EMOEDGE_CACHE_DIR, default ~/.cache/emoedge; see `emoedge info`), each folder published with one
atomic rename."""
from __future__ import annotations

import json
import sys


def _main(args) -> int:
    from ..compile import compile_models
    say = (lambda m: print(m, file=sys.stderr, flush=True))
    names = args.models.split(",") if args.models else None
    res = compile_models(args.target, args.precision, names, args.out, threads=args.threads, force=args.force, log=say)
    if args.json:
        print(json.dumps(res, indent=2, default=str))
    else:
        for n, r in res["models"].items():
            if args.target == "cpu":
                print(f"{n:>24}: {r['preferred']}  load x{r['load_speedup']:.2f}  run x{r['run_speedup']:.2f}")
            else:
                print(f"{n:>24}: {r.get('providers') or r.get('engine')}")
    return 0


def register(sub) -> None:
    from ._common import positive_int
    p = sub.add_parser("compile", help="prepare models ahead of time for a target (cpu, cuda, tensorrt, jetson)",
                       description=__doc__)
    p.add_argument("--target", required=True, choices=["cpu", "cuda", "tensorrt", "jetson"],
                   help="where the models will run: cpu, cuda (ORT CUDA EP), tensorrt (ORT TensorRT EP), "
                        "jetson (TensorRT on the board)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "int8"],
                   help="TensorRT engine precision (default fp32; int8 builds from the QDQ-INT8 models; "
                        "ignored by cpu and cuda)")
    p.add_argument("--models", default=None, metavar="NAMES", help="comma-separated manifest names (default: all)")
    p.add_argument("--out", default=None, metavar="DIR", help="artifact folder (default: $EMOEDGE_CACHE_DIR or ~/.cache/emoedge)")
    p.add_argument("--threads", type=positive_int, default=1, metavar="N", help="threads used when timing CPU artifacts")
    p.add_argument("--force", action="store_true", help="rebuild even if the cache entry exists")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=_main)
