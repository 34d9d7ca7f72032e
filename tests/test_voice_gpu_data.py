"""export/voice_gpu_data.py: the corpora packed for the device's carry limit unpack to identical files."""
import pathlib
import sys

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture()
def gd(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(REPO / "export"))
    monkeypatch.setenv("EMOEDGE_SHARED", str(tmp_path / "shared"))
    sys.modules.pop("voice_gpu_data", None)
    import voice_gpu_data
    return voice_gpu_data


def _write_corpora(root: pathlib.Path, rng) -> dict:
    d = root / "data" / "speech"
    d.mkdir(parents=True)
    out = {}
    for name in ("ravdess_speech_actors01-20_16k.npz", "emodb_speakers_no15-16_16k.npz"):
        # speech-like int16 (smooth, so the delta filter matters) plus the metadata arrays the loaders read
        audio = (np.cumsum(rng.normal(0, 300, 50_000)) % 60_000 - 30_000).astype(np.int16)
        arrays = {"audio": audio, "offsets": np.array([0, 20_000, 50_000], np.int64),
                  "labels": np.array([1, 3], np.int8), "speaker": np.array([3, 8], np.int16),
                  "label_names": np.array(["neutral", "calm", "happy", "sad"]), "sample_rate": np.int32(16000)}
        np.savez(d / name, **arrays)
        out[name] = arrays
    return out


def test_pack_unpack_round_trip_is_exact(gd, tmp_path):
    orig = _write_corpora(tmp_path / "shared", np.random.default_rng(0))
    gd.pack(tmp_path / "parts", part_mb=0.05)
    assert len(list((tmp_path / "parts").glob("part*"))) > 1          # split across several carry parts
    gd.unpack(tmp_path / "parts", tmp_path / "dest")
    for name, arrays in orig.items():
        with np.load(tmp_path / "dest" / "data" / "speech" / name) as z:
            assert set(z.files) == set(arrays)
            for k, v in arrays.items():
                assert z[k].dtype == np.asarray(v).dtype and np.array_equal(z[k], v), k


def test_unpack_refuses_a_missing_or_corrupt_part(gd, tmp_path):
    _write_corpora(tmp_path / "shared", np.random.default_rng(1))
    gd.pack(tmp_path / "parts", part_mb=0.05)
    parts = sorted((tmp_path / "parts").glob("part*"))
    parts[-1].write_bytes(parts[-1].read_bytes()[:-10])
    with pytest.raises(SystemExit, match="truncated"):
        gd.unpack(tmp_path / "parts", tmp_path / "dest")
    parts[0].unlink()
    with pytest.raises(SystemExit, match=r"part\(s\) \[0\] missing"):
        gd.unpack(tmp_path / "parts", tmp_path / "dest")
