"""Media sources: video files with their audio track (PyAV, real timestamps), wav files, text files, and
clear errors for corrupt/truncated video and broken wav headers."""
import wave
from fractions import Fraction

import numpy as np
import pytest

from emoedge import sources as S
from emoedge.errors import InvalidInputError


def make_video(path, n=20, fps=10, w=96, h=64, audio_sr=16000, vfr=False, codec="mpeg4"):
    """A small test clip: frame i has brightness 10 * i; a 440 Hz tone as its audio track."""
    import av
    with av.open(str(path), "w") as c:
        vs = c.add_stream(codec, rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.time_base = Fraction(1, 1000)
        vs.codec_context.time_base = Fraction(1, 1000)
        a = None
        if audio_sr:
            a = c.add_stream("aac", rate=audio_sr)
            a.layout = "mono"
        for i in range(n):
            img = np.full((h, w, 3), min(250, 10 * i), np.uint8)
            fr = av.VideoFrame.from_ndarray(img, format="bgr24")
            t = (i / fps) if not vfr else (i / fps + (0.03 if i % 2 else 0.0))
            fr.pts = int(round(t * 1000))
            fr.time_base = Fraction(1, 1000)
            for p in vs.encode(fr):
                c.mux(p)
        for p in vs.encode(None):
            c.mux(p)
        if a is not None:
            total = int(audio_sr * n / fps)
            x = (0.3 * np.sin(2 * np.pi * 440 * np.arange(total) / audio_sr)).astype(np.float32)
            step = 1024
            for k in range(0, total, step):
                af = av.AudioFrame.from_ndarray(x[None, k:k + step], format="flt", layout="mono")
                af.sample_rate = audio_sr
                af.pts = k
                af.time_base = Fraction(1, audio_sr)
                for p in a.encode(af):
                    c.mux(p)
            for p in a.encode(None):
                c.mux(p)
    return path


def write_wav(path, x, sr=16000, ch=1):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(ch)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def test_video_file_frames_audio_and_timestamps(tmp_path):
    p = make_video(tmp_path / "a.mp4", n=20, fps=10)
    src = S.open_source(p)
    assert isinstance(src, S.VideoFileSource) and src.kinds == {"video", "audio"}
    assert src.sample_rate == 16000 and (src.width, src.height) == (96, 64)
    items = list(src.items())
    vf = [i for i in items if i.kind == "video"]
    au = [i for i in items if i.kind == "audio"]
    assert len(vf) == 20
    assert [round(f.t, 3) for f in vf] == [round(i / 10, 3) for i in range(20)]
    assert vf[0].image.shape == (64, 96, 3) and vf[0].image.dtype == np.uint8
    assert abs(float(vf[5].image.mean()) - 50) < 4  # brightness survives the codec
    pcm = np.concatenate([a.pcm for a in au])
    assert pcm.dtype == np.float32 and abs(pcm.size / 16000 - 2.0) < 0.1
    # the tone is there: energy near 440 Hz dominates
    spec = np.abs(np.fft.rfft(pcm[4000:20000]))
    assert abs(np.argmax(spec) * 16000 / 16000 - 440) < 5
    ta = [a.t for a in au]
    assert ta == sorted(ta)
    src.close()


def test_video_variable_frame_rate_keeps_real_timestamps(tmp_path):
    p = make_video(tmp_path / "vfr.mkv", n=10, fps=10, vfr=True, audio_sr=None)
    src = S.VideoFileSource(p)
    ts = [round(i.t, 3) for i in src.items()]
    assert ts == [round(i / 10 + (0.03 if i % 2 else 0), 3) for i in range(10)]


def test_video_without_audio_or_audio_disabled(tmp_path):
    p = make_video(tmp_path / "a.mp4", n=5)
    src = S.VideoFileSource(p, audio=False)
    assert src.kinds == {"video"} and all(i.kind == "video" for i in src.items())


def test_corrupt_video_names_the_file(tmp_path):
    p = tmp_path / "junk.mp4"
    p.write_bytes(b"\x00\x01garbage" * 500)
    with pytest.raises(InvalidInputError, match="junk.mp4"):
        S.open_source(p)


def test_truncated_video_names_the_file(tmp_path):
    good = make_video(tmp_path / "good.mp4", n=40)
    data = good.read_bytes()
    p = tmp_path / "cut.mp4"
    p.write_bytes(data[: len(data) // 2])   # mp4 muxer writes moov at the end: header gone
    with pytest.raises(InvalidInputError, match="cut.mp4"):
        src = S.open_source(p)
        list(src.items())


def test_truncated_mkv_mid_stream(tmp_path):
    good = make_video(tmp_path / "good.mkv", n=60, audio_sr=None)
    data = good.read_bytes()
    p = tmp_path / "cut.mkv"
    p.write_bytes(data[: int(len(data) * 0.5)])
    # either a clear error naming the file, or the frames that are there (mkv without an index)
    try:
        src = S.open_source(p)
        n = sum(1 for _ in src.items())
        assert 0 < n < 60
    except InvalidInputError as e:
        assert "cut.mkv" in str(e)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(InvalidInputError, match="no such file"):
        S.open_source(tmp_path / "nope.mp4")
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(InvalidInputError, match="empty"):
        S.open_source(tmp_path / "empty.wav")


def test_wav_source_chunks(tmp_path):
    x = np.sin(np.arange(8000) / 10.0) * 0.5
    p = write_wav(tmp_path / "x.wav", x, sr=8000)
    src = S.open_source(p)
    assert isinstance(src, S.AudioFileSource) and src.sample_rate == 8000 and src.duration == pytest.approx(1.0)
    ch = list(src.items())
    assert len(ch) == 10 and ch[3].t == pytest.approx(0.3)
    y = np.concatenate([c.pcm for c in ch])
    np.testing.assert_allclose(y, x, atol=1e-4)


def test_stereo_wav_is_downmixed(tmp_path):
    x = np.stack([np.full(100, 0.5), np.full(100, -0.1)], 1).reshape(-1)
    p = write_wav(tmp_path / "st.wav", x, ch=2)
    pcm, sr = S.read_wav(p)
    assert pcm.shape == (100,) and np.allclose(pcm, 0.2, atol=1e-3)


def test_broken_wav_header(tmp_path):
    p = write_wav(tmp_path / "ok.wav", np.zeros(1000))
    data = bytearray(p.read_bytes())
    data[0:4] = b"JUNK"
    bad = tmp_path / "broken.wav"
    bad.write_bytes(bytes(data))
    with pytest.raises(InvalidInputError, match=r"broken.wav.*broken wav header"):
        S.open_source(bad)
    cut = tmp_path / "cut.wav"
    cut.write_bytes(p.read_bytes()[:20])
    with pytest.raises(InvalidInputError, match="cut.wav"):
        S.open_source(cut)


def test_text_file_timed_and_untimed(tmp_path):
    a = tmp_path / "a.txt"
    a.write_text("0.5\thello there\n2.0 I am so happy\n\n")
    items = list(S.open_source(a).items())
    assert [(i.t, i.text) for i in items] == [(0.5, "hello there"), (2.0, "I am so happy")]
    b = tmp_path / "b.txt"
    b.write_text("first line\nsecond line\n")
    src = S.TextFileSource(b, interval=1.5)
    assert [(i.t, i.text) for i in src.items()] == [(0.0, "first line"), (1.5, "second line")]
    c = tmp_path / "c.txt"
    c.write_text("3 later\n1 earlier\n")
    with pytest.raises(InvalidInputError, match="must not decrease"):
        S.open_source(c)


def test_camera_that_cannot_open():
    with pytest.raises(InvalidInputError, match="camera 97"):
        S.CameraSource(97)


def test_paced_releases_in_real_time():
    import time
    items = [S.TextItem(t=i * 0.05, text="x") for i in range(5)]
    t0 = time.monotonic()
    out = list(S.paced(iter(items), speed=1.0))
    assert len(out) == 5 and time.monotonic() - t0 >= 0.19


class FakeCapture:
    """Stands in for cv2.VideoCapture: 40 frames, then end of stream."""

    def __init__(self, index):
        self.index, self.n, self.props = index, 0, {}

    def isOpened(self):
        return True

    def set(self, k, v):
        self.props[k] = v

    def read(self):
        import time
        if self.n >= 40:
            return False, None
        self.n += 1
        time.sleep(0.002)
        return True, np.full((48, 64, 3), 100, np.uint8)

    def release(self):
        pass


class FakeSoundDevice:
    """Stands in for the sounddevice module: an InputStream whose callback delivers 1 s of blocks."""

    class InputStream:
        def __init__(self, device, channels, samplerate, dtype, blocksize, callback):
            self.cb, self.block, self.sr = callback, blocksize, samplerate
            self._th = None

        def __enter__(self):
            import threading

            def feed():
                for _ in range(int(self.sr // self.block)):
                    self.cb(np.full((self.block, 1), 0.01, np.float32), self.block, None, None)
            self._th = threading.Thread(target=feed)
            self._th.start()
            return self

        def __exit__(self, *exc):
            self._th.join()


def test_camera_and_mic_sources_through_the_live_driver(monkeypatch):
    import sys
    import cv2
    import threading
    from test_engine import fake_engine
    monkeypatch.setattr(cv2, "VideoCapture", FakeCapture)
    monkeypatch.setitem(sys.modules, "sounddevice", FakeSoundDevice)
    mic = S.MicSource("3", sample_rate=16000, block_s=0.1)
    assert mic.device == 3
    run = fake_engine().run(camera=0, mic=mic)
    assert run.live and run.stream.mode == "live"
    got = []

    def consume():
        for ev in run:
            got.append(ev)
    th = threading.Thread(target=consume)
    th.start()
    import time
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and run.stats.audio_chunks < 10:
        time.sleep(0.05)
    mic.close()   # a microphone never ends by itself
    th.join(10)
    st = run.stats
    assert st.frames_processed + st.frames_dropped == 40
    assert st.audio_chunks == 10 and st.audio_seconds == pytest.approx(1.0)
    ta = [e.t for e in got if e.trigger == "audio"]
    assert len(ta) == 2 and ta == sorted(ta)


def test_mic_without_sounddevice(monkeypatch):
    import sys
    from emoedge.errors import BackendUnavailableError
    monkeypatch.setitem(sys.modules, "sounddevice", None)
    with pytest.raises(BackendUnavailableError, match=r"emoedge\[live\]"):
        S.MicSource()
