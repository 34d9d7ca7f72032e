"""Frame preprocessing against OpenCV, side by side in one run, single thread.

Cases (issue 2):
* ``frame_640x480_to_1x3x224x224_imagenet``: BGR frame -> RGB NCHW float, ImageNet mean/std.
  Anchor: ``cv2.dnn.blobFromImage(swapRB=True, mean=255*mean, scalefactor=1/255)`` followed by the
  per-channel std division (in place). Target >= 2x.
* ``frame_8_faces_to_8x1x64x64_gray``: 8 face boxes -> gray 64x64, normalized to [-1, 1].
  Anchor: the cv2 loop (crop view, cvtColor, resize) + np.stack + one vectorized normalize. Target >= 2x.
* ``frame_8_faces_aligned_affine_to_8x1x64x64_gray`` (no target): face alignment through 8 affines.
Extra rows (no target) show ours writing into a preallocated ``out`` (the hot-path form), and the
faces case against a stronger loop (stack first, one vectorized normalize).
``max_abs_diff_255`` compares with the anchor's all-uint8 pipeline (it rounds twice, so up to ~1.2).
"""
from __future__ import annotations

import numpy as np

from . import compare, row, single_thread

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FACE_BOXES = [(40, 60, 120, 140), (200, 50, 96, 110), (350, 80, 150, 160), (500, 40, 100, 120),
              (60, 260, 130, 150), (220, 300, 88, 100), (380, 280, 110, 130), (520, 330, 90, 110)]


def frame(seed: int = 0) -> np.ndarray:
    """A 640x480 BGR test frame: smooth gradients plus noise (content does not change the timing)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:480, 0:640]
    base = np.stack([x * 0.4, y * 0.5, (x + y) * 0.2], axis=-1)
    return np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)


def cases():
    """(name, ours, ours_into_out, anchor, anchor_name, stronger_anchor_or_None) for the two cases."""
    import cv2

    from ..kernels import preprocess, preprocess_batch

    img = frame()
    mean255 = tuple(255.0 * m for m in IMAGENET_MEAN)
    std = np.asarray(IMAGENET_STD, np.float32).reshape(1, 3, 1, 1)
    out1 = np.empty((1, 3, 224, 224), np.float32)

    def ours_blob():
        return preprocess(img, (224, 224), color="swap_rb", mean=IMAGENET_MEAN, std=IMAGENET_STD)

    def ours_blob_out():
        return preprocess(img, (224, 224), color="swap_rb", mean=IMAGENET_MEAN, std=IMAGENET_STD, out=out1)

    def anchor_blob():
        b = cv2.dnn.blobFromImage(img, 1.0 / 255.0, (224, 224), mean255, swapRB=True, crop=False)
        b /= std
        return b

    boxes = np.asarray(FACE_BOXES, np.float64)
    out2 = np.empty((8, 1, 64, 64), np.float32)

    def ours_faces():
        return preprocess_batch(img, boxes, (64, 64), color="gray", mean=0.5, std=0.5)

    def ours_faces_out():
        return preprocess_batch(img, boxes, (64, 64), color="gray", mean=0.5, std=0.5, out=out2)

    def anchor_faces():  # the loop: crop, cvtColor, resize, normalize, stack
        faces = []
        for (x, y, w, h) in FACE_BOXES:
            g = cv2.resize(cv2.cvtColor(img[y:y + h, x:x + w], cv2.COLOR_BGR2GRAY), (64, 64))
            faces.append((g.astype(np.float32) - 127.5) / 127.5)
        return np.stack(faces)[:, None]

    def anchor_faces_stack_first():  # a stronger variant: one vectorized normalize after the stack
        g = np.stack([cv2.resize(cv2.cvtColor(img[y:y + h, x:x + w], cv2.COLOR_BGR2GRAY), (64, 64))
                      for (x, y, w, h) in FACE_BOXES])
        return ((g.astype(np.float32) - 127.5) / 127.5)[:, None]

    affines = []
    for i, (x, y, w, h) in enumerate(FACE_BOXES):  # face alignment: rotate + scale each face to 64x64
        m = cv2.getRotationMatrix2D((x + w / 2, y + h / 2), 8.0 * (i - 4), 64.0 / w)
        m[:, 2] += [32 - (x + w / 2), 32 - (y + h / 2)]
        affines.append(m)
    affines = np.asarray(affines)
    out3 = np.empty((8, 1, 64, 64), np.float32)

    def ours_aligned():
        return preprocess_batch(img, size=(64, 64), affines=affines, color="gray", mean=0.5, std=0.5)

    def ours_aligned_out():
        return preprocess_batch(img, size=(64, 64), affines=affines, color="gray", mean=0.5, std=0.5, out=out3)

    def anchor_aligned():  # cv2 loop: warpAffine, cvtColor, normalize, stack
        faces = []
        for m in affines:
            g = cv2.cvtColor(cv2.warpAffine(img, m, (64, 64)), cv2.COLOR_BGR2GRAY)
            faces.append((g.astype(np.float32) - 127.5) / 127.5)
        return np.stack(faces)[:, None]

    return [("frame_640x480_to_1x3x224x224_imagenet", ours_blob, ours_blob_out, anchor_blob,
             "cv2.dnn.blobFromImage+std_division", None),
            ("frame_8_faces_to_8x1x64x64_gray", ours_faces, ours_faces_out, anchor_faces,
             "cv2 loop (crop, cvtColor, resize, normalize, stack)", anchor_faces_stack_first),
            ("frame_8_faces_aligned_affine_to_8x1x64x64_gray", ours_aligned, ours_aligned_out, anchor_aligned,
             "cv2 loop (warpAffine, cvtColor, normalize, stack)", None)]


def check_parity() -> dict:
    """Max abs diff (0..255 scale) of ours vs the anchors on the benchmark inputs."""
    res = {}
    for name, ours, _, anchor, _, _ in cases():
        a, b = ours(), anchor()
        scale = 255.0 * np.asarray(IMAGENET_STD).reshape(1, 3, 1, 1) if "imagenet" in name else 127.5
        res[name] = float(np.abs((a - b) * scale).max())
    return res


def run(quick: bool = True) -> list:
    import cv2

    single_thread()
    repeats = 60 if quick else 400
    rows = []
    parity = check_parity()
    ver = f"opencv {cv2.__version__}"
    for name, ours, ours_out, anchor, anchor_name, strong in cases():
        o_ns, a_ns = compare(ours, anchor, repeats)
        target = None if "affine" in name else 2.0  # the issue sets targets for the first two cases
        rows.append(row(name, o_ns, a_ns, anchor=anchor_name, anchor_version=ver, target_ratio=target, threads=1,
                        max_abs_diff_255=parity[name]))
        o_ns, a_ns = compare(ours_out, anchor, repeats)
        rows.append(row(name + "_into_out", o_ns, a_ns, anchor=anchor_name, anchor_version=ver, threads=1))
        if strong is not None:
            o_ns, a_ns = compare(ours, strong, repeats)
            rows.append(row(name + "_vs_stack_then_normalize", o_ns, a_ns,
                            anchor="cv2 loop (crop, cvtColor, resize), np.stack, one normalize", anchor_version=ver,
                            threads=1))
    return rows
