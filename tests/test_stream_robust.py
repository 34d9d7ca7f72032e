"""Stream-level audit items of issue #20: a rejected push changes no state, channel-first chunks, non-number
timestamps, invalid Unicode, a closed engine, the bounded track set, and a video whose audio mostly fails
to decode."""
import hashlib
import math
import pathlib

import numpy as np
import pytest

from emoedge.errors import InvalidInputError, StreamClosedError
from test_engine import FakeFace, FakeFaceObj, FACE_LABELS, fake_engine


def _pcm(seconds=0.1, sr=16000):
    return (np.random.default_rng(0).standard_normal(int(seconds * sr)) * 0.05).astype(np.float32)


def _state(s):
    st = s.stats
    return (dict(s._last), st.audio_chunks, st.audio_seconds, st.texts, st.frames_processed, st.events,
            st.voice_windows)


def test_rejected_push_audio_changes_no_state():
    s = fake_engine().stream()
    s.push_audio(_pcm(), 16000, 0.0)
    before = _state(s)
    for bad in [(_pcm(), 1, 10.0),                              # the audit's case: rate 1 Hz at t=10
                (_pcm(), 16000.5, 10.0), (_pcm(), True, 10.0), (_pcm(), "16000", 10.0),
                (np.array([0.1, np.nan], np.float32), 16000, 10.0),
                (np.zeros((3, 4, 5), np.float32), 16000, 10.0), (np.zeros(5, np.complex64), 16000, 10.0),
                ("pcm", 16000, 10.0)]:
        with pytest.raises(InvalidInputError):
            s.push_audio(*bad)
        assert _state(s) == before, bad
    # the next valid chunk at a time just after the last accepted one is taken (the audit saw it refused)
    s.push_audio(_pcm(), 16000, 0.1)
    assert s.stats.audio_chunks == 2 and math.isclose(s.stats.audio_seconds, 0.2)


def test_rejected_push_text_changes_no_state_and_lone_surrogates_are_invalid_input():
    s = fake_engine().stream()
    s.push_text("I feel happy", 1.0)
    before = _state(s)
    with pytest.raises(InvalidInputError, match="not valid Unicode"):
        s.push_text("bad \ud800 text", 5.0)
    with pytest.raises(InvalidInputError):
        s.push_text(42, 5.0)
    assert _state(s) == before
    assert s.push_text("still happy", 1.5)  # 1.5 < 5.0: the rejected push did not move the clock


def test_failed_frame_analysis_does_not_move_the_clock():
    class Boom(FakeFace):
        fail = True

        def analyze(self, frame, t=None, tracker=None):
            if self.fail:
                raise RuntimeError("model failed")
            return super().analyze(frame, t, tracker)

    face = Boom()
    s = fake_engine(face=face).stream()
    img = np.full((48, 64, 3), 100, np.uint8)
    with pytest.raises(RuntimeError):
        s.push_frame(img, 1.0)
    assert s._last["frame"] is None and s.stats.frames_processed == 0
    face.fail = False
    assert s.push_frame(img, 1.0)  # the same time is still free


def test_channel_first_chunk_is_rejected_clearly():
    s = fake_engine().stream()
    with pytest.raises(InvalidInputError, match="channel-first.*pcm.T"):
        s.push_audio(np.zeros((2, 48), np.float32), 16000, 0.0)
    s.push_audio(np.zeros((48, 2), np.float32), 16000, 0.0)  # [n, channels] is fine
    s.push_audio(np.zeros((1, 2), np.float32), 16000, 0.1)   # one stereo frame is fine too
    assert math.isclose(s.stats.audio_seconds, 49 / 16000)


@pytest.mark.parametrize("t", ["1.0", b"1", True, np.bool_(True), None, [1.0], complex(1, 0)])
def test_non_number_timestamps_are_rejected(t):
    s = fake_engine().stream()
    img = np.full((48, 64, 3), 100, np.uint8)
    for call in (lambda: s.push_frame(img, t), lambda: s.push_audio(_pcm(), 16000, t), lambda: s.push_text("hi", t)):
        with pytest.raises(InvalidInputError, match="timestamp"):
            call()
    assert s._last == {"frame": None, "audio": None, "text": None}


