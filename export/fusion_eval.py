"""Does fusion help? Tri-modal label-paired streams from development data no model trained on.

One command (CPU, about 1 min once the predictions are cached):
    python export/fusion_fit.py && python export/fusion_eval.py [--streams 2000] [--seed 0] [--hand-set]
Writes export/results/fusion_eval.json (and prints a summary table).

Development pools (export/fusion_eval.dev_predictions; each model runs once on its data, cached under
runs/fusion_cache by the models' sha256): faces = FER2013 PublicTest (default face model), voices = the
RAVDESS actors the voice model did not train on (its manifest entry names them; clip-level probabilities),
texts = GoEmotions dev rows with exactly one Ekman class (mapped by name; neutral and disgust included) and
CARER val (love -> happy). Every pool is split (dev_split) into a FIT part, on which export/fusion_fit.py
fits the fusion weights, and a disjoint REPORT part, on which this script reports: faces and texts by a
seeded random half, voices by actor. Fitting and scoring on the same streams would be selection on
evaluation; the split avoids it.

Each stream has a target emotion E, uniform over all 7 canonical classes, ``n`` face frames of E (0.1 s
apart), one voice clip of E (its evidence arrives with the first frame, "start", or with the last, "end":
smoothing then gives it only alpha = 1 - exp(-0.1 s / tau) of the last step) and one text line of E
(pushed with the first frame, reliability from emoedge.fusion.text_reliability with the text model's
fitted parameters). The estimate right after the last frame is scored. Compared on the same streams:
face (last frame / smoothed), voice, text (each alone through FusionState), face+voice, all three; 95%
confidence intervals of all-three minus best single and all-three minus face+voice by paired bootstrap
over streams (the pools are finite: see "distinct_items"). ``--hand-set`` also scores the hand-set
FusionOptions() weights for comparison.
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
if str(ROOT / "export") not in sys.path:      # voice_cv (fold-model lookup), also when loaded by file path
    sys.path.insert(0, str(ROOT / "export"))

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


def voice_cv_dir(entry: dict):
    """A final-fit voice model (trained on every released speaker) names its recipe's CV folder
    (metrics.cv_dir, export/voice_export.py --cv); None for a model with held-out speakers."""
    d = (entry.get("metrics") or {}).get("cv_dir")
    return None if d is None else ROOT / d


def oof_voice_predictions(d, vm, cv_dir):
    """Out-of-fold clip probabilities for every RAVDESS actor: each clip is scored by the recipe's CV fold
    model (runs/cv/RECIPE/models, or the published export/results/voice_cv/RECIPE; same recipe and precision
    as the shipped model) that did not train on its
    actor, so no voice prediction used here comes from a model that saw the speaker."""
    from emoedge.evaluation.voice import CV_FOLDS
    from emoedge.voice import VoiceModel
    import voice_cv
    man = voice_cv.fold_models_manifest(cv_dir)
    if not man.is_file():
        raise SystemExit(f"no fold models of {cv_dir.name}: neither {cv_dir / 'models'} nor {man.parent} exists; run "
                         f"`python export/voice_cv.py export-folds {cv_dir.name}` first (the shipped voice model "
                         "trained on every actor, so fusion uses its CV fold models)")
    spk = d["speaker"].astype(int)
    a, o = d["audio"], d["offsets"]
    idx_all, probs = [], []
    prec = vm.entry.get("precision", "int8")
    for k, actors in enumerate(CV_FOLDS["ravdess"]):
        fm = VoiceModel(name=f"voice-cv-fold{k}-{prec}", manifest=man, vad=False)
        for i in np.flatnonzero(np.isin(spk, actors)):
            cp = fm.predict_clip(a[o[i]:o[i + 1]].astype(np.float32) / 32768.0, 16000)
            probs.append(cp.probs if cp.probs is not None else np.full(len(fm.labels), 1.0 / len(fm.labels)))
            idx_all.append(i)
    order = np.argsort(idx_all)
    idx = np.asarray(idx_all)[order]
    desc = (f"RAVDESS actors 1-20 ({len(idx)} clips) out of fold: each clip scored by the {prec} CV fold model of "
            f"{man.parent.relative_to(ROOT)} that did not train on its actor (the shipped model, {vm.name}, is the same "
            "recipe fitted on every actor)")
    return np.asarray(probs, np.float64)[order], tuple(vm.labels), 1.0, idx, vm.name, desc


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
    cv_dir = voice_cv_dir(vm.entry)
    if cv_dir is not None:
        return oof_voice_predictions(d, vm, cv_dir)
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
# text side and the cached development predictions (shared with export/fusion_fit.py)

CARER_VAL = DATA / "text" / "carer_emotion" / "val.txt"
GO_DEV = DATA / "text" / "goemotions" / "original" / "dev.tsv"
CACHE = ROOT / "runs" / "fusion_cache"


def text_pool():
    """(texts, canonical targets, source names) of the development text pool: GoEmotions dev rows with
    exactly one Ekman class (mapped by name; neutral and disgust included) and CARER val (love -> happy)."""
    from emoedge.evaluation.text import CARER_LABELS, EKMAN_LABELS, load_carer, load_goemotions
    texts, ys, src = [], [], []
    gt, gy = load_goemotions(GO_DEV)
    for t, row in zip(gt, gy):
        if row.sum() == 1:
            texts.append(t)
            ys.append(CANONICAL.index(to_canonical(EKMAN_LABELS[int(np.argmax(row))])))
            src.append("goemotions-dev")
    ct, cy = load_carer(CARER_VAL)
    for t, y in zip(ct, cy):
        texts.append(t)
        ys.append(CANONICAL.index(to_canonical(CARER_LABELS[int(y)])))
        src.append("carer-val")
    return texts, np.asarray(ys), np.asarray(src)


def text_predictions(name=None):
    """Probabilities [N, L] (model order; calibrated by the model), labels, n_tokens, coverage, targets,
    sources, model name/entry for the development text pool."""
    from emoedge.text import TextModel
    texts, y, src = text_pool()
    with TextModel.load(name) as m:
        preds = m.predict_batch(texts, batch_size=64)
        probs = np.stack([p.probs for p in preds]).astype(np.float64)
        return dict(probs=probs, labels=tuple(m.labels), n_tokens=np.array([p.n_tokens for p in preds]),
                    coverage=np.array([p.coverage for p in preds]), y=y, src=src, name=m.name, entry=m.entry)


def load_manifest_entry(name: str) -> dict:
    """The manifest entry of a model name ({} for the stand-in)."""
    from emoedge.errors import ModelNotFoundError
    from emoedge.manifest import load_manifest
    try:
        return load_manifest().entry(name)
    except ModelNotFoundError:
        return {}


def _models_key(args) -> str:
    import hashlib
    from emoedge.manifest import load_manifest
    m = load_manifest()
    names = [args.face_model or _face_entry()[0]["name"], args.voice_model or m.find("voice"),
             args.text_model or m.find("text")]
    parts = [[n, m.entry(n).get("sha256")] for n in names]
    cv_dir = voice_cv_dir(m.entry(names[1]))
    if cv_dir is not None:
        import voice_cv
        fm = voice_cv.fold_models_manifest(cv_dir)
        if fm.is_file():                          # its fold models score the voices
            parts.append(hashlib.sha256(fm.read_bytes()).hexdigest())
    h = hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]
    return h


def dev_predictions(args, use_cache: bool = True) -> dict:
    """Every model's predictions on its development data, computed once per set of model files
    (cached under runs/fusion_cache, keyed by the models' sha256): face (FER2013 PublicTest), voice
    (RAVDESS actors the voice model did not train on, clip level), text (GoEmotions dev + CARER val)."""
    import pickle
    key = _models_key(args)
    path = CACHE / f"dev_{key}.pkl"
    if use_cache and path.is_file():
        return pickle.loads(path.read_bytes())
    t0 = time.perf_counter()
    fd = np.load(FACES)
    fer_names = [str(x) for x in fd["class_names"]]
    entry, fpath = _face_entry(args.face_model, getattr(args, "face_onnx", None))
    face_p, face_how = face_probs(entry, fpath, fd["images"])
    face = dict(probs=face_p, labels=tuple(entry["labels"]), T=F.manifest_temperature(entry),
                y=_canon_idx(fer_names)[fd["labels"].astype(int)], name=entry.get("name"), how=face_how, entry=entry)
    vd = np.load(RAVDESS)
    vp, vl, vT, vidx, vname, vsplit = voice_predictions(vd, args)
    vnames = [str(x) for x in vd["label_names"]]
    voice = dict(probs=vp, labels=tuple(vl), T=vT, y=_canon_idx(vnames)[vd["labels"][vidx].astype(int)],
                 speaker=vd["speaker"][vidx].astype(int), name=vname, split=vsplit,
                 entry=load_manifest_entry(vname))
    text = text_predictions(args.text_model)
    text["T"] = 1.0
    out = dict(face=face, voice=voice, text=text, key=key, seconds=time.perf_counter() - t0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(out))
    return out


def dev_split(preds: dict, seed: int = 0) -> dict:
    """Split every development pool into a *fit* part (fusion weights are fitted on it) and a *report* part
    (fusion_eval reports on it): faces and texts by a seeded random half, voices by actor (the lower half
    of the held-out actors fit, the upper half report; speaker-grouped)."""
    rng = np.random.default_rng(seed + 100)
    out = {}
    for mod in ("face", "text"):
        n = len(preds[mod]["y"])
        perm = rng.permutation(n)
        fit = np.zeros(n, bool)
        fit[perm[: n // 2]] = True
        out[mod] = fit
    spk = preds["voice"]["speaker"]
    actors = sorted(set(spk.tolist()))
    fit_actors = actors[: len(actors) // 2]
    out["voice"] = np.isin(spk, fit_actors)
    out["voice_fit_actors"] = fit_actors
    out["voice_report_actors"] = actors[len(actors) // 2:]
    return out


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


def simulate3(preds, report, emotions, n_frames, n_streams, seed, voice_at="start", opts=None, text_rel=None):
    """Tri-modal label-paired streams on the *report* part of the development data. Each stream has a target
    emotion E (uniform over ``emotions``), ``n_frames`` face images of E 0.1 s apart, one voice clip of E
    (evidence with the first frame, "start", or the last, "end") and one text line of E pushed with the first
    frame. Scored right after the last frame. Returns per-stream correctness for: face (last frame / smoothed),
    voice, text (each alone through FusionState), face+voice, all three; and the targets."""
    rng = np.random.default_rng(seed)            # targets, voice clips, texts: the same for every n_frames
    rng_face = np.random.default_rng(seed + 1)   # face images
    fp, vp, tp = preds["face"], preds["voice"], preds["text"]
    pool = {m: {e: np.flatnonzero(report[m] & (preds[m]["y"] == e)) for e in emotions} for m in ("face", "voice", "text")}
    keys = ("face_last", "face_smoothed", "voice", "text", "face_voice", "all_three")
    res = {k: np.zeros(n_streams, bool) for k in keys}
    targets = np.zeros(n_streams, int)
    used = {"face": set(), "voice": set(), "text": set()}
    dt = 0.1
    for s in range(n_streams):
        e = emotions[rng.integers(len(emotions))]
        targets[s] = e
        vi = pool["voice"][e][rng.integers(len(pool["voice"][e]))]
        ti = pool["text"][e][rng.integers(len(pool["text"][e]))]
        fi = rng_face.choice(pool["face"][e], size=n_frames, replace=len(pool["face"][e]) < n_frames)
        used["face"].update(fi.tolist())
        used["voice"].add(int(vi))
        used["text"].add(int(ti))
        j_voice = 0 if voice_at == "start" else n_frames - 1
        v_ev = F.ModalityEvidence("voice", j_voice * dt, probs=vp["probs"][vi], labels=vp["labels"], temperature=vp["T"])
        t_ev = F.ModalityEvidence("text", 0.0, probs=tp["probs"][ti], labels=tp["labels"], temperature=tp["T"],
                                  reliability=float(text_rel[ti]))
        st = {k: F.FusionState(opts) for k in ("face_smoothed", "face_voice", "all_three")}
        for j, i in enumerate(fi):
            t = j * dt
            f_ev = F.ModalityEvidence("face", t, probs=fp["probs"][i], labels=fp["labels"], temperature=fp["T"], track_id=1)
            ef = st["face_smoothed"].update(t, [f_ev])
            efv = st["face_voice"].update(t, [f_ev] + ([v_ev] if j == j_voice else []))
            eall = st["all_three"].update(t, [f_ev] + ([v_ev] if j == j_voice else []) + ([t_ev] if j == 0 else []))
        t_end = (n_frames - 1) * dt
        last = F.FusionState(opts).update(t_end, [F.ModalityEvidence("face", t_end, probs=fp["probs"][fi[-1]],
                                                                      labels=fp["labels"], temperature=fp["T"])])
        ev_v = F.FusionState(opts).update(j_voice * dt, [v_ev])
        ev_t = F.FusionState(opts).update(0.0, [t_ev])
        res["face_last"][s] = CANONICAL.index(last.label) == e
        res["face_smoothed"][s] = CANONICAL.index(ef.label) == e
        res["voice"][s] = CANONICAL.index(ev_v.label) == e
        res["text"][s] = CANONICAL.index(ev_t.label) == e
        res["face_voice"][s] = CANONICAL.index(efv.label) == e
        res["all_three"][s] = CANONICAL.index(eall.label) == e
    return res, targets, {k: len(v) for k, v in used.items()}


def text_reliabilities(tp: dict, entry: dict) -> np.ndarray:
    """Reliability of every development text line with the parameters in the text model's manifest entry."""
    prm = {k: float(v) for k, v in ((entry.get("fusion") or {}).get("reliability") or {}).items()
           if k in ("scale", "coverage_floor", "margin_scale")}
    return np.array([F.text_reliability(int(n), coverage=float(c), probs=p, labels=tp["labels"], **prm)
                     for n, c, p in zip(tp["n_tokens"], tp["coverage"], tp["probs"])])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--streams", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--frames", default="1,3,5", help="comma-separated numbers of face frames per stream")
    ap.add_argument("--voice-at", default="start,end", help="when the voice evidence arrives: start and/or end")
    ap.add_argument("--face-model", default=None, help="manifest entry name (default: task default)")
    ap.add_argument("--face-onnx", default=None, help="development: a fer-minixception-style ONNX file")
    ap.add_argument("--voice-model", default=None, help="manifest entry name (default: the voice default)")
    ap.add_argument("--text-model", default=None, help="manifest entry name (default: the text default)")
    ap.add_argument("--standin-voice", action="store_true", help="use the stand-in voice model even if a real one exists")
    ap.add_argument("--hand-set", action="store_true", help="also score the hand-set FusionOptions() defaults")
    ap.add_argument("--no-cache", action="store_true", help="recompute the development predictions")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    c0 = time.process_time()
    preds = dev_predictions(args, use_cache=not args.no_cache)
    split = dev_split(preds, args.seed)
    report = {m: ~split[m] for m in ("face", "voice", "text")}
    from emoedge.manifest import load_manifest
    man = load_manifest()
    entries = {m: man.entry(preds[m]["name"]) if preds[m]["name"] in man.names() else {} for m in ("face", "voice", "text")}
    fitted = F.FusionOptions.from_manifest(entries)
    trel = text_reliabilities(preds["text"], entries["text"])
    emotions = list(range(len(CANONICAL)))
    option_sets = [("fitted", fitted)] + ([("hand_set", F.FusionOptions())] if args.hand_set else [])
    configs = [(int(n), va) for n in args.frames.split(",") for va in args.voice_at.split(",")
               if int(n) > 1 or va == args.voice_at.split(",")[0]]
    results = []
    for oname, opts in option_sets:
        for n, va in configs:
            res, targets, used = simulate3(preds, report, emotions, n, args.streams, args.seed, voice_at=va, opts=opts,
                                           text_rel=trel)
            acc = {k: float(v.mean()) for k, v in res.items()}
            face_key = "face_smoothed" if n > 1 else "face_last"
            best = max((face_key, "voice", "text"), key=lambda k: acc[k])
            ci_best = bootstrap_ci(res["all_three"].astype(float), res[best].astype(float), seed=args.seed)
            ci_fv = bootstrap_ci(res["all_three"].astype(float), res["face_voice"].astype(float), seed=args.seed)
            ci_fv_best = bootstrap_ci(res["face_voice"].astype(float), res[max((face_key, "voice"), key=lambda k: acc[k])].astype(float),
                                      seed=args.seed)
            per_class = {CANONICAL[e]: {k: round(float(res[k][targets == e].mean()), 4) for k in res} for e in emotions}
            d_best = 100 * (acc["all_three"] - acc[best])
            d_fv = 100 * (acc["all_three"] - acc["face_voice"])
            results.append({"options": oname, "frames": n, "voice_at": va if n > 1 else "with the frame", "text_at": "first frame",
                            "frame_spacing_s": 0.1, "accuracy": {k: round(v, 4) for k, v in acc.items()},
                            "best_single": best, "all_three_minus_best_single_points": round(d_best, 2),
                            "ci95_all_three_minus_best_single": [round(100 * x, 2) for x in ci_best],
                            "all_three_minus_face_voice_points": round(d_fv, 2),
                            "ci95_all_three_minus_face_voice": [round(100 * x, 2) for x in ci_fv],
                            "face_voice_minus_better_of_them_points": round(100 * (acc["face_voice"] - max(acc[face_key], acc["voice"])), 2),
                            "ci95_face_voice_minus_better_of_them": [round(100 * x, 2) for x in ci_fv_best],
                            "targets_met": {"all_three >= face_voice + 2": d_fv >= 2.0, "all_three >= best_single + 5": d_best >= 5.0},
                            "per_emotion": per_class, "distinct_items": used})
    single = {}
    for m in ("face", "voice", "text"):
        pr = preds[m]
        q = np.stack([F.calibrate(p, pr["labels"], pr["T"]) for p in pr["probs"][report[m]]])
        single[f"{m}_report_part_accuracy"] = round(float(np.mean(q.argmax(1) == pr["y"][report[m]])), 4)
    out = {
        "what": "tri-modal label-paired streams (face + voice + text of the same emotion, all 7 canonical classes) on the "
                "REPORT part of the development data; fusion weights/biases were fitted by export/fusion_fit.py on the "
                "disjoint FIT part (faces/texts: the other seeded half; voices: other held-out actors), so the numbers "
                "below are not selection-on-evaluation",
        "n_streams": args.streams, "seed": args.seed, "emotions": list(CANONICAL), "kernel": F.kernel_backend(),
        "fusion_options": {k: v.to_dict() for k, v in option_sets},
        "face": {"model": preds["face"]["name"], "temperature_applied_by_fusion": preds["face"]["T"],
                 "split": "FER2013 PublicTest (fer2013_val.npz), report half", "n_report": int(report["face"].sum()),
                 "preprocess": preds["face"]["how"]},
        "voice": {"model": preds["voice"]["name"], "split": preds["voice"]["split"],
                  "report_actors": split["voice_report_actors"], "fit_actors": split["voice_fit_actors"],
                  "n_report": int(report["voice"].sum())},
        "text": {"model": preds["text"]["name"], "split": "GoEmotions dev single-label rows (Ekman -> canonical) + CARER val "
                 "(love -> happy), report half", "n_report": int(report["text"].sum()),
                 "mean_reliability_report": round(float(trel[report["text"]].mean()), 4)},
        "single_modality": single, "results": results,
        "commands": {"fit": "python export/fusion_fit.py", "eval": "python export/fusion_eval.py" + (" --hand-set" if args.hand_set else "")
                     + ("" if pathlib.Path(args.out).resolve() == OUT else f" --out {args.out}")},
        "seconds": {"predictions_cached": preds.get("seconds"), "total": time.perf_counter() - t0,
                    "cpu_total": time.process_time() - c0},
    }
    p = pathlib.Path(args.out)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=1) + "\n")
    tmp.replace(p)
    print(f"face {out['face']['model']} | voice {out['voice']['model']} | text {out['text']['model']}; report-part "
          f"per-item accuracy: " + ", ".join(f"{k.split('_')[0]} {v:.3f}" for k, v in single.items()))
    print(f"{'options':>8} {'frames':>6} {'voice_at':>14} {'face':>6} {'voice':>6} {'text':>6} {'f+v':>6} {'all3':>6} "
          f"{'all3-best':>9} {'95% CI':>15} {'all3-f+v':>8} {'95% CI':>15}")
    for r in results:
        a = r["accuracy"]
        fk = "face_smoothed" if r["frames"] > 1 else "face_last"
        print(f"{r['options']:>8} {r['frames']:>6} {r['voice_at']:>14} {a[fk]:>6.3f} {a['voice']:>6.3f} {a['text']:>6.3f} "
              f"{a['face_voice']:>6.3f} {a['all_three']:>6.3f} {r['all_three_minus_best_single_points']:>+9.1f} "
              f"[{r['ci95_all_three_minus_best_single'][0]:+.1f}, {r['ci95_all_three_minus_best_single'][1]:+.1f}] "
              f"{r['all_three_minus_face_voice_points']:>+8.1f} [{r['ci95_all_three_minus_face_voice'][0]:+.1f}, "
              f"{r['ci95_all_three_minus_face_voice'][1]:+.1f}]")
    print(f"wrote {p} in {out['seconds']['total']:.1f} s ({out['seconds']['cpu_total']:.1f} s CPU)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
