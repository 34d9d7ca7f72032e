"""`emoedge run`: JSONL, annotated video, progress bar and summary table, clear errors (the engine is
replaced by the fakes of test_engine.py; the real models run in test_demo.py)."""
import json

import numpy as np
import pytest

from emoedge.cli import main
from emoedge.cli import run as run_cli
from emoedge import sources as S
from test_engine import fake_engine
from test_sources import make_video, write_wav


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setattr(run_cli, "make_engine", lambda args, **kw: fake_engine())


def test_run_video_jsonl_out_progress_summary(tmp_path, fake, capsys):
    v = make_video(tmp_path / "clip.mp4", n=20, fps=10)
    txt = tmp_path / "t.txt"
    txt.write_text("0.5\tI am happy\n")
    jl, out = tmp_path / "ev.jsonl", tmp_path / "ann.mp4"
    rc = main(["run", str(v), "--jsonl", str(jl), "--out", str(out), "--text-file", str(txt), "--progress"])
    assert rc == 0
    err = capsys.readouterr().err
    assert "100%" in err                                   # progress bar reached the end
    assert "20 in, 20 processed, 0 dropped" in err          # summary table
    for stage in ("detect", "classify", "fuse", "total"):
        assert f"\n{stage}" in err
    assert "p99 ms" in err
    lines = [json.loads(x) for x in jl.read_text().splitlines()]
    assert sum(d["trigger"] == "frame" for d in lines) == 20
    assert sum(d["trigger"] == "text" for d in lines) == 1
    assert sum(d["trigger"] == "audio" for d in lines) >= 3
    back = S.VideoFileSource(out)
    assert sum(1 for it in back.items() if it.kind == "video") == 20 and back.kinds == {"video", "audio"}


def test_run_prints_timeline_without_jsonl(tmp_path, fake, capsys):
    v = make_video(tmp_path / "clip.mp4", n=30, fps=10, audio_sr=None)
    assert main(["run", str(v), "--print-every", "1"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 3 and out[0].lstrip().startswith("0.00s")


def test_run_jsonl_to_stdout(tmp_path, fake, capsys):
    v = make_video(tmp_path / "clip.mp4", n=5, fps=10, audio_sr=None)
    assert main(["run", str(v), "--jsonl", "-"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["frame_index"] for r in rows] == list(range(5))


def test_run_wav_source(tmp_path, fake, capsys):
    w = write_wav(tmp_path / "a.wav", np.random.default_rng(0).standard_normal(32000) * 0.1)
    jl = tmp_path / "a.jsonl"
    assert main(["run", str(w), "--jsonl", str(jl)]) == 0
    rows = [json.loads(x) for x in jl.read_text().splitlines()]
    assert len(rows) == 4 and all(r["trigger"] == "audio" for r in rows)


def test_run_realtime_counts_drops_not_silently(tmp_path, monkeypatch, capsys):
    import time
    from test_engine import FakeFace

    class Slow(FakeFace):
        def analyze(self, frame, t=None, tracker=None):
            time.sleep(0.03)
            return super().analyze(frame, t, tracker)
    monkeypatch.setattr(run_cli, "make_engine", lambda args, **kw: fake_engine(face=Slow()))
    v = make_video(tmp_path / "fast.mp4", n=60, fps=60, audio_sr=None)
    assert main(["run", str(v), "--realtime", "--quiet"]) == 0
    err = capsys.readouterr().err
    line = [x for x in err.splitlines() if x.startswith("frames")][0]
    nums = [int(s) for s in line.replace(",", " ").split() if s.isdigit()]
    assert nums[0] == 60 and nums[1] + nums[2] == 60 and nums[2] > 0


def test_run_errors_name_the_file(tmp_path, fake, capsys):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    assert main(["run", str(bad)]) == 1
    assert "broken.mp4" in capsys.readouterr().err
    w = tmp_path / "h.wav"
    w.write_bytes(b"RIFX" + b"\x00" * 60)
    assert main(["run", str(w)]) == 1
    assert "broken wav header" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "missing.mp4")]) == 1
    assert "no such file" in capsys.readouterr().err


def test_run_loads_only_what_the_inputs_need(tmp_path, monkeypatch, capsys):
    seen = {}

    def spy(args, face=True, voice=True, text=True):
        seen.update(face=face, voice=voice)
        return fake_engine()
    monkeypatch.setattr(run_cli, "make_engine", spy)
    v = make_video(tmp_path / "silent.mp4", n=3, audio_sr=None)
    assert main(["run", str(v), "--quiet"]) == 0
    assert seen == {"face": True, "voice": False}
    w = write_wav(tmp_path / "a.wav", np.zeros(1600))
    assert main(["run", str(w), "--quiet"]) == 0
    assert seen == {"face": False, "voice": True}


def test_run_missing_camera_fails_before_loading_models(monkeypatch, capsys):
    import cv2

    class Closed:
        def __init__(self, i):
            pass

        def isOpened(self):
            return False
    monkeypatch.setattr(cv2, "VideoCapture", Closed)
    monkeypatch.setattr(run_cli, "make_engine", lambda *a, **k: pytest.fail("models loaded before the camera check"))
    assert main(["run", "5"]) == 1
    assert "camera 5 could not be opened" in capsys.readouterr().err
