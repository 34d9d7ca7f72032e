"""Engine/Stream API with small deterministic fakes of the face, voice and text components (the real
models are exercised in test_engine_models.py)."""
import json
import math
import threading
from dataclasses import dataclass, field

import numpy as np
import pytest

from emoedge.engine import Engine
from emoedge.errors import InvalidInputError, StreamClosedError
from emoedge.events import EmotionEvent
from emoedge.labels import CANONICAL
from emoedge import sources as S

FACE_LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]   # FER order, mapped by name
VOICE_LABELS = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
TEXT_LABELS = ["sadness", "joy", "love", "anger", "fear", "surprise"]


@dataclass
class FakeFaceObj:
    box: tuple
    score: float
    keypoints: list
    track_id: int
    labels: list
    probs: np.ndarray
    timing: dict = field(default_factory=dict)


class FakeTracker:
    """Implements emoedge.components.Tracker."""

    def __init__(self):
        self.next_id = 0
        self.prev = None

    def reset(self):
        self.__init__()

    def assign(self, box):
        if self.prev is None or abs(self.prev[1][0] - box[0]) > 40:
            self.prev = (self.next_id, box)
            self.next_id += 1
        self.prev = (self.prev[0], box)
        return self.prev[0]


class FakeFace:
    """Implements emoedge.components.FaceComponent: 'detects' one face when the frame's mean brightness
    is > 20; the face's probabilities are a deterministic function of the pixels (so runs can be compared event by event)."""
    name = "fake-face"

    def new_tracker(self):
        return FakeTracker()

    def analyze(self, frame, t=None, tracker=None):
        m = float(frame.mean())
        if m <= 20:
            return []
        h, w = frame.shape[:2]
        box = (w * 0.3, h * 0.25, w * 0.3, h * 0.4)
        logits = np.array([np.sin(m / 10.0 + i) for i in range(7)]) * 2.0
        p = np.exp(logits - logits.max()); p /= p.sum()
        tid = tracker.assign(box) if tracker is not None else None
        return [FakeFaceObj(box=box, score=0.9, keypoints=[(box[0] + 5, box[1] + 5)] * 6, track_id=tid,
                            labels=FACE_LABELS, probs=p, timing={"detect": 0.1, "align": 0.05, "classify": 0.2})]


class FakeVoiceStream:
    """Implements emoedge.components.VoiceStreamLike."""

    def __init__(self):
        self.buf = 0.0
        self.t0 = None
        self.energy = 0.0
        self.n = 0

    def push(self, pcm, sample_rate, t=None):
        x = np.asarray(pcm, dtype=np.float64)
        if x.ndim == 2:
            x = x.mean(axis=1)
        if self.t0 is None:
            self.t0 = t
        out = []
        self.energy += float((x ** 2).sum())
        self.n += x.size
        self.buf += x.size / sample_rate
        while self.buf >= 0.5:
            self.buf -= 0.5
            t_end = t + x.size / sample_rate - self.buf
            rms = math.sqrt(self.energy / max(1, self.n))
            logits = np.array([np.cos(rms * 20 + i) for i in range(8)])
            p = np.exp(logits); p /= p.sum()
            out.append(type("VE", (), dict(t_start=t_end - 2.0, t_end=t_end, labels=VOICE_LABELS, probs=p,
                                            vad_prob=min(1.0, rms * 10), latency_ms=0.3))())
            self.energy, self.n = 0.0, 0
        return out

    def flush(self):
        return []

    def reset(self):
        self.__init__()


class FakeVoice:
    """Implements emoedge.components.VoiceComponent."""
    name = "fake-voice"

    def stream(self, options=None):
        return FakeVoiceStream()


class FakeText:
    """Implements emoedge.components.TextComponent."""
    name = "fake-text"

    def predict(self, text):
        p = np.full(6, 0.05)
        p[1 if "happy" in text else 0] = 0.75
        return type("TP", (), dict(labels=TEXT_LABELS, probs=p / p.sum(), n_tokens=len(text.split()), latency_ms=0.01))()


def fake_engine(**kw):
    return Engine(face=kw.pop("face", FakeFace()), voice=kw.pop("voice", FakeVoice()), text=kw.pop("text", FakeText()), **kw)


