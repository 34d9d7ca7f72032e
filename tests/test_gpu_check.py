"""benchmarks/gpu_check.py without a GPU: the provider checks (a silent CPU fallback is never reported as
cuda), the result-file rules, and one quick --cpu-dry-run through the same code the GPU run uses."""
import importlib.util
import json
import pathlib
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


def _load():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = mod  # dataclasses look their module up in sys.modules
    spec.loader.exec_module(mod)
    return mod


gc = _load()


class FakeSession:
    def __init__(self, providers):
        self._p = providers

    def get_providers(self):
        return list(self._p)


def test_verify_reports_a_silent_cpu_fallback_as_cpu():
    v = gc.verify(FakeSession(["CPUExecutionProvider"]), "cuda")
    assert v["ok"] is False and v["used"] == "cpu" and "silent fallback" in v["reason"]
    v = gc.verify(FakeSession(["CUDAExecutionProvider", "CPUExecutionProvider"]), "cuda")
    assert v["ok"] is True and v["used"] == "cuda"


def _node(name, op, provider, out_type):
    return {"cat": "Node", "name": f"{name}_kernel_time",
            "args": {"op_name": op, "provider": provider, "output_type_shape": [{out_type: [1, 8]}]}}


def test_placement_flags_float_compute_on_cpu_but_not_shape_nodes():
    ok = [_node("conv", "Conv", "CUDAExecutionProvider", "float16"), _node("shape", "Shape", "CPUExecutionProvider", "int64")]
    r = gc.placement_from_trace(ok, "CUDAExecutionProvider")
    assert r["ok"] and r["nodes_by_provider"] == {"CUDAExecutionProvider": 1, "CPUExecutionProvider": 1}
    bad = ok + [_node("gemm", "Gemm", "CPUExecutionProvider", "float")]
    r = gc.placement_from_trace(bad, "CUDAExecutionProvider")
    assert not r["ok"] and "gemm" in r["float_nodes_off_device"]


def test_a_fallback_never_lands_in_the_gpu_result_file(tmp_path):
    res = {"dry_run": False, "environment": {"backend": "cuda"},
           "verification": [{"model": "m", "ok": False, "reason": "asked CUDAExecutionProvider, onnxruntime runs CPUExecutionProvider"}],
           "placement": [], "parity": [], "latency": [], "engine": [], "failures": []}
    target = tmp_path / "gpu_h200.json"
    written = gc.write_outputs(res, target)
    assert written.name == "gpu_h200.invalid.json" and not target.exists()
    assert "INVALID" in written.with_suffix(".md").read_text()
    # an engine that silently ran a session on the CPU is invalid too
    res2 = dict(res, verification=[], engine=[{"backend": "cuda", "precision": "fp16", "streams": 1, "ok": False,
                                              "reason": "sessions not on CUDAExecutionProvider: ['x.onnx']"}])
    assert gc.write_outputs(res2, tmp_path / "b.json").name == "b.invalid.json"


def test_a_dry_run_refuses_the_gpu_result_name(tmp_path):
    res = {"dry_run": True, "verification": [], "placement": [], "engine": []}
    with pytest.raises(ValueError, match="dry-run"):
        gc.write_outputs(res, tmp_path / "gpu_h200.json")


def test_main_without_the_gpu_provider_checks_nothing(tmp_path, monkeypatch):
    import onnxruntime as ort
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA EP")
    out = tmp_path / "r.json"
    assert gc.main(["--out", str(out)]) == 2
    assert not out.exists()


@pytest.mark.slow
def test_cpu_dry_run_end_to_end(tmp_path, shared_data):
    """The GPU run's code path on the CPU EP: every bundled model, parity, IO-binding latency, the Engine."""
    out = tmp_path / "dry.json"
    rc = gc.main(["--cpu-dry-run", "--quick", "--streams", "2", "--data", str(shared_data), "--out", str(out)])
    r = json.loads(out.read_text())
    assert r["dry_run"] is True and r["environment"]["backend"] == "cpu"
    from emoedge.manifest import load_manifest
    m = load_manifest()
    onnx_models = {n for n in m.names() if str(m.entry(n).get("file", "")).endswith(".onnx")}
    assert {p["model"] for p in r["parity"]} == onnx_models
    assert all(p["used"] == "cpu" for p in r["parity"])
    # same file on the same EP: identical outputs, full agreement
    same = [p for p in r["parity"] if p["precision"] == "fp32"]
    assert same and all(p["max_abs_diff"] == 0.0 for p in same)
    fp16 = [p for p in r["parity"] if p["precision"] == "fp16"]
    assert fp16 and all(p["top1_agreement"] >= 0.98 for p in fp16)
    int8 = [p for p in r["parity"] if p["precision"] == "int8"]  # same file, same EP: identical
    assert int8 and all(p["vs_own_file_on_cpu"]["max_abs_diff"] == 0.0 for p in int8)
    assert {x["batch"] for x in r["latency"] if x["model"] == "face-expr-fp16"} == {1, 8, 64}
    eng = {(e["precision"], e["streams"]) for e in r["engine"]}
    assert eng == {("fp32", 1), ("fp32", 2)} and all(e["ok"] for e in r["engine"])
    assert all(e["p99_ms"] >= e["p50_ms"] > 0 for e in r["engine"])
    assert "CPU DRY RUN" in out.with_suffix(".md").read_text()
    assert rc == 0, r["failures"]
