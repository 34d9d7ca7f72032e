"""The engine with the real bundled models (faces, voice, text) on the bundled demo clip: events, threads
vs serial determinism, and the file driver over a real video with its audio track."""
import importlib
import threading

import numpy as np

import pytest

from emoedge.labels import CANONICAL


def _need(mod):
    try:
        importlib.import_module(mod)
    except ImportError as e:
        pytest.skip(f"{mod} is not part of this build yet ({e})")


@pytest.fixture(scope="module")
def engine():
    for m in ("emoedge.faces", "emoedge.voice", "emoedge.text"):
        _need(m)
    from emoedge.engine import Engine
    return Engine()


@pytest.fixture(scope="module")
def face_engine():
    _need("emoedge.faces")
    from emoedge.engine import Engine
    return Engine(voice=False, text=False)


@pytest.fixture(scope="module")
def media():
    from emoedge.bench.e2e import sample_audio, sample_frames
    return sample_frames(12), sample_audio()


def test_default_engine_finds_the_face_and_fuses(face_engine, media):
    frames, _ = media
    s = face_engine.stream()
    evs = [s.push_frame(f, i / 15.0)[0] for i, f in enumerate(frames)]
    assert all(len(e.faces) == 1 for e in evs)
    e = evs[-1]
    assert e.label in CANONICAL and abs(sum(e.probs.values()) - 1) < 1e-4
    assert set(e.evidence) == {"face"} and e.faces[0].track_id is not None
    assert len({ev.faces[0].track_id for ev in evs}) == 1  # one stable track
    x, y, w, h = e.faces[0].box
    assert 150 < x + w / 2 < 500 and w > 80    # the portrait's face, roughly centred
    for k in ("detect", "align", "classify", "fuse", "total"):
        assert e.latency_ms[k] >= 0


def test_voice_and_text_join(engine, media):
    frames, (pcm, sr) = media
    s = engine.stream()
    evs = []
    for k in range(0, pcm.size, sr // 10):
        evs += s.push_audio(pcm[k:k + sr // 10], sr, k / sr)
    evs += s.flush()
    assert evs, "no voice evidence from the demo's speech"
    assert all(e.trigger == "audio" and "voice" in e.evidence for e in evs)
    te = s.push_text("I am really happy to see you today!", 9.5)[0]
    assert "text" in te.evidence and te.evidence["text"].label == "happy"


def _events(engine, frames, pcm, sr, k):
    s = engine.stream(stream_id=str(k))
    out = []
    n = sr // 10
    ai = 0
    for i, f in enumerate(frames):
        t = i / 15.0
        while ai * n < pcm.size and (ai + 1) * n / sr <= t:
            out += s.push_audio(pcm[ai * n:(ai + 1) * n], sr, ai * n / sr)
            ai += 1
        out += s.push_frame(f, t)
    return [{k2: v for k2, v in e.to_dict().items() if k2 not in ("latency_ms", "stream_id")} for e in out]


def test_eight_threads_equal_eight_serial_faces(face_engine, media):
    frames, _ = media
    variants = [frames[k:] + frames[:k] for k in range(8)]

    def events(k):
        s = face_engine.stream()
        return [{k2: v for k2, v in e.to_dict().items() if k2 != "latency_ms"}
                for i, f in enumerate(variants[k] * 2) for e in s.push_frame(f, i / 15.0)]
    serial = [events(k) for k in range(8)]
    got = [None] * 8

    def work(k):
        got[k] = events(k)
    ths = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    [t.start() for t in ths]
    [t.join() for t in ths]
    assert got == serial


def test_face_free_frames_real_models(face_engine, media):
    frames, _ = media
    s = face_engine.stream()
    a = s.push_frame(frames[0], 0.0)[0]
    b = s.push_frame(np.zeros_like(frames[0]), 0.1)[0]        # no face: an event, no crash
    c = s.push_frame(np.full((480, 640, 3), 128, np.uint8), 0.2)[0]
    d = s.push_frame(frames[1], 0.3)[0]
    assert len(a.faces) == 1 and b.faces == [] and c.faces == [] and len(d.faces) == 1
    assert b.evidence["face"].age == pytest.approx(0.1)         # the last face evidence, aging


def test_size_change_with_real_faces(face_engine, media):
    import cv2
    frames, _ = media
    s = face_engine.stream()
    a = s.push_frame(frames[0], 0.0)[0]
    small = cv2.resize(frames[1], (320, 240))
    b = s.push_frame(small, 0.1)[0]
    assert s.stats.size_changes == 1 and len(b.faces) == 1
    assert b.faces[0].track_id != a.faces[0].track_id   # a new track after the reset, never a reused id
    assert b.faces[0].box[2] < a.faces[0].box[2]


def test_eight_threads_equal_eight_serial_runs_real_models(engine, media):
    frames, (pcm, sr) = media
    pcm = pcm[: 3 * sr]
    frames = frames * 4   # 48 frames = 3.2 s
    variants = [(frames[k:] + frames[:k], pcm) for k in range(8)]
    serial = [_events(engine, f, p, sr, k) for k, (f, p) in enumerate(variants)]
    got = [None] * 8

    def work(k):
        got[k] = _events(engine, variants[k][0], variants[k][1], sr, k)
    ths = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    [t.start() for t in ths]
    [t.join() for t in ths]
    for k in range(8):
        assert got[k] == serial[k], f"stream {k} differs between threaded and serial runs"


def test_run_demo_clip_file_mode(engine):
    from emoedge.cli.demo import sample_paths
    video, text = sample_paths()
    run = engine.run(video=video, text=text)
    evs = list(run)
    st = run.stats
    assert st.frames_processed == 135 and st.frames_dropped == 0
    assert st.frames_with_faces >= 100          # the portrait segment (1-9 s)
    assert sum(e.trigger == "text" for e in evs) == 2
    assert [e.t for e in evs] == sorted(e.t for e in evs)
