"""Kernel audit items of issue #20, one regression test each: work bounds with errors that name the limit,
failed array conversions, misaligned arrays, area interpolation's border walk and precision, decode with
saturated scores, degenerate mel settings, validation on cache hits."""
import time

import numpy as np
import pytest

from emoedge import detect, kernels
from emoedge._native_loader import get_native
from emoedge.errors import InvalidInputError
from emoedge.kernels import LogMelOptions, LogMelStream

native = pytest.mark.skipif(get_native() is None, reason="emoedge._native is not built")


def _misaligned(arr):
    raw = np.zeros(arr.nbytes + arr.itemsize + 1, np.uint8)
    out = np.frombuffer(raw.data, dtype=arr.dtype, count=arr.size, offset=1).reshape(arr.shape)
    out[...] = arr
    assert not out.flags.aligned
    return out


# ---------------------------------------------------------------- log-mel

@native
def test_huge_broadcast_waveform_raises_memory_error_not_sigsegv():
    x = np.broadcast_to(np.float32(0.1), (2**40,))
    with pytest.raises(MemoryError):
        kernels.log_mel(x)
    with pytest.raises(MemoryError):
        LogMelStream().accept(x)


def test_explosive_overlap_is_rejected_naming_the_limit():
    # the audit's > 10 s call
    o = LogMelOptions(sample_rate=22050, n_fft=65536, win_length=46630, hop_length=1)
    with pytest.raises(InvalidInputError, match=r"hop_length.*at most 64x.*n_fft / 64 = 1024"):
        kernels.log_mel(np.zeros(139389, np.float32), o)
    with pytest.raises(InvalidInputError, match="hop_length"):
        LogMelStream(LogMelOptions(n_fft=65536, win_length=65536, hop_length=2))
    LogMelOptions(n_fft=512, hop_length=8).validate()  # exactly 64x is allowed


@native
def test_native_constructor_enforces_the_same_bounds():
    nat = get_native()

    def cfg(**kw):
        c = nat.LogMelConfig()
        for k, v in kw.items():
            setattr(c, k, v)
        return c
    with pytest.raises(ValueError, match="hop_length"):
        nat.LogMel(cfg(n_fft=65536, win_length=400, hop_length=2))
    with pytest.raises(ValueError, match="one FFT bin"):
        nat.LogMel(cfg(fmin=1000.0, fmax=1000.001))


@pytest.mark.parametrize("fmin,fmax", [(1000.0, 1000.0001), (4000.0, 4010.0)])
def test_degenerate_mel_band_is_rejected(fmin, fmax):
    with pytest.raises(InvalidInputError, match="narrower than one FFT bin"):
        kernels.log_mel(np.zeros(4000, np.float32), LogMelOptions(fmin=fmin, fmax=fmax))


def test_narrow_but_legal_band_gives_finite_weights():
    fb = kernels.mel_filterbank(LogMelOptions(fmin=1000.0, fmax=1000.0 + 16000 / 512, n_mels=4))
    assert np.isfinite(fb).all()


def test_options_are_validated_on_a_cache_hit():
    kernels.log_mel(np.zeros(1600, np.float32), LogMelOptions())  # fills the cache for the 512 key
    for bad in (LogMelOptions(n_fft=512.7), LogMelOptions(sample_rate=True), LogMelOptions(hop_length="160")):
        with pytest.raises(InvalidInputError):
            kernels.log_mel(np.zeros(1600, np.float32), bad)


@native
def test_output_size_limit_is_named():
    nat = get_native()
    c = nat.LogMelConfig()
    c.n_fft, c.win_length, c.hop_length, c.n_mels = 16, 16, 1, 4096
    lm = nat.LogMel(c)
    with pytest.raises(ValueError, match="limit of 268435456 values"):
        lm.compute(np.zeros(70000, np.float32))


def test_misaligned_waveform_gives_the_aligned_result():
    x = (np.random.default_rng(0).standard_normal(8000) * 0.1).astype(np.float32)
    m = _misaligned(x)
    np.testing.assert_array_equal(kernels.log_mel(m), kernels.log_mel(x))
    s = LogMelStream()
    got = np.concatenate([s.accept(m[:3000]), s.accept(m[3000:]), s.flush()])
    np.testing.assert_allclose(got, kernels.log_mel(x), atol=1e-4)
    i16 = _misaligned((x * 20000).astype(np.int16))
    np.testing.assert_array_equal(kernels.log_mel(i16), kernels.log_mel(np.ascontiguousarray(i16)))


@native
def test_stream_sample_rate_of_the_wrong_type_is_a_type_error():
    with pytest.raises(TypeError):
        LogMelStream().accept(np.zeros(10, np.float32), "16000")


# ---------------------------------------------------------------- frame preprocessing

def test_area_border_walk_is_bounded():
    t0 = time.perf_counter()
    out = kernels.preprocess(np.zeros((33, 12, 4), np.uint8), size=(1, 32768), box=(0, 0, 1048576, 1048576),
                             interpolation="area")
    dt = time.perf_counter() - t0
    assert out.shape == (1, 3, 32768, 1) and np.isfinite(out).all()
    assert dt < 5.0, f"took {dt:.1f} s (68.5 s before the fix)"


