"""FER2013 data for the face-expression model: cached loading, FER+ soft targets, and augmented
pre-processing through the *same* native kernel (``emoedge.kernels.preprocess``) that inference uses.

Every training image is produced by one ``kernels.preprocess(img, affine=M, **PREPROCESS)`` call with a
random 2x3 affine ``M`` (flip, rotation, scale, shift); validation/calibration images by the same call
with no affine. Brightness/contrast jitter and random erasing are then applied to the normalised float
output (a per-image linear map ``a*x + b`` is exactly a contrast/brightness change of the input pixels).
"""
from __future__ import annotations

import hashlib
import math
import os
import pathlib
import time

import numpy as np

#: FER2013 label order (model output order).
LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
#: index into ferplus_votes (neutral, happiness, surprise, sadness, anger, disgust, fear, contempt,
#: unknown, NF) for each of LABELS; contempt/unknown/NF are dropped.
FERPLUS_TO_FER = (4, 5, 6, 1, 3, 2, 0)

SIZE = 48
#: kwargs of emoedge.kernels.preprocess used for training and inference (written into the manifest).
PREPROCESS = {"size": [SIZE, SIZE], "color": "gray", "mean": [0.5], "std": [0.25], "border": "replicate",
              "interpolation": "linear", "layout": "nchw"}

def _shared() -> pathlib.Path:
    if os.environ.get("EMOEDGE_SHARED"):
        return pathlib.Path(os.environ["EMOEDGE_SHARED"])
    here = pathlib.Path(__file__).resolve()
    for cand in (here.parents[1] / "shared", here.parents[2] / "shared", here.parents[3] / "shared"):
        if (cand / "data").is_dir():
            return cand
    return here.parents[2] / "shared"


SHARED = _shared()
FACES = SHARED / "data" / "faces"
CACHE = pathlib.Path(os.environ.get("EMOEDGE_CACHE", "/work/cache")) / "facemodel"


def load_split(path) -> dict:
    """Arrays of a FER2013 npz (images uint8 [N,48,48], labels int64 [N], votes float32 [N,10],
    class_names), cached uncompressed under CACHE (the shared files are LZMA, ~10 s to read)."""
    path = pathlib.Path(path)
    st = path.stat()
    key = hashlib.sha1(f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:12]
    cached = CACHE / f"{path.stem}-{key}.npz"
    if not cached.is_file():
        z = np.load(path)
        images = _unpack_webp(z) if "images_webp" in z.files else z["images"]
        arrs = {"images": images, "labels": z["labels"].astype(np.int64),
                "votes": z["ferplus_votes"].astype(np.float32), "class_names": z["class_names"]}
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp.npz")
        np.savez(tmp, **arrs)
        os.replace(tmp, cached)
    z = np.load(cached)
    d = {k: z[k] for k in z.files}
    names = [str(c) for c in d["class_names"]]
    if tuple(names) != LABELS:
        raise ValueError(f"{path}: class_names {names} differ from the expected FER order {LABELS}")
    return d


def _unpack_webp(z) -> np.ndarray:
    import cv2
    buf, off = z["images_webp"], z["offsets"]
    out = np.empty((len(off) - 1, 48, 48), np.uint8)
    for i in range(len(out)):
        out[i] = cv2.imdecode(buf[off[i]:off[i + 1]], cv2.IMREAD_GRAYSCALE)
    return out


def pack_split(src, dst) -> None:
    """Write the arrays training needs from a FER2013 npz with the images as lossless WebP (~25% smaller
    than the LZMA npz; used to ship the data to a rented GPU machine under its upload limit). Lossless:
    every decoded image is checked against the original."""
    import cv2
    z = np.load(src)
    images = z["images"]
    parts = [cv2.imencode(".webp", im, [cv2.IMWRITE_WEBP_QUALITY, 101])[1].ravel() for im in images]
    off = np.concatenate([[0], np.cumsum([len(b) for b in parts])]).astype(np.int64)
    packed = {"images_webp": np.concatenate(parts), "offsets": off}
    if not np.array_equal(_unpack_webp(packed), images):
        raise RuntimeError("WebP round trip is not lossless with this OpenCV build")
    np.savez(dst, **packed, labels=z["labels"], ferplus_votes=z["ferplus_votes"], class_names=z["class_names"])


def soft_targets(labels: np.ndarray, votes: np.ndarray, ferplus_weight: float) -> np.ndarray:
    """float32 [N,7]: (1-w) * one-hot(original label) + w * FER+ vote distribution over the 7 FER
    classes (contempt/unknown/NF dropped; rows without usable votes fall back to the one-hot)."""
    onehot = np.eye(len(LABELS), dtype=np.float32)[labels]
    v = votes[:, list(FERPLUS_TO_FER)]
    s = v.sum(1, keepdims=True)
    dist = np.where(s > 0, v / np.maximum(s, 1e-6), onehot)
    return ((1.0 - ferplus_weight) * onehot + ferplus_weight * dist).astype(np.float32)


