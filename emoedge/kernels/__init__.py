"""Hot pre-processing kernels (C++ via emoedge._native, numba fallback).

Contract names (see README): LogMelOptions, log_mel, LogMelStream, preprocess, preprocess_batch.
"""
from __future__ import annotations

from .frame import *  # noqa: F401,F403
from .logmel import *  # noqa: F401,F403