@pytest.mark.parametrize("border", ["constant", "replicate"])
def test_area_sums_in_double_all_255_stays_255(border):
    img = np.full((33, 12, 3), 255, np.uint8)
    out = kernels.preprocess(img, size=(1, 4096), box=(0, 0, 1048576, 1048576), interpolation="area", scale=1.0,
                             offset=0.0, border=border, border_value=255)
    np.testing.assert_allclose(out, 255.0, atol=1e-3)  # 256.43 before
    out = kernels.preprocess(img, size=(5, 7), interpolation="area", scale=1.0, offset=0.0)
    np.testing.assert_allclose(out, 255.0, atol=1e-3)


@pytest.mark.parametrize("kw,match", [(dict(scale=1e30), "beyond"), (dict(offset=1e30), "beyond"),
                                      (dict(mean=0.5, std=1e-12), "beyond"),
                                      (dict(pad_value=1e38, letterbox=True), "pad_value"),
                                      (dict(pad_value=-1.0), "pad_value")])
def test_absurd_normalization_and_pad_values_are_rejected(kw, match):
    with pytest.raises(ValueError, match=match):
        kernels.preprocess(np.zeros((16, 16, 3), np.uint8), size=(8, 8), **kw)


def test_batch_and_output_size_limits_are_named():
    img = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match="limit of 4096"):
        kernels.preprocess_batch(img, np.tile([0.0, 0.0, 8.0, 8.0], (4097, 1)), (4, 4))
    with pytest.raises(ValueError, match="limit of 268435456"):
        kernels.preprocess_batch(img, np.tile([0.0, 0.0, 8.0, 8.0], (100, 1)), (32768, 32))


def test_misaligned_out_is_rejected_and_misaligned_boxes_work():
    img = np.random.default_rng(0).integers(0, 256, (20, 20, 3)).astype(np.uint8)
    out = _misaligned(np.zeros((1, 3, 8, 8), np.float32))
    with pytest.raises(ValueError, match="not aligned"):
        kernels.preprocess(img, (8, 8), out=out)
    boxes = _misaligned(np.array([[1.0, 2.0, 10.0, 12.0], [0.0, 0.0, 20.0, 20.0]]))
    np.testing.assert_array_equal(kernels.preprocess_batch(img, boxes, (8, 8)),
                                  kernels.preprocess_batch(img, np.ascontiguousarray(boxes), (8, 8)))


@native
def test_native_frame_entry_rejects_misaligned_out():
    nat = get_native()
    out = _misaligned(np.zeros((1, 3, 4, 4), np.float32))
    with pytest.raises(ValueError, match="not aligned"):
        nat.frame_boxes(np.zeros((8, 8, 3), np.uint8), np.array([[0.0, 0.0, 8.0, 8.0]]), out, nat.FrameOptions())


# ---------------------------------------------------------------- detector decode

def _saturated(n=896):
    anchors = detect.blazeface_anchors(128)[:n]
    reg = np.zeros((n, 16), np.float32)
    reg[:, 2:4] = 20.0
    sc = np.full(n, -1e30, np.float32)
    return reg, sc, anchors


@pytest.mark.parametrize("backend", [None, "numba"])
def test_decode_min_score_zero_with_saturated_scores_gives_finite_rows(backend):
    if backend == "numba":
        pytest.importorskip("numba")
    reg, sc, anchors = _saturated()
    rows = detect.decode(reg, sc, anchors, min_score=0.0, score_clip=100.0, backend=backend)
    assert rows.shape[0] > 0 and np.isfinite(rows).all()


@pytest.mark.parametrize("clip", [104.0, 1e30, float("inf"), 0.0, float("nan")])
def test_decode_score_clip_out_of_range_is_rejected(clip):
    reg, sc, anchors = _saturated()
    with pytest.raises(InvalidInputError, match="score_clip"):
        detect.decode(reg, sc, anchors, min_score=0.0, score_clip=clip)


@native
def test_decode_anchor_limits_are_named():
    nat = get_native()
    n = (1 << 14) + 1
    with pytest.raises(ValueError, match="limit of 16384"):
        nat.blazeface_decode(np.zeros((n, 16), np.float32), np.zeros(n, np.float32), np.zeros((n, 2), np.float32))
    with pytest.raises(ValueError, match="anchors, above the limit"):
        nat.blazeface_anchors(4096, [1] * 4, [64] * 4)
    with pytest.raises(InvalidInputError, match="anchors, above the limit"):
        detect.blazeface_anchors(4096, [1] * 4, [64] * 4)


@native
def test_decode_misaligned_inputs_match_aligned():
    reg, sc, anchors = _saturated()
    sc[:5] = 5.0
    a = detect.decode(reg, sc, anchors)
    b = detect.decode(_misaligned(reg), _misaligned(sc), _misaligned(anchors))
    np.testing.assert_array_equal(a, b)


@native
def test_long_log_mel_call_is_interruptible():
    """A long call checks for signals between slices: Ctrl-C (here: an alarm handler that raises) stops it."""
    import signal
    import threading
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals are delivered to the main thread only")

    class Stop(Exception):
        pass

    def handler(signum, frame):
        raise Stop()

    x = np.zeros(1 << 24, np.float32)  # 16.8 M samples: several seconds at n_fft 4096 / hop 64
    o = LogMelOptions(n_fft=4096, win_length=4096, hop_length=64, n_mels=64)
    old = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        t0 = time.perf_counter()
        with pytest.raises(Stop):
            kernels.log_mel(x, o)
        dt = time.perf_counter() - t0
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert dt < 3.0, f"the call ran {dt:.1f} s after the alarm at 0.3 s"
