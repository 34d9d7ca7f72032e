"""Voice streaming: bundled models, streaming == offline, timestamps, bad input, held-out accuracy, eval CLI."""
import io
import json
import pathlib
import tracemalloc
from contextlib import redirect_stdout

import numpy as np
import pytest

from emoedge.audio import resample
from emoedge.errors import InvalidInputError, StreamClosedError
from emoedge.manifest import load_manifest, sha256_file
from emoedge.voice import VoiceModel, VoiceOptions, window_ends

REPO = pathlib.Path(__file__).resolve().parents[1]
HELDOUT_ACTORS = (17, 18, 19, 20)


@pytest.fixture(scope="module")
def model():
    return VoiceModel()


@pytest.fixture(scope="module")
def ravdess(shared_data):
    d = np.load(shared_data / "speech" / "ravdess_speech_actors01-20_16k.npz")
    return {k: d[k] for k in ("audio", "offsets", "labels", "speaker", "label_names")}


def clip(r, i):
    return r["audio"][r["offsets"][i]:r["offsets"][i + 1]]


def test_bundled_voice_models_load_with_matching_sha256():
    m = load_manifest()
    for name in ("voice-ser-fp32", "voice-ser-int8"):
        e = m.entry(name)
        assert e["task"] == "voice" and e["family"] == "voice-ser" and e["output"] == "logits"
        assert sha256_file(m.model_path(name)) == e["sha256"]
        assert e["temperature"] > 0 and len(e["labels"]) == 8
        assert e["params"] <= 1_000_000
        vm = VoiceModel(name=name, vad=False)
        out = vm.run_logits(np.full((2, vm.window_frames, vm.n_mels), -50, np.float32))
        assert out.shape == (2, 8) and np.isfinite(out).all()


def test_window_ends_rule():
    assert window_ends(0, 50, 100) == []
    assert window_ends(30, 50, 100) == [30]            # shorter than min fill: one final window
    assert window_ends(146, 50, 100) == [100, 146]     # 46 >= 25 frames since the last: final window
    assert window_ends(210, 50, 100) == [100, 150, 200]


def _stream_chunks(model, x, sr, rng, **kw):
    evs = []
    with model.stream(**kw) as s:
        i = 0
        while i < len(x):
            n = int(rng.integers(1, 9000))
            evs += s.push(x[i:i + n], sr)
            i += n
        evs += s.flush()
    return evs


@pytest.mark.parametrize("sr", [16000, 44100])
def test_streaming_equals_offline(model, ravdess, sr):
    rng = np.random.default_rng(sr)
    x = np.concatenate([clip(ravdess, 961), clip(ravdess, 1100)])   # two held-out clips back to back (~5 s)
    if sr != 16000:
        x = resample(x, 16000, sr)
    off = model.predict_clip(x, sr)
    evs = _stream_chunks(model, x, sr, rng, vad_gate=False)
    assert len(evs) == len(off.windows) >= 6
    for a, b in zip(evs, off.windows):
        assert a.t_end == pytest.approx(b.t_end, abs=1e-9)
        np.testing.assert_allclose(a.probs, b.probs, atol=1e-4)
        assert a.probs.sum() == pytest.approx(1.0, abs=1e-5)
    # the clip decision is the mean of those windows
    np.testing.assert_allclose(off.probs, np.mean([e.probs for e in evs], 0), atol=1e-4)
    # with the VAD gate on, the emitted windows are a subset with identical numbers
    gated = _stream_chunks(model, x, sr, rng, vad_gate=True)
    by_t = {round(e.t_end, 6): e for e in evs}
    assert 0 < len(gated) <= len(evs)
    for g in gated:
        np.testing.assert_allclose(g.probs, by_t[round(g.t_end, 6)].probs, atol=1e-4)
        assert g.vad_prob >= 0.5


def test_timestamps_follow_the_source_clock(model, ravdess):
    x = clip(ravdess, 961)
    with model.stream(vad_gate=False) as s:
        evs = s.push(x[:16000], 16000, t=100.0) + s.push(x[16000:], 16000) + s.flush()
    ends = [e.t_end for e in evs]
    assert ends == sorted(ends) and ends[0] == pytest.approx(101.0, abs=1e-6)
    assert all(e.t_start >= 100.0 and e.t_end - e.t_start <= model.window_s + 1e-6 for e in evs)
    with model.stream() as s:
        s.push(x[:1000], 16000, t=5.0)
        with pytest.raises(InvalidInputError, match="back in time"):
            s.push(x[1000:2000], 16000, t=4.0)


