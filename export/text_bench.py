"""Latency of the text path on one core (single-threaded ORT session), medians after warm-up:

    PYTHONPATH=. python export/text_bench.py [--n 2000] [--json]

Rows: the vectorized featurizer, the loop-based reference featurizer (same features, plain Python,
for the ratio), the ONNX run alone, and the whole predict() call, for a 30-word sentence, plus
predict() on a 100 kB text and predict_batch throughput.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from emoedge.text import TextModel  # noqa: E402
from emoedge.text_features import reference_bucket  # noqa: E402

SENT = ("i feel like the world is against me today and nothing i do seems to work out but i keep trying "
        "because my friends and family still believe in me")


def reference_featurize(feat, text):
    """Loop-based featurizer (same output as TextFeaturizer.featurize, plain Python per n-gram)."""
    o = feat.opts
    toks, _ = feat.tokens(text)
    keys = [reference_bucket("word", (t,), o) for t in toks]
    keys += [o.buckets + reference_bucket("word", (a, b), o) for a, b in zip(toks, toks[1:])]
    for t in toks:
        w = "<" + t + ">"
        keys += [2 * o.buckets + reference_bucket("char", w[i:i + n], o)
                 for n in range(o.char_ngrams[0], o.char_ngrams[1] + 1) for i in range(len(w) - n + 1)]
    if o.n_blocks > 3:  # cue-context block: the cue_window tokens after each cue token
        keys += [3 * o.buckets + reference_bucket("cue", u, o)
                 for i, t in enumerate(toks) if t in o.cue_words for u in toks[i + 1:i + 1 + o.cue_window]]
    k, c = np.unique(np.asarray(keys, np.int64), return_counts=True)
    return k, c


def median_us(fn, n, warm=50):
    for _ in range(warm):
        fn()
    ts = np.empty(n)
    for i in range(n):
        t0 = time.perf_counter_ns()
        fn()
        ts[i] = time.perf_counter_ns() - t0
    return float(np.median(ts) / 1e3), float(np.percentile(ts, 95) / 1e3)


def run(n=2000, name=None):
    m = TextModel.load(name)
    feat = m.featurizer
    assert len(SENT.split()) == 30
    f = feat.featurize(SENT)
    k, c = reference_featurize(feat, SENT)
    assert np.array_equal(np.sort(f.indices + f.blocks * feat.opts.buckets), k)
    feeds = {"indices": f.indices, "tf": f.tf, "segment": f.blocks, "n_texts": np.array([1], np.int64)}
    big = "i feel wonderful and happy today " * 3200
    rows = []

    def add(what, fn, reps=n):
        p50, p95 = median_us(fn, reps)
        rows.append({"what": what, "p50_us": round(p50, 1), "p95_us": round(p95, 1)})
    add("featurize 30 words (vectorized numpy)", lambda: feat.featurize(SENT))
    add("featurize 30 words (loop reference)", lambda: reference_featurize(feat, SENT), max(n // 10, 50))
    add("onnx run 30 words", lambda: m._session.run(None, feeds))
    add("predict() 30 words, total", lambda: m.predict(SENT))
    add("predict() 100 kB text (truncated)", lambda: m.predict(big), max(n // 20, 20))
    batch = [SENT] * 16
    p50, _ = median_us(lambda: m.predict_batch(batch), max(n // 10, 20), warm=5)
    rows.append({"what": "predict_batch 16 x 30 words, per text", "p50_us": round(p50 / 16, 1), "p95_us": None})
    import onnxruntime as ort
    info = {"model": m.name, "precision": m.entry.get("precision"), "ort": ort.__version__,
            "providers": m._session.get_providers(), "intra_op_threads": 1, "n_features_30w": int(f.indices.size)}
    return info, rows


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--model", default=None)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    info, rows = run(a.n, a.model)
    if a.json:
        print(json.dumps({"info": info, "rows": rows}, indent=2))
        return 0
    print(info)
    for r in rows:
        print(f"{r['what']:>42}: p50 {r['p50_us']:8.1f} us   p95 {r['p95_us']} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
