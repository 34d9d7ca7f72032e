"""Outputs: JSONL round trip, annotated video (readable, one output frame per input frame, timestamps and
the source's audio track kept), drawing, and the --show guard on headless OpenCV."""
import numpy as np
import pytest

from emoedge import outputs as O
from emoedge import sources as S
from emoedge.errors import BackendUnavailableError, InvalidInputError
from test_engine import fake_engine
from test_sources import make_video


def test_jsonl_round_trip(tmp_path):
    eng = fake_engine()
    s = eng.stream()
    evs = s.push_text("happy", 0.0) + s.push_frame(np.full((64, 64, 3), 90, np.uint8), 0.1)
    p = tmp_path / "ev.jsonl"
    with O.JsonlWriter(p) as w:
        for e in evs:
            w.write(e)
    back = O.read_jsonl(p)
    assert [b.to_dict() for b in back] == [e.to_dict() for e in evs]
    with pytest.raises(InvalidInputError, match="does not exist"):
        O.JsonlWriter(tmp_path / "no" / "x.jsonl")


def test_annotate_draws_boxes_and_panel():
    eng = fake_engine()
    s = eng.stream()
    img = np.full((240, 320, 3), 90, np.uint8)
    s.push_text("happy", 0.0)
    ev = s.push_frame(img, 0.1)[0]
    out = O.annotate(img, ev)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert (out != img).any() and (img == 90).all()  # input untouched
    x, y, w, h = (int(v) for v in ev.faces[0].box)
    assert (out[y, x:x + w] != 90).any()  # box edge drawn


def test_annotated_video_writer_keeps_frames_times_and_audio(tmp_path):
    src_path = make_video(tmp_path / "in.mp4", n=15, fps=10)
    eng = fake_engine()
    out_path = tmp_path / "out.mp4"
    run = eng.run(video=src_path, keep_frames=True)
    with O.AnnotatedVideoWriter(out_path, fps=10, copy_audio_from=src_path) as w:
        for ev in run:
            if ev.frame is not None:
                w.write(ev.frame, ev)
    assert run.stats.frames_processed == 15
    back = S.VideoFileSource(out_path)
    assert back.kinds == {"video", "audio"}
    items = list(back.items())
    vf = [i for i in items if i.kind == "video"]
    assert len(vf) == 15
    assert [round(f.t, 2) for f in vf] == [round(i / 10, 2) for i in range(15)]
    assert sum(i.pcm.size for i in items if i.kind == "audio") > 16000


def test_show_requires_gui_build():
    if O.gui_available():
        pytest.skip("this OpenCV build has a GUI; the headless guard cannot be exercised here")
    with pytest.raises(BackendUnavailableError, match="opencv-python"):
        O.Window()
