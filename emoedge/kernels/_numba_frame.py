"""numba implementation of the frame kernel: the fallback when emoedge._native is unavailable,
and a second oracle in tests. Same entry points as the extension (frame_boxes, frame_affine,
frame_inner_rect) and the same geometry as csrc/frame.cpp; accumulates in float64.

Imported lazily (only when the fallback is used or tested), so numba is never loaded otherwise.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

_MAX_COORD = float(1 << 20)


def frame_inner_rect(bw, bh, out_w, out_h, letterbox):
    """Same as the C++ inner_rect: (x, y, w, h) of the output the region is resized into."""
    if not letterbox:
        return (0, 0, int(out_w), int(out_h))
    s = min(out_w / bw, out_h / bh)
    w = int(min(out_w, max(1.0, math.floor(bw * s + 0.5))))
    h = int(min(out_h, max(1.0, math.floor(bh * s + 0.5))))
    return ((out_w - w) // 2, (out_h - h) // 2, w, h)


@njit(cache=True)
def _linear_taps(b0, length, dn):
    idx = np.empty((dn, 2), np.int64)
    w = np.empty((dn, 2), np.float64)
    scale = length / dn
    lo = b0
    hi = max(b0, b0 + length - 1.0)
    for d in range(dn):
        f = b0 + (d + 0.5) * scale - 0.5
        f = min(max(f, lo), hi)
        x0 = math.floor(f)
        fr = f - x0
        i0 = int(x0)
        idx[d, 0] = i0
        w[d, 0] = 1.0 - fr
        idx[d, 1] = i0 + 1 if fr > 0 else i0
        w[d, 1] = fr
    return idx, w


@njit(cache=True)
def _area_taps(b0, ssize, dn, down):
    inv_scale = dn / ssize
    scale = 1.0 / inv_scale
    k = int(math.ceil(scale)) + 2 if down else 2
    idx = np.full((dn, k), b0, np.int64)
    w = np.zeros((dn, k), np.float64)
    for d in range(dn):
        if down:
            fs1 = d * scale
            fs2 = fs1 + scale
            cell = min(scale, ssize - fs1)
            s1 = int(math.ceil(fs1))
            s2 = int(math.floor(fs2))
            s2 = min(s2, ssize - 1)
            s1 = min(s1, s2)
            n = 0
            if s1 - fs1 > 1e-3:
                idx[d, n] = b0 + s1 - 1
                w[d, n] = (s1 - fs1) / cell
                n += 1
            for s in range(s1, s2):
                idx[d, n] = b0 + s
                w[d, n] = 1.0 / cell
                n += 1
            if fs2 - s2 > 1e-3:
                idx[d, n] = b0 + s2
                w[d, n] = min(min(fs2 - s2, 1.0), cell) / cell
        else:
            s = int(math.floor(d * scale))
            f = (d + 1) - (s + 1) * inv_scale
            f = 0.0 if f <= 0 else f - math.floor(f)
            if s >= ssize - 1:
                f = 0.0
                s = ssize - 1
            idx[d, 0] = b0 + s
            w[d, 0] = 1.0 - f
            idx[d, 1] = b0 + s + 1 if f > 0 else b0 + s
            w[d, 1] = f
    return idx, w


@njit(cache=True)
def _resolve_merge(idx, w, size, constant):
    """Taps resolved to frame indices (-1: constant border; replicate clamps) with adjacent equal ones
    merged, weights summed: a box far outside the frame then costs its in-frame pixels, not its size."""
    dn, k = idx.shape
    out_i = np.full((dn, k), -1, np.int64)
    out_w = np.zeros((dn, k), np.float64)
    kmax = 1
    for d in range(dn):
        n = 0
        for t in range(k):
            if w[d, t] == 0.0:
                continue
            s = idx[d, t]
            if s < 0 or s >= size:
                s = -1 if constant else min(max(s, 0), size - 1)
            if n > 0 and out_i[d, n - 1] == s:
                out_w[d, n - 1] += w[d, t]
            else:
                out_i[d, n] = s
                out_w[d, n] = w[d, t]
                n += 1
        kmax = max(kmax, n)
    return out_i[:, :kmax].copy(), out_w[:, :kmax].copy()


@njit(cache=True)
def _sample(img, y, x, cin, constant, bv, acc, wt):
    """acc[c] += wt * pixel(y, x, c) with the border rule."""
    H, W = img.shape[0], img.shape[1]
    if y < 0 or y >= H or x < 0 or x >= W:
        if constant:
            for c in range(cin):
                acc[c] += wt * bv
            return
        y = min(max(y, 0), H - 1)
        x = min(max(x, 0), W - 1)
    for c in range(cin):
        acc[c] += wt * img[y, x, c]


@njit(cache=True)
def _write(out, bi, oy, ox, acc, gray_mix, mix, perm, a, b, cout):
    if gray_mix:
        g = mix[0] * acc[0] + mix[1] * acc[1] + mix[2] * acc[2]
        out[bi, 0, oy, ox] = g * a[0] + b[0]
    else:
        for k in range(cout):
            out[bi, k, oy, ox] = acc[perm[k]] * a[k] + b[k]


@njit(cache=True)
def _boxes_kernel(img, boxes, out, area, constant, bv, letterbox, pad_value, gray_mix, mix, perm, a, b):
    cin = img.shape[2]
    cout = out.shape[1]
    oh, ow = out.shape[2], out.shape[3]
    acc = np.zeros(4, np.float64)
    for bi in range(boxes.shape[0]):
        bx, by, bw, bh = boxes[bi, 0], boxes[bi, 1], boxes[bi, 2], boxes[bi, 3]
        if area:
            bx = math.floor(bx + 0.5)
            by = math.floor(by + 0.5)
            bw = max(1.0, math.floor(bw + 0.5))
            bh = max(1.0, math.floor(bh + 0.5))
        rx, ry, rw, rh = 0, 0, ow, oh
        if letterbox:
            s = min(ow / bw, oh / bh)
            rw = int(min(ow, max(1.0, math.floor(bw * s + 0.5))))
            rh = int(min(oh, max(1.0, math.floor(bh * s + 0.5))))
            rx = (ow - rw) // 2
            ry = (oh - rh) // 2
        if area:
            down = bw >= rw and bh >= rh
            xi, xw = _area_taps(int(bx), int(bw), rw, down)
            yi, yw = _area_taps(int(by), int(bh), rh, down)
        else:
            xi, xw = _linear_taps(bx, bw, rw)
            yi, yw = _linear_taps(by, bh, rh)
        xi, xw = _resolve_merge(xi, xw, img.shape[1], constant)
        yi, yw = _resolve_merge(yi, yw, img.shape[0], constant)
        for oy in range(oh):
            for ox in range(ow):
                dy, dx = oy - ry, ox - rx
                if dy < 0 or dy >= rh or dx < 0 or dx >= rw:
                    for k in range(cout):
                        out[bi, k, oy, ox] = pad_value * a[k] + b[k]
                    continue
                acc[:] = 0.0
                for ty in range(yi.shape[1]):
                    wy = yw[dy, ty]
                    if wy == 0.0:
                        continue
                    for tx in range(xi.shape[1]):
                        wx = xw[dx, tx]
                        if wx == 0.0:
                            continue
                        _sample(img, yi[dy, ty], xi[dx, tx], cin, constant, bv, acc, wy * wx)
                _write(out, bi, oy, ox, acc, gray_mix, mix, perm, a, b, cout)


@njit(cache=True)
def _affine_kernel(img, inv, out, constant, bv, gray_mix, mix, perm, a, b):
    cin = img.shape[2]
    H, W = img.shape[0], img.shape[1]
    cout = out.shape[1]
    oh, ow = out.shape[2], out.shape[3]
    acc = np.zeros(4, np.float64)
    lim = 4.0 * _MAX_COORD
    for bi in range(inv.shape[0]):
        m = inv[bi]
        for oy in range(oh):
            for ox in range(ow):
                fx = min(max(m[0] * ox + m[1] * oy + m[2], -lim), lim)
                fy = min(max(m[3] * ox + m[4] * oy + m[5], -lim), lim)
                sx, sy = math.floor(fx), math.floor(fy)
                ax, ay = fx - sx, fy - sy
                x0, y0 = int(sx), int(sy)
                acc[:] = 0.0
                if constant and (x0 < -1 or x0 >= W or y0 < -1 or y0 >= H):
                    for c in range(cin):
                        acc[c] = bv
                else:
                    _sample(img, y0, x0, cin, constant, bv, acc, (1 - ax) * (1 - ay))
                    _sample(img, y0, x0 + 1, cin, constant, bv, acc, ax * (1 - ay))
                    _sample(img, y0 + 1, x0, cin, constant, bv, acc, (1 - ax) * ay)
                    _sample(img, y0 + 1, x0 + 1, cin, constant, bv, acc, ax * ay)
                _write(out, bi, oy, ox, acc, gray_mix, mix, perm, a, b, cout)


def _plan(image, color, input_rgb, scale, offset, cout):
    img = image if image.ndim == 3 else image[:, :, None]
    cin = img.shape[2]
    gray_mix = color == 2 and cin >= 3
    mix = np.array([0.299, 0.587, 0.114] if input_rgb else [0.114, 0.587, 0.299], np.float64)
    perm = np.array([2, 1, 0] if (color == 1) else [0, 1, 2], np.int64)
    if cin == 1:
        perm[:] = 0
    a = np.array(list(scale)[:cout], np.float64)
    b = np.array(list(offset)[:cout], np.float64)
    return img, gray_mix, mix, perm, a, b


def frame_boxes(image, boxes, out, interp, color, input_rgb, border, border_value, letterbox, pad_value, scale, offset):
    """Resize boxes (x, y, w, h) of a uint8 image into out[N, C, H, W] (float32, any strides)."""
    img, gray_mix, mix, perm, a, b = _plan(image, color, input_rgb, scale, offset, out.shape[1])
    boxes = np.ascontiguousarray(boxes, dtype=np.float64)
    _boxes_kernel(img, boxes, out, interp == 1, border == 0, float(border_value), bool(letterbox),
                  float(pad_value), gray_mix, mix, perm, a, b)


def frame_affine(image, inverse, out, color, input_rgb, border, border_value, scale, offset):
    """Warp a uint8 image with N inverse 2x3 affines (output -> source) into out[N, C, H, W]."""
    img, gray_mix, mix, perm, a, b = _plan(image, color, input_rgb, scale, offset, out.shape[1])
    inv = np.ascontiguousarray(inverse, dtype=np.float64)
    _affine_kernel(img, inv, out, border == 0, float(border_value), gray_mix, mix, perm, a, b)
