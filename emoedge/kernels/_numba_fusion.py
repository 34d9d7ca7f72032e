"""numba fallback for the fusion kernel (csrc/fusion.cpp); same math, float64 inside.

Imported lazily by emoedge.fusion only when the C++ extension is unavailable.
"""
from __future__ import annotations

import math

import numba
import numpy as np

from ..errors import InvalidInputError

_STATE_FLOOR = -1e4


@numba.njit(cache=True, nogil=True)
def _step(log_probs, weights, state, has_state, alpha, out, mask, use_mask):  # pragma: no cover - compiled
    m, k = log_probs.shape
    z = np.zeros(k, dtype=np.float64)
    for i in range(m):
        w = np.float64(weights[i])
        if w == 0.0:
            continue
        if not use_mask:
            for j in range(k):
                z[j] += w * np.float64(log_probs[i, j])
            continue
        # unmodelled classes take the row's max over its modelled classes (no evidence about them)
        anyc = False
        r = 0.0
        for j in range(k):
            if mask[i, j] != 0:
                v = np.float64(log_probs[i, j])
                if not anyc or v > r:
                    r = v
                anyc = True
        if not anyc:
            continue
        for j in range(k):
            if mask[i, j] != 0:
                z[j] += w * np.float64(log_probs[i, j])
            else:
                z[j] += w * r
    mx = z[0]
    for j in range(1, k):
        if z[j] > mx:
            mx = z[j]
    s = 0.0
    for j in range(k):
        s += math.exp(z[j] - mx)
    lse = mx + math.log(s)
    for j in range(k):
        z[j] -= lse
    if has_state:
        for j in range(k):
            z[j] = (1.0 - alpha) * np.float64(state[j]) + alpha * z[j]
    mx = z[0]
    for j in range(1, k):
        if z[j] > mx:
            mx = z[j]
    s = 0.0
    for j in range(k):
        s += math.exp(z[j] - mx)
    lse = mx + math.log(s)
    total = 0.0
    for j in range(k):
        lz = z[j] - lse
        if lz < _STATE_FLOOR:
            lz = _STATE_FLOOR
        z[j] = lz
        state[j] = np.float32(lz)
        total += math.exp(lz)
    for j in range(k):
        out[j] = np.float32(math.exp(z[j]) / total)


def fusion_step(log_probs, weights, state, has_state, alpha, out=None, mask=None):
    """Same contract as ``emoedge._native.fusion_step``: float32 log_probs [M, K], weights [M],
    state [K] (updated in place), optional mask uint8/bool [M, K] (1 = the modality models the class),
    returns float32 [K] probabilities."""
    for name, a, nd in (("log_probs", log_probs, 2), ("weights", weights, 1), ("state", state, 1)):
        if not isinstance(a, np.ndarray) or a.dtype != np.float32:
            raise InvalidInputError(f"{name} must be a float32 numpy array; convert with np.asarray(x, dtype=np.float32)")
        if a.ndim != nd:
            raise InvalidInputError(f"{name} must be {nd}-D (got {a.ndim}-D)")
    m, k = log_probs.shape
    if k < 1 or k > 4096:
        raise InvalidInputError(f"fusion: number of labels k={k} must be in [1, 4096]")
    if weights.shape[0] != m:
        raise InvalidInputError(f"weights has {weights.shape[0]} entries but log_probs has {m} rows (one weight per modality)")
    if state.shape[0] != k:
        raise InvalidInputError(f"state has {state.shape[0]} entries but log_probs has {k} columns (one per label)")
    if not state.flags.writeable:
        raise InvalidInputError("state must be writable (it is updated in place)")
    if not np.all(np.isfinite(log_probs)):
        raise InvalidInputError("fusion: log_probs has non-finite values; add a floor eps to the probabilities before the log")
    if not (np.all(np.isfinite(weights)) and np.all(weights >= 0)):
        raise InvalidInputError("fusion: weights must be finite and >= 0")
    if has_state:
        if not (0.0 <= alpha <= 1.0):
            raise InvalidInputError(f"fusion_step: alpha={alpha} must be in [0, 1]")
        if not np.all(np.isfinite(state)):
            raise InvalidInputError("fusion_step: state is not finite; reset the fusion state")
    if out is None:
        out = np.empty(k, dtype=np.float32)
    elif not isinstance(out, np.ndarray) or out.dtype != np.float32 or out.shape != (k,):
        raise InvalidInputError(f"out must be a float32 array of shape ({k},)")
    if mask is None:
        mk, use = np.ones((1, 1), dtype=np.uint8), False
    else:
        if not isinstance(mask, np.ndarray) or mask.dtype not in (np.uint8, np.bool_):
            raise InvalidInputError("mask must be a uint8 or bool numpy array [M, K] (1 = the modality models that class)")
        if mask.shape != (m, k):
            raise InvalidInputError(f"mask must have the shape of log_probs [{m}, {k}], got {mask.shape}")
        mk, use = np.ascontiguousarray(mask).view(np.uint8), True
    _step(np.ascontiguousarray(log_probs), np.ascontiguousarray(weights), state, bool(has_state), float(alpha), out,
          mk, use)
    return out
