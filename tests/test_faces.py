import json
import shutil
import warnings

import cv2
import numpy as np
import pytest

from emoedge import manifest as mf
from emoedge.errors import ModelError, ModelNotFoundError
from emoedge.faces import BASELINE_MODEL, Face, FaceAnalyzer, FaceAnalyzerOptions
from emoedge.tracking import FaceTracker, TrackerOptions


@pytest.fixture(scope="module")
def fer(shared_data):
    p = shared_data / "faces" / "fer2013_val.npz"
    if not p.is_file():
        pytest.skip(f"{p} not found")
    d = np.load(p)
    return d["images"], d["labels"], [str(c) for c in d["class_names"]]


@pytest.fixture(scope="module")
def analyzer():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # baseline fallback before our model lands
        return FaceAnalyzer()


def two_face_frame(ims, i, j, dx=0, dy=0):
    frame = np.full((480, 640, 3), 118, np.uint8)
    for img, x0 in ((ims[i], 60 + dx), (ims[j], 380 - dx)):
        frame[120 + dy:320 + dy, x0:x0 + 200] = cv2.resize(img, (200, 200), interpolation=cv2.INTER_CUBIC)[:, :, None]
    return frame


def temp_manifest(tmp_path):
    """A copy of the bundled manifest and every model file it names."""
    src = mf.MANIFEST_PATH
    shutil.copy(src, tmp_path / "manifest.json")
    for e in json.loads(src.read_text())["models"].values():
        if "file" in e and (src.parent / e["file"]).is_file():
            (tmp_path / e["file"]).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src.parent / e["file"], tmp_path / e["file"])
    return tmp_path / "manifest.json"


def test_analyze_two_faces_with_stable_ids(analyzer, fer):
    ims, _, _ = fer
    tracker = FaceTracker()
    ids = None
    for k in range(5):
        faces = analyzer.analyze(two_face_frame(ims, 1000, 1001, dx=6 * k, dy=2 * k), t=k / 30, tracker=tracker)
        assert len(faces) == 2 and all(isinstance(f, Face) for f in faces)
        faces.sort(key=lambda f: f.box[0])
        if ids is None:
            ids = [f.track_id for f in faces]
        assert [f.track_id for f in faces] == ids
        for f in faces:
            assert f.probs.shape == (len(analyzer.labels),) and f.probs.dtype == np.float32
            assert f.probs.sum() == pytest.approx(1.0, abs=1e-5) and f.label in f.labels
            assert f.keypoints.shape == (6, 2) and 0.5 <= f.score <= 1.0
            assert set(f.timing) == {"detect_ms", "align_ms", "classify_ms"} and f.timing["detect_ms"] > 0
        assert abs(faces[0].box[0] + faces[0].box[2] / 2 - (160 + 6 * k)) < 25
    assert analyzer.analyze(np.full((480, 640, 3), 90, np.uint8)) == []
    d = faces[0].to_dict()
    assert json.loads(json.dumps(d))["track_id"] == ids[0]


def test_detect_every_n_frames_predicts_in_between(analyzer, fer):
    ims, _, _ = fer
    tracker = FaceTracker(TrackerOptions(detect_every=3))
    seen = []
    for k in range(6):
        faces = analyzer.analyze(two_face_frame(ims, 1002, 1003, dx=3 * k), t=k / 30, tracker=tracker)
        seen.append((len(faces), faces[0].detected, faces[0].timing["detect_ms"] == 0.0, sorted(f.track_id for f in faces)))
    assert [s[1] for s in seen] == [True, False, False, True, False, False]
    assert all(s[0] == 2 and s[3] == seen[0][3] for s in seen)
    assert seen[1][2] and not seen[0][2]


def test_expression_accuracy_end_to_end(analyzer, fer):
    """The whole path (detect -> align -> classify) keeps the expression model useful on real faces."""
    ims, labels, names = fer
    rng = np.random.default_rng(2)
    idx = rng.choice(np.arange(1500, len(ims)), 60, replace=False)
    correct = n = 0
    for i in idx:
        frame = np.full((480, 640, 3), 120, np.uint8)
        frame[140:340, 220:420] = cv2.resize(ims[i], (200, 200), interpolation=cv2.INTER_CUBIC)[:, :, None]
        faces = analyzer.analyze(frame)
        if faces:
            n += 1
            pred = faces[0].label
            correct += pred == names[labels[i]] or (pred, names[labels[i]]) in {("happiness", "happy")}
    assert n >= 55
    assert correct / n >= 0.45, f"accuracy {correct / n:.2f} on {n} detected FER faces (chance ~0.25)"


def test_bad_frames(analyzer):
    with pytest.raises(ValueError, match="uint8"):
        analyzer.analyze(np.zeros((480, 640, 3), np.float32))
    with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
        analyzer.analyze(np.zeros((480, 640, 3, 1), np.uint8))
    with pytest.raises(ValueError, match="numpy array"):
        analyzer.analyze(None)
    with pytest.raises(ValueError, match="max_faces"):
        FaceAnalyzer(FaceAnalyzerOptions(max_faces=-2))


