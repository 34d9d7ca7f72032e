"""Fuzz suite: every native entry point and the stream API under seeded random input (tests/fuzz_native.py),
one subprocess per target so a crash is caught and reported with the case that caused it.

CI runs EMOEDGE_FUZZ_CASES (default 2000) cases per target with a 10 s limit per call
(EMOEDGE_FUZZ_CALL_S); set EMOEDGE_FUZZ_CASES=10000 (or more) for a long run, EMOEDGE_FUZZ_SEED to vary it.
Asserts: no crash (signal), no hang (per-call limit), only documented exception types, finite and
well-formed results for accepted inputs.
"""
import json
import os
import pathlib
import signal
import subprocess
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from fuzz_native import TARGETS  # noqa: E402

CASES = int(os.environ.get("EMOEDGE_FUZZ_CASES", "2000"))
SEED = int(os.environ.get("EMOEDGE_FUZZ_SEED", "0"))
CALL_S = float(os.environ.get("EMOEDGE_FUZZ_CALL_S", "10"))
# the stream target runs the real models (a few ms per push): a quarter of the kernel budget unless
# EMOEDGE_FUZZ_STREAM_CASES says otherwise
STREAM_CASES = int(os.environ.get("EMOEDGE_FUZZ_STREAM_CASES", str(max(1, CASES // 4))))


def _run(target: str, cases: int, tmp_path) -> dict:
    case_file = tmp_path / f"case_{target}.txt"
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    cmd = [sys.executable, str(HERE / "fuzz_native.py"), "--target", target, "--cases", str(cases), "--seed",
           str(SEED), "--case-file", str(case_file), "--call-seconds", str(CALL_S)]
    # overall limit: generous per case (the per-call limit catches a single hang much sooner)
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120 + cases * 0.5)
    last = case_file.read_text() if case_file.exists() else "(no case recorded)"
    line = next((ln for ln in reversed(p.stdout.splitlines()) if ln.startswith("{")), None)
    if p.returncode < 0:
        sig = signal.Signals(-p.returncode).name
        pytest.fail(f"fuzz target {target} crashed with {sig} on: {last}\nstderr tail:\n{p.stderr[-3000:]}")
    if line is None:
        hung = "Timeout" in p.stderr
        what = f"a call ran past {CALL_S:g} s (hang)" if hung else f"exit {p.returncode} without a report"
        pytest.fail(f"fuzz target {target}: {what} on: {last}\nstderr tail:\n{p.stderr[-3000:]}")
    return json.loads(line)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_fuzz(target, tmp_path):
    cases = STREAM_CASES if target == "stream" else CASES
    res = _run(target, cases, tmp_path)
    if "skipped" in res:
        pytest.skip(res["skipped"])
    print(json.dumps(res))
    assert not res["failures"], "\n".join(res["failures"])
    assert res["cases"] == cases and res["ok"] + res["rejected"] == cases
    # the generator must exercise both sides: accepted calls and rejected ones
    assert res["ok"] > 0.1 * cases, res
    if target not in ("misc", "stream"):
        assert res["rejected"] > 0.05 * cases, res
    if target == "stream":  # bad pushes are rejected inside each case (the stream must survive them)
        assert res["rejected_ops"] > 0.05 * res["ops"], res


def test_fuzz_findings_regressions():
    """Inputs the fuzzer found: each must raise the documented error type, not crash or misbehave."""
    import numpy as np
    from emoedge import kernels
    from emoedge._native_loader import get_native
    img = np.zeros((41, 35, 3), np.uint8)
    for box in [(-np.inf, -316.7, -466.7, -np.inf), (0.0, 0.0, np.inf, -1e300)]:
        with pytest.raises(ValueError):  # was OverflowError from the size taken from a non-finite box
            kernels.preprocess(img, None, box, interpolation="area")
    nat = get_native()
    if nat is not None:  # fusion_pool with a 1e30 weight gave -inf log-probabilities
        z = nat.fusion_pool(np.log(np.array([[0.5, 0.3, 0.2]], np.float32)), np.array([1e30], np.float32))
        assert np.isfinite(z).all()
