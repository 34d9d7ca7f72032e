"""Speech-emotion data for export/: load the RAVDESS + EmoDB packs, map labels by name onto the voice
model's classes, split by speaker, and compute (and cache) log-mel features with emoedge's own kernel
(``emoedge.kernels.log_mel`` on ``emoedge.audio.to_float_mono`` audio: the exact inference code path).

Label decisions (documented in README "Voice"):
- model classes = RAVDESS's 8, in canonical spelling: neutral, calm, happy, sad, angry, fearful, disgusted, surprised;
- EmoDB: anger->angry, happiness->happy, sadness->sad, fear->fearful, disgust->disgusted, neutral->neutral;
  EmoDB ``boredom`` has no counterpart and is left out of training and evaluation (reported as skipped);
- ``calm`` stays a model class; for fusion it maps to neutral (emoedge.labels).
"""
from __future__ import annotations

import hashlib
import json
import os
import pathlib
import sys
from dataclasses import dataclass

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATA = pathlib.Path(os.environ.get("EMOEDGE_SHARED", ROOT.parent / "shared")) / "data" / "speech"
if not DATA.is_dir():
    DATA = pathlib.Path("/work/shared/data/speech")
RAVDESS = "ravdess_speech_actors01-20_16k.npz"
EMODB = "emodb_speakers_no15-16_16k.npz"

MODEL_LABELS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgusted", "surprised")
#: corpus label name -> model label (None: no counterpart, skipped)
NAME_MAP = {"neutral": "neutral", "calm": "calm", "happy": "happy", "happiness": "happy", "sad": "sad",
            "sadness": "sad", "angry": "angry", "anger": "angry", "fearful": "fearful", "fear": "fearful",
            "disgust": "disgusted", "disgusted": "disgusted", "surprised": "surprised", "surprise": "surprised",
            "boredom": None}

#: speakers held out of training (model selection is not done on them: fixed schedule; they serve for
#: reporting and for fitting the temperature)
HELDOUT = {"ravdess": (17, 18, 19, 20), "emodb": (3, 8)}


@dataclass
class Clip:
    corpus: str
    index: int
    speaker: int
    label: int          # index into MODEL_LABELS
    frames: np.ndarray  # float32 [n_frames, n_mels]


def default_logmel_options():
    from emoedge import kernels
    return kernels.LogMelOptions()


def opts_dict(opts) -> dict:
    return opts.to_dict() if hasattr(opts, "to_dict") else dict(opts.__dict__)


def compute_logmel(pcm_int16: np.ndarray, opts) -> np.ndarray:
    from emoedge import kernels
    from emoedge.audio import to_float_mono
    return np.asarray(kernels.log_mel(to_float_mono(pcm_int16), opts), dtype=np.float32)


def load_corpus(name: str):
    f = DATA / (RAVDESS if name == "ravdess" else EMODB)
    return np.load(f)


def load_clips(opts, cache_dir="/work/cache", log=print, limit=None):
    """All clips of both corpora with mapped labels and cached features. Returns (clips, skipped counts)."""
    key = hashlib.sha256(json.dumps(opts_dict(opts), sort_keys=True).encode()).hexdigest()[:10]
    cache = pathlib.Path(cache_dir) / f"voice_feats_{key}.npz"
    clips, skipped = [], {}
    cached = None
    if cache.is_file() and limit is None:
        with np.load(cache) as z:   # read each array once (NpzFile re-reads a key on every access)
            cached = {"feats": z["feats"], "offsets": z["offsets"]}
        log(f"features from cache {cache}")
    feats_all, offs_all = [], [0]
    for corpus in ("ravdess", "emodb"):
        d = load_corpus(corpus)
        a, o = d["audio"], d["offsets"]
        names = [str(n) for n in d["label_names"]]
        n = len(d["labels"]) if limit is None else min(limit, len(d["labels"]))
        for i in range(n):
            lab = NAME_MAP[names[int(d["labels"][i])].lower()]
            if cached is not None:
                j = len(offs_all) - 1
                fr = cached["feats"][cached["offsets"][j]:cached["offsets"][j + 1]]
            else:
                fr = compute_logmel(a[o[i]:o[i + 1]], opts)
            feats_all.append(fr)
            offs_all.append(offs_all[-1] + len(fr))
            if lab is None:
                skipped[f"{corpus}:{names[int(d['labels'][i])]}"] = skipped.get(f"{corpus}:{names[int(d['labels'][i])]}", 0) + 1
                continue
            clips.append(Clip(corpus, i, int(d["speaker"][i]), MODEL_LABELS.index(lab), fr))
        log(f"{corpus}: {n} clips")
    if cached is None and limit is None:
        np.savez(cache, feats=np.concatenate(feats_all), offsets=np.asarray(offs_all))
        log(f"cached features to {cache}")
    return clips, skipped


def speed_variants(clips, opts, factors=(0.9, 1.1), cache_dir="/work/cache", log=print):
    """Speed perturbation done honestly on the waveform: each clip resampled by soxr so that played at
    16 kHz it runs ``f`` times faster (pitch and formants shift with it), then featurised by the same native
    log-mel. Returns {factor: [frames per clip]} in the order of ``clips`` (cached under cache_dir)."""
    from emoedge.audio import resample
    key = hashlib.sha256(json.dumps([opts_dict(opts), list(factors), [(c.corpus, c.index) for c in clips]],
                                    sort_keys=True).encode()).hexdigest()[:10]
    cache = None if cache_dir is None else pathlib.Path(cache_dir) / f"voice_speed_{key}.npz"
    if cache is not None and cache.is_file():
        with np.load(cache) as z:
            feats, offs = z["feats"], z["offsets"]
        log(f"speed variants from cache {cache}")
    else:
        data = {n: load_corpus(n) for n in ("ravdess", "emodb")}
        arrays = {n: (d["audio"], d["offsets"]) for n, d in data.items()}
        parts, offs = [], [0]
        for f in factors:
            for c in clips:
                a, o = arrays[c.corpus]
                x = a[o[c.index]:o[c.index + 1]]
                y = resample(x, int(round(16000 * f)), 16000)   # f x faster when played at 16 kHz
                fr = compute_logmel(y, opts)
                parts.append(fr)
                offs.append(offs[-1] + len(fr))
        feats, offs = np.concatenate(parts), np.asarray(offs)
        if cache is not None:
            np.savez(cache, feats=feats, offsets=offs)
            log(f"cached speed variants {factors} to {cache}")
    out, k = {}, 0
    for f in factors:
        out[f] = []
        for _ in clips:
            out[f].append(feats[offs[k]:offs[k + 1]])
            k += 1
    return out


def split(clips):
    """(train, heldout) by speaker (HELDOUT)."""
    tr, ho = [], []
    for c in clips:
        (ho if c.speaker in HELDOUT[c.corpus] else tr).append(c)
    return tr, ho


def clip_windows(c, W, H, min_fill, pad):
    """float32 [n_windows, W, n_mels]: the windows the runtime runs on clip ``c`` (emoedge.voice.window_ends)."""
    from emoedge.voice import window_at, window_ends
    return np.stack([window_at(c.frames, e, W, pad) for e in window_ends(len(c.frames), H, min_fill)])
