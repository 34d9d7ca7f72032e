"""Seeded fuzzer for every native entry point (emoedge._native and the Python APIs over it) and the
stream API. Run by tests/test_fuzz.py in a subprocess, one target per process, so a crash (SIGSEGV,
abort) is caught and reported with the case that caused it instead of taking pytest down:

    python tests/fuzz_native.py --target logmel --cases 2000 --seed 0 --case-file /tmp/case.txt

Each case draws random arguments (mostly near the documented ranges, often just outside them, sometimes
absurd: huge sizes, NaN/Inf, wrong dtypes/shapes/types, strided or misaligned views, read-only outputs)
and calls the entry point with a per-call time limit (faulthandler kills the process and dumps the stack
when a call hangs). A call must either return or raise one of the documented error types (ValueError,
TypeError, MemoryError: emoedge's InvalidInputError family); a returned result must be finite (the
entry points validate their inputs, so a finite input in range must give a finite output) and have
the documented shape. The repr of the case being run is written to ``--case-file`` before each call.
Prints one JSON line: {"target", "cases", "ok", "rejected", "rejected_by_type", "failures"}; exits 1 on
a failure (an unexpected exception type or a non-finite/malformed result).
"""
from __future__ import annotations

import argparse
import faulthandler
import json
import math
import os
import sys
import time
import traceback

import numpy as np

ALLOWED = (ValueError, TypeError, MemoryError)


class Failure(Exception):
    """A result that breaks the contract (not an input rejection)."""


def _pick(rng, items, p=None):
    return items[int(rng.choice(len(items), p=p))]


def _odd_float(rng):
    return _pick(rng, [np.nan, np.inf, -np.inf, 1e30, -1e30, 1e38, 3.4e38, 1e-30, 0.0, -0.0, 1e300, -1e300])


def _num(rng, lo, hi, p_odd=0.1, integer=False):
    """Mostly uniform in [lo, hi]; sometimes an odd float, a value outside, or a wrong type."""
    r = rng.random()
    if r < p_odd:
        return _odd_float(rng)
    if r < p_odd * 1.5:
        return _pick(rng, ["1", None, [1], b"2", True, complex(1, 1)])
    if r < p_odd * 2.5:
        v = lo - (hi - lo + 1) * rng.random() * 10 if rng.random() < 0.5 else hi + (hi - lo + 1) * rng.random() * 10
    else:
        v = lo + (hi - lo) * rng.random()
    return int(round(v)) if integer else float(v)


def _misaligned(arr: np.ndarray) -> np.ndarray:
    """A copy of arr whose data pointer is 1 byte off its dtype's alignment (aligned strides)."""
    raw = np.zeros(arr.nbytes + arr.itemsize + 1, np.uint8)
    out = np.frombuffer(raw.data, dtype=arr.dtype, count=arr.size, offset=1).reshape(arr.shape)
    out[...] = arr
    return out


def _view_variant(rng, arr: np.ndarray) -> np.ndarray:
    r = rng.random()
    if r < 0.6 or arr.size == 0:
        return arr
    if r < 0.7 and arr.itemsize > 1:
        return _misaligned(arr)
    if r < 0.8 and arr.ndim >= 1 and arr.shape[0] > 1:
        return arr[::-1]
    if r < 0.9 and arr.ndim >= 1:
        big = np.repeat(arr, 2, axis=0)
        return big[::2]
    ro = arr.copy()
    ro.flags.writeable = False
    return ro


def _finite(x, what):
    a = np.asarray(x)
    if a.dtype.kind in "fc" and not np.isfinite(a).all():
        raise Failure(f"{what} is not finite: {np.count_nonzero(~np.isfinite(a))} of {a.size} values")


# ---------------------------------------------------------------- targets

def _image(rng):
    r = rng.random()
    h, w = int(rng.integers(1, 48)), int(rng.integers(1, 48))
    if r < 0.03:
        h, w = int(rng.integers(0, 3)), int(rng.integers(0, 3))
    elif r < 0.08:
        h, w = int(rng.integers(1, 400)), int(rng.integers(1, 400))
    c = _pick(rng, [None, 1, 3, 4, 2, 5], p=[0.15, 0.1, 0.55, 0.16, 0.02, 0.02])
    shape = (h, w) if c is None else (h, w, c)
    dt = _pick(rng, [np.uint8, np.float32, np.int16, np.bool_], p=[0.97, 0.01, 0.01, 0.01])
    img = rng.integers(0, 256, size=shape).astype(dt)
    if rng.random() < 0.1:
        img[...] = 255 if dt == np.uint8 else img
    r = rng.random()
    if r < 0.1 and img.ndim >= 2 and img.shape[0] > 1:
        img = img[::-1]
    elif r < 0.2 and img.ndim >= 2:
        img = np.ascontiguousarray(np.swapaxes(img, 0, 1)).swapaxes(0, 1)  # column-major view
    elif r < 0.25:
        img = img[:, ::2] if img.ndim >= 2 and img.shape[1] > 1 else img
    return img


