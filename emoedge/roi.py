"""Re-localising tracked faces between full-frame detections (the detection cadence of emoedge.faces).

Two ways, chosen by ``FaceAnalyzerOptions.roi``:

* ``"template"`` (default): at each detection a small grey template of every face box is cut from the
  frame (``TEMPLATE`` x ``TEMPLATE`` px, native frame kernel). On later frames a search window around the
  track's predicted box (``1 + 2 * SEARCH_MARGIN`` box sizes) is resampled at three scales in one native
  call, and the native ``roi_match`` (normalised cross-correlation, cv2's TM_CCOEFF_NORMED) finds the best
  position and scale, refined to sub-pixel by a parabola through the peak. Confidence = the peak
  correlation (-1..1). Keypoints follow the box (translation + scale of the detection's keypoints).
* ``"detector"``: BlazeFace on a square region of interest (``DETECTOR_ROI`` box widths) around the
  predicted box, letterboxed into the detector input by the native kernel; confidence = detector score.
  As accurate as a detection (new keypoints) and sees small faces larger, but costs one detector run
  (~1 ms) per face.

``scene_changed`` compares a 1/16-scale green-channel subsample of consecutive frames (~10 us) so that a cut
triggers a full detection at once.
"""
from __future__ import annotations

import math
from typing import Any, Dict, Sequence, Tuple

import numpy as np

__all__ = ["TEMPLATE", "SEARCH_MARGIN", "SCALES", "take_templates", "relocate_template", "relocate_detector",
           "scene_changed", "inside_fraction", "match_reference"]

TEMPLATE = 16          # template side (px); a face box resampled to 16x16 grey
SEARCH_MARGIN = 0.375  # search window: the box grown by this many box sizes on each side (moves up to
                       # 0.375 box widths per frame beyond the velocity prediction are followed)
SCALES = (1 / 1.06, 1.0, 1.06)  # face size hypotheses per frame, relative to the current box
DETECTOR_ROI = 2.0     # "detector" mode: ROI side in box widths
_GRAY: Dict[str, Any] = dict(color="gray", scale=1.0, offset=0.0, border="replicate")


def take_templates(frame: np.ndarray, tracks: Sequence) -> None:
    """Cut every track's template from ``frame`` at its current box (one native call) into ``track.template``."""
    if not tracks:
        return
    from . import kernels
    boxes = np.array([tr.box for tr in tracks], np.float64)
    t = kernels.preprocess_batch(frame, boxes, size=(TEMPLATE, TEMPLATE), **_GRAY)
    for i, tr in enumerate(tracks):
        tr.template = t[i, 0]


def _peak(m: np.ndarray) -> Tuple[float, float, float]:
    """(x, y, value) of the maximum of a correlation map, sub-pixel by a parabola along each axis."""
    import cv2
    _, v, _, (px, py) = cv2.minMaxLoc(m)
    x, y = float(px), float(py)
    if 0 < px < m.shape[1] - 1:
        a, b, c = (float(q) for q in m[py, px - 1:px + 2])
        d = a - 2 * b + c
        if d < 0:
            x += min(0.5, max(-0.5, 0.5 * (a - c) / d))
    if 0 < py < m.shape[0] - 1:
        a, b, c = (float(q) for q in m[py - 1:py + 2, px])
        d = a - 2 * b + c
        if d < 0:
            y += min(0.5, max(-0.5, 0.5 * (a - c) / d))
    return x, y, float(v)


def match_reference(windows: np.ndarray, templates: np.ndarray) -> np.ndarray:
    """Reference of the native ``roi_match`` (cv2.matchTemplate TM_CCOEFF_NORMED + ``_peak`` per window):
    windows float32 [K, n_scales, S, S], templates float32 [K, T, T] -> float64 [K, 4] (x, y, value, scale)."""
    import cv2
    k, ns, S, _ = windows.shape
    out = np.zeros((k, 4))
    for i in range(k):
        best = None
        for j in range(ns):
            px, py, v = _peak(cv2.matchTemplate(windows[i, j], templates[i], cv2.TM_CCOEFF_NORMED))
            if best is None or v > best[2]:
                best = (px, py, v, j)
        out[i] = best
    return out


def _match(windows: np.ndarray, templates: np.ndarray) -> np.ndarray:
    from ._native_loader import get_native
    nat = get_native()
    if nat is not None and hasattr(nat, "roi_match"):
        res: np.ndarray = nat.roi_match(windows, templates)
        return res
    return match_reference(windows, templates)


