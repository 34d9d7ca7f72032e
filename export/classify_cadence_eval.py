"""Classification cadence on moving faces: what reusing a track's last expression probabilities for up to
``classify_every`` - 1 frames costs in the labels a stream reports, against classifying every frame.

One command (CPU, a few minutes):  python export/classify_cadence_eval.py [--clips 24] [--classify-every 1,2,4,8]
Writes export/results/classify_cadence_eval.json and prints a table.

Test set: export/cadence_eval.py's development clips (FER2013 PublicTest faces pasted into 640x480 frames at
30 fps: panning, zooming, entering/leaving, head-shaking with rotation, a second face, scene cuts; the
same seed, so the same clips). Every frame goes through ``Engine(voice=False, text=False).stream()``
with the default detection cadence and the given ``classify_every``. For every visible ground-truth face
the reported face (centre within 0.25 face sizes, export/cadence_eval.py's match) gives:

* ``raw_accuracy``: the face's own (unsmoothed, possibly reused) top label == the FER label;
* ``smoothed_accuracy``: the event's per-track smoothed label (what a user sees) == the FER label;
* ``agreement_with_every_frame``: the smoothed label equals the one classify_every=1 reports on the same
  frame; ``classified_fraction``: faces sent to the expression model / faces reported.

Limitation: each pasted face keeps one FER image for its whole life (the expression does not change within
a clip), so this measures the cost of reusing probabilities on moving, scaling, rotating faces, not the
delay in following a real expression change (at most classify_every - 1 frames, i.e. 0.1 s at 30 fps for
the default 4, against fusion's per-face smoothing time constant of 0.3 s). export/cadence_fusion_eval.py
shows the other extreme: another face in every frame.
"""
from __future__ import annotations

import argparse
import pathlib
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "export"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import cadence_eval as CE  # noqa: E402
from shared_paths import shared_dir  # noqa: E402

OUT = ROOT / "export" / "results" / "classify_cadence_eval.json"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--classify-every", default="1,2,4,8")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    import cv2
    from emoedge.labels import to_canonical
    cv2.setNumThreads(1)
    t0 = time.perf_counter()
    d = np.load(shared_dir() / "data" / "faces" / "fer2013_val.npz")
    images, labels, names = d["images"], d["labels"], [str(x) for x in d["class_names"]]
    clips = CE.build_clips(images, args.clips, args.seed)
    flat = images.reshape(len(images), -1)
    labels_of = {}
    for ci, c in enumerate(clips):
        for k, im in c["images"].items():
            idx = int(np.flatnonzero((flat == im.reshape(-1)).all(1))[0])
            labels_of[(ci, k)] = to_canonical(names[int(labels[idx])])
    ks = [int(x) for x in args.classify_every.split(",")]
    res = {k: run_counted(k, clips, labels_of) for k in ks}
    ref = res[ks[0]]["per"]
    rows = []
    for k in ks:
        per = res[k]["per"]
        found = [p for p in per if p is not None]
        both = [(a, b) for a, b in zip(per, ref) if a is not None and b is not None]
        row = {"classify_every": k, "gt_faces": len(per), "found": len(found),
               "raw_accuracy": round(float(np.mean([p[0] == p[2] for p in found])), 4),
               "smoothed_accuracy": round(float(np.mean([p[1] == p[2] for p in found])), 4),
               "agreement_with_reference": round(float(np.mean([a[1] == b[1] for a, b in both])), 4),
               "classified_fraction": round(res[k]["classified"] / max(res[k]["faces"], 1), 4),
               "cpu_ms_per_frame": round(res[k]["cpu_ms_per_frame"], 4)}
        r0 = rows[0] if rows else row
        row["raw_minus_reference_points"] = round(100 * (row["raw_accuracy"] - r0["raw_accuracy"]), 2)
        row["smoothed_minus_reference_points"] = round(100 * (row["smoothed_accuracy"] - r0["smoothed_accuracy"]), 2)
        rows.append(row)
        print(" ".join(f"{a}={v}" for a, v in row.items()), flush=True)
    out = {"what": "classification cadence on export/cadence_eval.py's development clips (see module docstring)",
           "clips": len(clips), "seed": args.seed, "fps": CE.FPS, "reference_classify_every": ks[0], "rows": rows,
           "command": "python export/classify_cadence_eval.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "seconds": round(time.perf_counter() - t0, 1)}
    CE.write_report(args.out, out)
    return 0


def run_counted(classify_every: int, clips, labels_of) -> dict:
    """run() plus the fraction of reported faces that were classified and the thread CPU ms per frame."""
    from emoedge.engine import Engine
    from emoedge.faces import FaceAnalyzerOptions
    eng = Engine(voice=False, text=False, threads=1, face_options=FaceAnalyzerOptions(classify_every=classify_every))
    fa = eng.face
    n_cls = [0]
    orig = fa.faces

    def counting(loc, probs, **kw):
        n_cls[0] += loc.n_classify
        return orig(loc, probs, **kw)
    fa.faces = counting  # count the faces sent to the model (instance attribute; the engine is private here)
    per, n_faces, cpu, frames = [], 0, 0, 0
    for ci, clip in enumerate(clips):
        st = eng.stream()
        for i, (fr, gts) in enumerate(CE.frames_of(clip)):
            c0 = time.thread_time_ns()
            ev = st.push_frame(fr, i / CE.FPS)[0]
            cpu += time.thread_time_ns() - c0
            frames += 1
            n_faces += len(ev.faces)
            for k, g in sorted(gts.items()):
                d = [CE.match_distance(f.box, g) for f in ev.faces]
                if not d or min(d) > 1.0:
                    per.append(None)
                    continue
                f = ev.faces[int(np.argmin(d))]
                per.append((max(f.raw_probs, key=f.raw_probs.get), f.label, labels_of[(ci, k)]))
    return {"per": per, "faces": n_faces, "classified": n_cls[0], "cpu_ms_per_frame": cpu / 1e6 / max(frames, 1)}


if __name__ == "__main__":
    raise SystemExit(main())
