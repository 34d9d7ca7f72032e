import math
import pathlib
import sys

import numpy as np
import pytest

from emoedge.align import CropSpec, align_faces, crop_affine, crop_affines, eye_angle

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "export"))
from face_crop_calibrate import compose  # noqa: E402


def apply(m, pts_continuous):
    """Map continuous frame points through a forward index-convention affine -> continuous output."""
    p = np.asarray(pts_continuous, float) - 0.5
    return p @ m[:, :2].T + m[:, 2] + 0.5


def test_box_reference_maps_box_onto_output():
    m = crop_affine((100, 50, 80, 80), None, (64, 64), CropSpec(center=(0, 0), size=1.0))
    np.testing.assert_allclose(apply(m, [[100, 50], [180, 130]]), [[0, 0], [64, 64]], atol=1e-9)
    m = crop_affine((100, 50, 80, 80), None, (48, 48), CropSpec(center=(0.0, 0.25), size=2.0))
    np.testing.assert_allclose(apply(m, [[140, 110]]), [[24, 24]], atol=1e-9)  # crop centre
    np.testing.assert_allclose(m[0, 0], 48 / 160)


@pytest.mark.parametrize("deg", [-20, -7, 0, 12, 20])
def test_eyes_come_out_level(deg):
    a = math.radians(deg)
    c = np.array([300.0, 200.0])
    d = np.array([math.cos(a), math.sin(a)]) * 30
    kp = np.zeros((6, 2))
    kp[0], kp[1] = c - d, c + d
    kp[2] = c + np.array([-math.sin(a), math.cos(a)]) * 25  # nose below the eye line
    assert eye_angle(kp) == pytest.approx(a)
    for ref in ("box", "eyes"):
        m = crop_affine((260, 160, 80, 80), kp, (64, 64), CropSpec(reference=ref, center=(0, 0.1), size=1.2))
        e = apply(m, kp[:3])
        assert e[0, 1] == pytest.approx(e[1, 1], abs=1e-9)  # level
        assert e[0, 0] < e[1, 0] and e[2, 1] > e[0, 1]      # right eye on the image left, nose below
        assert abs(m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0]) > 0


def test_levelling_reproduces_rotated_fer_faces(shared_data):
    """Detected, levelled crops of FER faces pasted rotated by 15-20 degrees look more like the
    original crops than the same crops without levelling."""
    from emoedge import kernels
    from emoedge.detect import FaceDetector
    p = shared_data / "faces" / "fer2013_val.npz"
    if not p.is_file():
        pytest.skip(f"{p} not found")
    ims = np.load(p)["images"]
    det = FaceDetector()
    spec = CropSpec.from_dict(det.entry.get("expression_crop"))
    rng = np.random.default_rng(11)
    err_lvl, err_flat, tilt = [], [], []
    for i in range(2000, 2080):
        ang = float(rng.choice([-1, 1]) * rng.uniform(15, 20))
        frame, (cx, cy), s = compose(ims[i], rng, 200, ang)
        rows = det.detect_array(frame)
        if not len(rows):
            continue
        r = rows[0]
        kp = r[5:17].reshape(6, 2)
        for sp, errs in ((spec, err_lvl), (CropSpec(spec.reference, spec.center, spec.size, level_eyes=False), err_flat)):
            x = kernels.preprocess(frame, size=(48, 48), affine=crop_affine(r[:4], kp, (48, 48), sp), color="gray",
                                   border="replicate")
            errs.append(np.abs(x.reshape(48, 48) * 255 - ims[i]).mean())
        tilt.append(math.degrees(eye_angle(kp)) - ang)  # residual eye tilt in the original crop's frame
    assert len(err_lvl) >= 70
    lvl, flat = np.array(err_lvl), np.array(err_flat)
    print(f"levelled MAE {lvl.mean():.2f}, unlevelled {flat.mean():.2f}, levelled better on {(lvl < flat).mean():.2f}")
    assert lvl.mean() < flat.mean() - 2 and (lvl < flat).mean() >= 0.7, (lvl.mean(), flat.mean(), (lvl < flat).mean())
    assert abs(np.median(tilt)) < 4  # the detector's eye line follows the pasted rotation


def test_align_faces_batch_and_empty():
    frame = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    boxes = [[10, 10, 50, 50], [80, 40, 60, 60]]
    kp = np.zeros((2, 6, 2))
    kp[:, 0], kp[:, 1] = [[20, 25], [95, 55]], [[45, 25], [125, 60]]
    x = align_faces(frame, boxes, kp, size=(64, 64), color="gray", mean=(0.5,), std=(0.5,))
    assert x.shape == (2, 1, 64, 64) and x.dtype == np.float32 and x.min() >= -1 and x.max() <= 1
    assert crop_affines(boxes, kp, (64, 64)).shape == (2, 2, 3)
    assert align_faces(frame, np.zeros((0, 4)), None, size=(48, 48)).shape == (0, 1, 48, 48)
    y = align_faces(frame, boxes, kp, size=(32, 40), color="swap_rb", layout="nhwc")
    assert y.shape == (2, 40, 32, 3)


def test_crop_spec_validation():
    with pytest.raises(ValueError, match="reference"):
        CropSpec(reference="nose").validate()
    with pytest.raises(ValueError, match="size"):
        CropSpec(size=0).validate()
    s = CropSpec(reference="eyes", center=(0.1, 0.3), size=2.5)
    assert CropSpec.from_dict({**s.to_dict(), "calibration": {"x": 1}}) == s
    with pytest.raises(ValueError, match="zero"):
        crop_affine((0, 0, 0, 0), None, (48, 48))
