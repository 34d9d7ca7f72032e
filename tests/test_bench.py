"""`emoedge bench`: the JSON has every section and the machine description, every ratio is
anchor/ours from timings taken in the same run, and --out writes the three outputs."""
import json
import subprocess
import sys

import pytest

SECTIONS = {"frame", "logmel", "fusion", "models", "e2e", "streams"}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    r = subprocess.run([sys.executable, "-m", "emoedge", "bench", "--quick", "--json", "--out", str(out)],
                       capture_output=True, text=True, cwd=str(out), timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout), out


def test_every_section_and_machine_description(report):
    res, _ = report
    assert SECTIONS <= set(res["sections"]), sorted(res["sections"])
    for key in ("cpu_flags", "cores", "onnxruntime", "numpy", "cv2", "kernels"):
        assert key in res["machine"], key
    assert res["machine"]["kernels"] == "native"
    for sec in SECTIONS:
        rows = res["sections"][sec]
        assert rows, sec
        errors = [r for r in rows if r.get("error")]
        assert not errors, errors


def test_ratios_come_from_the_same_run(report):
    res, _ = report
    n = 0
    for sec, rows in res["sections"].items():
        for r in rows:
            assert r["run_id"] == res["run_id"]
            assert res["started"] <= r["measured_at"] <= res["finished"], (sec, r["name"])
            if r.get("ratio") is not None:
                n += 1
                assert r["anchor"] and r["anchor_ms"] > 0 and r["ours_ms"] > 0
                assert r["ratio"] == pytest.approx(r["anchor_ms"] / r["ours_ms"], rel=1e-9)
                assert r["threads"] >= 1 and r["repeats"] >= 5
    assert n >= 5  # frame, logmel, fusion and INT8-vs-FP32 rows carry ratios


def test_out_writes_json_markdown_and_figure(report):
    res, out = report
    assert json.loads((out / "bench.json").read_text())["run_id"] == res["run_id"]
    md = (out / "bench.md").read_text()
    assert "| section | case |" in md and res["run_id"] in md
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        pytest.skip("matplotlib not installed (extra 'bench'): no PNG expected")
    assert (out / "bench.png").stat().st_size > 10_000


def test_streams_section_reports_throughput_and_cadence(report):
    res, _ = report
    rows = {r["name"]: r for r in res["sections"]["streams"]}
    one = rows["stream1_frame_30fps_cadence_on"]
    # cadences on vs detection and classification on every frame, same run: fewer full detections, not slower
    assert one["detect_every"] > 1 and one["classify_every"] > 1 and one["detections_per_frame"] < 0.5
    assert one["cpu_ratio"] > 1.0 and one["anchor"].startswith("same pipeline, both cadences off")
    det = rows["stream1_frame_30fps_cadence_on_vs_detect_cadence_only"]
    assert det["anchor_ms"] > 0 and det["ours_ms"] > 0 and "classify_every=1" in det["anchor"]
    for mode in ("unbatched", "batched_wait0", "batched_wait2ms"):
        for n in (1, 8, 32, 64):
            r = rows[f"streams_{n}x640x480_15fps_{mode}"]
            assert r["frames"] == n * round(r["stream_seconds"] * 15) and r["faces_per_frame"] > 0.9
            assert r["frames_per_s_per_core"] > 0 and r["p99_ms"] >= r["ours_ms"] > 0
            assert r["max_streams_p99_66ms"] in (0, 1, 8, 32, 64)