def test_silence_gives_no_evidence(model):
    with model.stream() as s:
        assert s.push(np.zeros(16000 * 4, np.int16), 16000) + s.flush() == []


def test_bad_input(model):
    s = model.stream()
    assert s.push(np.zeros(0, np.float32), 16000) == []
    assert s.push(np.zeros((0, 2), np.int16), 16000) == []
    with pytest.raises(ValueError, match="nan_to_num"):
        s.push(np.array([0.1, np.nan, 0.2], np.float32), 16000)
    with pytest.raises(ValueError, match="dtype"):
        s.push(np.zeros(100, np.int32), 16000)
    with pytest.raises(ValueError, match="1-D"):
        s.push(np.zeros((10, 2, 2), np.float32), 16000)
    with pytest.raises(ValueError, match="channel-first"):
        s.push(np.zeros((2, 4000), np.float32), 16000)
    s.push(np.zeros((800, 2), np.float32), 48000)            # stereo at 48 kHz fixes the rate
    with pytest.raises(InvalidInputError, match="sample rate changed"):
        s.push(np.zeros(800, np.float32), 16000)
    s.flush()
    s.reset()                                                # documented way to switch rates
    s.push(np.zeros(800, np.float32), 16000)
    s.close()
    with pytest.raises(StreamClosedError):
        s.push(np.zeros(10, np.float32), 16000)
    with pytest.raises(InvalidInputError, match="hop_s"):
        model.stream(hop_s=0.0)
    with pytest.raises(InvalidInputError, match="multiple"):
        model.stream(hop_s=0.123)


@pytest.mark.slow
def test_ten_minute_chunk_bounded_memory(model):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(16000 * 600) * 30).astype(np.int16)   # 10 min of low noise, pushed at once
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    with model.stream(options=VoiceOptions(slice_s=10.0)) as s:
        evs = s.push(x, 16000) + s.flush()
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    assert peak < 12e6, f"peak extra memory {peak / 1e6:.1f} MB for a 19 MB chunk processed in 10 s slices"
    assert all(e.vad_prob >= 0.5 for e in evs)


def test_ravdess_accuracy_floor_and_recorded_cross_validation(shared_data):
    from emoedge.evaluation.voice import evaluate_file
    from emoedge.manifest import load_manifest
    rep = evaluate_file(shared_data / "speech" / "ravdess_speech_actors01-20_16k.npz", speakers=HELDOUT_ACTORS)
    assert rep["n"] == 240
    # a floor far above chance (12.5%): the runtime path (windows, VAD-free clip decision) works end to end
    assert rep["accuracy"] >= 0.50, rep["accuracy"]
    entry = load_manifest().entry(rep["model"])
    trained = set(entry["trained_speakers"]["ravdess"])
    if trained & set(HELDOUT_ACTORS):
        # a final fit on every actor: its honest numbers are the recipe's out-of-fold CV, recorded per fold
        cv = entry["metrics"]["cv"]
        assert len(cv["ravdess_full"]["per_fold"]) == 5 and cv["ravdess_full"]["mean"] >= 0.6
        assert entry["metrics"]["cv_runtime"]["ravdess"]["mean_accuracy"] >= 0.6


def test_eval_cli_json(shared_data):
    from emoedge.cli import main
    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = main(["eval", "voice", "--data", str(shared_data / "speech" / "emodb_speakers_no15-16_16k.npz"),
                   "--speakers", "3,8", "--limit", "12", "--precision", "fp32", "--json"])
    assert rc in (0, None)
    rep = json.loads(buf.getvalue())
    for k in ("n", "accuracy", "macro_f1", "per_class", "confusion_matrix", "labels", "skipped_classes", "folded", "model"):
        assert k in rep
    assert rep["n"] == 12 and rep["model"] == "voice-ser-fp32"
    assert rep["skipped_classes"].get("boredom", 0) > 0          # EmoDB boredom: no counterpart, skipped
    assert rep["folded"] == {"calm": "neutral"}
    assert rep["label_mapping"]["anger"] == "angry"
    assert len(rep["confusion_matrix"]) == len(rep["labels"])