def _box(rng, numeric=False):
    r = rng.random()
    if numeric and r >= 0.85:
        return tuple(float(v) for v in _pick(rng, [(np.nan, 0, 1, 1), (0, 0, np.inf, 1), (0, 0, -1, 1), (0, 0, 0, 5),
                                                   (1e30, 0, 1, 1), (0, 0, 2.0**21, 1)]))
    if r < 0.6:
        return (float(rng.uniform(-20, 60)), float(rng.uniform(-20, 60)), float(rng.uniform(0.5, 80)), float(rng.uniform(0.5, 80)))
    if r < 0.75:  # huge but in the documented +-2^20 range
        return tuple(float(v) for v in rng.uniform(-2**20, 2**20, 2)) + tuple(float(v) for v in rng.uniform(1, 2**20, 2))
    if r < 0.85:
        return (0.0, 0.0, float(2**20), float(2**20))
    return tuple(_num(rng, -50, 50, p_odd=0.5) for _ in range(4))


def _size(rng):
    r = rng.random()
    if r < 0.85:
        return (int(rng.integers(1, 64)), int(rng.integers(1, 64)))
    if r < 0.9:
        return (int(rng.integers(1, 4)), int(rng.integers(1000, 32769)))  # thin but tall (area border walk)
    if r < 0.95:
        return None
    return _pick(rng, [(0, 5), (-1, 3), (40000, 2), (3.0, 4.0), (3.5, 2), "64x64", (1, 2, 3), (1 << 15, 1 << 15)])


def _norm_kwargs(rng):
    r = rng.random()
    if r < 0.4:
        return {}
    if r < 0.7:
        return {"mean": _pick(rng, [0.5, (0.485, 0.456, 0.406), _num(rng, -2, 2, p_odd=0.03)], p=[0.4, 0.2, 0.4]),
                "std": _pick(rng, [0.5, (0.229, 0.224, 0.225), _num(rng, 1e-3, 2, p_odd=0.03), 0.0, 1e-12],
                             p=[0.4, 0.2, 0.36, 0.02, 0.02])}
    return {"scale": _pick(rng, [1 / 127.5, 1.0, _num(rng, -10, 10, p_odd=0.03), 1e30, (1.0, 2.0)], p=[0.3, 0.3, 0.36, 0.02, 0.02]),
            "offset": _pick(rng, [-1.0, 0.0, _num(rng, -10, 10, p_odd=0.03), -1e30, np.nan], p=[0.3, 0.3, 0.36, 0.02, 0.02])}


def _frame_common(rng):
    kw = dict(interpolation=_pick(rng, ["linear", "area", "cubic"], p=[0.5, 0.49, 0.01]),
              color=_pick(rng, ["keep", "swap_rb", "gray", "hsv"], p=[0.4, 0.3, 0.29, 0.01]),
              layout=_pick(rng, ["nchw", "nhwc", "chw"], p=[0.6, 0.39, 0.01]),
              input_order=_pick(rng, ["bgr", "rgb"]),
              border=_pick(rng, ["constant", "replicate"]),
              border_value=_pick(rng, [0.0, 255.0, float(rng.uniform(0, 255)), _num(rng, 0, 255)], p=[0.4, 0.2, 0.35, 0.05]),
              letterbox=bool(rng.random() < 0.3),
              pad_value=_pick(rng, [0.0, 114.0, _num(rng, 0, 255)], p=[0.5, 0.45, 0.05]))
    kw.update(_norm_kwargs(rng))
    return kw


def _out_for(rng, shape):
    r = rng.random()
    if r < 0.7 or shape is None or min(shape) < 0 or np.prod(shape, dtype=np.float64) > 1 << 22:
        return None
    out = np.empty(shape, np.float32)
    if r < 0.78:
        return _misaligned(out)
    if r < 0.84:
        out.flags.writeable = False
        return out
    if r < 0.9:
        return np.empty(shape, np.float64)
    if r < 0.95:
        return np.empty(tuple(s + 1 for s in shape), np.float32)
    big = np.empty(shape[:-1] + (shape[-1] * 2,), np.float32)
    return big[..., ::2]


def _expected_shape(image, size, kw, n=1):
    if not isinstance(size, tuple) or len(size) != 2 or not all(isinstance(v, int) for v in size):
        return None
    cin = 1 if np.ndim(image) == 2 else np.shape(image)[2]
    cout = 1 if (cin == 1 or kw.get("color") == "gray") else 3
    w, h = size
    return (n, cout, h, w) if kw.get("layout") == "nchw" else (n, h, w, cout)


def case_frame(rng):
    from emoedge import kernels
    img = _image(rng)
    kw = _frame_common(rng)
    size = _size(rng)
    r = rng.random()
    if r < 0.75:
        box = None if rng.random() < 0.2 else _box(rng)
        kw["out"] = _out_for(rng, _expected_shape(img, size, kw))
        desc = dict(fn="preprocess", image=(img.shape, str(img.dtype), img.strides), size=size, box=box,
                    **{k: (v.shape, str(v.dtype), v.flags.aligned, v.flags.writeable) if isinstance(v, np.ndarray) else v
                       for k, v in kw.items()})
        return desc, lambda: _check_frame_out(kernels.preprocess(img, size, box, **kw), kw.get("out"))
    aff = np.array([[rng.uniform(-2, 2), rng.uniform(-2, 2), rng.uniform(-50, 50)],
                    [rng.uniform(-2, 2), rng.uniform(-2, 2), rng.uniform(-50, 50)]])
    if rng.random() < 0.15:
        aff[int(rng.integers(0, 2)), int(rng.integers(0, 3))] = _odd_float(rng)
    kw.pop("letterbox")
    kw["interpolation"] = "linear" if rng.random() < 0.9 else "area"
    kw["affine_inverse"] = bool(rng.random() < 0.5)
    desc = dict(fn="preprocess(affine)", image=(img.shape, str(img.dtype)), size=size, affine=aff.tolist(), **kw)
    return desc, lambda: _check_frame_out(kernels.preprocess(img, size, affine=aff, **kw), None)