def test_baseline_fallback_warns_and_temperature_applies(tmp_path, fer):
    ims, _, _ = fer
    mpath = temp_manifest(tmp_path)
    data = json.loads(mpath.read_text())
    data["models"] = {k: v for k, v in data["models"].items() if v.get("task") != "face_expression"}
    data["defaults"].pop("face_expression", None)
    mpath.write_text(json.dumps(data))
    with pytest.warns(RuntimeWarning, match=BASELINE_MODEL):
        fa = FaceAnalyzer(FaceAnalyzerOptions(manifest=str(mpath)))
    assert fa.model_name == BASELINE_MODEL
    frame = two_face_frame(ims, 1004, 1005)
    p1 = np.stack([f.probs for f in fa.analyze(frame)])
    data["models"][BASELINE_MODEL]["temperature"] = 3.0
    mpath.write_text(json.dumps(data))
    fa3 = FaceAnalyzer(FaceAnalyzerOptions(manifest=str(mpath), expression_model=BASELINE_MODEL))
    p3 = np.stack([f.probs for f in fa3.analyze(frame)])
    np.testing.assert_array_equal(p1.argmax(1), p3.argmax(1))
    assert p3.max(1).max() < p1.max(1).max()  # flatter
    np.testing.assert_allclose(p3, np.exp(np.log(p1) / 3) / np.exp(np.log(p1) / 3).sum(1, keepdims=True), atol=1e-5)


@pytest.mark.parametrize("damage", ["missing_detector", "missing_expression", "corrupt", "sha_mismatch", "garbage_with_sha"])
def test_model_file_errors_name_the_file(tmp_path, damage):
    mpath = temp_manifest(tmp_path)
    data = json.loads(mpath.read_text())
    det = data["models"]["blazeface-short"]["file"]
    expr = data["models"][BASELINE_MODEL]["file"]
    if damage == "missing_detector":
        (tmp_path / det).unlink()
        err, name = ModelNotFoundError, det
    elif damage == "missing_expression":
        (tmp_path / expr).unlink()
        err, name = ModelNotFoundError, expr
    elif damage == "corrupt":
        b = (tmp_path / expr).read_bytes()
        (tmp_path / expr).write_bytes(b[: len(b) // 2])
        err, name = ModelError, expr
    elif damage == "sha_mismatch":
        data["models"]["blazeface-short"]["sha256"] = "0" * 64
        mpath.write_text(json.dumps(data))
        err, name = ModelError, det
    else:  # the sha matches but the file is not an ONNX model: the session factory names the file
        (tmp_path / expr).write_bytes(b"not an onnx model")
        data["models"][BASELINE_MODEL]["sha256"] = mf.sha256_file(tmp_path / expr)
        mpath.write_text(json.dumps(data))
        err, name = ModelError, expr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(err, match=name.replace(".", r"\.")):
            FaceAnalyzer(FaceAnalyzerOptions(manifest=str(mpath), expression_model=BASELINE_MODEL))


def test_expression_entry_fields_are_honoured(tmp_path, fer):
    """A face_expression entry like the trained model's (logits, NCHW 48x48, mean/std, border, a
    placeholder crop) is read from the manifest: placeholder crops fall back to the detector's calibration."""
    ims, _, _ = fer
    mpath = temp_manifest(tmp_path)
    data = json.loads(mpath.read_text())
    e = dict(data["models"][BASELINE_MODEL])
    e.update(task="face_expression", family="test-expr", crop={"margin": 0.0, "note": "placeholder"},
             preprocess={"size": [64, 64], "color": "gray", "mean": [0.5], "std": [0.5], "border": "replicate",
                         "interpolation": "linear", "layout": "nchw"})
    data["models"]["test-expr"] = e
    data["defaults"]["face_expression"] = "test-expr"
    mpath.write_text(json.dumps(data))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a face_expression default exists: no fallback warning
        fa = FaceAnalyzer(FaceAnalyzerOptions(manifest=str(mpath)))
    assert fa.model_name == "test-expr" and fa.input_size == (64, 64)
    assert fa.crop.to_dict() == {k: v for k, v in data["models"]["blazeface-short"]["expression_crop"].items()
                                 if k in ("reference", "center", "size", "level_eyes")}
    faces = fa.analyze(two_face_frame(ims, 1006, 1007))
    assert len(faces) == 2 and all(abs(f.probs.sum() - 1) < 1e-5 for f in faces)


def test_baseline_fallback_ignores_precision_and_new_tracker(tmp_path):
    mpath = temp_manifest(tmp_path)
    data = json.loads(mpath.read_text())
    data["models"] = {k: v for k, v in data["models"].items() if v.get("task") != "face_expression"}
    data["defaults"].pop("face_expression", None)
    mpath.write_text(json.dumps(data))
    with pytest.warns(RuntimeWarning, match="fp32 only"):
        fa = FaceAnalyzer(FaceAnalyzerOptions(manifest=str(mpath), precision="int8", detect_every=4))
    assert fa.model_name == BASELINE_MODEL and fa.new_tracker().options.detect_every == 4
    with pytest.raises(ValueError, match="detect_every"):
        FaceAnalyzerOptions(detect_every=0).validate()
