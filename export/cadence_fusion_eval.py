"""Does the detection cadence cost anything on the label-paired fusion evaluation? export/fusion_eval.py's
tri-modal streams (same development data, same report part, the fitted FusionOptions from the manifest),
with the face evidence taken from the face *pipeline* on frames instead of the dataset crops.

One command (CPU, a few minutes per setting):
    python export/cadence_fusion_eval.py [--streams 1000] [--cadence 1,8] [--classify-every 1,2,4,8]
Writes export/results/fusion_eval_frames.json and prints a table. Settings: every detect_every of --cadence
with classify_every 1, and the last detect_every with every other --classify-every value; the first
(detect_every, classify_every 1) is the reference.

Each stream's ``n`` FER2013 images (the report half of PublicTest, as fusion_eval draws them) are pasted
(bicubic, 150-220 px) into 640x480 grey-noise frames 0.1 s apart along a straight trajectory (5-15 px per
frame, random direction; export/cadence_eval.py's renderer) and analyzed by FaceAnalyzer with a
per-stream tracker at each detection cadence. The face found at the pasted position (centre within 0.25
face sizes, plausible size) gives that frame's calibrated probabilities, as face evidence timed at the frame
they were computed on (``Face.probs_t``: earlier than the frame when the classification cadence reused a
track's last classification); no face found -> no face evidence for that frame (and "face_last" counts as wrong). Voice and text evidence are fusion_eval's. The streams,
targets and images are identical for every cadence, so the accuracy differences are paired.

Note: every frame shows another FER image (fusion_eval's streams use distinct images), so the ROI template
from one frame rarely matches the next above the confidence threshold and the cadence falls back to full
detection on most frames: this checks that the cadence's decisions lose nothing, not how much it saves
(export/cadence_eval.py measures that on clips of one face each).
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
import fusion_eval as FE  # noqa: E402
from emoedge import fusion as F  # noqa: E402
from emoedge.labels import CANONICAL  # noqa: E402

OUT = ROOT / "export" / "results" / "fusion_eval_frames.json"


class PipelineFaces:
    """Face evidence of one stream from the face pipeline on rendered frames (see module docstring)."""

    def __init__(self, images, detect_every: int, seed: int, classify_every: int = 1):
        from emoedge.faces import FaceAnalyzer, FaceAnalyzerOptions
        self.images, self.seed = images, seed
        self.fa = FaceAnalyzer(FaceAnalyzerOptions(detect_every=detect_every, classify_every=classify_every))
        self.frames = self.found = self.detections = self.classified = 0

    def __call__(self, n_frames: int, s: int, fi) -> list:
        rng = np.random.default_rng([self.seed, s, n_frames])
        size = rng.uniform(150, 220)
        th = rng.uniform(0, 2 * np.pi)
        v = rng.uniform(5, 15) * np.array([np.cos(th), np.sin(th)])
        c0 = np.array([CE.W / 2, CE.H / 2]) - v * (n_frames - 1) / 2 + rng.uniform(-60, 60, 2)
        bg = CE.background(rng)
        tracker = self.fa.new_tracker()
        out = []
        for j, i in enumerate(fi):
            cx, cy = c0 + v * j
            fr = bg.copy()
            CE.paste(fr, self.images[i], cx, cy, size, 0.0)
            g = CE.gt_box(cx, cy, size, 0.0)
            faces = self.fa.analyze(fr, t=0.1 * j, tracker=tracker)
            d = [CE.match_distance(f.box, g) for f in faces]
            hit = faces[int(np.argmin(d))] if d and min(d) <= 1.0 else None
            pt = None if hit is None else (0.1 * j if hit.probs_t is None else hit.probs_t)
            out.append(None if hit is None else (np.asarray(hit.probs, np.float64), pt))
            self.frames += 1
            self.found += hit is not None
            self.detections += bool(faces) and faces[0].detected
            self.classified += hit is not None and hit.classified
        return out


def simulate(preds, report, emotions, n_frames, n_streams, seed, face_fn, labels, voice_at="start", opts=None,
             text_rel=None):
    """fusion_eval.simulate3 with the face evidence from ``face_fn`` (same draws: same streams)."""
    rng = np.random.default_rng(seed)
    rng_face = np.random.default_rng(seed + 1)
    vp, tp = preds["voice"], preds["text"]
    pool = {m: {e: np.flatnonzero(report[m] & (preds[m]["y"] == e)) for e in emotions} for m in ("face", "voice", "text")}
    keys = ("face_last", "face_smoothed", "face_voice", "all_three")
    res = {k: np.zeros(n_streams, bool) for k in keys}
    dt = 0.1
    for s in range(n_streams):
        e = emotions[rng.integers(len(emotions))]
        vi = pool["voice"][e][rng.integers(len(pool["voice"][e]))]
        ti = pool["text"][e][rng.integers(len(pool["text"][e]))]
        fi = rng_face.choice(pool["face"][e], size=n_frames, replace=len(pool["face"][e]) < n_frames)
        j_voice = 0 if voice_at == "start" else n_frames - 1
        v_ev = F.ModalityEvidence("voice", j_voice * dt, probs=vp["probs"][vi], labels=vp["labels"], temperature=vp["T"])
        t_ev = F.ModalityEvidence("text", 0.0, probs=tp["probs"][ti], labels=tp["labels"], temperature=tp["T"],
                                  reliability=float(text_rel[ti]))
        pipe = face_fn(n_frames, s, fi)
        st = {k: F.FusionState(opts) for k in ("face_smoothed", "face_voice", "all_three")}
        for j in range(n_frames):
            t = j * dt
            f_ev = [] if pipe[j] is None else [F.ModalityEvidence("face", pipe[j][1], probs=pipe[j][0], labels=labels,
                                                                  temperature=1.0, track_id=1)]
            ef = st["face_smoothed"].update(t, f_ev)
            efv = st["face_voice"].update(t, f_ev + ([v_ev] if j == j_voice else []))
            eall = st["all_three"].update(t, f_ev + ([v_ev] if j == j_voice else []) + ([t_ev] if j == 0 else []))
        res["face_last"][s] = pipe[-1] is not None and CANONICAL.index(
            F.FusionState(opts).update(0.0, [F.ModalityEvidence("face", 0.0, probs=pipe[-1][0], labels=labels,
                                                                temperature=1.0)]).label) == e
        res["face_smoothed"][s] = any(p is not None for p in pipe) and CANONICAL.index(ef.label) == e
        res["face_voice"][s] = CANONICAL.index(efv.label) == e
        res["all_three"][s] = CANONICAL.index(eall.label) == e
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--streams", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--frames", default="1,5", help="comma-separated numbers of face frames per stream")
    ap.add_argument("--voice-at", default="start,end")
    ap.add_argument("--cadence", default="1,8", help="detect_every values to compare (the first is the reference)")
    ap.add_argument("--classify-every", default="1", help="classify_every values (with the last detect_every)")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    ns = argparse.Namespace(face_model=None, face_onnx=None, voice_model=None, text_model=None, standin_voice=False)
    preds = FE.dev_predictions(ns)
    split = FE.dev_split(preds, args.seed)
    report = {m: ~split[m] for m in ("face", "voice", "text")}
    from emoedge.manifest import load_manifest
    man = load_manifest()
    entries = {m: man.entry(preds[m]["name"]) if preds[m]["name"] in man.names() else {} for m in ("face", "voice", "text")}
    opts = F.FusionOptions.from_manifest(entries)
    trel = FE.text_reliabilities(preds["text"], entries["text"])
    emotions = list(range(len(CANONICAL)))
    images = np.load(FE.FACES)["images"]
    configs = [(int(n), va) for n in args.frames.split(",") for va in args.voice_at.split(",")
               if int(n) > 1 or va == args.voice_at.split(",")[0]]
    cadences = [int(c) for c in args.cadence.split(",")]
    ces = [int(c) for c in args.classify_every.split(",")]
    settings = [(cad, 1) for cad in cadences] + [(cadences[-1], ce) for ce in ces if ce != 1]
    rows, pipes, ref = [], {}, {}
    for cad, ce in settings:
        fn = pipes[(cad, ce)] = PipelineFaces(images, cad, args.seed, ce)
        for n, va in configs:
            res = simulate(preds, report, emotions, n, args.streams, args.seed, fn, fn.fa.labels, voice_at=va, opts=opts,
                           text_rel=trel)
            acc = {k: round(float(v.mean()), 4) for k, v in res.items()}
            row = {"detect_every": cad, "classify_every": ce, "frames": n, "voice_at": va if n > 1 else "with the frame", "accuracy": acc}
            if (cad, ce) == settings[0]:
                ref[(n, va)] = res
            else:
                r0 = ref[(n, va)]
                row["minus_reference_points"] = {k: round(100 * (acc[k] - float(r0[k].mean())), 2) for k in res}
                row["ci95_all_three_minus_reference"] = [round(100 * x, 2) for x in FE.bootstrap_ci(
                    res["all_three"].astype(float), r0["all_three"].astype(float), seed=args.seed)]
            rows.append(row)
            print(f"detect_every={cad:>2} classify_every={ce} frames={n} voice_at={row['voice_at']:<14} " +
                  " ".join(f"{k} {v:.3f}" for k, v in acc.items()) +
                  (f"  vs reference (points): {row['minus_reference_points']}" if "minus_reference_points" in row else ""),
                  flush=True)
    out = {"what": "fusion_eval's tri-modal label-paired streams (report part, fitted fusion options) with the face "
                   "evidence from the face pipeline on rendered frames, per detection cadence",
           "n_streams": args.streams, "seed": args.seed, "reference_detect_every": cadences[0], "results": rows,
           "pipeline": {f"{c}/{ce}": {"detect_every": c, "classify_every": ce, "frames": f.frames,
                                       "face_found_fraction": round(f.found / max(f.frames, 1), 4),
                                       "full_detections_per_frame": round(f.detections / max(f.frames, 1), 4),
                                       "classified_fraction_of_found": round(f.classified / max(f.found, 1), 4)}
                        for (c, ce), f in pipes.items()},
           "fusion_options": opts.to_dict(), "face_model": preds["face"]["name"],
           "command": f"python export/cadence_fusion_eval.py --streams {args.streams} --cadence {args.cadence} "
                      f"--classify-every {args.classify_every}",
           "seconds": round(time.perf_counter() - t0, 1)}
    for (c, ce), f in pipes.items():
        print(f"detect_every={c} classify_every={ce}: face found in {f.found}/{f.frames} frames, "
              f"{f.detections / max(f.frames, 1):.3f} full detections per frame, "
              f"{f.classified / max(f.found, 1):.3f} of the found faces classified")
    CE.write_report(args.out, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
