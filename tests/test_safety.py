"""Issue 13: nothing lost, no surprises. Outputs never touch an input and are written atomically; bad
inputs give one line naming the file (no traceback, inputs unchanged); full disk; SIGINT/SIGTERM finish
cleanly (real subprocesses, real signals); labels drawn without ghost glyphs; import from a source checkout
explained; CLI help, `emoedge models`, `emoedge info`, the README synopsis checked against the parser."""
import argparse
import hashlib
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

from emoedge import _atomic as A
from emoedge import outputs as O
from emoedge import sources as S
from emoedge.cli import build_parser, main
from emoedge.cli import run as run_cli
from emoedge.errors import InvalidInputError
from test_engine import fake_engine
from test_sources import make_video, write_wav

TESTS = pathlib.Path(__file__).resolve().parent
REPO = TESTS.parent


def sha(p) -> str:
    return hashlib.sha256(pathlib.Path(p).read_bytes()).hexdigest()


def leftovers(folder) -> list:
    """Temporary output files left in ``folder`` (there must be none after any run)."""
    return sorted(p.name for p in pathlib.Path(folder).iterdir() if A._TMP_TAG in p.name)


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setattr(run_cli, "make_engine", lambda args, **kw: fake_engine())


# ---------------------------------------------------------------------------------------------- atomic
def test_check_outputs_refuses_inputs_links_and_duplicates(tmp_path):
    src = tmp_path / "clip.mp4"
    src.write_bytes(b"video bytes")
    link = tmp_path / "link.mp4"
    link.symlink_to(src)
    hard = tmp_path / "hard.mp4"
    os.link(src, hard)
    for out in (src, link, hard, tmp_path / "sub" / ".." / "clip.mp4"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        with pytest.raises(InvalidInputError, match="refusing to write"):
            A.check_outputs([out], [src])
    # the input given through a link is caught as well
    with pytest.raises(InvalidInputError, match="same file as the input"):
        A.check_outputs([src], [link])
    with pytest.raises(InvalidInputError, match="two outputs"):
        A.check_outputs([tmp_path / "a.jsonl", tmp_path / "." / "a.jsonl"])
    with pytest.raises(InvalidInputError, match="is a folder"):
        A.check_outputs([tmp_path])
    with pytest.raises(InvalidInputError, match="does not exist"):
        A.check_outputs([tmp_path / "missing" / "x.jsonl"])
    A.check_outputs([tmp_path / "new.jsonl", "-", None], [src, "0", "mic", None])  # fine
    assert src.read_bytes() == b"video bytes"


def test_atomic_output_commit_discard_and_mode(tmp_path):
    target = tmp_path / "out.jsonl"
    target.write_text("old\n")
    os.chmod(target, 0o640)
    with pytest.raises(RuntimeError):
        with A.AtomicOutput(target) as out:
            out.tmp.write_text("half")
            raise RuntimeError("boom")
    assert target.read_text() == "old\n" and not leftovers(tmp_path)
    out = A.AtomicOutput(target)
    assert out.tmp.parent == tmp_path and out.tmp.suffix == ".jsonl" and not target.read_text() == ""
    out.tmp.write_text("new\n")
    assert target.read_text() == "old\n"            # nothing visible before commit
    out.commit()
    assert target.read_text() == "new\n" and (target.stat().st_mode & 0o777) == 0o640 and not leftovers(tmp_path)
    fresh = A.atomic_write_text(tmp_path / "fresh.txt", "x")
    umask = os.umask(0)
    os.umask(umask)
    assert (fresh.stat().st_mode & 0o777) == 0o666 & ~umask


def test_jsonl_writer_is_atomic(tmp_path):
    eng = fake_engine()
    evs = eng.stream().push_text("happy", 0.0)
    p = tmp_path / "ev.jsonl"
    p.write_text("previous run\n")
    w = O.JsonlWriter(p)
    w.write(evs[0])
    assert p.read_text() == "previous run\n"
    w.close()
    assert len(O.read_jsonl(p)) == 1 and not leftovers(tmp_path)
    with pytest.raises(ValueError):
        with O.JsonlWriter(p) as w2:
            w2.write(evs[0])
            raise ValueError("failed run")
    assert len(O.read_jsonl(p)) == 1 and not leftovers(tmp_path)


def test_video_writer_refuses_unknown_extension_and_discards(tmp_path):
    with pytest.raises(InvalidInputError, match=r"annotated\.txt.*\.mp4"):
        O.AnnotatedVideoWriter(tmp_path / "annotated.txt")
    assert not list(tmp_path.iterdir())
    w = O.AnnotatedVideoWriter(tmp_path / "a.mp4", fps=10)
    w.write(np.zeros((32, 32, 3), np.uint8), t=0.0)
    w.discard()
    assert not list(tmp_path.iterdir())
    w = O.AnnotatedVideoWriter(tmp_path / "b.mp4", fps=10)
    for i in range(3):
        w.write(np.full((32, 32, 3), 60 * i, np.uint8), t=i / 10)
    assert not (tmp_path / "b.mp4").exists() and len(leftovers(tmp_path)) == 1   # only the temporary file
    w.close()
    assert [p.name for p in tmp_path.iterdir()] == ["b.mp4"]
    assert sum(1 for it in S.VideoFileSource(tmp_path / "b.mp4").items() if it.kind == "video") == 3


# ---------------------------------------------------------------------------------------------- drawing
def test_label_outline_has_no_ghost_glyphs():
    import cv2
    s = "#12 disgusted 0.87 smoothed"
    bg = np.full((40, 420, 3), 128, np.uint8)
    img = bg.copy()
    O.draw_label(img, s, (6, 26), 0.5, (255, 255, 255))
    ref = bg.copy()
    cv2.putText(ref, s, (6, 26), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    text = (ref != 128).any(2).astype(np.uint8)
    halo = cv2.dilate(text, np.ones((3, 3), np.uint8)).astype(bool)
    # drawn: changed by more than anti-aliasing rounding (a 1/255-coverage edge pixel rounds to 127 for black
    # ink and stays 128 for white ink)
    drawn = (np.abs(img.astype(int) - 128) > 3).any(2)
    assert drawn.any()
    assert not (drawn & ~halo).any(), "pixels drawn outside the text and its 1-px outline (ghost glyphs)"
    full = (ref == 255).all(2)
    assert (img[full] >= 250).all()                 # the glyphs themselves are the clean text (AA rounding)
    # the old drawing (outline stroke 2 px thicker) left ghosts wherever OpenCV widens glyphs with thickness
    if cv2.getTextSize(s, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 3)[0][0] != cv2.getTextSize(s, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)[0][0]:
        old = bg.copy()
        cv2.putText(old, s, (6, 26), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(old, s, (6, 26), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        assert ((np.abs(old.astype(int) - 128) > 3).any(2) & ~halo).sum() > 20


def test_annotation_uses_full_names_and_says_smoothed_or_raw(monkeypatch):
    from emoedge.labels import CANONICAL
    drawn = []
    real = O.draw_label
    monkeypatch.setattr(O, "_text", lambda img, s, *a, **k: (drawn.append(s), real(img, s, *a, **k)))
    s = fake_engine().stream()
    img = np.full((240, 400, 3), 90, np.uint8)
    s.push_text("happy", 0.0)
    ev = s.push_frame(img, 0.1)[0]
    assert ev.faces
    O.annotate(img, ev)
    for lab in CANONICAL:
        assert any(t.startswith(f"{lab} ") for t in drawn), (lab, drawn)
    assert any(t.endswith("smoothed") and t.startswith("#") for t in drawn)      # the box label
    assert any("raw p=" in t for t in drawn) and any("raw, before smoothing" in t for t in drawn)


# ---------------------------------------------------------------------------------------------- inputs
@pytest.fixture
def media(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    f = {"video": make_video(d / "clip.mp4", n=20, fps=10), "wav": write_wav(d / "a.wav", np.zeros(8000) + 0.01)}
    (d / "lines.txt").write_text("0.5\tI am happy\n1.0\tstill happy\n")
    f["text"] = d / "lines.txt"
    (d / "empty.mp4").write_bytes(b"")
    f["empty"] = d / "empty.mp4"
    data = f["video"].read_bytes()
    (d / "truncated.mp4").write_bytes(data[: len(data) // 3])
    f["truncated"] = d / "truncated.mp4"
    (d / "notes.mp4").write_text("this is not a video\n" * 50)
    f["wrongfmt"] = d / "notes.mp4"
    (d / "notes.wav").write_text("this is not a wav file\n" * 50)
    f["wrongwav"] = d / "notes.wav"
    (d / "folder.mp4").mkdir()
    f["dir"] = d / "folder.mp4"
    f["dirpath"] = d
    return f


def _unwritable_dir(tmp_path) -> pathlib.Path:
    if os.geteuid() != 0:
        d = tmp_path / "ro"
        d.mkdir()
        os.chmod(d, 0o555)
        return d
    return pathlib.Path("/proc")  # root ignores permission bits; /proc takes no new files even from root


BAD = [
    # (argv with {placeholders}, exit code, words the one-line message must contain)
    (["run", "{dirpath}/missing.mp4"], 1, ["missing.mp4", "no such file"]),
    (["run", "{empty}"], 1, ["empty.mp4", "empty"]),
    (["run", "{truncated}", "--jsonl", "{out}/ev.jsonl"], 1, ["truncated.mp4"]),
    (["run", "{wrongfmt}"], 1, ["notes.mp4", "not a video"]),
    (["run", "{wrongwav}"], 1, ["notes.wav", "wav"]),
    (["run", "{dir}"], 1, ["folder.mp4", "not a regular file"]),
    (["run", "{video}", "--audio", "{wrongwav}"], 1, ["notes.wav"]),
    (["run", "{video}", "--audio", "{dirpath}/nope.wav"], 1, ["nope.wav", "no such file"]),
    (["run", "{video}", "--text-file", "{video}"], 1, ["clip.mp4", "not a text file"]),
    (["run", "{video}", "--text-file", "{dir}"], 1, ["folder.mp4"]),
    (["run", "{video}", "--text-file", "{empty}"], 1, ["empty.mp4", "empty"]),
    (["run", "{video}", "--out", "{video}"], 1, ["clip.mp4", "refusing"]),
    (["run", "{video}", "--jsonl", "{video}"], 1, ["clip.mp4", "refusing"]),
    (["run", "{video}", "--jsonl", "{text}", "--text-file", "{text}"], 1, ["lines.txt", "refusing"]),
    (["run", "{wav}", "--jsonl", "{wav}"], 1, ["a.wav", "refusing"]),
    (["run", "{video}", "--jsonl", "{out}/same", "--out", "{out}/same.mp4"], 0, []),
    (["run", "{video}", "--out", "{out}/annotated.txt"], 1, ["annotated.txt", ".mp4"]),
    (["run", "{video}", "--out", "{out}/annotated"], 1, ["annotated", ".mp4"]),
    (["run", "{video}", "--jsonl", "{dirpath}/no/such/dir/ev.jsonl"], 1, ["ev.jsonl", "does not exist"]),
    (["run", "{video}", "--jsonl", "{dirpath}"], 1, ["is a folder"]),
    (["run", "{video}", "--jsonl", "{unwritable}/ev.jsonl"], 1, ["ev.jsonl"]),
    (["run", "{video}", "--duration", "-1"], 2, ["--duration", "> 0"]),
    (["run", "{video}", "--threads", "0"], 2, ["--threads", ">= 1"]),
    (["eval", "face", "--data", "{video}"], 1, ["clip.mp4", "not an .npz"]),
    (["eval", "face", "--data", "{dirpath}/none.npz"], 1, ["none.npz", "not found"]),
    (["eval", "voice", "--data", "{video}"], 1, ["clip.mp4", "not an .npz"]),
    (["eval", "voice", "--data", "{empty}"], 1, ["empty.mp4", "empty"]),
    (["eval", "text", "--data", "{video}", "--format", "carer"], 1, ["clip.mp4", "not UTF-8"]),
    (["eval", "text", "--data", "{dir}", "--format", "goemotions"], 1, ["folder.mp4"]),
]


@pytest.mark.parametrize("argv,rc,words", BAD, ids=[" ".join(a[:2] + [a[-1].split("/")[-1]]) for a, _, _ in BAD])
def test_cli_bad_input_table(argv, rc, words, media, tmp_path, fake, capsys):
    out = tmp_path / "out"
    out.mkdir()
    fills = {k: str(v) for k, v in media.items()}
    fills.update(out=str(out), unwritable=str(_unwritable_dir(tmp_path)))
    args = [a.format(**fills) for a in argv]
    inputs = [p for p in media["dirpath"].iterdir() if p.is_file()]
    before = {p: sha(p) for p in inputs}
    with pytest.raises(SystemExit) if rc == 2 else _nullcontext() as ex:
        got = main(args + (["--quiet"] if args[0] == "run" else []))
    if rc == 2:
        got = ex.value.code
    err = capsys.readouterr().err
    assert got == rc, err
    assert "Traceback" not in err
    if rc == 1:
        lines = [ln for ln in err.strip().splitlines() if ln.strip()]
        assert len(lines) == 1, err
        assert lines[0].startswith("emoedge ")
    for w in words:
        assert w in err, (w, err)
    assert {p: sha(p) for p in inputs} == before           # no input changed
    assert not leftovers(out) and not leftovers(media["dirpath"])
    if rc:
        assert not list(out.iterdir())                      # a failed run writes nothing


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def test_text_file_mixed_timed_and_untimed_lines(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("1.0\thello there\nno time here\n")
    with pytest.raises(InvalidInputError, match=r"line 1 starts with a time, line 2 'no time here'"):
        S.TextFileSource(p)
    p.write_text("3 cats are cute\nand so are dogs\n")        # no TAB time: untimed, kept verbatim
    assert [(i.t, i.text) for i in S.TextFileSource(p).items()] == [(0.0, "3 cats are cute"), (2.0, "and so are dogs")]
    p.write_text("0.5\tfirst\n2 second\n")                       # every line timed (TAB or spaces)
    assert [(i.t, i.text) for i in S.TextFileSource(p).items()] == [(0.5, "first"), (2.0, "second")]
    p.write_text("2\tlate\n1\tearly\n")
    with pytest.raises(InvalidInputError, match="line 2: time 1 s is before"):
        S.TextFileSource(p)


def test_missing_camera_is_one_line_without_opencv_warnings():
    if os.path.exists("/dev/video7"):
        pytest.skip("this machine has a /dev/video7; the missing-camera message cannot be exercised")
    r = subprocess.run([sys.executable, "-m", "emoedge", "run", "7"], capture_output=True, text=True, timeout=120,
                       cwd=tempfile.gettempdir())
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [r.stderr.strip()] and "camera 7 could not be opened" in r.stderr, r.stderr


def test_precision_fallback_is_a_note_not_a_raw_warning(tmp_path, capsys):
    import warnings
    txt = tmp_path / "t.txt"
    txt.write_text("0.0\tI am so happy today\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["run", str(txt), "--precision", "fp32", "--quiet"]) == 0
    assert not [w for w in caught if "variant" in str(w.message)]
    err = capsys.readouterr().err
    assert re.search(r"^note: text: .*fp32.*default precision", err, re.M), err


# ---------------------------------------------------------------------------------------------- full disk
FULL_DISK = r"""
import resource, signal, sys
sys.path.insert(0, sys.argv[1])
from emoedge.cli import main
from emoedge.cli import run as run_cli
from test_engine import fake_engine
run_cli.make_engine = lambda args, **kw: fake_engine()
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)          # write() then fails with EFBIG instead of killing us
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), int(sys.argv[2])))
sys.exit(main(sys.argv[3:]))
"""


@pytest.mark.parametrize("what", ["jsonl", "out"])
def test_full_disk_leaves_no_half_written_output(what, tmp_path):
    src = make_video(tmp_path / "clip.mp4", n=60, fps=10, w=160, h=120)
    before = sha(src)
    out = tmp_path / "out"
    out.mkdir()
    target = out / ("ev.jsonl" if what == "jsonl" else "ann.mp4")
    target.write_bytes(b"result of an earlier run")
    flag = "--jsonl" if what == "jsonl" else "--out"
    r = subprocess.run([sys.executable, "-c", FULL_DISK, str(TESTS), "6000", "run", str(src), flag, str(target),
                        "--quiet"], capture_output=True, text=True, timeout=180, cwd=str(tmp_path))
    assert r.returncode == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert target.name in lines[0] and ("too large" in lines[0].lower() or "space" in lines[0].lower()), lines[0]
    assert target.read_bytes() == b"result of an earlier run"    # the earlier result is intact
    assert not leftovers(out) and sha(src) == before


# ---------------------------------------------------------------------------------------------- signals
SLOW_RUN = r"""
import os, sys, time
import numpy as np
sys.path.insert(0, sys.argv[1])
from emoedge.cli import main
from emoedge.cli import run as run_cli
from test_engine import FakeFace, fake_engine
delay = float(os.environ.get("FAKE_DELAY", "0"))

class Slow(FakeFace):
    def analyze(self, frame, t=None, tracker=None):
        time.sleep(delay)
        return super().analyze(frame, t, tracker)

if os.environ.get("FAKE_CAMERA"):
    import cv2

    class Cap:          # a camera delivering 30 frames/s
        def __init__(self, index):
            self.i = 0
        def isOpened(self):
            return True
        def set(self, *a):
            return True
        def read(self):
            time.sleep(1 / 30)
            self.i += 1
            return True, np.full((120, 160, 3), 40 + self.i % 150, np.uint8)
        def release(self):
            pass
    cv2.VideoCapture = Cap
run_cli.make_engine = lambda args, **kw: fake_engine(face=Slow())
sys.exit(main(sys.argv[2:]))
"""


def _start_and_signal(argv, out_dir, sigs, env_extra=None, wait_s=1.0, timeout=120):
    """Start a CLI subprocess, wait until its output temp file exists (the run loop has started) plus
    ``wait_s``, send ``sigs`` (0.1 s apart), return (rc, stdout, stderr)."""
    env = dict(os.environ, **(env_extra or {}))
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                         cwd=str(out_dir))
    t0 = time.monotonic()
    while not leftovers(out_dir):
        if p.poll() is not None or time.monotonic() - t0 > 90:
            out, err = p.communicate()
            pytest.fail(f"the run did not start (rc {p.returncode}):\n{out}\n{err}")
        time.sleep(0.02)
    time.sleep(wait_s)
    for s in sigs:
        p.send_signal(s)
        time.sleep(0.1)
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out, err


def _summary(err: str) -> dict:
    line = next(ln for ln in err.splitlines() if ln.startswith("frames "))
    n = [int(x) for x in re.findall(r"\d+", line)]
    return {"in": n[0], "processed": n[1], "dropped": n[2]}


def _check_outputs(jsonl, video, processed, src_fps):
    rows = [json.loads(x) for x in jsonl.read_text().splitlines()]
    frames = [r for r in rows if r["trigger"] == "frame"]
    assert len(frames) == processed
    back = S.VideoFileSource(video)
    items = list(back.items())
    vf = [i for i in items if i.kind == "video"]
    assert len(vf) == processed
    audio = [i for i in items if i.kind == "audio"]
    if audio:  # the audio track ends with the last frame (one AAC packet of slack), not at the source's end
        a_end = max(i.t + i.duration for i in audio)
        assert a_end <= vf[-1].t + 1.0 / src_fps + 0.1, (a_end, vf[-1].t)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_during_file_run_finishes_outputs(sig, tmp_path):
    src = make_video(tmp_path / "clip.mp4", n=100, fps=10, w=160, h=120)
    before = sha(src)
    jl, vid = tmp_path / "ev.jsonl", tmp_path / "ann.mp4"
    rc, out, err = _start_and_signal([sys.executable, "-c", SLOW_RUN, str(TESTS), "run", str(src), "--jsonl", str(jl),
                                      "--out", str(vid)], tmp_path, [sig], {"FAKE_DELAY": "0.04"})
    assert rc == 130, err
    assert f"interrupted        by {sig.name}" in err and "Traceback" not in err, err
    s = _summary(err)
    assert 0 < s["processed"] < 100 and s["in"] == s["processed"] and s["dropped"] == 0, s
    _check_outputs(jl, vid, s["processed"], 10)
    assert sha(src) == before and not leftovers(tmp_path)


def test_sigint_during_realtime_run(tmp_path):
    src = make_video(tmp_path / "clip.mp4", n=100, fps=10, w=160, h=120)
    jl, vid = tmp_path / "ev.jsonl", tmp_path / "ann.mp4"
    rc, out, err = _start_and_signal([sys.executable, "-c", SLOW_RUN, str(TESTS), "run", str(src), "--realtime",
                                      "--jsonl", str(jl), "--out", str(vid)], tmp_path, [signal.SIGINT], wait_s=1.5)
    assert rc == 130 and "interrupted        by SIGINT" in err, err
    s = _summary(err)
    assert s["in"] == s["processed"] + s["dropped"] and 0 < s["processed"] < 60, s
    _check_outputs(jl, vid, s["processed"], 10)


def test_sigterm_during_camera_run(tmp_path):
    jl, vid = tmp_path / "ev.jsonl", tmp_path / "cam.mp4"
    rc, out, err = _start_and_signal([sys.executable, "-c", SLOW_RUN, str(TESTS), "run", "0", "--jsonl", str(jl),
                                      "--out", str(vid)], tmp_path, [signal.SIGTERM], {"FAKE_CAMERA": "1"})
    assert rc == 130 and "interrupted        by SIGTERM" in err, err
    s = _summary(err)
    assert s["processed"] > 0 and s["in"] == s["processed"] + s["dropped"], s
    _check_outputs(jl, vid, s["processed"], 30)


def test_second_signal_stops_at_once_without_outputs(tmp_path):
    src = make_video(tmp_path / "clip.mp4", n=100, fps=10, w=160, h=120)
    jl, vid = tmp_path / "ev.jsonl", tmp_path / "ann.mp4"
    rc, out, err = _start_and_signal([sys.executable, "-c", SLOW_RUN, str(TESTS), "run", str(src), "--jsonl", str(jl),
                                      "--out", str(vid)], tmp_path, [signal.SIGINT, signal.SIGINT],
                                     {"FAKE_DELAY": "0.3"}, wait_s=0.5)
    assert rc == 130 and "interrupted (unfinished outputs were not written)" in err, err
    assert not jl.exists() and not vid.exists() and not leftovers(tmp_path)


SLOW_DEMO = r"""
import sys, time
from emoedge.cli import demo, main
real = demo.timeline_line
def slow(ev):
    time.sleep(0.25)           # a slow terminal: the demo cannot finish before the signal arrives
    return real(ev)
demo.timeline_line = slow
sys.exit(main(sys.argv[1:]))
"""


def test_sigint_during_demo(tmp_path):
    jl = tmp_path / "demo.jsonl"
    rc, out, err = _start_and_signal([sys.executable, "-c", SLOW_DEMO, "demo", "--jsonl", str(jl)], tmp_path,
                                     [signal.SIGINT], wait_s=1.0, timeout=240)
    assert rc == 130, out + err
    assert "interrupted        by SIGINT" in out and "p99 ms" in out and "Traceback" not in err, out + err
    s = _summary(out)
    assert 0 < s["processed"] < 135 and s["in"] == s["processed"], s
    rows = [json.loads(x) for x in jl.read_text().splitlines()]
    assert sum(r["trigger"] == "frame" for r in rows) == s["processed"]


# ---------------------------------------------------------------------------------------------- import
def test_source_checkout_without_extension_is_explained(tmp_path):
    pkg = tmp_path / "checkout" / "emoedge"
    # the package's top-level Python modules, without any compiled extension (as in a fresh clone)
    shutil.copytree(pathlib.Path(__import__("emoedge").__file__).parent, pkg,
                    ignore=lambda d, names: [n for n in names if n.endswith((".so", ".pyd")) or
                                             (pathlib.Path(d, n).is_dir() and n != "emoedge")])
    (pkg.parent / "pyproject.toml").write_text("[project]\nname = 'emoedge'\n")
    (pkg.parent / "csrc").mkdir()
    # -S: no site-packages, as in a checkout whose installed copy is elsewhere (or absent)
    r = subprocess.run([sys.executable, "-S", "-c", "import emoedge._native_loader as L; L.get_native(); "
                        "print(L.native_status())"], capture_output=True, text=True, cwd=str(pkg.parent), timeout=60)
    assert r.returncode == 0, r.stderr
    assert f"source checkout {pkg}" in r.stderr and "numba" in r.stderr, r.stderr
    assert "pip install --no-build-isolation -e ." in r.stderr and "another folder" in r.stderr
    assert "'kernels': 'numba'" in r.stdout and "'fix':" in r.stdout
    from emoedge._native_loader import fallback_message
    msg = fallback_message("no module", pkg, installed=tmp_path / "site" / "emoedge" / "_native.so")
    assert f"installed at {tmp_path / 'site' / 'emoedge'} has it" in msg
    other = tmp_path / "site-packages" / "emoedge"
    other.mkdir(parents=True)
    assert "pip install --force-reinstall" in fallback_message("no module", other)


def test_no_compiler_gives_the_fix(tmp_path):
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("cmake is not installed here (it is a build requirement; CI has it)")
    r = subprocess.run([cmake, "-S", str(REPO), "-B", str(tmp_path / "b"), "-DEMOEDGE_BUILD_PYTHON=OFF"],
                       capture_output=True, text=True, timeout=120, env=dict(os.environ, CXX="/nonexistent/c++"))
    assert r.returncode != 0
    text = " ".join((r.stdout + r.stderr).split())
    assert "no C++ compiler was found" in text and "apt install g++" in text, text


# ---------------------------------------------------------------------------------------------- CLI surface
def _all_parsers():
    from emoedge.cli._synopsis import _commands
    return list(_commands(build_parser(), "emoedge"))


def test_every_command_and_option_has_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {c.dest: c.help for c in sub._choices_actions}
    for name in sub.choices:
        assert helps.get(name), f"`emoedge {name}` has no one-line help"
    for cmd, p in _all_parsers():
        assert p.description, f"`{cmd}` has no description"
        for a in p._actions:
            if isinstance(a, argparse._HelpAction) or a.help == argparse.SUPPRESS:
                continue
            assert a.help, f"`{cmd} {'/'.join(a.option_strings) or a.dest}` has no help"


def test_readme_synopsis_matches_the_parser():
    from emoedge.cli._synopsis import readme_block, synopsis
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    have, want = readme_block(readme), synopsis()
    assert have == want, ("README CLI synopsis is out of date; run `python -m emoedge.cli._synopsis --write "
                          f"README.md`.\nexpected:\n{want}\nREADME has:\n{have}")


def test_readme_backends_match_engine():
    from emoedge import Engine
    from emoedge.errors import BackendUnavailableError
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "`trt-native` is not an Engine backend" in readme
    with pytest.raises(BackendUnavailableError, match="trt-native"):
        Engine(backend="trt-native", face=False, voice=False)
    run_p = dict(_all_parsers())["emoedge run"]
    choices = next(a.choices for a in run_p._actions if "--backend" in a.option_strings)
    assert "trt-native" not in choices and set(choices) <= {"cpu", "cuda", "tensorrt", "triton"}


def test_models_lists_bundled_models(capsys):
    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    from emoedge.manifest import load_manifest
    m = load_manifest()
    assert set(rows) == set(m.names())
    for name, r in rows.items():
        assert r["present"] and r["bytes"] == (m.root / m.entry(name)["file"]).stat().st_size
        assert r["task"] == m.entry(name).get("task") and r["precision"] == m.entry(name).get("precision")
    face = rows[m.find("face_expression")]
    assert face["default"] and face["labels"] and face["metrics"] and 0 < face["metrics"][0]["accuracy"] <= 1
    assert main(["models"]) == 0
    text = capsys.readouterr().out
    assert "accuracy" in text and "* = default" in text


def test_info_reports_providers_cache_and_artefacts(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EMOEDGE_CACHE_DIR", str(tmp_path))
    art = tmp_path / "cpu" / "somekey"
    art.mkdir(parents=True)
    (art / "meta.json").write_text(json.dumps({"model": "/x/face-expr-int8.onnx", "preferred": "model.ort"}))
    (art / "model.ort").write_bytes(b"0" * 1000)
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["cache_dir"] == str(tmp_path) and info["cache_dir_from"] == "EMOEDGE_CACHE_DIR"
    assert info["providers_in_use"]["providers"][0] == "CPUExecutionProvider"
    assert "CPUExecutionProvider" in info["ort_available_providers"]
    [a] = info["compiled_artifacts"]
    assert a["kind"] == "cpu" and a["model"] == "face-expr-int8.onnx" and a["bytes"] > 1000
    assert info["kernels"] in ("native", "numba")


# ---------------------------------------------------------------------------------------------- bench
def test_bench_only_rejects_unknown_sections(capsys):
    with pytest.raises(SystemExit) as e:
        main(["bench", "--only", "nonsense"])
    assert e.value.code == 2 and "unknown section(s) nonsense" in capsys.readouterr().err


def test_bench_without_matplotlib_says_so_and_writes_atomically(tmp_path, monkeypatch, capsys):
    from emoedge.cli import bench as B
    fake_res = {"run_id": "abc", "machine": {}, "quick": True, "started": 0, "finished": 1, "section_seconds": {},
                "sections": {"fusion": [{"name": "x", "ours_ms": 1.0, "anchor": None, "ratio": None, "threads": 1}]}}
    monkeypatch.setattr(B, "collect", lambda *a, **k: fake_res)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["bench", "--out", str(tmp_path), "--only", "fusion"]) == 0
    err = capsys.readouterr().err
    assert "matplotlib is not installed, so no bench.png" in err
    wrote = next(ln for ln in err.splitlines() if ln.startswith("wrote "))
    assert "bench.png" not in wrote and "bench.json" in wrote
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.json", "bench.md"]


def test_bench_logmel_without_the_bench_extra_keeps_rows_with_a_hint(monkeypatch):
    from emoedge.bench import logmel
    monkeypatch.setitem(sys.modules, "librosa", None)
    monkeypatch.setitem(sys.modules, "kaldi_native_fbank", None)
    monkeypatch.setattr(logmel, "_dist_version", lambda mod: None)
    rows = logmel.run(quick=True)
    skipped = {r["name"]: r["skipped"] for r in rows if r.get("skipped")}
    assert set(skipped) == {"logmel_10s_vs_librosa", "logmel_10s_vs_knf"}
    assert all("emoedge[bench]" in s for s in skipped.values())


def test_run_stop_drains_what_was_read_then_flushes():
    from test_engine import frames
    read = []

    def items():
        for f in frames(n=200, w=96, h=64):
            read.append(f.index)
            yield f
    for live in (False, True):   # file mode, then live semantics (realtime pacing at 10 frames/s)
        read.clear()
        run = fake_engine().run(video=S.ArraySource(items(), kinds=("video",), name="counted"), queue_size=8,
                                realtime=live, speed=4.0)
        n = 0
        for ev in run:
            n += 1
            if n == 5:
                run.stop()
                assert run.stopped
        st = run.stats
        assert 5 <= st.frames_processed < 200
        if live:   # live semantics: newest frame wins, skipped ones counted
            assert st.frames_in == st.frames_processed + st.frames_dropped
        else:      # file mode: every frame that was read is processed (nothing read is lost)
            assert st.frames_in == st.frames_processed == len(read) and read == list(range(len(read)))
        run.close()


def test_run_stop_does_not_wait_forever_for_a_stuck_live_source():
    import threading
    release = threading.Event()

    class Stuck(S.Source):
        kinds, live, name = frozenset({"video"}), True, "stuck camera"

        def items(self):
            yield S.VideoFrame(t=0.0, image=np.full((64, 96, 3), 90, np.uint8), index=0)
            release.wait(30)     # a device that never delivers the next frame

        def close(self):
            release.set()
    run = fake_engine().run(camera=Stuck())
    run.drain_timeout_s = 0.5
    t0 = time.monotonic()
    for ev in run:
        run.stop()
    assert time.monotonic() - t0 < 10 and run.stats.frames_processed == 1
    run.close()