def relocate_template(frame: np.ndarray, tracks: Sequence) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Re-localise ``tracks`` (each with a ``template`` from ``take_templates``) in ``frame``.

    Returns (boxes float64 [K, 4] x, y, w, h pixels; keypoints float32 [K, 6, 2]; confidence float32 [K],
    the normalised cross-correlation of the best match, -1..1). A track without a template gets its
    predicted box and confidence -1 (so the caller re-detects). The windows of all tracks are resampled in
    one native call and matched in another (``emoedge._native.roi_match``, GIL released; the cv2 reference
    ``match_reference`` when the extension is missing)."""
    from . import kernels
    k = len(tracks)
    T = TEMPLATE
    S = int(round(T * (1 + 2 * SEARCH_MARGIN)))
    out_k = np.zeros((k, 6, 2), np.float32)
    conf = np.full(k, -1.0, np.float32)
    if not k:
        return np.zeros((k, 4)), out_k, conf
    # plain Python per track: a stream has a handful of faces, and numpy's per-call cost dominates at that size
    ns = len(SCALES)
    out_b = np.empty((k, 4))
    regions = []
    has = []
    for i, tr in enumerate(tracks):
        x, y, w, h = tr.box
        vx, vy = tr.velocity
        out_b[i] = (x + vx, y + vy, w, h)   # the predicted box, kept where nothing matches
        if tr.template is None:
            continue
        has.append(i)
        cx, cy = x + w / 2 + vx, y + h / 2 + vy
        for sc in SCALES:
            rw, rh = w * sc * S / T, h * sc * S / T
            regions.append((cx - rw / 2, cy - rh / 2, rw, rh))
    if not has:
        return out_b, out_k, conf
    reg = np.array(regions, np.float64)
    win = kernels.preprocess_batch(frame, reg, size=(S, S), **_GRAY).reshape(len(has), ns, S, S)
    tpl = np.array([tracks[i].template for i in has], np.float32)
    peaks = _match(win, tpl).tolist()
    for r, i in enumerate(has):
        px, py, v, j = peaks[r]
        j = int(j)
        rx, ry, rwj, rhj = regions[r * ns + j]
        w, h = tracks[i].box[2], tracks[i].box[3]
        nw, nh = w * SCALES[j], h * SCALES[j]
        ncx = rx + (px + T / 2) * rwj / S
        ncy = ry + (py + T / 2) * rhj / S
        out_b[i] = (ncx - nw / 2, ncy - nh / 2, nw, nh)
        conf[i] = v if math.isfinite(v) else -1.0
        out_k[i] = _move_keypoints(tracks[i], (ncx, ncy), nw)
    return out_b, out_k, conf


def _move_keypoints(tr, center, width) -> np.ndarray:
    """The detection's keypoints, translated and scaled with the box (no rotation)."""
    kp = tr.det_keypoints if tr.det_keypoints is not None else tr.keypoints
    if kp is None:
        return np.zeros((6, 2), np.float32)
    bx, by, bw, bh = tr.det_box
    s = width / max(bw, 1e-6)
    c0 = np.array([bx + bw / 2, by + bh / 2])
    return ((np.asarray(kp, np.float64) - c0) * s + np.asarray(center)).astype(np.float32)


def relocate_detector(detector, frame: np.ndarray, tracks: Sequence):
    """BlazeFace on a square ROI around each track's predicted box. Same returns as relocate_template;
    confidence = the detector score of the detection nearest the predicted centre (0 when none)."""
    k = len(tracks)
    out_b = np.zeros((k, 4))
    out_k = np.zeros((k, 6, 2), np.float32)
    conf = np.zeros(k, np.float32)
    for i, tr in enumerate(tracks):
        x, y, w, h = tr.box
        cx, cy = x + w / 2 + tr.velocity[0], y + h / 2 + tr.velocity[1]
        out_b[i] = (cx - w / 2, cy - h / 2, w, h)
        side = DETECTOR_ROI * max(w, h)
        rows = detector.detect_array(frame, checked=True, roi=(cx - side / 2, cy - side / 2, side, side))
        if not len(rows):
            continue
        c = rows[:, :2] + rows[:, 2:4] / 2
        d = np.hypot(c[:, 0] - cx, c[:, 1] - cy)
        r = int(np.argmin(d))
        if d[r] > 0.5 * max(w, h):
            continue
        out_b[i] = rows[r, :4]
        out_k[i] = rows[r, 5:17].reshape(6, 2)
        conf[i] = rows[r, 4]
    return out_b, out_k, conf


def inside_fraction(box, width: int, height: int) -> float:
    """Fraction of the box's area inside a width x height frame (0..1)."""
    x, y, w, h = box
    if w <= 0 or h <= 0:
        return 0.0
    ix = max(0.0, min(x + w, width) - max(x, 0.0))
    iy = max(0.0, min(y + h, height) - max(y, 0.0))
    return float(ix * iy / (w * h))


def scene_changed(frame: np.ndarray, state: dict, level: float, fraction: float) -> bool:
    """True when more than ``fraction`` of a 1/16-scale green-channel subsample changed by more than ``level`` grey
    levels since the previous frame (a cut, a camera switch, a light switched on). ``state``: per-stream
    dict holding the previous subsample; a frame of another size counts as a change."""
    sub = frame[8::16, 8::16, 1]  # green ~ luma; strided view of 1/256 of the pixels, no full-frame pass
    prev = state.get("sub")
    cur = sub.astype(np.int16)
    state["sub"] = cur
    if prev is None:
        return False
    if prev.shape != cur.shape:
        return True
    return bool(np.count_nonzero(np.abs(cur - prev) > level) > fraction * cur.size)