def _check_frame_out(res, out):
    _finite(res, "preprocess output")
    if out is not None and res is not out:
        raise Failure("preprocess(out=...) did not return the given array")


def case_frame_batch(rng):
    from emoedge import kernels
    img = _image(rng)
    kw = _frame_common(rng)
    size = _size(rng) or (16, 16)
    n = _pick(rng, [0, 1, 2, 5, int(rng.integers(1, 16)), 5000], p=[0.05, 0.25, 0.25, 0.2, 0.24, 0.01])
    if rng.random() < 0.75:
        boxes = np.array([_box(rng, True) for _ in range(n)], np.float64).reshape(n, 4)
        boxes = _view_variant(rng, boxes) if rng.random() < 0.5 else boxes
        kw["out"] = _out_for(rng, _expected_shape(img, size, kw, n))
        desc = dict(fn="preprocess_batch", image=(img.shape, str(img.dtype)), size=size, n=n, boxes=boxes.tolist()[:3],
                    **{k: v for k, v in kw.items() if k != "out"})
        return desc, lambda: _check_frame_out(kernels.preprocess_batch(img, boxes, size, **kw), kw.get("out"))
    aff = np.zeros((n, 2, 3))
    aff[:, 0, 0] = rng.uniform(0.1, 3, n)
    aff[:, 1, 1] = rng.uniform(0.1, 3, n)
    aff[:, :, 2] = rng.uniform(-100, 100, (n, 2))
    aff[:, 0, 1] = rng.uniform(-1, 1, n)
    kw.pop("letterbox")
    kw["interpolation"] = "linear"
    aff = _view_variant(rng, aff)
    desc = dict(fn="preprocess_batch(affines)", image=(img.shape, str(img.dtype)), size=size, n=n, **kw)
    return desc, lambda: _check_frame_out(kernels.preprocess_batch(img, size=size, affines=aff, **kw), None)


def case_frame_native(rng):
    """emoedge._native.frame_boxes / frame_affine / frame_inner_rect called directly (no Python checks)."""
    from emoedge._native_loader import get_native
    nat = get_native()
    img = _image(rng)
    n = int(rng.integers(0, 4))
    c = _pick(rng, [1, 3, 2, 4], p=[0.3, 0.6, 0.05, 0.05])
    h, w = int(rng.integers(1, 40)), int(rng.integers(1, 40))
    if rng.random() < 0.05:
        h = w = 1 << 15
        out = np.empty((n, c, 1, 1), np.float32)  # dims lie about the buffer: must be rejected by shape checks
    else:
        out = np.empty((n, c, h, w), np.float32)
        out = _view_variant(rng, out)
    def enum(names):
        return _pick(rng, names) if rng.random() < 0.95 else _pick(rng, ["bogus", -1, 1 << 40, None])

    def f():
        return float(rng.uniform(-5, 5)) if rng.random() < 0.95 else float(_odd_float(rng))
    scale = [f() for _ in range(int(rng.integers(0, 5)))]
    offset = [f() for _ in range(len(scale) if rng.random() < 0.9 else 2)]
    opts = dict(interp=enum(["linear", "area"]), color=enum(["keep", "swap_rb", "gray"]),
                input_rgb=bool(rng.random() < 0.5), border=enum(["constant", "replicate"]),
                border_value=_num(rng, 0, 255, p_odd=0.05), letterbox=bool(rng.random() < 0.3),
                pad_value=float(rng.uniform(0, 255)) if rng.random() < 0.95 else _odd_float(rng),
                scale=scale, offset=offset)
    r = rng.random()
    if r < 0.5:
        boxes = np.array([_box(rng, True) for _ in range(n)], np.float64).reshape(n, 4)
        boxes = _view_variant(rng, boxes)
        desc = dict(fn="_native.frame_boxes", image=(img.shape, str(img.dtype)), out=(out.shape, out.flags.aligned),
                    boxes=boxes.tolist(), options=opts)

        def call():
            nat.frame_boxes(img, boxes, out, nat.FrameOptions.from_dict(opts))
            _finite(out, "frame_boxes output")
        return desc, call
    if r < 0.9:
        inv = rng.uniform(-3, 3, (n, 6))
        inv = _view_variant(rng, inv)
        desc = dict(fn="_native.frame_affine", image=(img.shape, str(img.dtype)), out=out.shape, inv=inv.tolist(),
                    options=opts)

        def call():
            o = nat.FrameOptions.from_dict(opts)
            nat.frame_affine(img, inv, out, o)
            _finite(out, "frame_affine output")
        return desc, call
    bw, bh = _num(rng, 0.1, 1e6), _num(rng, 0.1, 1e6)
    ow, oh = _num(rng, 1, 1 << 15, integer=True), _num(rng, 1, 1 << 15, integer=True)
    desc = dict(fn="_native.frame_inner_rect", bw=bw, bh=bh, ow=ow, oh=oh)
    return desc, lambda: nat.frame_inner_rect(bw, bh, ow, oh, bool(rng.random() < 0.5))


