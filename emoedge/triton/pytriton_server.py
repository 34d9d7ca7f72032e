"""A real Triton Inference Server for development and tests, from the ``nvidia-pytriton`` wheel (which bundles
``tritonserver`` with its Python backend only): every model of a spec file is bound as a Python callable that
runs the same ONNX file with onnxruntime, under the exported model name, IO, batching and queue delay.

Standalone on purpose (imports numpy, onnxruntime and pytriton only): it runs under another interpreter
than the client when the client's Python cannot host the backend stub (see emoedge.triton.testing).

    python pytriton_server.py --spec spec.json --grpc-port 8001 --http-port 8000 --metrics-port 8002

spec.json: {"models": [{"name", "onnx", "max_batch_size", "preferred_batch_size", "max_queue_delay_microseconds",
"inputs": [{"name", "dtype", "dims", "scalar"}], "outputs": [{"name", "dtype", "dims"}]}], "threads": 1}
The script prints ``EMOEDGE_PYTRITON_READY`` once all models are loaded and serves until SIGTERM/SIGINT.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys


def _callable(sess, m):
    """Infer function over raw pytriton requests: batched models run all requests of one execution as one
    onnxruntime call (what Triton's onnxruntime backend does with a dynamic batch) and split the result."""
    import numpy as np
    in_names = [t["name"] for t in m["inputs"]]
    out_names = [t["name"] for t in m["outputs"]]
    scalar = {t["name"] for t in m["inputs"] if t.get("scalar")}
    batched = m["max_batch_size"] > 0

    def feeds_of(req):
        return {n: (np.asarray(req[n]).reshape(()) if n in scalar else np.asarray(req[n])) for n in in_names}

    def infer(requests):
        if not batched:
            return [dict(zip(out_names, sess.run(out_names, feeds_of(r)))) for r in requests]
        sizes = [int(np.asarray(r[in_names[0]]).shape[0]) for r in requests]
        feeds = {n: np.concatenate([np.asarray(r[n]) for r in requests]) for n in in_names}
        outs = sess.run(out_names, feeds)
        res, s = [], 0
        for b in sizes:
            res.append({n: o[s:s + b] for n, o in zip(out_names, outs)})
            s += b
        return res
    return infer


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--spec", required=True)
    ap.add_argument("--grpc-port", type=int, required=True)
    ap.add_argument("--http-port", type=int, required=True)
    ap.add_argument("--metrics-port", type=int, required=True)
    ap.add_argument("--address", default="127.0.0.1")
    ap.add_argument("--workspace", default=None, help="pytriton workspace folder (default: ~/.cache/pytriton/...)")
    ap.add_argument("--parent-pid", type=int, default=0, help="exit when this process is no longer the parent")
    a = ap.parse_args(argv)
    import numpy as np
    import onnxruntime as ort
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
    from pytriton.triton import Triton, TritonConfig, TritonSecurityConfig

    spec = json.load(open(a.spec))
    cfg = TritonConfig(grpc_port=a.grpc_port, http_port=a.http_port, metrics_port=a.metrics_port,
                       grpc_address=a.address, http_address=a.address, metrics_address=a.address,
                       exit_on_error=True, log_verbose=0)
    # statistics stay readable (server batch sizes for tests and benchmarks); the rest keeps pytriton's token
    sec = TritonSecurityConfig(restricted_endpoints=["shared-memory", "model-repository", "trace", "logging"])
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(spec.get("threads", 1))
    so.inter_op_num_threads = 1
    stop = {"flag": False}

    def on_signal(signum, frame):
        stop["flag"] = True
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)

    def orphan_watch(parent: int) -> None:
        # a killed test runner must not leave a server behind: exit when the parent process is gone
        import os
        import time
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)
    if a.parent_pid:
        import threading
        threading.Thread(target=orphan_watch, args=(a.parent_pid,), daemon=True).start()
    with Triton(config=cfg, security_config=sec, workspace=a.workspace) as triton:
        for m in spec["models"]:
            sess = ort.InferenceSession(m["onnx"], so, providers=["CPUExecutionProvider"])
            mbs = int(m["max_batch_size"])
            if mbs > 0:
                mc = ModelConfig(max_batch_size=mbs, batcher=DynamicBatcher(
                    max_queue_delay_microseconds=int(m.get("max_queue_delay_microseconds", 0)),
                    preferred_batch_size=m.get("preferred_batch_size") or None))
            else:
                mc = ModelConfig(batching=False)
            triton.bind(model_name=m["name"], infer_func=_callable(sess, m),
                        inputs=[Tensor(name=t["name"], dtype=np.dtype(t["dtype"]), shape=tuple(t["dims"])) for t in m["inputs"]],
                        outputs=[Tensor(name=t["name"], dtype=np.dtype(t["dtype"]), shape=tuple(t["dims"])) for t in m["outputs"]],
                        config=mc, strict=True)
        print("EMOEDGE_PYTRITON_READY", flush=True)
        try:
            triton.serve()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
