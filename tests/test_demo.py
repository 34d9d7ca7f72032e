"""`emoedge demo` end to end with the real bundled models and sample media (no input needed)."""
import importlib
import pathlib
import re
import subprocess
import sys
import tempfile

import pytest


def test_samples_are_small_and_attributed():
    d = pathlib.Path(importlib.import_module("emoedge").__file__).parent / "samples"
    total = sum(p.stat().st_size for p in d.iterdir() if p.is_file())
    assert total <= 2 * 1024 * 1024, f"sample media is {total} bytes (limit 2 MB)"
    att = (d / "ATTRIBUTION.md").read_text()
    assert "public domain" in att and "espeak-ng" in att and "synthetic" in att


def test_demo_runs_and_prints_a_timeline(tmp_path):
    for m in ("emoedge.faces", "emoedge.voice", "emoedge.text"):
        try:
            importlib.import_module(m)
        except ImportError as e:
            pytest.skip(f"{m} is not part of this build yet ({e})")
    jl = tmp_path / "demo.jsonl"
    out = subprocess.run([sys.executable, "-m", "emoedge", "demo", "--jsonl", str(jl)], capture_output=True,
                         text=True, timeout=300, cwd=tempfile.gettempdir())
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert any("fused emotion" in l for l in lines)
    rows = [l for l in lines if re.match(r"^\s*\d+\.\d\ds  ", l)]
    assert len(rows) >= 15, out.stdout
    assert sum("<- text line" in l for l in lines) == 2
    assert "135 in, 135 processed, 0 dropped" in out.stdout
    assert "p99 ms" in out.stdout and "first event" in out.stdout
    assert len(jl.read_text().splitlines()) >= 135
