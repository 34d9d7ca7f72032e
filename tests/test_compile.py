"""CPU compile path (artifacts, preference, parity) and the GPU-side logic that runs without a GPU:
cache keys, locking, atomic publish, provider selection and errors."""
import json
import multiprocessing as mp
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort
import pytest

from emoedge import backends
from emoedge.compile import compile_cpu, find_compiled_cpu
from emoedge.errors import BackendUnavailableError
from emoedge.session import SessionOptions, make_session, session_info, tensorrt_provider_options


def _tiny_model(path, seed=0):
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.standard_normal((8, 1, 3, 3)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "b")
    fc = numpy_helper.from_array(rng.standard_normal((8, 4)).astype(np.float32), "fc")
    nodes = [helper.make_node("Conv", ["input", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("MatMul", ["f", "fc"], ["logits"])]
    g = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 16, 16])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 4])], [w, b, fc])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return path


@pytest.fixture()
def tiny(tmp_path):
    return _tiny_model(tmp_path / "tiny.onnx")


def test_cpu_compile_writes_artifacts_and_engine_prefers_them(tiny, tmp_path):
    out = tmp_path / "cache"
    meta = compile_cpu(tiny, out, log=lambda m: None)
    assert meta["preferred"] in ("model.opt.onnx", "model.ort")
    found = find_compiled_cpu(tiny, out)
    assert found is not None and found.name == meta["preferred"] and found.is_file()
    assert (found.parent / "model.ort").is_file() and (found.parent / "model.opt.onnx").is_file()
    assert set(meta["load_ms"]) == {"original", "model.opt.onnx", "model.ort"}
    x = np.random.default_rng(1).standard_normal((3, 1, 16, 16)).astype(np.float32)
    plain = make_session(tiny, SessionOptions(use_compiled=False))
    comp = make_session(tiny, SessionOptions(compiled_dir=str(out)))
    assert session_info(comp)["compiled"] and not session_info(plain)["compiled"]
    np.testing.assert_allclose(comp.run(None, {"input": x})[0], plain.run(None, {"input": x})[0], rtol=1e-5, atol=1e-5)


def test_compiled_artifact_is_keyed_by_model_content(tiny, tmp_path):
    out = tmp_path / "cache"
    compile_cpu(tiny, out, log=lambda m: None)
    other = _tiny_model(tmp_path / "other.onnx", seed=5)
    assert find_compiled_cpu(other, out) is None  # different sha256 -> no artifact
    _tiny_model(tiny, seed=7)  # same path, new content
    assert find_compiled_cpu(tiny, out) is None


def test_use_compiled_can_be_disabled(tiny, tmp_path, monkeypatch):
    out = tmp_path / "cache"
    compile_cpu(tiny, out, log=lambda m: None)
    monkeypatch.setenv("EMOEDGE_USE_COMPILED", "0")
    assert find_compiled_cpu(tiny, out) is None


def test_cache_key_changes_with_every_field():
    base = dict(model_sha256="a" * 64, backend="tensorrt", precision="fp16", device="NVIDIA H200",
                ort_version="1.32.0", trt_version="10.9", profile="input:1/8/16")
    k0 = backends.CacheKey(**base)
    seen = {k0.dirname()}
    for field, val in [("model_sha256", "b" * 64), ("precision", "int8"), ("device", "Orin"), ("ort_version", "1.31"),
                       ("trt_version", "10.3"), ("profile", "input:1/1/1"), ("backend", "trt-native")]:
        k = backends.CacheKey(**{**base, field: val})
        assert k.dirname() not in seen, field
        seen.add(k.dirname())
    assert backends.CacheKey(**base).dirname() == k0.dirname()  # stable


def test_make_cache_key_rejects_unknown_backend_and_precision():
    with pytest.raises(BackendUnavailableError, match="unknown backend"):
        backends.make_cache_key("a" * 64, "vulkan", "fp32")
    with pytest.raises(ValueError, match="precision"):
        backends.make_cache_key("a" * 64, "tensorrt", "fp8")


def _hold_lock(path, seconds, ready):
    with backends.FileLock(path):
        ready.set()
        time.sleep(seconds)


def test_file_lock_excludes_another_process(tmp_path):
    lock = tmp_path / "x.lock"
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    p = ctx.Process(target=_hold_lock, args=(str(lock), 2.0, ready))
    p.start()
    try:
        assert ready.wait(30)
        with pytest.raises(TimeoutError, match="x.lock"):
            backends.FileLock(lock, timeout=0.3).acquire()
        with backends.FileLock(lock, timeout=30):  # acquired once the holder exits
            pass
    finally:
        p.join(30)


def test_atomic_publish_keeps_the_first_complete_folder(tmp_path):
    final = tmp_path / "entry"
    for i in range(2):
        t = tmp_path / f"tmp{i}"
        t.mkdir()
        (t / "meta.json").write_text(json.dumps({"writer": i}))
        backends.atomic_publish_dir(t, final)
    assert json.loads((final / "meta.json").read_text()) == {"writer": 0}
    assert not (tmp_path / "tmp1").exists()