def dev_split(images: np.ndarray, labels: np.ndarray, frac: float, seed: int):
    """(fit indices, dev indices): stratified by label; exact duplicate images (same pixels) share a side,
    so the dev split does not contain copies of training images."""
    keys = np.array([hashlib.sha1(im.tobytes()).hexdigest() for im in images])
    _, group = np.unique(keys, return_inverse=True)
    rng = np.random.default_rng([seed, 7])
    dev_groups = set()
    for c in np.unique(labels):
        g = np.unique(group[labels == c])
        rng.shuffle(g)
        dev_groups.update(g[:int(round(frac * len(g)))].tolist())
    is_dev = np.isin(group, np.fromiter(dev_groups, np.int64, len(dev_groups)))
    return np.nonzero(~is_dev)[0], np.nonzero(is_dev)[0]


def _kernel():
    from emoedge import kernels
    if not hasattr(kernels, "preprocess"):
        raise RuntimeError("emoedge.kernels.preprocess is not available: build the native module "
                           "(.ci/dev-build) on a checkout that has the frame kernel")
    return kernels.preprocess


def preprocess(img: np.ndarray, affine=None) -> np.ndarray:
    """One uint8 [48,48] face -> float32 [1,SIZE,SIZE] via emoedge.kernels.preprocess."""
    kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in PREPROCESS.items()}
    out = _kernel()(img, affine=affine, **kw)
    return np.asarray(out, dtype=np.float32).reshape(1, SIZE, SIZE)


def preprocess_many(images: np.ndarray) -> np.ndarray:
    """float32 [N,1,SIZE,SIZE], no augmentation (validation, calibration)."""
    out = np.empty((len(images), 1, SIZE, SIZE), np.float32)
    for i, im in enumerate(images):
        out[i] = preprocess(im)
    return out


def random_affine(rng: np.random.Generator, in_size: int = 48, out_size: int = SIZE, rot_deg: float = 15.0,
                  scale=(0.9, 1.12), shift: float = 0.08, flip: bool = True) -> np.ndarray:
    """2x3 float64 matrix mapping input pixel coordinates to output pixel coordinates (the
    cv2.warpAffine convention): random horizontal flip, rotation in [-rot_deg, rot_deg] degrees, zoom in
    ``scale`` and translation up to ``shift`` x output size, about the image centre."""
    c_in = (in_size - 1) / 2.0
    c_out = (out_size - 1) / 2.0
    a = math.radians(rng.uniform(-rot_deg, rot_deg))
    s = rng.uniform(*scale) * out_size / in_size
    fx = -1.0 if (flip and rng.random() < 0.5) else 1.0
    tx, ty = rng.uniform(-shift, shift, 2) * out_size
    ca, sa = math.cos(a) * s, math.sin(a) * s
    # p_out = R*S*F*(p_in - c_in) + c_out + t
    lin = np.array([[ca * fx, -sa], [sa * fx, ca]])
    t = np.array([c_out + tx, c_out + ty]) - lin @ np.array([c_in, c_in])
    return np.hstack([lin, t[:, None]])


def augment_batch(images: np.ndarray, rng: np.random.Generator, erase_p: float = 0.25) -> np.ndarray:
    """float32 [N,1,SIZE,SIZE]: random affine through the kernel, then contrast/brightness jitter
    (x*a + b with a in [0.75,1.25], b in [-0.3,0.3] in normalised units) and random erasing."""
    n = len(images)
    out = np.empty((n, 1, SIZE, SIZE), np.float32)
    for i in range(n):
        out[i] = preprocess(images[i], affine=random_affine(rng))
    a = rng.uniform(0.75, 1.25, (n, 1, 1, 1)).astype(np.float32)
    b = rng.uniform(-0.3, 0.3, (n, 1, 1, 1)).astype(np.float32)
    out = out * a + b
    for i in np.nonzero(rng.random(n) < erase_p)[0]:
        h, w = rng.integers(8, 20, 2)
        y, x = rng.integers(0, SIZE - h), rng.integers(0, SIZE - w)
        out[i, :, y:y + h, x:x + w] = rng.normal(0, 1, (1, h, w))
    return out


def time_preprocess(images: np.ndarray) -> float:
    """Seconds per image of augment_batch (for the progress log)."""
    t = time.perf_counter()
    augment_batch(images, np.random.default_rng(0))
    return (time.perf_counter() - t) / max(len(images), 1)


if __name__ == "__main__":
    import sys
    if len(sys.argv) != 4 or sys.argv[1] != "pack":
        raise SystemExit("usage: python export/face_data.py pack IN.npz OUT.npz")
    pack_split(sys.argv[2], sys.argv[3])
