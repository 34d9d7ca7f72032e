"""`emoedge export triton --out DIR [--precision int8|fp32|fp16] [--max-batch N] [--instances N] [--gpu]
[--no-tensorrt] [--queue-delay-us US] [--threads N] [--models a,b] [--force] [--json]`: write an NVIDIA Triton
Inference Server model repository for the bundled models (see emoedge.triton.export and the README it writes)."""
from __future__ import annotations

import json
import sys


def _triton(args) -> int:
    from ..triton.export import ExportOptions, export_repository
    say = (lambda m: print(m, file=sys.stderr, flush=True))
    opts = ExportOptions(precision=args.precision, max_batch=args.max_batch, instances=args.instances, gpu=args.gpu,
                         tensorrt=not args.no_tensorrt, queue_delay_us=args.queue_delay_us, threads=args.threads,
                         trt_cache_dir=args.trt_cache, models=args.models.split(",") if args.models else None,
                         force=args.force)
    res = export_repository(args.out, opts, log=None if args.json else say)
    if args.json:
        print(json.dumps({"out": str(res.out), "models": {m.name: {"max_batch_size": m.max_batch_size, "kind": m.kind,
                                                                 "tensorrt": m.tensorrt_precision} for m in res.models},
                          "notes": res.notes}, indent=2))
    else:
        for n in res.notes:
            say(f"note: {n}")
        say(f"wrote {len(res.models)} models to {res.out}; start the server with the command in {res.out}/README.md")
    return 0


def register(sub) -> None:
    p = sub.add_parser("export", help="export the bundled models for a serving system (triton)", description=__doc__)
    targets = p.add_subparsers(dest="target", metavar="TARGET")
    targets.required = True
    t = targets.add_parser("triton", help="NVIDIA Triton Inference Server model repository", description=__doc__)
    t.add_argument("--out", required=True, metavar="DIR", help="repository folder to create (must not exist or be empty)")
    t.add_argument("--precision", choices=("int8", "fp32", "fp16"), default=None,
                   help="one variant per model family (default: every bundled graph); fp16 = TensorRT FP16, needs --gpu")
    t.add_argument("--max-batch", type=int, default=32, metavar="N",
                   help="max_batch_size of the batchable models (face expression, voice; default 32)")
    t.add_argument("--instances", type=int, default=1, metavar="N", help="model instances per device (default 1)")
    t.add_argument("--gpu", action="store_true", help="run the conv nets on GPU instances (VAD and text stay on CPU)")
    t.add_argument("--no-tensorrt", action="store_true", help="with --gpu: CUDA only, no TensorRT accelerator")
    t.add_argument("--trt-cache", default="/tmp/emoedge-trt-cache", metavar="DIR",
                   help="TensorRT engine cache folder on the server (default /tmp/emoedge-trt-cache)")
    t.add_argument("--queue-delay-us", type=int, default=500, metavar="US",
                   help="dynamic batcher max queue delay in microseconds (default 500)")
    t.add_argument("--threads", type=int, default=1, metavar="N", help="ONNX Runtime threads per CPU instance (default 1)")
    t.add_argument("--models", default=None, metavar="A,B", help="comma-separated manifest names (default: see --precision)")
    t.add_argument("--force", action="store_true", help="replace an earlier emoedge repository at --out")
    t.add_argument("--json", action="store_true", help="print what was written as JSON")
    t.set_defaults(func=_triton)
