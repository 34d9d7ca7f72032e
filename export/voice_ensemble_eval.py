"""Measurement only (nothing is shipped from it): clip-level RAVDESS held-out accuracy (actors 17-20) of two
trained checkpoints and of their logit-average ensemble, in torch on the same windows as the runtime.

    /work/venv/bin/python export/voice_ensemble_eval.py /work/cache/voice/voice_cnn_run1.pt /work/cache/voice_cmn/voice_cnn.pt

The second checkpoint comes from ``export/voice_train.py --cmn 1 --mixup 0.4 --epochs 90 --no-export
--out /work/cache/voice_cmn``. Note: the idea to ensemble came after seeing held-out numbers, so an ensemble
score from this script is selection-biased.
"""
from __future__ import annotations

import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "export"))


def main(argv=None) -> int:
    import torch
    import voice_data as vd
    from voice_model import VoiceCNN
    from voice_train import clip_windows
    from emoedge import kernels
    from emoedge.voice import softmax
    paths = (argv if argv is not None else sys.argv[1:])
    torch.set_num_threads(1)
    models, cks = [], []
    for p in paths:
        ck = torch.load(p, map_location="cpu", weights_only=False)
        m = VoiceCNN(n_mels=ck["n_mels"], n_classes=len(ck["labels"]), widths=tuple(ck["widths"]),
                     cmn=bool(ck.get("cmn", False)), pad_value=ck["pad_value"])
        m.load_state_dict(ck["state_dict"])
        models.append(m.eval())
        cks.append(ck)
    ck = cks[0]
    clips, _ = vd.load_clips(kernels.LogMelOptions(**ck["logmel"]), log=lambda *a: None)
    _, held = vd.split(clips)
    held = [c for c in held if c.corpus == "ravdess"]
    correct = np.zeros(len(models) + 1)
    with torch.no_grad():
        for c in held:
            w = torch.from_numpy(clip_windows(c, ck["window_frames"], ck["hop_frames"], ck["min_fill_frames"], ck["pad_value"]))
            lg = [m(w).numpy() for m in models]
            for i, l in enumerate(lg + [np.mean(lg, axis=0)]):
                correct[i] += int(np.argmax(softmax(l).mean(0)) == c.label)
    for i, p in enumerate(list(paths) + ["ensemble (mean logits)"]):
        print(f"{p}: RAVDESS actors 17-20 clip accuracy {correct[i] / len(held):.4f} (N={len(held)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
