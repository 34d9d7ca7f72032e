"""Peer libraries on the same input (`emoedge bench --peers`): the fer package (TensorFlow + OpenCV Haar +
its Keras mini-Xception) on the same 640x480 frames as emoedge's end-to-end path. Skipped with a clear
message when fer/TensorFlow are not installed (they are a heavy, optional peers environment:
`pip install fer tensorflow-cpu`). librosa and kaldi-native-fbank are the log-mel section's anchors."""
from __future__ import annotations

import numpy as np

from . import compare, row


def _frames(n=8):
    """640x480 BGR frames with one real face, from the bundled demo clip (the same frames as e2e)."""
    from .e2e import sample_frames
    return sample_frames(n)


def run(quick: bool = True) -> list:
    try:
        from fer import FER  # type: ignore
    except Exception as ex:
        return [{"name": "fer_package_per_frame", "skipped": f"fer peer not installed ({type(ex).__name__}); "
                 "pip install fer tensorflow-cpu to compare", "ours_ms": float("nan"), "anchor": "fer", "ratio": None,
                 "threads": 1}]
    from ..engine import Engine  # type: ignore
    frames = _frames()
    det = FER(mtcnn=False)
    eng = Engine(threads=1)
    st = eng.stream()
    i = [0]

    def ours():
        st.push_frame(frames[i[0] % len(frames)], i[0] / 30.0)
        i[0] += 1

    def peer():
        det.detect_emotions(frames[i[0] % len(frames)])

    ours_ns, peer_ns = compare(ours, peer, 40 if quick else 200)
    import fer as fer_mod
    return [row("per_frame_end_to_end_vs_fer", ours_ns, peer_ns, anchor="fer.FER.detect_emotions",
                anchor_version=getattr(fer_mod, "__version__", "?"), target_ratio=15.0)]
