"""Detector tests: decode parity (C++ vs numba), recall on real FER faces pasted into 640x480
frames (some rotated up to 20 degrees), no detections on face-free frames, bad input."""
import math
import sys
import pathlib

import numpy as np
import pytest

from emoedge import detect as D
from emoedge._native_loader import get_native

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "export"))
from face_crop_calibrate import compose  # noqa: E402

# BlazeFace's box convention on a FER2013 crop: FER crops are tight (brow to chin), the detector's
# box sits lower and is smaller. For a crop of side s centred at c, BlazeFace-short's box is a square
# of side 0.84 s centred at c + (0, 0.07 s) (mean over 300 FER PublicTest faces 0..299 pasted at
# 200 px; per-face std 0.1 s, from FER's framing variation). The test faces below are other images.
BOX_SIDE, BOX_DY = 0.84, 0.07


@pytest.fixture(scope="module")
def detector():
    return D.FaceDetector()


@pytest.fixture(scope="module")
def fer_val(shared_data):
    p = shared_data / "faces" / "fer2013_val.npz"
    if not p.is_file():
        pytest.skip(f"{p} not found")
    return np.load(p)["images"]


def gt_box(cx, cy, s, angle_deg):
    a = math.radians(angle_deg)
    dx, dy = -math.sin(a) * BOX_DY * s, math.cos(a) * BOX_DY * s  # the offset rotates with the face
    side = BOX_SIDE * s
    return (cx + dx - side / 2, cy + dy - side / 2, side, side)


def iou(a, b):
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ix * iy / (a[2] * a[3] + b[2] * b[3] - ix * iy)


def test_recall_on_pasted_fer_faces(detector, fer_val):
    rng = np.random.default_rng(1234)
    idx = rng.choice(np.arange(1000, len(fer_val)), size=200, replace=False)
    hits, extra = 0, 0
    for k, i in enumerate(idx):
        size = int(rng.integers(160, 241))
        angle = 0.0 if k % 2 == 0 else float(rng.uniform(-20, 20))
        frame, (cx, cy), s = compose(fer_val[i], rng, size, angle)
        rows = detector.detect_array(frame)
        g = gt_box(cx, cy, s, angle)
        ious = [iou(r[:4], g) for r in rows]
        hits += bool(ious) and max(ious) >= 0.5
        extra += sum(v < 0.1 for v in ious)
    recall = hits / len(idx)
    print(f"recall {recall:.3f} at IoU >= 0.5, {len(idx)} FER faces 160-240 px (half rotated up to 20 deg)")
    assert recall >= 0.9, f"recall {recall:.3f} at IoU >= 0.5 over {len(idx)} faces of 160-240 px"
    assert extra <= 3, f"{extra} detections away from the pasted face"