def test_numpy_number_timestamps_are_accepted():
    s = fake_engine().stream()
    s.push_frame(np.full((48, 64, 3), 100, np.uint8), np.float32(0.5))
    s.push_audio(_pcm(), np.int64(16000), np.int64(1))


def test_existing_stream_stops_after_engine_close():
    eng = fake_engine()
    s = eng.stream()
    s.push_frame(np.full((48, 64, 3), 100, np.uint8), 0.0)
    eng.close()
    assert eng.closed
    img = np.full((48, 64, 3), 100, np.uint8)
    for call in (lambda: s.push_frame(img, 1.0), lambda: s.push_audio(_pcm(), 16000, 1.0),
                 lambda: s.push_text("hi", 1.0), s.flush):
        with pytest.raises(StreamClosedError, match="engine"):
            call()


def test_count_dropped_rejects_negative_counts():
    s = fake_engine().stream()
    for n in (-1, 1.5, True):
        with pytest.raises(InvalidInputError):
            s.count_dropped("frames", n)
    s.count_dropped("audio", 3)
    assert s.stats.audio_dropped == 3


def test_seen_track_set_stays_bounded():
    class NewIdEveryFrame(FakeFace):
        def __init__(self):
            self.i = 0

        def analyze(self, frame, t=None, tracker=None):
            self.i += 1
            p = np.full(len(FACE_LABELS), 1.0 / len(FACE_LABELS))
            return [FakeFaceObj(box=(10, 10, 20, 20), score=0.9, keypoints=[(15, 15)] * 6, track_id=self.i,
                                labels=FACE_LABELS, probs=p)]

    s = fake_engine(face=NewIdEveryFrame()).stream()
    img = np.full((48, 64, 3), 100, np.uint8)
    for i in range(3000):
        s.push_frame(img, i / 15.0)
    o = s.fusion_options
    horizon = max(o.max_age("face"), o.track_max_age_s) + 1.0
    assert len(s._seen_tracks) <= horizon * 15 + 2, len(s._seen_tracks)
    assert len(s._fusion.tracks) <= horizon * 15 + 2


# ---------------------------------------------------------------- a video whose audio mostly fails to decode

DEMO = pathlib.Path(__file__).resolve().parents[1] / "emoedge" / "samples" / "demo.mp4"
DEMO_SHA = "a4257db3"  # first hex digits of the demo clip this corruption seed was found on


def _corrupt_demo(tmp_path) -> pathlib.Path:
    """200 random bytes of the demo clip replaced (the audit's recipe); this seed leaves every frame
    decodable while the AAC decoder silently skips almost all audio packets."""
    data = np.frombuffer(DEMO.read_bytes(), np.uint8).copy()
    rng = np.random.default_rng(1247)
    pos = rng.choice(data.size, 200, replace=False)
    data[pos] = rng.integers(0, 256, 200)
    p = tmp_path / "corrupt.mp4"
    p.write_bytes(data.tobytes())
    return p


def test_video_that_loses_most_of_its_audio_is_reported(tmp_path):
    pytest.importorskip("av")
    from emoedge.sources import VideoFileSource
    if not hashlib.sha256(DEMO.read_bytes()).hexdigest().startswith(DEMO_SHA):
        pytest.skip("the demo clip changed: find a new corruption seed (see _corrupt_demo)")
    src = VideoFileSource(_corrupt_demo(tmp_path))
    with pytest.raises(InvalidInputError, match=r"audio track announces 9\.\d+ s but only 0\.\d+ s"):
        for _ in src.items():
            pass
    assert src.frames_decoded >= 130  # the frames alone were fine: the audio loss is what is reported


def test_intact_demo_decodes_all_its_audio():
    pytest.importorskip("av")
    from emoedge.sources import VideoFileSource
    src = VideoFileSource(DEMO)
    n = sum(1 for it in src.items() if it.kind == "audio")
    assert n > 0 and src.audio_seconds_decoded >= 0.8 * src.expected_audio_s
