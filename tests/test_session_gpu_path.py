"""emoedge.session's CUDA path without a GPU: onnxruntime is faked at the boundary (the real run is
benchmarks/gpu_check.py). A CUDA failure is a BackendUnavailableError naming the fix, never "corrupt file";
a silent CPU fallback raises; preload_dlls runs once and keeps stdout clean."""
import pytest

import emoedge.backends as B
import emoedge.session as S
from emoedge.errors import BackendUnavailableError, ModelError
from emoedge.manifest import load_manifest

PATH = load_manifest().model_path("face-expr-fp16")


class FakeSession:
    def __init__(self, providers):
        self._p = providers

    def get_providers(self):
        return list(self._p)


@pytest.fixture
def fake_ort(monkeypatch):
    import onnxruntime as ort
    calls = {"preload": 0}

    def preload_dlls(**kw):
        calls["preload"] += 1
        print("Failed to load libcudnn.so.9: cannot open shared object file")

    monkeypatch.setattr(B, "check_backend", lambda backend: None)
    monkeypatch.setattr(ort, "preload_dlls", preload_dlls, raising=False)
    monkeypatch.setattr(S, "_preloaded", None)
    return ort, calls


def test_cuda_failure_is_a_backend_error_with_the_fix(fake_ort, monkeypatch, capsys):
    ort, calls = fake_ort

    def boom(*a, **k):
        raise RuntimeError("CUDA failure 100: no CUDA-capable device is detected")
    monkeypatch.setattr(ort, "InferenceSession", boom)
    with pytest.raises(BackendUnavailableError, match=r"CUDA failure 100.*CUDA 13 and cuDNN 9.*libcudnn"):
        S.make_session(PATH, S.SessionOptions(backend="cuda"))
    assert capsys.readouterr().out == ""  # preload's prints never reach stdout
    # the same error on the CPU backend is about the file
    with pytest.raises(ModelError, match="corrupt"):
        S.make_session(PATH, S.SessionOptions(backend="cpu", use_compiled=False))


def test_silent_cpu_fallback_raises_and_preload_runs_once(fake_ort, monkeypatch):
    ort, calls = fake_ort
    monkeypatch.setattr(ort, "InferenceSession", lambda *a, **k: FakeSession(["CPUExecutionProvider"]))
    for _ in range(2):
        with pytest.raises(BackendUnavailableError, match=r"asked for CUDAExecutionProvider.*onnxruntime-gpu 1.31"):
            S.make_session(PATH, S.SessionOptions(backend="cuda"))
    assert calls["preload"] == 1


def test_preload_can_be_turned_off(fake_ort, monkeypatch):
    ort, calls = fake_ort
    monkeypatch.setenv("EMOEDGE_ORT_PRELOAD", "0")
    monkeypatch.setattr(ort, "InferenceSession", lambda *a, **k: FakeSession(["CUDAExecutionProvider", "CPUExecutionProvider"]))
    s = S.make_session(PATH, S.SessionOptions(backend="cuda"))
    assert s.get_providers()[0] == "CUDAExecutionProvider" and calls["preload"] == 0


def test_cpu_backend_never_preloads(fake_ort, monkeypatch):
    ort, calls = fake_ort
    S.make_session(PATH, S.SessionOptions(backend="cpu", use_compiled=False))
    assert calls["preload"] == 0
