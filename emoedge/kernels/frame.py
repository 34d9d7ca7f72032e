"""Frame preprocessing: one fused pass from a uint8 camera frame to a normalized float32 model input.

``preprocess(image, size, box=..., affine=..., ...)`` crops (axis-aligned box, clipped, with a
constant or replicate border where it leaves the frame) or warps (2x3 affine) a region, resizes it
(bilinear or area, with optional letterbox), converts colour (keep / swap R-B / gray), normalizes
and writes float32 NCHW or NHWC, optionally into a caller-provided array. ``preprocess_batch`` does
many regions of one frame in one call. Results match OpenCV's ``cv2.resize`` / ``cv2.warpAffine`` /
``cv2.cvtColor`` followed by numpy normalization to within 1 grey level (see tests/test_frame.py).

Conventions
-----------
* ``image``: uint8 ndarray HxW (gray), HxWx3 (BGR by default, ``input_order="rgb"`` for RGB) or
  HxWx4 (alpha is dropped); any strides, so a slice of a bigger frame is used without a copy.
* ``size``: output ``(width, height)`` in pixels.
* ``box``: ``(x, y, w, h)`` in frame pixels; the region is resized exactly like
  ``cv2.resize(frame[y:y+h, x:x+w], size)`` (fractional boxes are sampled sub-pixel with bilinear;
  ``interpolation="area"`` rounds the box to whole pixels). Parts outside the frame read
  ``border_value`` (``border="constant"``) or the nearest edge pixel (``border="replicate"``).
* ``affine``: 2x3 matrix. By default it is the *forward* matrix (frame -> output pixel), exactly
  what ``cv2.warpAffine(image, affine, size)`` takes and what ``cv2.estimateAffinePartial2D(landmarks,
  template)`` returns. With ``affine_inverse=True`` it maps output -> frame
  (``cv2.WARP_INVERSE_MAP``). Bilinear only, sampled at the exact source coordinate (as OpenCV 5; OpenCV 4 rounds it to 1/32 pixel).
* Normalization: ``out = (pixel / 255 - mean[c]) / std[c]`` per output channel (in output channel
  order, i.e. after ``swap_rb``), or ``out = pixel * scale[c] + offset[c]`` when ``scale`` is given
  (e.g. ``scale=1/127.5, offset=-1`` for [-1, 1]). ``mean``/``std``/``scale``/``offset`` take a scalar or
  one value per output channel.
* ``letterbox=True`` keeps the aspect ratio: the region is resized into the centred rectangle
  ``w' = round(w * s), h' = round(h * s), s = min(W / w, H / h)`` and the rest is ``pad_value``.
  ``return_transform=True`` returns ``(array, FrameTransform)`` so detections map back to the frame.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from .._native_loader import get_native
from ..errors import InvalidInputError, InvalidTypeError

__all__ = ["preprocess", "preprocess_batch", "FrameTransform"]

_INTERP = {"linear": 0, "area": 1}
_COLOR = {"keep": 0, "swap_rb": 1, "gray": 2}
_BORDER = {"constant": 0, "replicate": 1}
_LAYOUTS = ("nchw", "nhwc")
_MAX_COORD = float(1 << 20)
_MAX_SIDE = 1 << 15
# Work bounds per call (the C++ kernel enforces the same): regions, output values, |scale| and |offset|.
_MAX_REGIONS = 4096
_MAX_OUTPUT_VALUES = 1 << 28
_MAX_SCALE = 1e6


@dataclass(frozen=True)
class FrameTransform:
    """Where a region of the frame went in the model input.

    ``matrix`` (2x3, row-major tuple) maps frame coordinates to output coordinates:
    ``out = M @ [x, y, 1]``. For boxes, coordinates are continuous pixel edges (pixel i spans
    [i, i+1)), so ``out_x = (x - box_x) * scale_x + pad_x``; box corners and detector boxes map
    exactly. For affine regions it is the forward warp matrix (pixel centres at integers, as
    cv2.warpAffine). ``scale`` = (scale_x, scale_y) output pixels per frame pixel, ``pad`` = the
    letterbox offset (pad_x, pad_y) in output pixels, ``box`` = the source box (x, y, w, h) or None.
    """

    matrix: Tuple[Tuple[float, float, float], Tuple[float, float, float]]
    scale: Tuple[float, float]
    pad: Tuple[float, float]
    box: Optional[Tuple[float, float, float, float]] = None

    def to_frame(self, points) -> np.ndarray:
        """Map output points [..., 2] (x, y) back to frame coordinates (float64, same shape)."""
        p = np.asarray(points, dtype=np.float64)
        if p.shape[-1:] != (2,):
            raise InvalidInputError(f"points must have shape [..., 2] (x, y), got {p.shape}")
        inv = _invert(np.asarray(self.matrix, dtype=np.float64))
        return p @ inv[:, :2].T + inv[:, 2]

    def boxes_to_frame(self, boxes) -> np.ndarray:
        """Map output boxes [N, 4] (x1, y1, x2, y2) back to frame boxes (x1, y1, x2, y2).

        Exact for the box/letterbox transform; for a rotating affine, the axis-aligned bounds of
        the mapped corners."""
        b = np.asarray(boxes, dtype=np.float64)
        if b.ndim != 2 or b.shape[1] != 4:
            raise InvalidInputError(f"boxes must have shape [N, 4] (x1, y1, x2, y2), got {b.shape}")
        corners = np.stack([b[:, [0, 1]], b[:, [2, 1]], b[:, [0, 3]], b[:, [2, 3]]], axis=1)
        f = self.to_frame(corners)
        return np.concatenate([f.min(axis=1), f.max(axis=1)], axis=1)


def _invert(m: np.ndarray) -> np.ndarray:
    """Invert a 2x3 affine like cv2.invertAffineTransform (float64)."""
    d = m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0]
    if d == 0 or not math.isfinite(d):
        raise InvalidInputError("affine matrix is singular (its 2x2 part has determinant 0); pass an invertible 2x3 matrix")
    d = 1.0 / d
    a11, a22 = m[1, 1] * d, m[0, 0] * d
    a12, a21 = -m[0, 1] * d, -m[1, 0] * d
    b1 = -a11 * m[0, 2] - a12 * m[1, 2]
    b2 = -a21 * m[0, 2] - a22 * m[1, 2]
    return np.array([[a11, a12, b1], [a21, a22, b2]], dtype=np.float64)


_NATIVE = [None]


def _invert_many(a: np.ndarray) -> np.ndarray:
    """Invert [N, 2, 3] affines at once (same formula as _invert / cv2.invertAffineTransform)."""
    d = a[:, 0, 0] * a[:, 1, 1] - a[:, 0, 1] * a[:, 1, 0]
    if not (np.all(d != 0) and np.all(np.isfinite(d))):
        raise InvalidInputError("affine matrix is singular (its 2x2 part has determinant 0); pass an invertible 2x3 matrix")
    d = 1.0 / d
    out = np.empty_like(a)
    out[:, 0, 0] = a[:, 1, 1] * d
    out[:, 1, 1] = a[:, 0, 0] * d
    out[:, 0, 1] = -a[:, 0, 1] * d
    out[:, 1, 0] = -a[:, 1, 0] * d
    out[:, 0, 2] = -out[:, 0, 0] * a[:, 0, 2] - out[:, 0, 1] * a[:, 1, 2]
    out[:, 1, 2] = -out[:, 1, 0] * a[:, 0, 2] - out[:, 1, 1] * a[:, 1, 2]
    return out


def _impl():
    mod = get_native()
    if mod is not None:
        _NATIVE[0] = mod
        return mod
    from . import _numba_frame  # lazy: numba is imported only when the fallback is used
    return _numba_frame


def _check_image(image) -> Tuple[int, int, int]:
    if not isinstance(image, np.ndarray):
        raise InvalidTypeError(f"image must be a numpy uint8 array (HxW, HxWx3 or HxWx4), got {type(image).__name__}; "
                        "wrap it with np.asarray(...)")
    if image.dtype != np.uint8:
        raise InvalidTypeError(f"image must be uint8, got dtype {image.dtype}; convert with np.clip(image, 0, 255).astype(np.uint8)")
    if image.ndim == 2:
        h, w = image.shape
        c = 1
    elif image.ndim == 3:
        h, w, c = image.shape
        if c not in (1, 3, 4):
            raise InvalidInputError(f"image has {c} channels (shape {image.shape}); expected 1, 3 (BGR/RGB) or 4 (BGRA/RGBA)")
    else:
        raise InvalidInputError(f"image must be HxW, HxWx3 or HxWx4, got shape {image.shape}")
    if h < 1 or w < 1:
        raise InvalidInputError(f"image is empty (shape {image.shape}); pass a frame with at least 1x1 pixels")
    return h, w, c


def _check_size(size, what="size") -> Tuple[int, int]:
    if type(size) is tuple and len(size) == 2 and type(size[0]) is int and type(size[1]) is int \
            and 1 <= size[0] <= _MAX_SIDE and 1 <= size[1] <= _MAX_SIDE:
        return size
    try:
        w, h = size
    except (TypeError, ValueError):
        raise InvalidTypeError(f"{what} must be (width, height) in pixels, got {size!r}") from None
    for v in (w, h):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            if isinstance(v, numbers.Real) and float(v).is_integer():
                continue
            raise InvalidTypeError(f"{what} must be two positive integers (width, height), got {size!r}")
    w, h = int(w), int(h)
    if not (1 <= w <= _MAX_SIDE and 1 <= h <= _MAX_SIDE):
        raise InvalidInputError(f"{what}={size!r} is out of range; width and height must be 1..{_MAX_SIDE} pixels")
    return w, h


def _choice(name, value, table):
    v = table.get(value) if isinstance(value, str) else None
    if v is None:
        raise InvalidInputError(f"{name}={value!r} is not supported; use one of {sorted(table)}")
    return v


def _per_channel(name, value, cout) -> list:
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        vals = [float(value)]
    else:
        try:
            vals = [float(v) for v in np.asarray(value, dtype=np.float64).ravel()]
        except (TypeError, ValueError):
            raise InvalidTypeError(f"{name} must be a number or a sequence of numbers, got {value!r}") from None
    if len(vals) == 1:
        vals = vals * cout
    if len(vals) != cout:
        raise InvalidInputError(f"{name} has {len(vals)} values but the output has {cout} channel(s); "
                         f"pass one value or {cout}")
    if not all(math.isfinite(v) for v in vals):
        raise InvalidInputError(f"{name}={value!r} contains NaN or Inf; pass finite numbers")
    return vals


def _normalization(mean, std, scale, offset, cout):
    if scale is not None or offset is not None:
        if mean is not None or std is not None:
            raise InvalidInputError("pass either mean/std or scale/offset, not both")
        s = _per_channel("scale", 1.0 if scale is None else scale, cout)
        o = _per_channel("offset", 0.0 if offset is None else offset, cout)
        if any(abs(v) > _MAX_SCALE for v in s + o):
            raise InvalidInputError(f"scale={scale!r}, offset={offset!r} are beyond +-{_MAX_SCALE:g}; outputs must stay finite "
                             "in float32 (pixel values are 0..255)")
        return s, o
    m = _per_channel("mean", 0.0 if mean is None else mean, cout)
    d = _per_channel("std", 1.0 if std is None else std, cout)
    if any(v == 0 for v in d):
        raise InvalidInputError(f"std={std!r} contains 0; standard deviations must be non-zero")
    s, o = [1.0 / (255.0 * sd) for sd in d], [-mu / sd for mu, sd in zip(m, d)]
    if any(abs(v) > _MAX_SCALE for v in s + o):
        raise InvalidInputError(f"mean={mean!r}, std={std!r} give a normalization beyond +-{_MAX_SCALE:g} "
                         "(out = (x/255 - mean) / std); std must not be tiny, mean/std not huge")
    return s, o


_NORM_CACHE: dict = {}


def _normalization_cached(mean, std, scale, offset, cout):
    """_normalization memoized for hashable arguments (tuples/numbers): the hot path repeats them."""
    try:
        key = (mean, std, scale, offset, cout)
        hit = _NORM_CACHE.get(key)
    except TypeError:  # unhashable (e.g. numpy arrays)
        return _normalization(mean, std, scale, offset, cout)
    if hit is None:
        hit = _normalization(mean, std, scale, offset, cout)
        if len(_NORM_CACHE) < 256:
            _NORM_CACHE[key] = hit
    return hit


_OPTIONS_CACHE: dict = {}
_INTERP_NAMES = {v: k for k, v in _INTERP.items()}
_COLOR_NAMES = {v: k for k, v in _COLOR.items()}
_BORDER_NAMES = {v: k for k, v in _BORDER.items()}


def _native_options(nat, interp: int, col: int, rgb: bool, brd: int, border_value: float, letterbox: bool,
                    pad_value: float, sc, of):
    """The (validated) arguments as one emoedge._native.FrameOptions, memoized: a stream repeats the same
    few option sets every frame."""
    key = (interp, col, rgb, brd, border_value, letterbox, pad_value, tuple(sc), tuple(of))
    o = _OPTIONS_CACHE.get(key)
    if o is None:
        o = nat.FrameOptions.from_dict({"interp": _INTERP_NAMES[interp], "color": _COLOR_NAMES[col], "input_rgb": rgb,
                                        "border": _BORDER_NAMES[brd], "border_value": border_value,
                                        "letterbox": letterbox, "pad_value": pad_value, "scale": list(sc),
                                        "offset": list(of)})
        if len(_OPTIONS_CACHE) < 256:
            _OPTIONS_CACHE[key] = o
    return o


def _as_boxes(boxes, full: bool) -> np.ndarray:
    """boxes -> C-contiguous float64 [N, 4]. ``full`` also checks values (the C++ kernel re-checks them)."""
    if not (type(boxes) is np.ndarray and boxes.dtype == np.float64 and boxes.ndim == 2 and boxes.shape[1] == 4
            and boxes.flags.c_contiguous):
        return _check_boxes(boxes, full)
    return _check_boxes(boxes) if full else boxes


def _check_boxes(boxes, full: bool = True) -> np.ndarray:
    try:
        b = np.asarray(boxes, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidTypeError(f"boxes must be numbers shaped [N, 4] (x, y, w, h), got {boxes!r}") from None
    if b.ndim == 1 and b.shape[0] == 4:
        b = b[None]
    if b.ndim == 1 and b.shape[0] == 0:
        b = b.reshape(0, 4)
    if b.ndim != 2 or b.shape[1] != 4:
        raise InvalidInputError(f"boxes must have shape [N, 4] (x, y, w, h), got {b.shape}")
    if not full:
        return np.ascontiguousarray(b)
    if not np.isfinite(b).all():
        raise InvalidInputError("boxes contain NaN or Inf; pass finite (x, y, w, h) pixel coordinates")
    if b.size and (np.abs(b).max() > _MAX_COORD):
        raise InvalidInputError(f"boxes have coordinates beyond +-{_MAX_COORD:g} pixels; check the box units (pixels, x, y, w, h)")
    if b.size and ((b[:, 2] <= 0).any() or (b[:, 3] <= 0).any()):
        i = int(np.flatnonzero((b[:, 2] <= 0) | (b[:, 3] <= 0))[0])
        raise InvalidInputError(f"box {i} = {tuple(float(v) for v in b[i])} has a non-positive width or height; "
                                "boxes are (x, y, w, h) with w, h > 0 "
                                "(convert x1, y1, x2, y2 boxes to x, y, x2 - x1, y2 - y1)")
    return np.ascontiguousarray(b)


def _check_affines(affines, inverse: bool) -> Tuple[np.ndarray, np.ndarray]:
    """Returns (forward [N, 2, 3], inverse rows [N, 6]) as float64."""
    try:
        a = np.asarray(affines, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidTypeError(f"affine must be a 2x3 matrix of numbers, got {affines!r}") from None
    if a.shape == (2, 3):
        a = a[None]
    if a.ndim != 3 or a.shape[1:] != (2, 3):
        raise InvalidInputError(f"affine must be a 2x3 matrix (or [N, 2, 3] for a batch), got shape {a.shape}")
    if not np.isfinite(a).all():
        raise InvalidInputError("affine matrix contains NaN or Inf; pass a finite 2x3 matrix")
    if a.size and np.abs(a).max() > _MAX_COORD:
        raise InvalidInputError(f"affine matrix has entries beyond +-{_MAX_COORD:g}; check its units (pixels)")
    other = _invert_many(a)
    fwd, inv = (other, a) if inverse else (a, other)
    if inv.size and np.abs(inv).max() > _MAX_COORD:
        raise InvalidInputError("affine matrix is nearly singular (its inverse has huge entries); pass a well-conditioned matrix")
    return fwd, np.ascontiguousarray(inv.reshape(-1, 6))


def _prepare_out(out, n, cout, w, h, layout, single):
    shape = (n, cout, h, w) if layout == "nchw" else (n, h, w, cout)
    if n > _MAX_REGIONS:
        raise InvalidInputError(f"{n} regions in one call is above the limit of {_MAX_REGIONS}; split the batch")
    if n * cout * h * w > _MAX_OUTPUT_VALUES:
        raise InvalidInputError(f"the output {shape} would hold {n * cout * h * w} values, above the limit of "
                         f"{_MAX_OUTPUT_VALUES} (1 GiB float32) per call; split the batch or use a smaller size")
    if out is None:
        arr = np.empty(shape, dtype=np.float32)
    else:
        if not isinstance(out, np.ndarray):
            raise InvalidTypeError(f"out must be a numpy float32 array, got {type(out).__name__}")
        if out.dtype != np.float32:
            raise InvalidTypeError(f"out must be float32, got {out.dtype}; allocate it with np.empty({shape}, np.float32)")
        arr = out
        if single and out.shape == shape[1:]:
            arr = out[None]
        if arr.shape != shape:
            raise InvalidInputError(f"out has shape {out.shape} but this call produces {shape} ({layout}); "
                             f"allocate np.empty({shape}, np.float32)")
        if not out.flags.writeable:
            raise InvalidInputError("out is read-only; pass a writeable array")
        if any(s % 4 for s in arr.strides) or not out.flags.aligned:
            raise InvalidInputError("out is not aligned to 4 bytes (strides or data pointer, e.g. a view at an odd byte "
                             "offset); pass an aligned float32 array (e.g. np.empty)")
    view = arr if layout == "nchw" else arr.transpose(0, 3, 1, 2)
    return arr, view


def _box_transform(impl, box, w, h, letterbox, area) -> FrameTransform:
    bx, by, bw, bh = (float(v) for v in box)
    if area:
        bx, by = math.floor(bx + 0.5), math.floor(by + 0.5)
        bw, bh = max(1.0, math.floor(bw + 0.5)), max(1.0, math.floor(bh + 0.5))
    rx, ry, rw, rh = impl.frame_inner_rect(bw, bh, w, h, bool(letterbox))
    sx, sy = rw / bw, rh / bh
    m = ((sx, 0.0, rx - bx * sx), (0.0, sy, ry - by * sy))
    return FrameTransform(matrix=m, scale=(sx, sy), pad=(float(rx), float(ry)), box=(bx, by, bw, bh))


def _run(image, boxes, affines, size, *, interpolation, color, mean, std, scale, offset, layout, out, input_order,
         border, border_value, letterbox, pad_value, affine_inverse, return_transform, single):
    h0, w0, cin = _check_image(image)
    interp = _choice("interpolation", interpolation, _INTERP)
    col = _choice("color", color, _COLOR)
    brd = _choice("border", border, _BORDER)
    if layout not in _LAYOUTS:
        raise InvalidInputError(f"layout={layout!r} is not supported; use 'nchw' or 'nhwc'")
    if input_order not in ("bgr", "rgb"):
        raise InvalidInputError(f"input_order={input_order!r} is not supported; use 'bgr' (OpenCV) or 'rgb'")
    if cin == 1 and col == 1:
        raise InvalidInputError("color='swap_rb' needs a 3- or 4-channel image, got a 1-channel image; use color='keep' or 'gray'")
    cout = 1 if (cin == 1 or col == 2) else 3
    sc, of = _normalization_cached(mean, std, scale, offset, cout)
    for name, v in (("border_value", border_value), ("pad_value", pad_value)):
        if (type(v) is not int and not isinstance(v, numbers.Real)) or not math.isfinite(float(v)):
            raise InvalidInputError(f"{name}={v!r} must be a finite number (pixel value on the 0..255 scale)")
    for name, v in (("border_value", border_value), ("pad_value", pad_value)):
        if not 0 <= v <= 255:
            raise InvalidInputError(f"{name}={v!r} must be a pixel value in 0..255")
    impl = _impl()
    if affines is not None:
        if boxes is not None:
            raise InvalidInputError("pass either box(es) or affine, not both (fold the box offset into the affine matrix)")
        if interp != 0:
            raise InvalidInputError("interpolation='area' is not supported with affine (cv2.warpAffine has no area mode); use 'linear'")
        if letterbox:
            raise InvalidInputError("letterbox applies to boxes, not to affine warps; fold the scaling into the affine matrix")
        if size is None:
            raise InvalidInputError("size=(width, height) is required with affine")
        w, h = _check_size(size)
        fwd, inv = _check_affines(affines, bool(affine_inverse))
        n = inv.shape[0]
        arr, view = _prepare_out(out, n, cout, w, h, layout, single)
        if n:
            if impl is _NATIVE[0]:
                impl.frame_affine(image, inv, view, _native_options(impl, 0, col, input_order == "rgb", brd,
                                                                    float(border_value), False, 0.0, sc, of))
            else:
                impl.frame_affine(image, inv, view, col, input_order == "rgb", brd, float(border_value), sc, of)
        transforms = None
        if return_transform:
            transforms = [FrameTransform(matrix=tuple(tuple(float(v) for v in row) for row in m),
                                         scale=(float(math.hypot(m[0, 0], m[1, 0])), float(math.hypot(m[0, 1], m[1, 1]))),
                                         pad=(0.0, 0.0), box=None) for m in fwd]
    else:
        if boxes is None:
            b = np.array([[0.0, 0.0, float(w0), float(h0)]])
        else:
            b = _as_boxes(boxes, impl is not _NATIVE[0])
        if size is None:
            if b.shape[0] != 1:
                raise InvalidInputError("size=(width, height) is required for a batch of boxes")
            b = _check_boxes(b)  # the size comes from the box: it must be finite and positive first
            size = (max(1, int(math.floor(b[0, 2] + 0.5))), max(1, int(math.floor(b[0, 3] + 0.5))))
        w, h = _check_size(size)
        n = b.shape[0]
        arr, view = _prepare_out(out, n, cout, w, h, layout, single)
        if n:
            if impl is _NATIVE[0]:
                impl.frame_boxes(image, b, view, _native_options(impl, interp, col, input_order == "rgb", brd,
                                                                 float(border_value), bool(letterbox), float(pad_value),
                                                                 sc, of))
            else:
                impl.frame_boxes(image, b, view, interp, col, input_order == "rgb", brd, float(border_value),
                                 bool(letterbox), float(pad_value), sc, of)
        transforms = [_box_transform(impl, bb, w, h, letterbox, interp == 1) for bb in b] if return_transform else None
    if out is not None:
        arr = out
    if return_transform:
        return arr, (transforms[0] if single else transforms)
    return arr


def preprocess(image: np.ndarray, size: Optional[Tuple[int, int]] = None, box=None, affine=None, *,
               interpolation: str = "linear", color: str = "keep", mean=None, std=None, scale=None, offset=None,
               layout: str = "nchw", out: Optional[np.ndarray] = None, input_order: str = "bgr",
               border: str = "constant", border_value: float = 0.0, letterbox: bool = False,
               pad_value: float = 0.0, affine_inverse: bool = False, return_transform: bool = False):
    """Crop/warp, resize, colour-convert and normalize one region of ``image`` into a model input.

    Args:
        image: uint8 HxW, HxWx3 (BGR unless ``input_order="rgb"``) or HxWx4; any strides.
        size: output (width, height) in pixels; default: the box size (or the frame size).
        box: (x, y, w, h) in frame pixels, or None for the whole frame.
        affine: 2x3 forward matrix frame -> output (cv2.warpAffine's), or output -> frame when
            ``affine_inverse=True``. Exclusive with ``box``.
        interpolation: "linear" (cv2.INTER_LINEAR) or "area" (cv2.INTER_AREA; boxes only).
        color: "keep", "swap_rb" (BGR<->RGB) or "gray" (BT.601 luma, as cv2.cvtColor).
        mean, std: per output channel (or scalar), on the 0..1 scale: out = (x/255 - mean) / std.
            Default mean 0, std 1 (out = x / 255).
        scale, offset: alternative to mean/std: out = x * scale + offset (x on the 0..255 scale).
        layout: "nchw" -> [1, C, H, W] or "nhwc" -> [1, H, W, C].
        out: optional float32 array of that shape (or without the leading 1) written in place.
        border, border_value: how pixels outside the frame read ("constant" value 0..255, or "replicate").
        letterbox, pad_value: keep the aspect ratio and pad with ``pad_value`` (0..255 scale).
        return_transform: also return the ``FrameTransform`` mapping frame -> output coordinates.

    Returns:
        float32 array [1, C, H, W] (or [1, H, W, C]); C = 1 for gray, else 3. With
        ``return_transform``: ``(array, FrameTransform)``.
    """
    if affine is not None and np.shape(affine) != (2, 3):
        raise InvalidInputError(f"affine must be one 2x3 matrix, got shape {np.shape(affine)}; "
                         "use preprocess_batch(image, size=..., affines=[N, 2, 3]) for many")
    return _run(image, None if box is None else [box], affine, size, interpolation=interpolation, color=color,
                mean=mean, std=std, scale=scale, offset=offset, layout=layout, out=out, input_order=input_order,
                border=border, border_value=border_value, letterbox=letterbox, pad_value=pad_value,
                affine_inverse=affine_inverse, return_transform=return_transform, single=True)


def preprocess_batch(image: np.ndarray, boxes=None, size: Optional[Tuple[int, int]] = None, *, affines=None,
                     interpolation: str = "linear", color: str = "keep", mean=None, std=None, scale=None,
                     offset=None, layout: str = "nchw", out: Optional[np.ndarray] = None,
                     input_order: str = "bgr", border: str = "constant", border_value: float = 0.0,
                     letterbox: bool = False, pad_value: float = 0.0, affine_inverse: bool = False,
                     return_transform: bool = False):
    """Many regions of one frame in one call: boxes [N, 4] (x, y, w, h) or ``affines`` [N, 2, 3].

    Same options as :func:`preprocess`; ``size`` is required. Returns float32 [N, C, H, W]
    (or [N, H, W, C]); with ``return_transform``: ``(array, [FrameTransform] * N)``.
    """
    if size is None:
        raise InvalidInputError("size=(width, height) is required for preprocess_batch")
    if boxes is None and affines is None:
        raise InvalidInputError("pass boxes=[N, 4] (x, y, w, h) or affines=[N, 2, 3]")
    return _run(image, boxes, affines, size, interpolation=interpolation, color=color, mean=mean, std=std,
                scale=scale, offset=offset, layout=layout, out=out, input_order=input_order, border=border,
                border_value=border_value, letterbox=letterbox, pad_value=pad_value,
                affine_inverse=affine_inverse, return_transform=return_transform, single=False)