def frames(n=30, w=160, h=120, seed=0, fps=10.0):
    rng = np.random.default_rng(seed)
    for i in range(n):
        img = np.full((h, w, 3), 30 + (i * 7) % 200, np.uint8)
        img[: h // 4] = rng.integers(0, 255, (h // 4, w, 3), dtype=np.uint8)
        yield S.VideoFrame(t=i / fps, image=img, index=i)


def audio_chunks(seconds=3.0, sr=16000, chunk=0.1, seed=1):
    rng = np.random.default_rng(seed)
    n = int(chunk * sr)
    for i in range(int(seconds / chunk)):
        amp = 0.05 + 0.04 * np.sin(i / 3.0)
        yield S.AudioChunk(t=i * chunk, pcm=(rng.standard_normal(n) * amp).astype(np.float32), sample_rate=sr)


def test_push_frame_returns_one_event_with_faces():
    eng = fake_engine()
    with eng.stream() as s:
        evs = s.push_frame(np.full((120, 160, 3), 100, np.uint8), 0.0)
        assert len(evs) == 1
        ev = evs[0]
        assert isinstance(ev, EmotionEvent) and ev.t == 0.0 and ev.trigger == "frame" and ev.frame_index == 0
        assert list(ev.probs) == list(CANONICAL)
        assert abs(sum(ev.probs.values()) - 1) < 1e-4
        assert ev.label in CANONICAL and ev.label == max(ev.probs, key=ev.probs.get)
        assert len(ev.faces) == 1 and ev.faces[0].track_id == 0
        assert set(ev.faces[0].raw_probs) == set(FACE_LABELS)
        assert "face" in ev.evidence and 0 < ev.evidence["face"].weight <= 1.0
        for k in ("detect", "align", "classify", "fuse", "total"):
            assert k in ev.latency_ms
        # dark frame: no face, but still an event carrying the older face evidence, aged
        ev2 = s.push_frame(np.zeros((120, 160, 3), np.uint8), 0.5)[0]
        assert ev2.faces == [] and ev2.evidence["face"].age == pytest.approx(0.5)


def test_no_evidence_event_is_uniform_with_no_label():
    eng = fake_engine()
    s = eng.stream()
    ev = s.push_frame(np.zeros((64, 64, 3), np.uint8), 1.0)[0]
    assert ev.label is None and ev.confidence == 0.0 and ev.evidence == {}
    assert all(abs(v - 1 / 7) < 1e-5 for v in ev.probs.values())


def test_event_json_round_trip():
    eng = fake_engine()
    s = eng.stream(keep_frames=True)
    s.push_text("I am happy", 0.0)
    ev = s.push_frame(np.full((120, 160, 3), 90, np.uint8), 0.1)[0]
    assert ev.frame is not None
    d = json.loads(ev.to_json())
    assert "frame" not in d and set(d["evidence"]) == {"face", "text"}
    back = EmotionEvent.from_dict(d)
    assert back.to_dict() == ev.to_dict()


def test_text_events_and_empty_text():
    s = fake_engine().stream()
    assert s.push_text("   ", 0.0) == []
    ev = s.push_text("so happy today", 1.0)[0]
    assert ev.trigger == "text" and ev.label == "happy" and set(ev.evidence) == {"text"}
    assert s.push_text(b"\xff\xfe bytes happy", 2.0)[0].label == "happy"
    with pytest.raises(InvalidInputError):
        s.push_text(123, 3.0)


def test_audio_events_at_window_ends():
    s = fake_engine().stream()
    evs = []
    for c in audio_chunks(2.0):
        evs += s.push_audio(c.pcm, c.sample_rate, c.t)
    assert [round(e.t, 3) for e in evs] == [0.5, 1.0, 1.5, 2.0]
    assert all(e.trigger == "audio" and "voice" in e.evidence for e in evs)
    assert s.stats.audio_chunks == 20 and s.stats.audio_seconds == pytest.approx(2.0)


def test_timestamps_backwards_name_both_times():
    s = fake_engine().stream()
    img = np.full((64, 64, 3), 99, np.uint8)
    s.push_frame(img, 2.0)
    with pytest.raises(InvalidInputError, match=r"t=1\.000000 s.*t=2\.000000 s"):
        s.push_frame(img, 1.0)
    with pytest.raises(InvalidInputError, match="equal to"):
        s.push_frame(img, 2.0)
    s.push_audio(np.zeros(160, np.float32), 16000, 5.0)
    with pytest.raises(InvalidInputError, match="push_audio"):
        s.push_audio(np.zeros(160, np.float32), 16000, 4.0)
    s.push_text("x", 3.0)
    with pytest.raises(InvalidInputError, match="push_text"):
        s.push_text("x", 2.5)
    with pytest.raises(InvalidInputError, match="finite"):
        s.push_frame(img, float("nan"))


def test_closed_stream_raises():
    s = fake_engine().stream()
    s.close()
    s.close()  # idempotent
    for call in (lambda: s.push_frame(np.zeros((32, 32, 3), np.uint8), 0.0),
                 lambda: s.push_audio(np.zeros(10, np.float32), 16000, 0.0),
                 lambda: s.push_text("hi", 0.0), s.flush):
        with pytest.raises(StreamClosedError, match="closed"):
            call()
    with fake_engine().stream() as s2:
        pass
    with pytest.raises(StreamClosedError):
        s2.push_text("hi", 0.0)


@pytest.mark.parametrize("bad,match", [
    (np.zeros((32, 32, 3), np.float32), "uint8"),
    (np.zeros((32, 32, 2), np.uint8), "shape"),
    (np.zeros((4, 4, 3), np.uint8), "too small"),
    ([[1, 2, 3]], "numpy array"),
])
def test_bad_frames_raise_clear_errors(bad, match):
    s = fake_engine().stream()
    with pytest.raises(InvalidInputError, match=match):
        s.push_frame(bad, 0.0)
    # the stream is still usable after a rejected frame
    assert len(s.push_frame(np.full((32, 32, 3), 50, np.uint8), 0.0)) == 1


def test_gray_and_bgra_frames_accepted():
    s = fake_engine().stream()
    assert s.push_frame(np.full((40, 40), 60, np.uint8), 0.0)[0].faces
    assert s.push_frame(np.full((40, 40, 4), 60, np.uint8), 0.1)[0].faces


def test_frame_size_change_resets_tracker():
    s = fake_engine().stream()
    a = s.push_frame(np.full((120, 160, 3), 80, np.uint8), 0.0)[0]
    b = s.push_frame(np.full((240, 320, 3), 80, np.uint8), 0.1)[0]
    c = s.push_frame(np.full((240, 320, 3), 80, np.uint8), 0.2)[0]
    assert s.stats.size_changes == 1
    assert a.faces[0].track_id == 0 and b.faces[0].track_id == 0 and c.faces[0].track_id == 0
    assert s.stats.frames_processed == 3


def test_engine_options_validated():
    with pytest.raises(InvalidInputError, match="precision"):
        fake_engine(precision="int4")
    with pytest.raises(InvalidInputError, match="threads"):
        fake_engine(threads=0)
    with pytest.raises(InvalidInputError, match="mode"):
        fake_engine().stream(mode="batch")
    with pytest.raises(TypeError):
        Engine(None)  # keyword-only


def test_disabled_modalities():
    eng = Engine(face=False, voice=False, text=FakeText())
    s = eng.stream()
    ev = s.push_frame(np.full((32, 32, 3), 99, np.uint8), 0.0)[0]
    assert ev.faces == [] and ev.label is None
    assert s.push_audio(np.zeros(1600, np.float32), 16000, 0.0) == []
    assert eng.info()["modalities"] == ["text"]


def _serial_events(eng, seed):
    s = eng.stream(stream_id=f"s{seed}")
    out = []
    items = list(frames(20, seed=seed)) + list(audio_chunks(2.0, seed=seed))
    items.sort(key=lambda it: (it.t + (it.duration if it.kind == "audio" else 0), it.kind != "audio"))
    for it in items:
        out += s.push_frame(it.image, it.t) if it.kind == "video" else s.push_audio(it.pcm, it.sample_rate, it.t)
    return [e.to_dict() for e in out]


def test_eight_threads_equal_eight_serial_runs():
    eng = fake_engine()
    serial = [_serial_events(eng, k) for k in range(8)]
    results = [None] * 8

    def work(k):
        results[k] = _serial_events(eng, k)

    ths = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    [t.start() for t in ths]
    [t.join() for t in ths]

    def strip(evs):
        return [{k: v for k, v in e.items() if k != "latency_ms"} for e in evs]
    for k in range(8):
        assert strip(results[k]) == strip(serial[k])


def test_run_file_mode_processes_every_frame_in_time_order():
    eng = fake_engine()
    video = S.ArraySource(list(frames(40)), kinds=("video",))
    audio = S.ArraySource(list(audio_chunks(4.0)), kinds=("audio",))
    text = S.ArraySource([S.TextItem(1.05, "happy now")], kinds=("text",))
    run = eng.run(video=video, audio=audio, text=text)
    evs = list(run)
    assert run.stats.frames_processed == 40 and run.stats.frames_dropped == 0
    assert sum(e.trigger == "frame" for e in evs) == 40
    assert sum(e.trigger == "audio" for e in evs) == 8
    assert sum(e.trigger == "text" for e in evs) == 1
    ts = [e.t for e in evs]
    assert ts == sorted(ts)
    # deterministic: a second run gives the same events
    evs2 = list(eng.run(video=S.ArraySource(list(frames(40)), kinds=("video",)),
                        audio=S.ArraySource(list(audio_chunks(4.0)), kinds=("audio",)),
                        text=S.ArraySource([S.TextItem(1.05, "happy now")], kinds=("text",))))
    strip = lambda evs: [{k: v for k, v in e.to_dict().items() if k != "latency_ms"} for e in evs]
    assert strip(evs) == strip(evs2)


class SlowFace(FakeFace):
    def analyze(self, frame, t=None, tracker=None):
        import time
        time.sleep(0.02)
        return super().analyze(frame, t, tracker)


def test_run_live_mode_keeps_newest_frame_and_counts_drops():
    eng = fake_engine(face=SlowFace())
    src = S.ArraySource(list(frames(60, fps=200.0)), kinds=("video",), live=True)
    run = eng.run(video=src)
    evs = list(run)
    st = run.stats
    assert st.frames_processed + st.frames_dropped == 60, st
    assert st.frames_dropped > 0 and len(evs) == st.frames_processed
    assert evs[-1].drops["frames_dropped"] <= st.frames_dropped
    # the newest frame wins: the last frame is always processed
    assert evs[-1].frame_index == st.frames_processed - 1


def test_run_reader_error_is_raised():
    def bad():
        yield from frames(3)
        raise InvalidInputError("broken.mp4: decoding failed")
    eng = fake_engine()
    with pytest.raises(InvalidInputError, match="broken.mp4"):
        list(eng.run(video=S.ArraySource(bad(), kinds=("video",))))


def test_run_early_close_stops_readers():
    eng = fake_engine()
    run = eng.run(video=S.ArraySource(list(frames(200)), kinds=("video",)), queue_size=2)
    for i, _ in enumerate(run):
        if i == 5:
            break
    run.close()
    assert all(not t.is_alive() for t in run._threads)


def test_run_needs_a_source():
    with pytest.raises(InvalidInputError, match="at least one source"):
        fake_engine().run()


def test_abandoned_run_stops_its_readers():
    import gc
    import time
    eng = fake_engine()
    run = eng.run(video=S.ArraySource(list(frames(300)), kinds=("video",)), queue_size=2)
    threads = None
    for i, _ in enumerate(run):
        threads = list(run._threads)
        if i == 3:
            break
    del run
    gc.collect()
    deadline = time.monotonic() + 5
    while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(t.is_alive() for t in threads)


def test_event_times_never_go_back_when_audio_lags():
    s = fake_engine().stream()
    s.push_frame(np.full((64, 64, 3), 80, np.uint8), 0.53)
    evs = s.push_audio(np.full(9600, 0.05, np.float32), 16000, 0.0)   # one window ending at 0.5 s
    assert len(evs) == 1
    assert evs[0].t == pytest.approx(0.53) and evs[0].evidence["voice"].t == pytest.approx(0.5)
    assert evs[0].evidence["voice"].age == pytest.approx(0.03)
