"""Face alignment: an eye-levelling 2x3 affine from detector keypoints to the expression model's
input, and the batched crop through the native frame kernel (kernels.preprocess_batch(affines=...)).

Crop geometry (``CropSpec``), in the face's own frame (x along the eye line, from the subject's right
eye to the left eye; y perpendicular, pointing down the face):

* reference point P and scale L: ``reference="box"`` -> detector box centre and box width;
  ``reference="eyes"`` -> eye midpoint and inter-eye distance;
* crop centre C = P + L * (center[0] * ex + center[1] * ey), crop side D = L * size;
* the crop square is rotated so the eyes are level (``level_eyes``), then resized to the model input.

The numbers are calibrated by ``python export/face_crop_calibrate.py`` (FER faces pasted into frames,
detector run, crop chosen to reproduce the original 48x48 framing) and stored in the manifest entry of
the detector ("expression_crop") and of each face_expression model ("crop").
Coordinates are continuous pixels (pixel i spans [i, i+1)), as the detector reports them.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from .errors import InvalidInputError

__all__ = ["CropSpec", "crop_affine", "crop_affines", "align_faces", "eye_angle"]


@dataclass
class CropSpec:
    """How to cut the expression model's input out of a detection (see module docstring).
    Default: the calibrated value for BlazeFace short range on FER2013 framing (face_crop_calibrate.py)."""
    reference: str = "box"
    center: Tuple[float, float] = (-0.007, -0.092)
    size: float = 1.107
    level_eyes: bool = True

    def validate(self) -> "CropSpec":
        if self.reference not in ("box", "eyes"):
            raise InvalidInputError(f"CropSpec.reference={self.reference!r} must be 'box' or 'eyes'")
        if len(tuple(self.center)) != 2 or not np.isfinite(np.asarray(self.center, float)).all():
            raise InvalidInputError(f"CropSpec.center={self.center!r} must be two finite numbers (reference-scale units)")
        if not (float(self.size) > 0 and math.isfinite(float(self.size))):
            raise InvalidInputError(f"CropSpec.size={self.size!r} must be > 0 (crop side / reference scale)")
        return self

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["center"] = [float(v) for v in self.center]
        return d

    @classmethod
    def from_dict(cls, d: Optional[Dict[str, Any]]) -> "CropSpec":
        if not d:
            return cls()
        keys = set(cls.__dataclass_fields__)
        kw: Dict[str, Any] = {k: (tuple(v) if k == "center" else v) for k, v in d.items() if k in keys}
        return cls(**kw).validate()


def eye_angle(keypoints: Any) -> float:
    """Angle (radians) of the line from the subject's right eye (keypoint 0, image left) to the left
    eye (keypoint 1); 0 when the eyes are level, positive when the left eye is lower in the image."""
    kp = np.asarray(keypoints, dtype=np.float64)
    v = kp[1] - kp[0]
    return float(math.atan2(v[1], v[0]))


def crop_affine(box: Sequence[float], keypoints: Any = None, size: Tuple[int, int] = (64, 64),
                spec: Optional[CropSpec] = None) -> np.ndarray:
    """Forward 2x3 matrix (frame pixel index -> output pixel index, cv2.warpAffine's convention)
    that cuts the face at ``box`` (x, y, w, h pixels) with ``keypoints`` ([6, 2] pixels, or None:
    no levelling, box reference) into an output of ``size`` (width, height) pixels."""
    spec = spec or CropSpec()
    x, y, w, h = (float(v) for v in box)
    W, H = int(size[0]), int(size[1])
    kp = None if keypoints is None else np.asarray(keypoints, dtype=np.float64).reshape(-1, 2)
    theta = eye_angle(kp) if (kp is not None and spec.level_eyes) else 0.0
    if spec.reference == "eyes" and kp is not None:
        px, py = (kp[0] + kp[1]) / 2
        L = float(np.hypot(*(kp[1] - kp[0])))
    else:
        px, py, L = x + w / 2, y + h / 2, w
    if not (L > 0 and math.isfinite(L)):
        raise InvalidInputError(f"cannot align a face with box {box} and keypoints {kp}: zero or invalid size")
    c, s = math.cos(theta), math.sin(theta)
    ex, ey = np.array([c, s]), np.array([-s, c])
    C = np.array([px, py]) + L * (spec.center[0] * ex + spec.center[1] * ey)
    D = L * float(spec.size)
    A = np.stack([ex * (W / D), ey * (H / D)])  # rows: output x, output y per frame unit
    # continuous: o = A (q - C) + (W/2, H/2); indices: q = q_idx + 0.5, o_idx = o - 0.5
    b = A @ (np.array([0.5, 0.5]) - C) + np.array([W / 2 - 0.5, H / 2 - 0.5])
    return np.concatenate([A, b[:, None]], axis=1)


def crop_affines(boxes: Any, keypoints: Any = None, size: Tuple[int, int] = (64, 64),
                 spec: Optional[CropSpec] = None) -> np.ndarray:
    """float64 [N, 2, 3] forward matrices for N faces (see crop_affine)."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if not len(b):
        return np.zeros((0, 2, 3))
    kps = None if keypoints is None else np.asarray(keypoints, dtype=np.float64).reshape(len(b), -1, 2)
    return np.stack([crop_affine(b[i], None if kps is None else kps[i], size, spec) for i in range(len(b))])


def align_faces(frame: np.ndarray, boxes: Any, keypoints: Any = None, *, size: Tuple[int, int] = (64, 64),
                spec: Optional[CropSpec] = None, color: str = "gray", mean: Any = None, std: Any = None,
                layout: str = "nchw", border: str = "replicate", **kernel_kwargs: Any) -> np.ndarray:
    """Aligned crops of N faces of one frame in one native call: float32 [N, C, H, W] (or NHWC),
    normalised as ``(pixel/255 - mean) / std`` (the expression model's manifest "preprocess");
    other keyword arguments (scale, offset, border_value, ...) go to kernels.preprocess_batch."""
    from . import kernels
    aff = crop_affines(boxes, keypoints, size, spec)
    c = 1 if color == "gray" else 3
    if not len(aff):
        shape = (0, c, int(size[1]), int(size[0])) if layout == "nchw" else (0, int(size[1]), int(size[0]), c)
        return np.zeros(shape, np.float32)
    crops: np.ndarray = kernels.preprocess_batch(frame, size=(int(size[0]), int(size[1])), affines=aff, color=color,
                                                 mean=mean, std=std, layout=layout, border=border, **kernel_kwargs)
    return crops
