"""Bundled Silero VAD: file integrity, streaming contract, speech vs silence/noise on real audio."""
import importlib.util
import pathlib

import numpy as np

from emoedge.manifest import load_manifest, sha256_file
from emoedge.voice import VAD_CHUNK, VadStream, load_vad, vad_probabilities

REPO = pathlib.Path(__file__).resolve().parents[1]


def _export_module():
    spec = importlib.util.spec_from_file_location("vad_export", REPO / "export" / "vad_export.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bundled_vad_matches_pinned_sha256_and_licence():
    m = load_manifest()
    name = m.find("vad")
    e = m.entry(name)
    p = m.model_path(name)            # verifies the manifest sha256
    assert sha256_file(p) == e["sha256"] == _export_module().MEMBER_SHA256
    lic = (p.parent / "silero_vad.LICENSE.txt").read_text()
    assert "MIT License" in lic and "Silero Team" in lic


def test_vad_inputs_follow_the_streaming_contract():
    s = load_vad()
    ins = {i.name: i for i in s.get_inputs()}
    assert ins["state"].shape[0] == 2 and ins["state"].shape[2] == 128
    assert ins["sr"].type == "tensor(int64)"
    v = VadStream(s)
    out = v.accept(np.zeros(VAD_CHUNK * 3 + 100, np.float32))
    assert [e for e, _ in out] == [512, 1024, 1536]
    assert v.flush()[0][0] == 1636


def test_state_lives_in_the_stream_not_the_session():
    s = load_vad()
    rng = np.random.default_rng(1)
    x = (0.3 * rng.standard_normal(16000)).astype(np.float32)
    a = [p for _, p in VadStream(s).accept(x)]
    v1, v2 = VadStream(s), VadStream(s)
    v1.accept(np.zeros(8000, np.float32))   # another stream on the same session must not disturb v2
    b = [p for _, p in v2.accept(x)]
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_speech_detected_in_a_real_clip_and_not_in_silence(shared_data):
    d = np.load(shared_data / "speech" / "ravdess_speech_actors01-20_16k.npz")
    a, o = d["audio"], d["offsets"]
    sess = load_vad()
    hits = 0
    for i in (0, 100, 500, 900):
        p = vad_probabilities(a[o[i]:o[i + 1]], 16000, session=sess)
        hits += p.max() > 0.5 and np.mean(p > 0.5) > 0.3
    assert hits == 4, "Silero VAD should find speech in these RAVDESS clips"
    assert vad_probabilities(np.zeros(32000, np.int16), 16000, session=sess).max() < 0.1
    rng = np.random.default_rng(0)
    noise = (10 ** (-50 / 20) * rng.standard_normal(48000 * 2)).astype(np.float32)   # -50 dBFS white noise at 48 kHz
    assert vad_probabilities(noise, 48000, session=sess).max() < 0.5
