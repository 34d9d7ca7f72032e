"""BlazeFace face detection: letterbox pre-processing (native frame kernel), ONNX inference, anchor
decoding + MediaPipe weighted NMS (C++ in emoedge._native, numba fallback), frame-pixel output.

    det = FaceDetector(DetectorOptions(min_score=0.5, max_faces=4))
    rows = det.detect_array(frame_bgr)     # float32 [K, 17]: x, y, w, h, score, 6 keypoints (x, y)
    faces = det.detect(frame_bgr)          # list[Detection]

Keypoints (pixels, frame coordinates): right eye, left eye, nose tip, mouth centre, right ear
tragion, left ear tragion ("right" = the subject's right, i.e. the eye on the image's left).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import List, Optional

import numpy as np

from ._native_loader import get_native
from .errors import InvalidInputError

__all__ = ["DetectorOptions", "Detection", "FaceDetector", "blazeface_anchors", "decode", "letterbox_transform",
           "check_frame", "KEYPOINT_NAMES", "ROW_SIZE"]

KEYPOINT_NAMES = ("right_eye", "left_eye", "nose", "mouth", "right_ear", "left_ear")
ROW_SIZE = 5 + 2 * len(KEYPOINT_NAMES)
# Work bounds (the C++ kernel enforces the same): anchors per decode call / per anchor set, logit clip.
MAX_ANCHORS_DECODE = 1 << 14
MAX_ANCHORS = 1 << 16
MAX_SCORE_CLIP = 100.0


@dataclass
class DetectorOptions:
    """Face detector settings.

    model: manifest entry name (task ``face_detector``; default: the manifest default, blazeface-short).
    min_score: keep faces whose sigmoid score >= this (0..1; MediaPipe uses 0.5).
    nms_iou: weighted-NMS merge threshold (IoU > nms_iou merges; MediaPipe uses 0.3).
    max_faces: at most this many faces per frame, highest score first (0 = no limit).
    min_size: drop faces narrower than this (pixels, frame coordinates; 0 = keep all).
    """
    model: Optional[str] = None
    min_score: float = 0.5
    nms_iou: float = 0.3
    max_faces: int = 0
    min_size: float = 0.0

    def validate(self) -> "DetectorOptions":
        if not (0.0 <= float(self.min_score) <= 1.0):
            raise InvalidInputError(f"DetectorOptions.min_score={self.min_score!r} must be in [0, 1] (default 0.5)")
        if not (0.0 < float(self.nms_iou) <= 1.0):
            raise InvalidInputError(f"DetectorOptions.nms_iou={self.nms_iou!r} must be in (0, 1] (default 0.3)")
        if int(self.max_faces) != self.max_faces or self.max_faces < 0:
            raise InvalidInputError(f"DetectorOptions.max_faces={self.max_faces!r} must be an int >= 0 (0 = no limit)")
        if not (float(self.min_size) >= 0.0):
            raise InvalidInputError(f"DetectorOptions.min_size={self.min_size!r} must be >= 0 pixels")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DetectorOptions":
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise InvalidInputError(f"unknown DetectorOptions fields {sorted(unknown)}; valid: {sorted(cls.__dataclass_fields__)}")
        return cls(**d).validate()


@dataclass
class Detection:
    """One detected face. box: (x, y, w, h) pixels, frame coordinates (top-left corner, size);
    score: detector confidence in (0, 1]; keypoints: float32 [6, 2] pixels (KEYPOINT_NAMES order)."""
    box: tuple
    score: float
    keypoints: np.ndarray = field(repr=False)

    @classmethod
    def from_row(cls, row: np.ndarray) -> "Detection":
        return cls(box=tuple(float(v) for v in row[:4]), score=float(row[4]),
                   keypoints=np.asarray(row[5:ROW_SIZE], np.float32).reshape(len(KEYPOINT_NAMES), 2))


def check_frame(frame, name: str = "frame") -> np.ndarray:
    """Validate a camera frame: uint8 [H, W, 3] BGR (or [H, W] gray, expanded to 3 channels)."""
    if not isinstance(frame, np.ndarray):
        raise InvalidInputError(f"{name} must be a numpy array (uint8 [H, W, 3] BGR), got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise InvalidInputError(f"{name} must be uint8 [H, W, 3] BGR, got dtype {frame.dtype}; convert with "
                                "np.clip(x, 0, 255).astype(np.uint8) (floats in 0..1: multiply by 255 first)")
    if frame.ndim == 2:
        frame = np.repeat(frame[:, :, None], 3, axis=2)
    if frame.ndim != 3 or frame.shape[2] not in (3, 4):
        raise InvalidInputError(f"{name} must have shape [H, W, 3] (BGR) or [H, W] (gray), got {frame.shape}; "
                                "for RGB input reverse the channels (frame[..., ::-1])")
    if frame.shape[2] == 4:
        frame = frame[:, :, :3]
    if frame.shape[0] < 8 or frame.shape[1] < 8:
        raise InvalidInputError(f"{name} is too small ({frame.shape[1]}x{frame.shape[0]} pixels); need at least 8x8")
    return frame


# ---------------------------------------------------------------- anchors and decoding

def blazeface_anchors(input_size: int = 128, strides=(8, 16), per_cell=(2, 6)) -> np.ndarray:
    """Anchor centres float32 [N, 2] (x, y in [0, 1]), in the order BlazeFace's outputs use."""
    total = sum((-(-int(input_size) // max(1, int(s)))) ** 2 * int(k) for s, k in zip(strides, per_cell))
    if total > MAX_ANCHORS:
        raise InvalidInputError(f"these anchor settings give {total} anchors, above the limit of {MAX_ANCHORS} "
                                "(BlazeFace uses 896 or 2304): raise the strides or lower per_cell")
    rows = []
    for s, k in zip(strides, per_cell):
        g = -(-int(input_size) // int(s))
        c = (np.arange(g, dtype=np.float32) + 0.5) / g
        yy, xx = np.meshgrid(c, c, indexing="ij")
        a = np.stack([xx.ravel(), yy.ravel()], 1)
        rows.append(np.repeat(a, k, axis=0))
    return np.ascontiguousarray(np.concatenate(rows).astype(np.float32))


def _numba_decode():
    import numba

    @numba.njit(cache=True, nogil=True)
    def iou(a, b):
        if a[2] <= 0 or a[3] <= 0 or b[2] <= 0 or b[3] <= 0:
            return np.float32(0.0)
        ix = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
        iy = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
        if ix <= 0 or iy <= 0:
            return np.float32(0.0)
        inter = ix * iy
        return np.float32(inter / (a[2] * a[3] + b[2] * b[3] - inter))

    @numba.njit(cache=True, nogil=True)
    def dec(reg, scores, anchors, min_score, nms_iou, max_faces, box_scale, sx, sy, tx, ty, clip):
        n = reg.shape[0]
        rows = np.empty((n, 17), np.float32)
        m = 0
        inv = 1.0 / box_scale
        for i in range(n):
            s = np.float64(scores[i])
            if np.isnan(s):
                continue
            s = min(max(s, -clip), clip)
            s = 1.0 / (1.0 + np.exp(-s))
            if s < min_score:
                continue
            ax = np.float64(anchors[i, 0])
            ay = np.float64(anchors[i, 1])
            cx = ax + reg[i, 0] * inv
            cy = ay + reg[i, 1] * inv
            w = reg[i, 2] * inv
            h = reg[i, 3] * inv
            r = rows[m]
            r[0] = np.float32(sx * (cx - 0.5 * w) + tx)
            r[1] = np.float32(sy * (cy - 0.5 * h) + ty)
            r[2] = np.float32(sx * w)
            r[3] = np.float32(sy * h)
            r[4] = np.float32(s)
            for k in range(6):
                r[5 + 2 * k] = np.float32(sx * (ax + reg[i, 4 + 2 * k] * inv) + tx)
                r[6 + 2 * k] = np.float32(sy * (ay + reg[i, 5 + 2 * k] * inv) + ty)
            ok = r[2] > 0 and r[3] > 0
            for j in range(17):
                if not np.isfinite(r[j]):
                    ok = False
            if ok:
                m += 1
        cand = rows[:m]
        order = np.argsort(-cand[:, 4], kind="mergesort")
        out = np.empty((m, 17), np.float32)
        k_out = 0
        alive = np.ones(m, np.bool_)
        acc = np.zeros(17, np.float64)
        for oi in range(m):
            t = order[oi]
            if not alive[t]:
                continue
            acc[:] = 0.0
            wsum = 0.0
            for oj in range(oi, m):
                j = order[oj]
                if not alive[j]:
                    continue
                if j == t or iou(cand[t], cand[j]) > nms_iou:
                    sc = np.float64(cand[j, 4])
                    for q in range(17):
                        acc[q] += sc * cand[j, q]
                    wsum += sc
                    alive[j] = False
            for q in range(17):
                # all merged scores underflowed to 0: keep the top candidate as it is
                out[k_out, q] = np.float32(acc[q] / wsum) if wsum > 0.0 else cand[t, q]
            out[k_out, 4] = cand[t, 4]
            k_out += 1
            if max_faces > 0 and k_out >= max_faces:
                break
        return out[:k_out].copy()

    return dec


_numba_cache: dict = {}


_OPTIONS_CACHE: dict = {}


def _native_options(nat, min_score: float, nms_iou: float, max_faces: int, box_scale: float, transform: tuple,
                    score_clip: float):
    """emoedge._native.DecodeOptions for these values, memoized (a stream repeats one set per frame size)."""
    key = (min_score, nms_iou, max_faces, box_scale, transform, score_clip)
    o = _OPTIONS_CACHE.get(key)
    if o is None:
        o = nat.DecodeOptions.from_dict({"min_score": min_score, "nms_iou": nms_iou, "max_faces": max_faces,
                                         "box_scale": box_scale, "transform": transform, "score_clip": score_clip})
        if len(_OPTIONS_CACHE) < 256:
            _OPTIONS_CACHE[key] = o
    return o


def decode(regressors, scores, anchors, *, min_score: float = 0.5, nms_iou: float = 0.3, max_faces: int = 0,
           box_scale: float = 128.0, transform=(1.0, 1.0, 0.0, 0.0), score_clip: float = 100.0,
           backend: Optional[str] = None) -> np.ndarray:
    """Decode BlazeFace outputs -> float32 [K, 17] rows (x, y, w, h, score, 6 keypoints x/y), best first.

    regressors: float32 [N, 16] or [1, N, 16]; scores: raw logits [N], [N, 1] or [1, N, 1];
    anchors: float32 [N, 2]; transform (sx, sy, tx, ty): model-input normalised coords -> frame pixels
    (x = sx*u + tx). backend: None (native when built, else numba), 'native' or 'numba'.
    """
    try:
        clip = float(score_clip)
    except (TypeError, ValueError):
        raise InvalidInputError(f"score_clip={score_clip!r} must be a number in (0, {MAX_SCORE_CLIP:g}]") from None
    if not 0.0 < clip <= MAX_SCORE_CLIP:
        raise InvalidInputError(f"score_clip={score_clip!r} must be in (0, {MAX_SCORE_CLIP:g}] (logits beyond it "
                                "saturate the sigmoid; larger clips made min_score=0 return NaN rows)")
    nat = get_native() if backend in (None, "native") else None
    if backend == "native" and nat is None:
        raise InvalidInputError("backend='native' requested but emoedge._native is not available; build it or use backend=None")
    if nat is not None:
        return nat.blazeface_decode(regressors, scores, anchors,
                                    _native_options(nat, float(min_score), float(nms_iou), int(max_faces),
                                                    float(box_scale), tuple(float(v) for v in transform),
                                                    float(score_clip)))
    reg = np.asarray(regressors)
    if reg.dtype != np.float32 or np.asarray(scores).dtype != np.float32 or np.asarray(anchors).dtype != np.float32:
        raise InvalidInputError("regressors, scores and anchors must be float32")
    if reg.ndim == 3:
        if reg.shape[0] != 1:
            raise InvalidInputError("regressors batch must be 1 (decode one frame at a time)")
        reg = reg[0]
    if reg.ndim != 2 or reg.shape[1] < 16:
        raise InvalidInputError(f"regressors must have shape [N, 16] or [1, N, 16], got {np.shape(regressors)}")
    sc = np.ascontiguousarray(scores).reshape(-1)
    an = np.ascontiguousarray(anchors)
    if sc.size != reg.shape[0] or an.shape != (reg.shape[0], 2):
        raise InvalidInputError(f"scores ({sc.size}) and anchors {an.shape} must match the {reg.shape[0]} regressor rows")
    if reg.shape[0] > MAX_ANCHORS_DECODE:
        raise InvalidInputError(f"n_anchors={reg.shape[0]} is above the limit of {MAX_ANCHORS_DECODE} per call "
                                "(BlazeFace has 896 or 2304): decode one frame's outputs at a time")
    if not (0 <= min_score <= 1) or not (0 < nms_iou <= 1) or max_faces < 0 or not (0 < box_scale < math.inf):
        raise InvalidInputError("min_score in [0, 1], nms_iou in (0, 1], max_faces >= 0, box_scale > 0 required")
    sx, sy, tx, ty = (float(v) for v in transform)
    if not (np.isfinite([sx, sy, tx, ty]).all() and sx > 0 and sy > 0):
        raise InvalidInputError("transform (sx, sy, tx, ty) must be finite with sx, sy > 0")
    if "dec" not in _numba_cache:
        _numba_cache["dec"] = _numba_decode()
    return _numba_cache["dec"](np.ascontiguousarray(reg), sc, an, float(min_score), float(nms_iou), int(max_faces),
                               float(box_scale), sx, sy, tx, ty, float(score_clip))


def letterbox_transform(frame_w: int, frame_h: int, size: int) -> tuple:
    """Placement of a frame_w x frame_h frame letterboxed into size x size (the frame kernel's rule:
    s = min(S/W, S/H), inner w = clamp(floor(W*s + 0.5), 1, S), x0 = (S - w) // 2) as the
    (sx, sy, tx, ty) map from normalised model-input coordinates to frame pixels."""
    s = min(size / frame_w, size / frame_h)
    w = min(max(int(np.floor(frame_w * s + 0.5)), 1), size)
    h = min(max(int(np.floor(frame_h * s + 0.5)), 1), size)
    x0, y0 = (size - w) // 2, (size - h) // 2
    kx, ky = frame_w / w, frame_h / h
    return (size * kx, size * ky, -x0 * kx, -y0 * ky)


# ---------------------------------------------------------------- detector

class FaceDetector:
    """BlazeFace detector over one shared onnxruntime session (thread-safe; no per-stream state).

    manifest: an emoedge.manifest.Manifest (default: the bundled one); session_options:
    emoedge.session.SessionOptions. Missing/corrupt model files raise ModelError naming the file.
    """

    def __init__(self, options: Optional[DetectorOptions] = None, *, manifest=None, session_options=None, session=None):
        from . import manifest as mf
        from .session import SessionOptions, make_session
        self.options = (options or DetectorOptions()).validate()
        self.manifest = manifest if manifest is not None else mf.load_manifest()
        self.name = self.manifest.find("face_detector", name=self.options.model)
        self.entry = self.manifest.entry(self.name)
        path = self.manifest.model_path(self.name)
        self.session = session if session is not None else make_session(path, session_options or SessionOptions())
        e = self.entry
        self.size = int(e["input"]["shape"][-1])
        self.input_name = e["input"]["name"]
        self.outputs = [e["outputs"]["regressors"], e["outputs"]["scores"]]
        a = e.get("anchors", {"strides": [8, 16], "per_cell": [2, 6]})
        nat = get_native()
        if nat is not None:
            self.anchors = nat.blazeface_anchors(self.size, list(a["strides"]), list(a["per_cell"]))
        else:
            self.anchors = blazeface_anchors(self.size, a["strides"], a["per_cell"])
        self.box_scale = float(e.get("decode", {}).get("box_scale", self.size))

    def preprocess(self, frame: np.ndarray, roi=None):
        """BGR uint8 frame -> (float32 [1, 3, S, S] RGB in [-1, 1], letterboxed; (sx, sy, tx, ty) mapping
        normalised model-input coordinates to frame pixels). roi: (x, y, w, h) pixels, a region of the
        frame to use instead of the whole frame (parts outside the frame read black, like the letterbox)."""
        from . import kernels
        x, tr = kernels.preprocess(frame, size=(self.size, self.size), box=roi, letterbox=True, color="swap_rb",
                                   mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), layout="nchw", return_transform=True)
        (a, _, c), (_, e, f) = tr.matrix  # frame pixel -> model-input pixel: out = a*x + c, out_y = e*y + f
        return x.reshape(1, 3, self.size, self.size), (self.size / a, self.size / e, -c / a, -f / e)

    def detect_array(self, frame: np.ndarray, timing: Optional[dict] = None, *, checked: bool = False,
                     roi: Optional[tuple] = None) -> np.ndarray:
        """float32 [K, 17] rows (x, y, w, h, score, keypoints) in frame pixels, best first.
        ``timing``: optional dict that receives ms per stage (preprocess_ms, infer_ms, decode_ms).
        ``checked``: the caller already passed the frame through :func:`check_frame` (not checked again).
        ``roi``: (x, y, w, h) pixels: detect only in this region (resampled to the detector input)."""
        if not checked:
            frame = check_frame(frame)
        o = self.options
        t0 = time.perf_counter_ns()
        x, tr = self.preprocess(frame, roi)
        t1 = time.perf_counter_ns()
        reg, sc = self.session.run(self.outputs, {self.input_name: x})
        t2 = time.perf_counter_ns()
        rows = decode(reg, sc, self.anchors, min_score=o.min_score, nms_iou=o.nms_iou, max_faces=0 if o.min_size else o.max_faces,
                      box_scale=self.box_scale, transform=tr)
        if o.min_size:
            rows = rows[rows[:, 2] >= o.min_size]
            if o.max_faces:
                rows = rows[: o.max_faces]
        t3 = time.perf_counter_ns()
        if timing is not None:
            timing.update(preprocess_ms=(t1 - t0) / 1e6, infer_ms=(t2 - t1) / 1e6, decode_ms=(t3 - t2) / 1e6)
        return rows

    def detect(self, frame: np.ndarray) -> List[Detection]:
        """Detected faces, best first (see Detection)."""
        return [Detection.from_row(r) for r in self.detect_array(frame)]