def test_atomic_write_bytes_replaces_whole_file(tmp_path):
    p = tmp_path / "f.bin"
    backends.atomic_write_bytes(p, b"a" * 10)
    backends.atomic_write_bytes(p, b"b" * 3)
    assert p.read_bytes() == b"bbb"
    assert [x.name for x in tmp_path.iterdir()] == ["f.bin"]


def test_tensorrt_provider_options_are_keyed(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOEDGE_CACHE_DIR", str(tmp_path))
    opts = SessionOptions(backend="tensorrt", precision="fp16", trt_profile={"input": ((1, 1, 48, 48), (8, 1, 48, 48), (16, 1, 48, 48))})
    po = tensorrt_provider_options("c" * 64, opts)
    assert po["trt_engine_cache_enable"] and po["trt_fp16_enable"] and not po["trt_int8_enable"]
    assert po["trt_profile_min_shapes"] == "input:1x1x48x48" and po["trt_profile_max_shapes"] == "input:16x1x48x48"
    assert pathlib.Path(po["trt_engine_cache_path"]).parent == tmp_path / "trt-ep"
    key = json.loads((pathlib.Path(po["trt_engine_cache_path"]) / "key.json").read_text())
    assert key["precision"] == "fp16" and key["model_sha256"] == "c" * 64
    po8 = tensorrt_provider_options("c" * 64, SessionOptions(backend="tensorrt", precision="int8", trt_profile=opts.trt_profile))
    assert po8["trt_engine_cache_path"] != po["trt_engine_cache_path"] and po8["trt_int8_enable"]


def test_compile_tensorrt_out_dir_holds_the_engine_cache(tiny, tmp_path, monkeypatch):
    """`emoedge compile --target tensorrt --out DIR`: the TensorRT-EP caches go to DIR/trt-ep (what ORT
    is asked for is checked here; building an engine needs a GPU, see test_gpu_backends_run_...)."""
    from emoedge import compile as C
    monkeypatch.setenv("EMOEDGE_CACHE_DIR", str(tmp_path / "default-cache"))
    monkeypatch.setattr(backends, "check_backend", lambda backend: None)
    monkeypatch.setattr(C, "check_backend", lambda backend: None)
    seen = {}
    real_session = ort.InferenceSession

    class Stop(Exception):
        pass

    def fake_session(path, so=None, providers=None, provider_options=None):
        if providers and providers[0] == "TensorrtExecutionProvider":
            seen["po"] = provider_options[0]
            raise Stop()
        return real_session(path, so, providers=["CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", fake_session)
    out = tmp_path / "out"
    from emoedge.errors import ModelError
    with pytest.raises(ModelError, match="Stop"):   # the fake TensorRT session stops the build
        C.compile_tensorrt_ep(tiny, "fp16", log=lambda s: None, out=out)
    assert pathlib.Path(seen["po"]["trt_engine_cache_path"]).parent == out / "trt-ep"
    assert not (tmp_path / "default-cache").exists()


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="this machine has CUDA")
@pytest.mark.parametrize("backend", ["cuda", "tensorrt"])
def test_missing_gpu_backend_raises_with_the_extra_to_install(tiny, backend):
    with pytest.raises(BackendUnavailableError, match=r"emoedge\[gpu\]"):
        make_session(tiny, SessionOptions(backend=backend))


def test_unknown_backend_raises(tiny):
    with pytest.raises(BackendUnavailableError, match="unknown backend"):
        make_session(tiny, SessionOptions(backend="vulkan"))


def test_trt_native_without_tensorrt_names_the_install(tiny):
    try:
        import tensorrt  # noqa: F401
        pytest.skip("tensorrt is installed here")
    except ImportError:
        pass
    from emoedge.trt_native import build_engine
    with pytest.raises(BackendUnavailableError, match="emoedge\\[tensorrt\\]"):
        build_engine(tiny, "fp16")


def test_jetson_detection_is_false_here():
    if os.path.exists("/etc/nv_tegra_release"):
        pytest.skip("running on a Jetson")
    assert backends.is_jetson() is False


def test_compile_cli_jetson_off_board_is_a_clear_error():
    if backends.is_jetson():
        pytest.skip("running on a Jetson")
    r = subprocess.run([sys.executable, "-m", "emoedge", "compile", "--target", "jetson"], capture_output=True, text=True,
                       cwd=tempfile.gettempdir())
    assert r.returncode == 1 and "Jetson" in r.stderr


@pytest.mark.gpu
def test_gpu_backends_run_when_a_gpu_is_present(tiny):
    if "CUDAExecutionProvider" not in ort.get_available_providers() or backends.gpu_name() is None:
        pytest.skip("no NVIDIA GPU / onnxruntime-gpu here; run benchmarks/gpu_check.py on a GPU machine")
    x = np.random.default_rng(1).standard_normal((2, 1, 16, 16)).astype(np.float32)
    ref = make_session(tiny, SessionOptions(use_compiled=False)).run(None, {"input": x})[0]
    got = make_session(tiny, SessionOptions(backend="cuda")).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, ref, rtol=1e-3, atol=1e-3)


def test_session_info_is_dropped_with_its_session(tiny):
    import gc
    from emoedge import session as S
    sess = make_session(tiny, SessionOptions(use_compiled=False))
    assert session_info(sess)["providers"] == ["CPUExecutionProvider"]
    n = len(S._info)
    del sess
    gc.collect()
    assert len(S._info) == n - 1
