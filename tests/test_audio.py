"""emoedge.audio: validation, downmix, anti-aliased resampling (soxr)."""
import numpy as np
import pytest

from emoedge.audio import Resampler, check_pcm, resample, to_float_mono
from emoedge.errors import InvalidInputError

EDGE = 200  # output samples ignored at each end (filter transients), 12.5 ms at 16 kHz


def tone(freq, sr, seconds=1.0, amp=0.5):
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("sr", [44100, 48000, 8000, 22050])
def test_resampler_preserves_tone(sr):
    # reference: the same 1 kHz tone generated directly at 16 kHz; soxr HQ is delay-compensated
    y = resample(tone(1000.0, sr), sr, 16000)
    assert len(y) == 16000
    ref = tone(1000.0, 16000)
    err = np.abs(y[EDGE:-EDGE] - ref[EDGE:-EDGE]).max()
    assert err < 2e-3, f"{sr} Hz -> 16 kHz: max error {err:.2e} vs the analytic tone (tolerance 2e-3 of 0.5 amplitude)"


@pytest.mark.parametrize("sr,freq", [(48000, 12000.0), (44100, 10000.0), (48000, 9000.0)])
def test_resampler_rejects_aliasing(sr, freq):
    # a tone above the 8 kHz output Nyquist must vanish; naive decimation would fold it back at full amplitude
    x = tone(freq, sr)
    y = resample(x, sr, 16000)
    rms = np.sqrt(np.mean(y[EDGE:-EDGE] ** 2))
    assert rms < 0.5 / np.sqrt(2) * 10 ** (-60 / 20), f"alias of {freq} Hz at {20 * np.log10(rms / 0.3536):.1f} dB (need < -60 dB)"
    naive = x[::3] if sr == 48000 else x[::int(round(sr / 16000))]
    assert np.sqrt(np.mean(naive ** 2)) > 0.3   # the decimation strawman really aliases


def test_streaming_resampler_equals_one_shot():
    rng = np.random.default_rng(0)
    x = (0.2 * rng.standard_normal(44100 * 2)).astype(np.float32)
    r = Resampler(44100, 16000)
    parts, i = [], 0
    while i < len(x):
        n = int(rng.integers(1, 5000))
        parts.append(r.process(x[i:i + n]))
        i += n
    parts.append(r.flush())
    y = np.concatenate(parts)
    ref = resample(x, 44100, 16000)
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, atol=1e-6)


def test_passthrough_at_16k():
    x = tone(440.0, 16000)
    np.testing.assert_array_equal(resample(x, 16000, 16000), x)


def test_int16_and_downmix():
    a = (np.arange(10, dtype=np.int16) * 1000)
    assert np.allclose(to_float_mono(a), a / 32768.0)
    st = np.stack([np.ones(8, np.float32), -np.ones(8, np.float32) * 0.5], axis=1)   # [n, 2]
    np.testing.assert_allclose(to_float_mono(st), 0.25)
    assert to_float_mono(np.zeros((5, 1), np.float64)).dtype == np.float32


@pytest.mark.parametrize("bad,match", [
    (np.zeros(10, np.int32), "dtype"),
    (np.zeros((2, 3, 4), np.float32), "1-D"),
    (np.zeros((2, 16000), np.float32), "channel-first"),
    (np.array([0.0, np.nan], np.float32), "NaN"),
    (np.array([0.0, np.inf]), "NaN/Inf"),
    ("abc", "numpy array"),
])
def test_bad_input(bad, match):
    with pytest.raises(InvalidInputError, match=match):
        to_float_mono(bad)


@pytest.mark.parametrize("sr", [0, -16000, 16000.5, "16k", 100])
def test_bad_rate(sr):
    with pytest.raises(InvalidInputError, match="sample_rate"):
        Resampler(sr, 16000)


def test_check_pcm_no_copy():
    x = np.zeros(100, np.float32)
    assert check_pcm(x) is x
