"""Frame preprocessing benchmarks under pytest-benchmark: `pytest benchmarks/bench_frame.py` (single thread).

Absolute timings of ours and the OpenCV anchors come from pytest-benchmark; the ratios are taken side
by side, interleaved in one run, by emoedge.bench.frame.run (the same code as `emoedge bench`) and
checked against the >= 2x targets in test_ratios_side_by_side.
"""
from __future__ import annotations

import pytest

from emoedge.bench import frame as bf
from emoedge.bench import single_thread

pytest.importorskip("pytest_benchmark")
pytest.importorskip("cv2")


@pytest.fixture(scope="module")
def cases():
    single_thread()
    return {c[0]: c for c in bf.cases()}


BLOB = "frame_640x480_to_1x3x224x224_imagenet"
FACES = "frame_8_faces_to_8x1x64x64_gray"


def test_blob_ours(benchmark, cases):
    assert benchmark(cases[BLOB][1]).shape == (1, 3, 224, 224)


def test_blob_ours_into_out(benchmark, cases):
    assert benchmark(cases[BLOB][2]).shape == (1, 3, 224, 224)


def test_blob_cv2_blobFromImage(benchmark, cases):
    assert benchmark(cases[BLOB][3]).shape == (1, 3, 224, 224)


def test_faces_ours(benchmark, cases):
    assert benchmark(cases[FACES][1]).shape == (8, 1, 64, 64)


def test_faces_cv2_loop(benchmark, cases):
    assert benchmark(cases[FACES][3]).shape == (8, 1, 64, 64)


def test_faces_cv2_loop_stack_first(benchmark, cases):
    assert benchmark(cases[FACES][5]).shape == (8, 1, 64, 64)


def test_ratios_side_by_side(benchmark):
    rows = benchmark.pedantic(bf.run, kwargs={"quick": True}, rounds=1, iterations=1)
    for r in rows:
        benchmark.extra_info[r["name"]] = {k: r[k] for k in ("ours_ms", "anchor_ms", "ratio", "target_ratio")}
    by = {r["name"]: r for r in rows}
    for name in (BLOB, FACES):
        assert by[name]["ratio"] >= by[name]["target_ratio"], by[name]
