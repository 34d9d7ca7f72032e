"""Our facial-expression model: training smoke run (needs torch), and the bundled ONNX models
(face-expr-fp32 / face-expr-int8): sha256, I/O, labels, accuracy floor on real PublicTest faces,
INT8 vs FP32 agreement."""
import importlib.util

import numpy as np
import pytest

from emoedge.manifest import load_manifest, sha256_file

FER_LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
NAMES = ("face-expr-fp32", "face-expr-int8")


def _entry(name):
    man = load_manifest()
    if name not in man.models:
        pytest.skip(f"{name} is not in the bundled manifest yet (run export/face_export.py)")
    return man, man.entry(name)


@pytest.fixture(scope="module")
def val_subset(shared_data):
    p = shared_data / "faces" / "fer2013_val.npz"
    if not p.is_file():
        pytest.skip(f"{p} not found")
    z = np.load(p)
    rng = np.random.default_rng(0)
    idx = np.sort(rng.choice(len(z["labels"]), 300, replace=False))
    return z["images"][idx], z["labels"][idx].astype(np.int64), [str(c) for c in z["class_names"]]


@pytest.mark.parametrize("name", NAMES)
def test_bundled_model_entry_and_io(name):
    man, e = _entry(name)
    path = man.model_path(name)  # checks existence + sha256
    assert sha256_file(path) == e["sha256"]
    assert e["task"] == "face_expression" and e["family"] == "face-expr"
    assert e["labels"] == FER_LABELS and e["output"] in ("logits", "probabilities")
    assert e["input"]["name"] == "input" and e["input"]["shape"][1:] == [1, 48, 48]
    assert e["params"] <= 2_000_000 and e["mflops"] <= 150
    assert e["temperature"] > 0
    m = e["metrics"][0]
    assert "PublicTest" in m["split"] and set(m["per_class_recall"]) == set(FER_LABELS)
    from emoedge.session import make_session
    s = make_session(path)
    for n in (1, 5):
        out = s.run(None, {"input": np.zeros((n, 1, 48, 48), np.float32)})[0]
        assert out.shape == (n, 7) and np.isfinite(out).all()


@pytest.mark.parametrize("name", NAMES)
def test_bundled_model_accuracy_floor(name, val_subset):
    from emoedge.evaluation.face import evaluate
    man, e = _entry(name)
    images, labels, names = val_subset
    rep = evaluate(e, man.model_path(name), images, labels, names)
    assert rep["n"] == 300
    # full PublicTest accuracy is in the manifest; a 300-face subset has ~2.6 points of std error
    assert rep["accuracy"] >= 0.63, rep["accuracy"]
    assert rep["macro_f1"] >= 0.52, rep["macro_f1"]


def test_int8_agrees_with_fp32(val_subset):
    from emoedge.evaluation.face import preprocess_faces
    from emoedge.session import make_session
    man, e32 = _entry("face-expr-fp32")
    _, e8 = _entry("face-expr-int8")
    assert e32["preprocess"] == e8["preprocess"]
    x = preprocess_faces(val_subset[0], e32)
    o32 = make_session(man.model_path("face-expr-fp32")).run(None, {"input": x})[0]
    o8 = make_session(man.model_path("face-expr-int8")).run(None, {"input": x})[0]
    agree = float((o32.argmax(1) == o8.argmax(1)).mean())
    assert agree >= 0.9, agree
    p32 = np.exp(o32 - o32.max(1, keepdims=True)); p32 /= p32.sum(1, keepdims=True)
    p8 = np.exp(o8 - o8.max(1, keepdims=True)); p8 /= p8.sum(1, keepdims=True)
    assert np.abs(p32 - p8).sum(1).mean() < 0.15


def test_default_is_a_face_expr_model():
    man, _ = _entry("face-expr-fp32")
    assert man.data["defaults"].get("face_expression") in man.models


@pytest.mark.slow
def test_training_smoke_and_export(tmp_path, shared_data, export_module):
    """face_train.py --smoke (a few steps on a few hundred faces), then face_export.py into a temporary
    models directory; the exported models are evaluated by the eval command."""
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed (it is in the 'train' extra, not 'test')")
    if not (shared_data / "faces" / "fer2013_train.npz").is_file():
        pytest.skip("fer2013_train.npz not found in shared data")
    face_export, face_train = export_module("face_export"), export_module("face_train")
    out = tmp_path / "run"
    assert face_train.main(["--out", str(out), "--smoke", "--seed", "1"]) == 0
    assert (out / "best.pt").is_file() and (out / "last.pt").is_file()
    hist = __import__("json").loads((out / "history.json").read_text())
    assert len(hist) == 2 and all(np.isfinite(h["train_loss"]) for h in hist)
    mdir = tmp_path / "models"
    mdir.mkdir()
    assert face_export.main(["--ckpt", str(out / "best.pt"), "--models-dir", str(mdir), "--limit-val", "200",
                             "--calib", "32"]) == 0
    man = load_manifest(mdir / "manifest.json")
    assert {"face-expr-fp32", "face-expr-int8"} <= set(man.models)
    assert man.data["defaults"]["face_expression"] in ("face-expr-fp32", "face-expr-int8")
    e = man.entry("face-expr-int8")
    assert e["metrics"][0]["n"] == 200 and e["temperature"] > 0
    from emoedge.cli import main as cli_main
    assert cli_main(["eval", "face", "--data", str(shared_data / "faces" / "fer2013_val.npz"), "--limit", "50",
                     "--precision", "int8", "--json", "--manifest", str(mdir / "manifest.json")]) == 0


def test_training_results_do_not_depend_on_workers(tmp_path, shared_data, export_module):
    """Each step's augmentation has its own seed and the loader has its own generator, so the run with
    augmentation worker processes equals the in-process run (mixup and EMA on)."""
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed (it is in the 'train' extra, not 'test')")
    if not (shared_data / "faces" / "fer2013_train.npz").is_file():
        pytest.skip("fer2013_train.npz not found in shared data")
    face_train = export_module("face_train")
    hist = {}
    for w in (0, 1):
        out = tmp_path / f"w{w}"
        assert face_train.main(["--out", str(out), "--smoke", "--workers", str(w), "--mixup", "0.2",
                                "--ema", "0.99", "--device", "auto"]) == 0
        hist[w] = __import__("json").loads((out / "history.json").read_text())
    for a, b in zip(hist[0], hist[1]):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6)
        assert a["val_acc"] == b["val_acc"]


def test_pack_split_is_lossless(tmp_path, shared_data, export_module):
    """face_data.pack_split (WebP-lossless transport copy) decodes to the original images and labels."""
    p = shared_data / "faces" / "fer2013_val.npz"
    if not p.is_file():
        pytest.skip(f"{p} not found")
    face_data = export_module("face_data")
    z = np.load(p)
    small = tmp_path / "small.npz"
    np.savez(small, images=z["images"][:64], labels=z["labels"][:64], ferplus_votes=z["ferplus_votes"][:64],
             class_names=z["class_names"])
    face_data.pack_split(small, tmp_path / "packed.npz")
    orig, packed = face_data.load_split(small), face_data.load_split(tmp_path / "packed.npz")
    assert np.array_equal(orig["images"], packed["images"])
    assert np.array_equal(orig["labels"], packed["labels"])
    assert np.array_equal(orig["votes"], packed["votes"])
