"""Training smoke test for export/voice_train.py (needs torch, which CI's `.[test]` does not install)."""
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_voice_training_smoke(shared_data, tmp_path, monkeypatch):
    torch = pytest.importorskip("torch", reason="torch is only needed by export/ (pip install .[train])")
    monkeypatch.setenv("EMOEDGE_SHARED", str(shared_data.parent))
    monkeypatch.syspath_prepend(str(REPO / "export"))
    import voice_data
    monkeypatch.setattr(voice_data, "DATA", shared_data / "speech")
    import voice_train
    assert voice_train.main(["--smoke", "--out", str(tmp_path / "v")]) == 0
    ck = torch.load(tmp_path / "v_smoke" / "voice_cnn.pt", weights_only=False)
    assert ck["labels"] == list(voice_data.MODEL_LABELS) and ck["steps"] == 3
    assert ck["window_frames"] == 200 and ck["pad_value"] == pytest.approx(-100.0)
