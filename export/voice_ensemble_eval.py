"""Measurement only: clip-level held-out accuracy (RAVDESS actors 17-20, EmoDB speakers 03/08) of trained
checkpoints and of every probability-average ensemble of 2..N of them, in torch on the runtime's windows
(hop 0.5 s, min fill 1 s; each model sees the last ``window_frames`` frames of each window end).

    /work/venv/bin/python export/voice_ensemble_eval.py A.pt B.pt C.pt [--max-params 1000000]

Ensemble = mean over members of softmax(logits), then mean over the clip's windows (what the exported
ensemble graph does). Picking a subset here uses the held-out speakers, i.e. it is model selection on them.
"""
from __future__ import annotations

import argparse
import itertools
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "export"))


def load_member(path):
    import torch
    from voice_model import VoiceCNN
    ck = torch.load(path, map_location="cpu", weights_only=False)
    m = VoiceCNN(n_mels=ck["n_mels"], n_classes=len(ck["labels"]), widths=tuple(ck["widths"]),
                 cmn=bool(ck.get("cmn", False)), pad_value=ck["pad_value"],
                 **({"pool": ck["pool"]} if "pool" in ck else {}))
    m.load_state_dict(ck["state_dict"])
    return m.eval(), ck


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("ckpts", nargs="+")
    ap.add_argument("--max-params", type=int, default=1_000_000)
    args = ap.parse_args(argv)
    import torch
    import voice_data as vd
    from voice_model import count_params
    from voice_data import clip_windows
    from emoedge import kernels
    from emoedge.voice import softmax
    torch.set_num_threads(1)
    members = [load_member(p) for p in args.ckpts]
    ck0 = members[0][1]
    Wmax = max(ck["window_frames"] for _, ck in members)
    clips, _ = vd.load_clips(kernels.LogMelOptions(**ck0["logmel"]), log=lambda *a: None)
    _, held = vd.split(clips)
    calm, neutral = vd.MODEL_LABELS.index("calm"), vd.MODEL_LABELS.index("neutral")
    probs = []   # per member: list of [n_windows, C] per held-out clip
    with torch.no_grad():
        for m, ck in members:
            pm = []
            for c in held:
                w = clip_windows(c, Wmax, ck0["hop_frames"], ck0["min_fill_frames"], ck0["pad_value"])
                pm.append(softmax(m(torch.from_numpy(w[:, Wmax - ck["window_frames"]:])).numpy()))
            probs.append(pm)
    names = [pathlib.Path(p).parent.name or p for p in args.ckpts]
    params = [count_params(m) for m, _ in members]
    rows = []
    for k in range(1, len(members) + 1):
        for sub in itertools.combinations(range(len(members)), k):
            npar = sum(params[i] for i in sub)
            if k > 1 and npar > args.max_params:
                continue
            acc = {}
            for corpus in ("ravdess", "emodb"):
                idx = [j for j, c in enumerate(held) if c.corpus == corpus]
                ok = 0
                for j in idx:
                    p = np.mean([probs[i][j] for i in sub], axis=0).mean(0)
                    if corpus == "emodb":
                        p[neutral] += p[calm]
                        p[calm] = 0
                    ok += int(np.argmax(p) == held[j].label)
                acc[corpus] = ok / len(idx)
            rows.append((acc["ravdess"], acc["emodb"], npar, "+".join(names[i] for i in sub)))
    for r in sorted(rows, reverse=True):
        print(f"RAVDESS 17-20 {r[0]:.4f}  EmoDB 03/08 {r[1]:.4f}  params {r[2]:>7}  {r[3]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
