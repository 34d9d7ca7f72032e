"""Log-mel benchmarks under pytest-benchmark: `pytest benchmarks/bench_logmel.py` (single thread).

The absolute timings of ours, librosa and kaldi-native-fbank come from pytest-benchmark; the ratios are
taken side by side, interleaved in one run, by emoedge.bench.logmel.run (the same code as `emoedge bench`)
and checked against the targets in test_ratios_side_by_side.
"""
from __future__ import annotations

import numpy as np
import pytest

from emoedge.bench import logmel as bl
from emoedge.bench import single_thread
from emoedge.kernels import LogMelOptions, LogMelStream, log_mel

pytest.importorskip("pytest_benchmark")


@pytest.fixture(scope="module")
def audio():
    single_thread()
    return bl._signal(10.0)


def test_logmel_10s_ours(benchmark, audio):
    opts = LogMelOptions()
    out = benchmark(log_mel, audio, opts)
    assert out.shape == (1001, 64)


def test_logmel_10s_ours_int16(benchmark, audio):
    yi = np.clip(np.round(audio * 32768), -32768, 32767).astype(np.int16)
    out = benchmark(log_mel, yi, LogMelOptions())
    assert out.shape == (1001, 64)


def test_logmel_10s_librosa(benchmark, audio):
    pytest.importorskip("librosa")
    out = benchmark(bl.librosa_fn(audio))
    assert out.shape == (64, 1001)


def test_logmel_10s_knf(benchmark, audio):
    pytest.importorskip("kaldi_native_fbank")
    out = benchmark(bl.knf_offline_fn(audio))
    assert len(out) == 1001


def test_logmel_stream_10ms_chunk(benchmark, audio):
    s = LogMelStream()
    chunk = audio[:160].copy()
    benchmark(s.accept, chunk)
    assert s.frames_emitted > 0


def test_ratios_side_by_side(benchmark):
    rows = benchmark.pedantic(bl.run, kwargs={"quick": True}, rounds=1, iterations=1)
    for r in rows:
        benchmark.extra_info[r["name"]] = {k: r[k] for k in ("ours_ms", "anchor_ms", "ratio", "target_ratio")}
    by = {r["name"]: r for r in rows}
    if "logmel_10s_vs_librosa" in by:
        assert by["logmel_10s_vs_librosa"]["ratio"] >= 5.0, by["logmel_10s_vs_librosa"]
    if "logmel_10s_vs_knf" in by:
        assert by["logmel_10s_vs_knf"]["ratio"] >= 2.0, by["logmel_10s_vs_knf"]
    assert by["logmel_stream_10ms_chunk"]["ours_ms"] <= 0.010, by["logmel_stream_10ms_chunk"]
