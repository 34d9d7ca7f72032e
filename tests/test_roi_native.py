"""The native template matcher of the ROI re-localisation (emoedge._native.roi_match) against its cv2
reference (emoedge.roi.match_reference: cv2.matchTemplate TM_CCOEFF_NORMED + the parabola peak).
Tolerance: 1e-4 on the correlation and 1e-3 px on the sub-pixel position (float32 products in different
order than OpenCV's); the scale index and the integer peak are identical on inputs without near-ties."""
import numpy as np
import pytest

from emoedge import roi
from emoedge._native_loader import get_native
from emoedge.errors import InvalidInputError

nat = get_native()
pytestmark = pytest.mark.skipif(nat is None or not hasattr(nat, "roi_match"), reason="emoedge._native is not built")


def _case(rng, k=6, ns=3, s=22, t=16, noise=8.0):
    win = (rng.random((k, ns, s, s)) * 255).astype(np.float32)
    tpl = np.empty((k, t, t), np.float32)
    for i in range(k):  # the template planted in one window at a random place, plus noise
        j, y, x = rng.integers(0, ns), rng.integers(0, s - t + 1), rng.integers(0, s - t + 1)
        tpl[i] = win[i, j, y:y + t, x:x + t] + rng.normal(0, noise, (t, t))
    return win, tpl


@pytest.mark.parametrize("seed", range(5))
def test_matches_cv2_reference(seed):
    rng = np.random.default_rng(seed)
    for shape in ((6, 3, 22, 16), (3, 1, 40, 16), (2, 5, 12, 5), (1, 3, 16, 16)):
        k, ns, s, t = shape
        win, tpl = _case(rng, k, ns, s, t)
        a, b = nat.roi_match(win, tpl), roi.match_reference(win, tpl)
        assert a.shape == b.shape == (k, 4)
        np.testing.assert_allclose(a[:, 2], b[:, 2], atol=1e-4)
        np.testing.assert_allclose(a[:, :2], b[:, :2], atol=1e-3)
        np.testing.assert_array_equal(a[:, 3], b[:, 3])


def test_smooth_images_and_flat_windows():
    rng = np.random.default_rng(7)
    # smooth (blurred) content, as real faces: the parabola refinement is active
    import cv2
    base = cv2.GaussianBlur((rng.random((4, 3, 22, 22)) * 255).astype(np.float32).reshape(-1, 22), (5, 5), 2)
    win = base.reshape(4, 3, 22, 22)
    tpl = np.ascontiguousarray(win[:, 1, 2:18, 3:19])
    a, b = nat.roi_match(win, tpl), roi.match_reference(win, tpl)
    np.testing.assert_allclose(a, b, atol=1e-3)
    assert np.allclose(a[:, 2], 1.0, atol=1e-4) and (a[:, 3] == 1).all()
    flat = np.full((1, 3, 22, 22), 9.0, np.float32)
    out = nat.roi_match(flat, tpl[:1])
    assert out[0, 2] == 0.0 and np.isfinite(out).all()   # flat window: correlation 0, as cv2


def test_validation_raises_project_errors():
    win, tpl = _case(np.random.default_rng(1), 2)
    with pytest.raises(InvalidInputError, match="float32"):
        nat.roi_match(win.astype(np.float64), tpl)
    with pytest.raises(InvalidInputError, match="same K"):
        nat.roi_match(win, tpl[:1])
    with pytest.raises(InvalidInputError, match="window side"):
        nat.roi_match(win[:, :, :10, :10].copy(), tpl)
    with pytest.raises(InvalidInputError, match="shape"):
        nat.roi_match(win[0], tpl)
    with pytest.raises(InvalidInputError, match="C-contiguous"):
        nat.roi_match(win[..., ::-1], tpl)
    with pytest.raises(TypeError):
        nat.roi_match([[1.0]], tpl)
    assert nat.roi_match(np.zeros((0, 3, 22, 22), np.float32), np.zeros((0, 16, 16), np.float32)).shape == (0, 4)


def test_relocate_template_same_with_native_and_reference(monkeypatch):
    """relocate_template gives the same boxes with the native matcher and with the cv2 reference."""
    from emoedge.tracking import FaceTracker
    rng = np.random.default_rng(3)
    import cv2
    frame = cv2.GaussianBlur((rng.random((480, 640, 3)) * 255).astype(np.uint8), (9, 9), 3)
    tr = FaceTracker()
    tracks = tr.update([[200, 150, 120, 120], [400, 200, 90, 90]], [0.9, 0.8])
    roi.take_templates(frame, tracks)
    moved = np.roll(frame, (4, -6), axis=(0, 1))
    a = roi.relocate_template(moved, tracks)
    monkeypatch.setattr(roi, "_match", roi.match_reference)
    b = roi.relocate_template(moved, tracks)
    np.testing.assert_allclose(a[0], b[0], atol=0.05)
    np.testing.assert_allclose(a[2], b[2], atol=1e-4)
