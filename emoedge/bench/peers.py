"""Peer libraries on the same input (`emoedge bench --peers`): the fer package (TensorFlow + OpenCV Haar +
its Keras mini-Xception) on the same 640x480 frames as emoedge's end-to-end path. Skipped with a clear
message when fer/TensorFlow are not installed (they are a heavy, optional peers environment, kept
out of emoedge's own: `python -m venv peers && peers/bin/pip install . fer==25.10.3 tensorflow-cpu
"opencv-python-headless<5" "setuptools<80"` — fer needs cv2.CascadeClassifier, gone from OpenCV 5's
main wheels, and pkg_resources). fer/TensorFlow use their default thread pools; emoedge runs 1 thread.
librosa and kaldi-native-fbank are the log-mel section's anchors."""
from __future__ import annotations


from . import compare, row


def _frames(n=8):
    """640x480 BGR frames with one real face, from the bundled demo clip (the same frames as e2e)."""
    from .e2e import sample_frames
    return sample_frames(n)


def run(quick: bool = True) -> list:
    try:
        try:
            from fer import FER  # type: ignore
        except ImportError:
            from fer.fer import FER  # type: ignore  # fer 25.x keeps the class in fer.fer
    except Exception as ex:
        return [{"name": "fer_package_per_frame", "skipped": f"fer peer not installed ({type(ex).__name__}); "
                 "see emoedge/bench/peers.py for the peers environment", "ours_ms": float("nan"), "anchor": "fer", "ratio": None,
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