def test_no_detections_on_face_free_frames(detector):
    rng = np.random.default_rng(7)
    H, W = 480, 640
    yy, xx = np.mgrid[0:H, 0:W]
    frames = [
        rng.integers(0, 256, (H, W, 3), dtype=np.uint8),                              # uniform noise
        np.repeat(((xx / W) * 255).astype(np.uint8)[:, :, None], 3, 2),               # horizontal gradient
        np.stack([(yy / H * 255), (xx / W * 255), ((xx + yy) / (H + W) * 255)], 2).astype(np.uint8),  # colour gradient
        (((xx // 40 + yy // 40) % 2) * 255).astype(np.uint8)[:, :, None].repeat(3, 2),  # checkerboard
        (127 + 100 * np.sin(xx / 7.0) * np.cos(yy / 11.0)).astype(np.uint8)[:, :, None].repeat(3, 2),  # texture
        np.zeros((H, W, 3), np.uint8),
        np.full((H, W, 3), 255, np.uint8),
    ]
    import cv2
    blur = cv2.GaussianBlur(rng.integers(0, 256, (H, W, 3), dtype=np.uint8), (0, 0), 6)
    frames.append(cv2.normalize(blur, None, 0, 255, cv2.NORM_MINMAX))              # blobby texture
    for j, f in enumerate(frames):
        rows = detector.detect_array(f)
        assert len(rows) == 0, f"face-free frame {j} gave {len(rows)} detections, scores {rows[:, 4]}"


def test_native_and_numba_decode_agree(detector, fer_val):
    if get_native() is None:
        pytest.skip("emoedge._native not built: only the numba decode is available")
    rng = np.random.default_rng(3)
    frame, _, _ = compose(fer_val[5], rng, 200)
    x, tr = detector.preprocess(frame)
    reg, sc = detector.session.run(detector.outputs, {detector.input_name: x})
    np.testing.assert_allclose(get_native().blazeface_anchors(128, [8, 16], [2, 6]), D.blazeface_anchors(), atol=0)
    for min_score, max_faces in ((0.5, 0), (0.05, 0), (0.05, 2)):  # low threshold: many overlapping candidates
        kw = dict(min_score=min_score, max_faces=max_faces, transform=tr)
        a = D.decode(reg, sc, detector.anchors, backend="native", **kw)
        b = D.decode(reg, sc, detector.anchors, backend="numba", **kw)
        assert a.shape == b.shape and len(a) >= 1
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-3)
    # synthetic outputs with random logits, including +-inf and NaN
    reg = rng.normal(0, 20, (1, 896, 16)).astype(np.float32)
    reg[..., 2:4] = np.abs(reg[..., 2:4]) + 5
    sc = rng.normal(0, 3, (1, 896, 1)).astype(np.float32)
    sc[0, :3, 0] = [np.inf, -np.inf, np.nan]
    a = D.decode(reg, sc, detector.anchors, backend="native", min_score=0.3)
    b = D.decode(reg, sc, detector.anchors, backend="numba", min_score=0.3)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-3)
    assert np.all(np.diff(a[:, 4]) <= 0) and len(a) > 5


def test_decode_weighted_nms_hand_example():
    anchors = D.blazeface_anchors()
    reg = np.zeros((896, 16), np.float32)
    sc = np.full(896, -30.0, np.float32)
    i, j = (7 * 16 + 7) * 2, (7 * 16 + 7) * 2 + 1
    for n, (cx, logit) in zip((i, j), ((0.50, 4.0), (0.52, 2.0))):
        reg[n, :4] = [(cx - anchors[n, 0]) * 128, (0.5 - anchors[n, 1]) * 128, 25.6, 25.6]
        sc[n] = logit
    for backend in ("numba",) + (("native",) if get_native() else ()):
        rows = D.decode(reg, sc, anchors, backend=backend, transform=(100, 100, 10, 0))
        s1, s2 = 1 / (1 + math.exp(-4)), 1 / (1 + math.exp(-2))
        assert rows.shape == (1, 17)
        assert rows[0, 4] == pytest.approx(s1, rel=1e-6)
        assert rows[0, 0] + rows[0, 2] / 2 == pytest.approx(100 * (s1 * 0.5 + s2 * 0.52) / (s1 + s2) + 10, rel=1e-5)
        assert rows[0, 2] == pytest.approx(20.0, rel=1e-5)


@pytest.mark.parametrize("bad, match", [
    (np.zeros((480, 640, 3), np.float32), "uint8"),
    (np.zeros((480, 640, 2), np.uint8), "shape"),
    (np.zeros((4, 4, 3), np.uint8), "too small"),
    ([[1, 2]], "numpy array"),
])
def test_bad_frames(detector, bad, match):
    with pytest.raises(ValueError, match=match):
        detector.detect_array(bad)


def test_bad_decode_input_and_options(detector):
    reg = np.zeros((1, 896, 16), np.float32)
    sc = np.zeros((1, 896, 1), np.float32)
    for backend in ("numba",) + (("native",) if get_native() else ()):
        with pytest.raises(ValueError, match="float32"):
            D.decode(reg.astype(np.float64), sc, detector.anchors, backend=backend)
        with pytest.raises(ValueError):
            D.decode(reg, sc[:, :10], detector.anchors, backend=backend)
        with pytest.raises(ValueError):
            D.decode(reg, sc, detector.anchors, backend=backend, min_score=2.0)
    with pytest.raises(ValueError, match="min_score"):
        D.DetectorOptions(min_score=-1).validate()
    with pytest.raises(ValueError, match="max_faces"):
        D.DetectorOptions(max_faces=-1).validate()
    assert D.DetectorOptions.from_dict(D.DetectorOptions(max_faces=3).to_dict()).max_faces == 3


def test_max_faces_and_gray_frames(detector, fer_val):
    import cv2
    frame = np.full((480, 640, 3), 120, np.uint8)
    for k, x0 in enumerate((20, 230, 440)):
        frame[140:340, x0:x0 + 180] = cv2.resize(fer_val[1000 + 3 * k], (180, 200), interpolation=cv2.INTER_CUBIC)[:, :, None]
    rows = detector.detect_array(frame)
    assert len(rows) == 3 and np.all(np.diff(rows[:, 4]) <= 0)
    two = D.FaceDetector(D.DetectorOptions(max_faces=2), session=detector.session).detect_array(frame)
    np.testing.assert_allclose(two, rows[:2], atol=1e-4)
    gray = D.FaceDetector(session=detector.session).detect_array(frame[:, :, 0])
    np.testing.assert_allclose(gray, rows, atol=1e-3)
    dets = detector.detect(frame)
    assert dets[0].keypoints.shape == (6, 2) and len(dets[0].box) == 4


def test_native_decode_options_class_round_trips():
    """The C++ DecodeOptions as emoedge._native.DecodeOptions: fields read/write, dict and pickle
    round-trips, validated by the decoder (C++ std::invalid_argument -> InvalidInputError)."""
    import pickle
    from emoedge.errors import InvalidInputError
    nat = pytest.importorskip("emoedge._native")
    o = nat.DecodeOptions()
    o.max_faces, o.transform = 2, (2.0, 2.0, 5.0, 0.0)
    assert nat.DecodeOptions.from_dict(o.to_dict()) == o and pickle.loads(pickle.dumps(o)) == o
    assert o.to_dict()["transform"] == (2.0, 2.0, 5.0, 0.0)
    with pytest.raises(InvalidInputError, match="unknown DecodeOptions key"):
        nat.DecodeOptions.from_dict({"iou": 0.3})
    o.nms_iou = 0.0
    with pytest.raises(InvalidInputError):
        o.validate()