def _logmel_opts(rng, allow_top_db=True):
    from emoedge.kernels import LogMelOptions
    sr = _pick(rng, [16000, 8000, 22050, 44100, int(rng.integers(100, 96000)), _num(rng, 1, 2e6, integer=True)],
               p=[0.4, 0.1, 0.1, 0.1, 0.25, 0.05])
    nyq = (sr if isinstance(sr, int) and sr > 0 else 16000) / 2
    n_fft = _pick(rng, [512, 256, 1024, 2048, 4096, 8192, 16, 64, 500, 0, 1 << 17],
                  p=[0.3, 0.1, 0.15, 0.1, 0.07, 0.03, 0.07, 0.12, 0.02, 0.02, 0.02])
    wl = int(rng.integers(1, max(2, n_fft + 1))) if rng.random() < 0.95 else _num(rng, 1, 1000, integer=True)
    hop = _pick(rng, [max(1, n_fft // 4), int(rng.integers(1, max(2, 2 * n_fft))), 1, _num(rng, 1, 600, integer=True)],
                p=[0.4, 0.4, 0.1, 0.1])
    nm = _pick(rng, [64, 40, 128, int(rng.integers(1, 200)), 0, 5000], p=[0.4, 0.1, 0.1, 0.35, 0.025, 0.025])
    fmin = _pick(rng, [0.0, 20.0, float(rng.uniform(0, 0.5 * nyq)), _num(rng, 0, 8000)], p=[0.5, 0.2, 0.25, 0.05])
    f0 = fmin if isinstance(fmin, float) and math.isfinite(fmin) else 0.0
    fmax = _pick(rng, [None, float(rng.uniform(0.55, 1.0) * nyq), f0 + float(rng.uniform(0, 5)), _num(rng, 0, 12000)],
                 p=[0.6, 0.3, 0.05, 0.05])
    o = LogMelOptions(sample_rate=sr, n_fft=n_fft, win_length=wl, hop_length=hop, n_mels=nm, fmin=fmin, fmax=fmax,
                      center=bool(rng.random() < 0.8), mel_scale=_pick(rng, ["slaney", "htk", "mel"], p=[0.6, 0.35, 0.05]),
                      norm=_pick(rng, ["slaney", None, "l2"], p=[0.6, 0.35, 0.05]),
                      log=(lg := _pick(rng, ["db", "ln", "log2"], p=[0.6, 0.38, 0.02])),
                      top_db=(_pick(rng, [None, 80.0, _num(rng, 1, 200)], p=[0.7, 0.2, 0.1])
                              if allow_top_db and (lg == "db" or rng.random() < 0.05) else None),
                      amin=_pick(rng, [1e-10, 1e-5, 1e-300, 1.0, 0.0, _num(rng, 1e-12, 1)], p=[0.5, 0.2, 0.1, 0.05, 0.05, 0.1]))
    return o


def _wave(rng, max_n=24000):
    r = rng.random()
    n = int(rng.integers(0, max_n)) if r < 0.8 else int(rng.integers(0, 64))
    dt = _pick(rng, [np.float32, np.int16, np.float64, np.int32, np.complex64], p=[0.6, 0.2, 0.15, 0.03, 0.02])
    scale = 10.0 ** rng.uniform(-30, 38) if rng.random() < 0.2 else 0.1
    x = rng.standard_normal(n) * scale
    if dt == np.int16:
        x = np.clip(x * 32767 / max(scale, 1e-30), -32768, 32767)
    with np.errstate(over="ignore", invalid="ignore"):
        x = x.astype(dt)
    if rng.random() < 0.05 and n and x.dtype.kind == "f":
        x[int(rng.integers(0, n))] = _pick(rng, [np.nan, np.inf, -np.inf])
    if rng.random() < 0.05:
        x = x.reshape(1, -1) if rng.random() < 0.5 else np.stack([x, x], 1)
    return _view_variant(rng, x)


def case_logmel(rng):
    from emoedge import kernels
    opts = _logmel_opts(rng)
    x = _wave(rng)
    if rng.random() < 0.03:
        x = _pick(rng, [[0.1, 0.2, 0.3], "abc", None, np.broadcast_to(np.float32(0.1), (2**40,))])
    sr = None if rng.random() < 0.9 else _pick(rng, [opts.sample_rate, 16000, 44100])
    desc = dict(fn="log_mel", opts=opts.__dict__ if hasattr(opts, "__dict__") else str(opts),
                x=(np.shape(x), str(getattr(x, "dtype", type(x).__name__))), sample_rate=sr)

    def call():
        out = kernels.log_mel(x, opts, sample_rate=sr)
        _finite(out, "log_mel output")
        if out.ndim != 2 or out.shape[1] != opts.n_mels or out.dtype != np.float32:
            raise Failure(f"log_mel output shape {out.shape} dtype {out.dtype}")
    return desc, call


def case_logmel_stream(rng):
    from emoedge import kernels
    opts = _logmel_opts(rng, allow_top_db=rng.random() < 0.05)
    n_chunks = int(rng.integers(0, 8))
    chunks = []
    for _ in range(n_chunks):
        c = _wave(rng, max_n=6000) if rng.random() < 0.85 else (rng.standard_normal(int(rng.integers(0, 3000))) * 0.1).astype(np.float32)
        chunks.append(c)
    ops = [_pick(rng, ["accept", "flush", "reset", "accept_after"], p=[0.85, 0.06, 0.04, 0.05]) for _ in chunks]
    desc = dict(fn="LogMelStream", opts=opts.__dict__, chunks=[(np.shape(c), str(c.dtype)) for c in chunks], ops=ops)

    def call():
        s = kernels.LogMelStream(opts)
        got, fed, clean = [], [], True
        for op, c in zip(ops, chunks):
            try:
                if op == "flush":
                    got.append(s.flush())
                    clean = clean and False
                    continue
                if op == "reset":
                    s.reset()
                    got, fed = [], []
                    clean = True
                    continue
                got.append(s.accept(c, None if rng.random() < 0.8 else _pick(rng, [opts.sample_rate, "16000", 1.5])))
                fed.append(c)
            except ALLOWED:
                pass
        try:
            got.append(s.flush())
        except ALLOWED:
            clean = False
        for g in got:
            _finite(g, "LogMelStream output")
            if g.ndim != 2 or g.shape[1] != opts.n_mels:
                raise Failure(f"LogMelStream output shape {g.shape}")
        # parity with the offline call on the same (accepted) samples, when nothing was flushed mid-way
        if clean and fed and all(isinstance(f, np.ndarray) and f.ndim == 1 and f.dtype in (np.float32,) for f in fed):
            whole = np.concatenate(fed)
            if whole.size and (opts.center or whole.size >= opts.n_fft):
                ref = kernels.log_mel(whole, opts)
                st = np.concatenate(got) if got else np.zeros((0, opts.n_mels), np.float32)
                if st.shape != ref.shape or not np.allclose(st, ref, atol=1e-3, rtol=1e-5):
                    raise Failure(f"stream {st.shape} != offline {ref.shape}")
    return desc, call


def case_mel_filterbank(rng):
    from emoedge import kernels
    opts = _logmel_opts(rng)
    desc = dict(fn="mel_filterbank", opts=opts.__dict__)

    def call():
        fb = kernels.mel_filterbank(opts)
        _finite(fb, "mel_filterbank")
        if fb.shape != (opts.n_mels, opts.n_fft // 2 + 1):
            raise Failure(f"filterbank shape {fb.shape}")
    return desc, call


def case_detect(rng):
    from emoedge import detect
    from emoedge._native_loader import get_native
    nat = get_native()
    r = rng.random()
    if r < 0.15:
        size = _pick(rng, [128, 192, int(rng.integers(1, 512)), _num(rng, 1, 5000, integer=True)])
        L = int(rng.integers(0, 4))
        strides = [_pick(rng, [8, 16, 4, int(rng.integers(1, 64)), 0, -1], p=[0.3, 0.3, 0.1, 0.2, 0.05, 0.05]) for _ in range(L)]
        per = [_pick(rng, [2, 6, 1, int(rng.integers(1, 80)), 0]) for _ in range(L if rng.random() < 0.9 else L + 1)]
        desc = dict(fn="blazeface_anchors", size=size, strides=strides, per_cell=per)

        def call():
            a = nat.blazeface_anchors(size, strides, per)
            _finite(a, "anchors")
            b = detect.blazeface_anchors(size, strides, per)
            if a.shape != b.shape:
                raise Failure(f"native anchors {a.shape} != numpy {b.shape}")
        return desc, call
    n = _pick(rng, [896, 2304, int(rng.integers(0, 3000)), 0, 20000], p=[0.4, 0.2, 0.35, 0.03, 0.02])
    anchors = detect.blazeface_anchors(128) if n == 896 else rng.uniform(0, 1, (n, 2)).astype(np.float32)
    mag = 10.0 ** rng.uniform(-2, 40) if rng.random() < 0.2 else 10.0
    with np.errstate(over="ignore"):
        reg = (rng.standard_normal((n, 16)) * mag).astype(np.float32)
        reg[:, 2:4] = np.abs(reg[:, 2:4])
        sc = (rng.standard_normal(n) * _pick(rng, [5.0, 50.0, 1e30])).astype(np.float32)
    if rng.random() < 0.1 and n:
        sc[rng.integers(0, n, 5)] = _pick(rng, [np.nan, np.inf, -np.inf])
    if rng.random() < 0.05 and n:
        reg[rng.integers(0, n, 5), int(rng.integers(0, 16))] = np.nan
    shapes = rng.random()
    if shapes < 0.2:
        reg, sc = reg[None], sc[None, :, None]
    elif shapes < 0.3:
        sc = sc[:, None]
    if rng.random() < 0.1:
        reg = _view_variant(rng, reg)
        sc = _view_variant(rng, sc)
    if rng.random() < 0.03:
        reg = reg.astype(np.float64)
    kw = dict(min_score=_pick(rng, [0.5, 0.0, 1.0, float(rng.random()), _num(rng, 0, 1)], p=[0.3, 0.2, 0.05, 0.35, 0.1]),
              nms_iou=_pick(rng, [0.3, float(rng.uniform(0.01, 1)), _num(rng, 0, 1)], p=[0.5, 0.4, 0.1]),
              max_faces=_pick(rng, [0, 1, 4, int(rng.integers(0, 100)), -1], p=[0.4, 0.2, 0.2, 0.15, 0.05]),
              box_scale=_pick(rng, [128.0, 192.0, _num(rng, 1e-3, 1e4)], p=[0.5, 0.2, 0.3]),
              transform=_pick(rng, [(1.0, 1.0, 0.0, 0.0), tuple(float(v) for v in rng.uniform(0.1, 2000, 4)),
                                    (1e300, 1e300, 0.0, 0.0), (1.0, np.nan, 0.0, 0.0), (1.0, 1.0)], p=[0.4, 0.4, 0.08, 0.06, 0.06]),
              score_clip=_pick(rng, [100.0, 50.0, 104.0, 1e30, np.inf, float(rng.uniform(0.1, 100))], p=[0.4, 0.1, 0.1, 0.1, 0.05, 0.25]))
    desc = dict(fn="detect.decode", n=n, reg=(np.shape(reg), str(reg.dtype)), sc=np.shape(sc), mag=mag, **kw)

    def call():
        rows = detect.decode(reg, sc, anchors, **kw)
        _finite(rows, "decode rows")
        if rows.ndim != 2 or rows.shape[1] != 17 or rows.shape[0] > max(n, 0):
            raise Failure(f"decode rows shape {rows.shape}")
        if rows.shape[0] and not ((rows[:, 4] >= 0) & (rows[:, 4] <= 1)).all():
            raise Failure("decode scores outside [0, 1]")
    return desc, call


def case_fusion(rng):
    from emoedge._native_loader import get_native
    nat = get_native()
    m = _pick(rng, [0, 1, 2, 3, int(rng.integers(0, 10))])
    k = _pick(rng, [7, 1, 2, int(rng.integers(1, 20)), 0, 5000], p=[0.4, 0.1, 0.1, 0.34, 0.03, 0.03])
    lp = np.log(rng.dirichlet(np.ones(max(k, 1)), size=m) + 1e-6)[:, :k] if k else np.zeros((m, 0))
    if rng.random() < 0.2:
        lp = lp * 10.0 ** rng.uniform(0, 35)
    if rng.random() < 0.05 and lp.size:
        lp.flat[int(rng.integers(0, lp.size))] = _pick(rng, [np.nan, np.inf, -np.inf])
    with np.errstate(over="ignore"):
        lp = lp.astype(_pick(rng, [np.float32, np.float64], p=[0.95, 0.05]))
    w = rng.uniform(0, 2, m).astype(np.float32)
    if rng.random() < 0.1 and m:
        w[int(rng.integers(0, m))] = _pick(rng, [-1.0, np.nan, np.inf, 1e30])
    state = np.log(rng.dirichlet(np.ones(max(k, 1)))).astype(np.float32)[:k]
    if rng.random() < 0.1 and k:
        state[int(rng.integers(0, k))] = _pick(rng, [np.nan, -np.inf, -1e30, 1e30])
    if rng.random() < 0.05:
        state = state[: max(0, k - 1)]
    lp, w = _view_variant(rng, lp), _view_variant(rng, w)
    state = _view_variant(rng, state) if rng.random() < 0.2 else state
    alpha = _pick(rng, [0.5, 1.0, 0.0, float(rng.random()), _num(rng, 0, 1)], p=[0.3, 0.1, 0.1, 0.4, 0.1])
    has_state = bool(rng.random() < 0.7)
    out = None if rng.random() < 0.7 else _view_variant(rng, np.empty(k, np.float32))
    pool = rng.random() < 0.3
    desc = dict(fn="fusion_pool" if pool else "fusion_step", m=m, k=k, lp=(lp.shape, str(lp.dtype), lp.flags.aligned),
                w=w.tolist(), has_state=has_state, alpha=alpha, out=None if out is None else out.flags.aligned)

    def call():
        if pool:
            z = nat.fusion_pool(lp, w)
            _finite(z, "fusion_pool output")
            if abs(float(np.exp(z.astype(np.float64)).sum()) - 1.0) > 1e-3:
                raise Failure("fusion_pool output is not a log-distribution")
            return
        p = nat.fusion_step(lp, w, state, has_state, alpha, out)
        _finite(p, "fusion_step output")
        _finite(state, "fusion state")
        if abs(float(p.astype(np.float64).sum()) - 1.0) > 1e-3:
            raise Failure(f"fusion_step output sums to {float(p.sum())}")
    return desc, call


def case_misc(rng):
    from emoedge._native_loader import get_native
    nat = get_native()
    fn = _pick(rng, ["cpu_flags", "simd_enabled", "LogMel.num_frames", "LogMel.window"])
    desc = dict(fn=fn)
    if fn == "cpu_flags":
        return desc, lambda: str(nat.cpu_flags())
    if fn == "simd_enabled":
        return desc, lambda: bool(nat.simd_enabled())
    n = _pick(rng, [0, -5, 1, 16000, 2**62, _num(rng, 0, 1e6, integer=True)])
    desc["n"] = n

    def call():
        lm = nat.LogMel(nat.LogMelConfig())
        if fn == "LogMel.window":
            _finite(lm.window(), "window")
            return
        f = lm.num_frames(n)
        if f < 0:
            raise Failure(f"num_frames({n}) = {f}")
    return desc, call


# -- the stream API (real default models when installed; else a skip line is printed)

_ENGINE = {}


def _engine():
    if "e" not in _ENGINE:
        from emoedge.engine import Engine
        _ENGINE["e"] = Engine()
    return _ENGINE["e"]


_TEXTS = ["I am so happy today", "this is sad", "", "   ", "\ud800 lone surrogate", b"bytes \xff\xfe", "ok " * 400,
          "😀 emoji", None, 42, "a\x00b", "é" * 50]


def case_stream(rng):
    eng = _engine()
    ops = []
    t = {"frame": 0.0, "audio": 0.0, "text": 0.0}
    for _ in range(int(rng.integers(1, 12))):
        kind = _pick(rng, ["frame", "audio", "text", "flush", "drop", "close"], p=[0.4, 0.35, 0.15, 0.05, 0.03, 0.02])
        r = rng.random()
        if kind in t:
            t[kind] += float(rng.uniform(0.01, 0.5))
            tt = t[kind]
            if r < 0.05:
                tt = _pick(rng, ["1.0", b"1", True, None, np.nan, np.inf, -1.0, 1e300, [1.0], np.float32(t[kind])])
            elif r < 0.1:
                tt = t[kind] - 1.0
        else:
            tt = None
        if kind == "frame":
            h, w = (int(rng.integers(8, 160)), int(rng.integers(8, 200))) if r >= 0.1 else (int(rng.integers(1, 12)),) * 2
            img = rng.integers(0, 256, (h, w, _pick(rng, [3, 4, 1, 2], p=[0.8, 0.08, 0.08, 0.04]))).astype(np.uint8)
            if rng.random() < 0.1:
                img = _pick(rng, [img.astype(np.float32), img[:, :, 0], img[None], "frame", None])
            ops.append(("frame", img, tt))
        elif kind == "audio":
            n = int(rng.integers(0, 4000))
            sr = _pick(rng, [16000, 48000, 8000, 44100, 0, -1, "16000", 16000.5, True],
                       p=[0.86, 0.02, 0.02, 0.02, 0.016, 0.016, 0.016, 0.016, 0.016])
            pcm = (rng.standard_normal(n) * _pick(rng, [0.1, 1.0, 1e30])).astype(np.float32)
            q = rng.random()
            if q < 0.1:
                pcm = np.stack([pcm, pcm], 1)
            elif q < 0.15:
                pcm = np.ascontiguousarray(np.stack([pcm, pcm], 0))  # channel-first [2, n]
            elif q < 0.2:
                pcm = (pcm * 3000).clip(-32768, 32767).astype(np.int16)
            elif q < 0.23:
                pcm = pcm.astype(np.float64)
            elif q < 0.26 and n:
                pcm[int(rng.integers(0, n))] = np.nan
            elif q < 0.28:
                pcm = _pick(rng, [[0.1] * 10, "pcm", None, np.zeros((2, 3, 4), np.float32), np.zeros(5, np.complex64)])
            ops.append(("audio", pcm, sr, tt))
        elif kind == "text":
            ops.append(("text", _pick(rng, _TEXTS), tt))
        elif kind == "drop":
            ops.append(("drop", _pick(rng, ["frames", "audio", "bogus"]), _pick(rng, [1, 0, -1, 5])))
        else:
            ops.append((kind,))
    desc = dict(fn="stream", ops=[tuple(o[0:1]) + tuple(
        (np.shape(v), str(getattr(v, "dtype", type(v).__name__))) if isinstance(v, np.ndarray) else v
        for v in o[1:]) for o in ops])

    def call():
        s = eng.stream()
        evs = []
        rejected = 0
        for o in ops:
            try:
                if o[0] == "frame":
                    evs += s.push_frame(o[1], o[2])
                elif o[0] == "audio":
                    evs += s.push_audio(o[1], o[2], o[3])
                elif o[0] == "text":
                    evs += s.push_text(o[1], o[2])
                elif o[0] == "flush":
                    evs += s.flush()
                elif o[0] == "drop":
                    s.count_dropped(o[1], o[2])
                else:
                    s.close()
            except ALLOWED:
                rejected += 1
            except RuntimeError as e:  # StreamClosedError is documented for pushes after close()
                from emoedge.errors import StreamClosedError
                if not isinstance(e, StreamClosedError):
                    raise
                rejected += 1
        for ev in evs:
            p = np.array(list(ev.probs.values()), np.float64)
            _finite(p, "event probs")
            if not math.isfinite(ev.t) or abs(p.sum() - 1.0) > 1e-3:
                raise Failure(f"event t={ev.t} probs sum {p.sum()}")
        st = s.stats
        if not (math.isfinite(st.audio_seconds) and st.audio_seconds >= 0):
            raise Failure(f"stats.audio_seconds={st.audio_seconds}")
        s.close()
        return {"ops": len(ops), "rejected_ops": rejected}
    return desc, call


def case_roi(rng):
    """emoedge._native.roi_match: shapes, dtypes, layouts, flat and non-finite windows."""
    from emoedge._native_loader import get_native
    nat = get_native()
    k = _pick(rng, [0, 1, 2, 5, int(rng.integers(0, 20))])
    ns = _pick(rng, [1, 3, 0, 65, int(rng.integers(1, 6))])
    t = _pick(rng, [16, 1, 8, 0, int(rng.integers(1, 40))])
    s = _pick(rng, [22, t, t - 1, 1025, int(rng.integers(1, 60))])
    kt = _pick(rng, [k, k + 1], p=[0.9, 0.1])
    dt = _pick(rng, [np.float32, np.float64, np.uint8], p=[0.85, 0.1, 0.05])
    win = (rng.random((k, ns, max(s, 0), max(s, 0))) * 255).astype(dt) if s <= 200 else np.zeros((k, ns, 1, 1), dt)
    tpl = (rng.random((kt, max(t, 0), max(t, 0))) * 255).astype(np.float32)
    q = rng.random()
    if q < 0.1 and win.size:
        win[...] = 7.0   # flat windows: correlation 0
    elif q < 0.15 and win.size and win.dtype.kind == "f":
        win.flat[int(rng.integers(0, win.size))] = _pick(rng, [np.nan, np.inf])
    elif q < 0.2:
        win = win[..., ::-1]  # not C-contiguous
    elif q < 0.25:
        win = win.reshape(-1) if win.size else win[0:0]
    nonfinite = win.dtype.kind == "f" and win.size and not np.isfinite(win).all()
    desc = dict(fn="_native.roi_match", windows=(win.shape, str(win.dtype)), templates=tpl.shape, q=round(q, 3))

    def call():
        out = nat.roi_match(win, tpl)
        if out.shape != (k, 4):
            raise Failure(f"output shape {out.shape}, expected {(k, 4)}")
        if not nonfinite:
            _finite(out, "roi_match")
            if out.size and (np.abs(out[:, 2]) > 1 + 1e-6).any():
                raise Failure(f"correlation outside [-1, 1]: {out[:, 2]}")
    return desc, call


TARGETS = {
    "frame": case_frame, "frame_batch": case_frame_batch, "frame_native": case_frame_native,
    "logmel": case_logmel, "logmel_stream": case_logmel_stream, "mel_filterbank": case_mel_filterbank,
    "detect": case_detect, "fusion": case_fusion, "misc": case_misc, "stream": case_stream, "roi": case_roi,
}


def _short(x, n=2000):
    s = repr(x)
    return s if len(s) <= n else s[:n] + "..."


def run(target: str, cases: int, seed: int, case_file: str, call_s: float) -> dict:
    import warnings
    warnings.simplefilter("ignore")
    from emoedge._native_loader import get_native
    if get_native() is None:
        return {"target": target, "skipped": "emoedge._native is not built"}
    if target == "stream":
        try:
            _engine()
        except Exception as e:  # noqa: BLE001 - models not installed in this build
            return {"target": target, "skipped": f"Engine() could not load the default models: {e}"}
    gen = TARGETS[target]
    ok = rejected = 0
    by_type: dict = {}
    failures = []
    slowest = (0.0, None)
    extra: dict = {}
    for i in range(cases):
        rng = np.random.default_rng([seed, i])
        desc, call = gen(rng)
        with open(case_file, "w") as f:
            f.write(f"{target} seed={seed} case={i}: {_short(desc)}\n")
        faulthandler.dump_traceback_later(call_s, exit=True)
        t0 = time.perf_counter()
        try:
            r = call()
            ok += 1
            if isinstance(r, dict):
                for key, v in r.items():
                    extra[key] = extra.get(key, 0) + v
        except Failure as e:
            failures.append(f"case {i}: {e} :: {_short(desc, 600)}")
        except ALLOWED as e:
            rejected += 1
            by_type[type(e).__name__] = by_type.get(type(e).__name__, 0) + 1
        except Exception as e:  # noqa: BLE001 - an undocumented exception type is a finding
            failures.append(f"case {i}: unexpected {type(e).__name__}: {e} :: {_short(desc, 600)}\n"
                            + "".join(traceback.format_exc(limit=4)))
        finally:
            faulthandler.cancel_dump_traceback_later()
        dt = time.perf_counter() - t0
        if dt > slowest[0]:
            slowest = (dt, i)
        if len(failures) >= 20:
            break
    return {"target": target, "seed": seed, "cases": i + 1 if cases else 0, "ok": ok, "rejected": rejected,
            "rejected_by_type": by_type, "slowest_s": round(slowest[0], 3), "slowest_case": slowest[1],
            **extra, "failures": failures}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="emoedge native fuzzer (one target per process)")
    ap.add_argument("--target", required=True, choices=sorted(TARGETS))
    ap.add_argument("--cases", type=int, default=int(os.environ.get("EMOEDGE_FUZZ_CASES", "2000")))
    ap.add_argument("--seed", type=int, default=int(os.environ.get("EMOEDGE_FUZZ_SEED", "0")))
    ap.add_argument("--case-file", default=os.devnull)
    ap.add_argument("--call-seconds", type=float, default=float(os.environ.get("EMOEDGE_FUZZ_CALL_S", "10")))
    a = ap.parse_args(argv)
    faulthandler.enable()
    res = run(a.target, a.cases, a.seed, a.case_file, a.call_seconds)
    print(json.dumps(res))
    return 1 if res.get("failures") else 0


if __name__ == "__main__":
    sys.exit(main())
