"""Issue 14's done-when check, with the real bundled models: `emoedge run clip.mp4 --text-file lines.txt` on a
clip whose face and voice are neutral, with a neutral text line, reports neutral. Also the event-time rule
(events follow the stream clock; ``trigger_t`` is the trigger's own time).

The clip is built from development data (../shared): a FER2013 PublicTest image and a RAVDESS clip of
actor 19 or 20 that the bundled face and voice models read as neutral (that is the test's precondition, so
they are picked by the models' own outputs), the face upscaled to 240 px in a 480x360 frame (BlazeFace's
reliable range), the speech as the video's audio track."""
from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest

from emoedge.cli import main


def _neutral_face(data):
    from emoedge.faces import FaceAnalyzer
    d = np.load(data / "faces" / "fer2013_val.npz")
    names = [str(x) for x in d["class_names"]]
    idx = np.flatnonzero(d["labels"] == names.index("neutral"))[:40]
    fa = FaceAnalyzer()
    best = None
    import cv2
    for i in idx:
        face = cv2.resize(d["images"][i], (240, 240), interpolation=cv2.INTER_CUBIC)
        frame = np.full((360, 480, 3), 128, np.uint8)
        frame[60:300, 120:360] = face[:, :, None]
        faces = fa.analyze(frame)
        if len(faces) == 1:
            p = dict(zip(faces[0].labels, faces[0].probs))
            if best is None or p["neutral"] > best[0]:
                best = (p["neutral"], frame)
    assert best is not None and best[0] > 0.6, "no FER neutral image read as neutral by the face model"
    return best[1]


def _neutral_voice(data):
    from emoedge.voice import VoiceModel
    d = np.load(data / "speech" / "ravdess_speech_actors01-20_16k.npz")
    names = [str(x) for x in d["label_names"]]
    vm = VoiceModel(vad=False)
    a, o = d["audio"], d["offsets"]
    best = None
    for i in np.flatnonzero((d["labels"] == names.index("neutral")) & np.isin(d["speaker"], [19, 20])):
        x = a[o[i]:o[i + 1]].astype(np.float32) / 32768.0
        cp = vm.predict_clip(x, 16000)
        if cp.probs is not None:
            pn = float(cp.probs[list(vm.labels).index("neutral")] + cp.probs[list(vm.labels).index("calm")])
            if best is None or pn > best[0]:
                best = (pn, x)
    assert best is not None and best[0] > 0.6, "no RAVDESS 19/20 neutral clip read as neutral by the voice model"
    return best[1]


def _write_clip(path, frame, speech, seconds=3.0, fps=10, sr=16000):
    import av
    audio = np.zeros(int(seconds * sr), np.float32)
    audio[int(0.3 * sr):int(0.3 * sr) + min(len(speech), len(audio) - int(0.3 * sr))] = speech[:len(audio) - int(0.3 * sr)]
    with av.open(str(path), "w") as c:
        vs = c.add_stream("mpeg4", rate=fps)
        vs.width, vs.height, vs.pix_fmt = frame.shape[1], frame.shape[0], "yuv420p"
        vs.time_base = vs.codec_context.time_base = Fraction(1, 1000)
        vs.codec_context.bit_rate = 2_000_000
        a = c.add_stream("aac", rate=sr)
        a.layout = "mono"
        for i in range(int(seconds * fps)):
            fr = av.VideoFrame.from_ndarray(frame, format="bgr24")
            fr.pts, fr.time_base = int(round(i / fps * 1000)), Fraction(1, 1000)
            for p in vs.encode(fr):
                c.mux(p)
        for p in vs.encode(None):
            c.mux(p)
        for k in range(0, len(audio), 1024):
            af = av.AudioFrame.from_ndarray(audio[None, k:k + 1024], format="flt", layout="mono")
            af.sample_rate, af.pts, af.time_base = sr, k, Fraction(1, sr)
            for p in a.encode(af):
                c.mux(p)
        for p in a.encode(None):
            c.mux(p)
    return path


@pytest.fixture(scope="module")
def neutral_clip(tmp_path_factory, shared_data):
    path = tmp_path_factory.mktemp("neutral") / "clip.mp4"
    return _write_clip(path, _neutral_face(shared_data), _neutral_voice(shared_data))


def _run(clip, tmp_path, line, extra=()):
    txt = tmp_path / "lines.txt"
    txt.write_text(f"0.5\t{line}\n")
    jl = tmp_path / "ev.jsonl"
    assert main(["run", str(clip), "--text-file", str(txt), "--jsonl", str(jl), "--quiet", *extra]) == 0
    return [json.loads(x) for x in jl.read_text().splitlines()]


def test_neutral_face_voice_and_text_reports_neutral(neutral_clip, tmp_path, capsys):
    rows = _run(neutral_clip, tmp_path, "Okay, the meeting is at three.")
    text = [r for r in rows if r["trigger"] == "text"]
    assert len(text) == 1 and text[0]["evidence"]["text"]["label"] == "neutral"
    assert {"face", "voice"} <= set(rows[-1]["evidence"])
    after = [r for r in rows if r["t"] >= 0.5 and r["label"] is not None]
    assert rows[-1]["label"] == "neutral", rows[-1]
    assert np.mean([r["label"] == "neutral" for r in after]) >= 0.9


def test_carer_only_text_model_cannot_vote_against_neutral(neutral_clip, tmp_path, capsys):
    """The CARER-only model (no neutral class) stays available by name; with the partial-label-space rule
    its reading of a neutral line does not turn the neutral clip's label."""
    rows = _run(neutral_clip, tmp_path, "Hello, and welcome to the emoedge demo.", ("--text-model", "text-carer"))
    assert rows[-1]["evidence"]["text"]["probs"]["neutral"] == 0.0  # not modelled: no evidence, reported as 0
    assert rows[-1]["label"] == "neutral", rows[-1]


def test_event_time_follows_stream_clock_trigger_t_is_the_inputs_time():
    """Text stamped 2.0 s pushed after audio that already produced events up to t_a: the text event has
    t == t_a (the stream clock never goes back) and trigger_t == 2.0, and its evidence is aged by t_a - 2."""
    from emoedge import Engine
    from emoedge.voice import VoiceOptions
    eng = Engine(face=False, voice_options=VoiceOptions(vad_gate=False))  # every window, speech or not
    s = eng.stream()
    rng = np.random.default_rng(0)
    sr = 16000
    tone = (0.3 * np.sin(2 * np.pi * 180 * np.arange(9 * sr) / sr) * (1 + 0.3 * rng.standard_normal(9 * sr))).astype(np.float32)
    evs = s.push_audio(tone, sr, 0.0)
    assert evs, "the voice model produced no windows on 9 s of audio"
    t_a = max(e.t for e in evs)
    assert all(e.trigger_t == e.t for e in evs)  # in order: the same
    out = s.push_text("I am so happy to see you!", 2.0)
    assert len(out) == 1
    ev = out[0]
    assert ev.t == pytest.approx(t_a) and ev.trigger_t == 2.0 and ev.trigger == "text"
    assert ev.evidence["text"].t == 2.0 and ev.evidence["text"].age == pytest.approx(t_a - 2.0)
    assert json.loads(ev.to_json())["trigger_t"] == 2.0
