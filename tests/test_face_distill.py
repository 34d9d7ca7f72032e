"""Faces v2 tooling (issue #15): the in-graph flip average and logit-bias graphs of export/face_tta.py,
the dev split of export/face_data.py, and an end-to-end CPU smoke run of export/face_distill.py ->
face_export.py -> `emoedge eval face` (needs torch, which is in the 'train' extra, not 'test')."""
import importlib.util
import json
import pathlib
import subprocess

import numpy as np
import pytest

from emoedge.manifest import load_manifest

REPO = pathlib.Path(__file__).resolve().parents[1]
NO_TORCH = "torch is not installed (it is in the 'train' extra, not 'test')"


@pytest.mark.parametrize("name", ["face-expr-fp32", "face-expr-int8"])
def test_flip_average_graph_equals_mean_of_crop_and_mirror(tmp_path, name, export_module):
    from emoedge.session import make_session
    tta = export_module("face_tta")
    man = load_manifest()
    if name not in man.models:
        pytest.skip(f"{name} is not in the bundled manifest")
    src = man.model_path(name)
    dst = tmp_path / "flip.onnx"
    tta.flip_average_graph(src, dst)
    s0, s1 = make_session(src), make_session(dst)
    assert [i.name for i in s1.get_inputs()] == ["input"] and [o.name for o in s1.get_outputs()] == ["logits"]
    rng = np.random.default_rng(0)
    for n in (1, 5):
        x = rng.normal(0, 1, (n, 1, 48, 48)).astype(np.float32)
        want = (s0.run(None, {"input": x})[0] + s0.run(None, {"input": np.ascontiguousarray(x[..., ::-1])})[0]) / 2
        got = s1.run(None, {"input": x})[0]
        assert got.shape == (n, 7)
        # static QDQ scales make each face's result independent of the batch it is in
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
        assert not np.allclose(got, s0.run(None, {"input": x})[0], atol=1e-3)  # the mirror really contributes


def test_add_bias_graph_adds_the_bias(tmp_path, export_module):
    from emoedge.session import make_session
    tta = export_module("face_tta")
    man = load_manifest()
    src = man.model_path("face-expr-fp32")
    b = np.array([0.5, -1.0, 0.25, 0, 0, 0.75, 0], np.float32)
    tta.add_bias_graph(src, tmp_path / "b.onnx", b)
    x = np.random.default_rng(1).normal(0, 1, (3, 1, 48, 48)).astype(np.float32)
    np.testing.assert_allclose(make_session(tmp_path / "b.onnx").run(None, {"input": x})[0],
                               make_session(src).run(None, {"input": x})[0] + b, rtol=1e-5, atol=1e-5)


def test_fit_logit_bias_recovers_an_under_predicted_class(export_module):
    from emoedge.evaluation.metrics import classification_report
    tta = export_module("face_tta")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 2000)
    logits = rng.normal(0, 1, (2000, 4)) + 2.0 * np.eye(4)[y]
    logits[:, 2] -= 1.5  # class 2 is rarely predicted
    names = [str(i) for i in range(4)]
    before = classification_report(y, logits.argmax(1), names)
    b = tta.fit_logit_bias(logits, y, 4, grid=np.arange(-2, 2.01, 0.1))
    after = classification_report(y, (logits + b).argmax(1), names)
    assert b[-1] == 0 and b[2] - np.mean(np.delete(b, 2)) > 0.8
    assert after["macro_f1"] > before["macro_f1"] + 0.05
    assert after["per_class"]["2"]["recall"] > before["per_class"]["2"]["recall"] + 0.2


def test_dev_split_is_stratified_disjoint_and_keeps_duplicates_together(export_module):
    face_data = export_module("face_data")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (1000, 48, 48), dtype=np.uint8)
    labels = rng.integers(0, 7, 1000)
    images[500:520] = images[0]  # a cluster of exact duplicates
    labels[500:520] = labels[0]
    fit, dev = face_data.dev_split(images, labels, 0.1, seed=3)
    assert len(np.intersect1d(fit, dev)) == 0 and len(fit) + len(dev) == 1000
    assert 70 <= len(dev) <= 130
    side = {0 in dev} | {i in dev for i in range(500, 520)}
    assert len(side) == 1
    for c in range(7):
        frac = np.isin(np.nonzero(labels == c)[0], dev).mean()
        assert 0.03 < frac < 0.25
    _, d2 = face_data.dev_split(images, labels, 0.1, seed=3)
    assert np.array_equal(dev, d2)


def test_gpu_run_script_parses():
    r = subprocess.run(["bash", "-n", str(REPO / "export" / "face_gpu_run.sh")], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr


@pytest.mark.slow
def test_distill_smoke_export_and_eval(tmp_path, shared_data, export_module):
    """face_distill.py --smoke (teacher + student, 1 epoch of 2 steps on 320 images, dev-fitted temperature
    and biases), face_export.py with --logit-bias into a temporary models dir, `emoedge eval face` on it."""
    if importlib.util.find_spec("torch") is None:
        pytest.skip(NO_TORCH)
    train = shared_data / "faces" / "fer2013_train.npz"
    if not train.is_file():
        pytest.skip(f"{train} not found")
    distill, export = export_module("face_distill"), export_module("face_export")
    import torch
    out = tmp_path / "run"
    assert distill.main(["--out", str(out), "--smoke", "--device", "cpu", "--train", str(train)]) == 0
    for f in ("teacher_best.pt", "teacher_last.pt", "student_best.pt", "student_last.pt", "distill.log"):
        assert (out / f).is_file(), f
    for k in ("teacher", "student"):
        h = json.loads((out / f"{k}_history.json").read_text())
        assert len(h) == 1 and np.isfinite(h[0]["train_loss"]) and 0 <= h[0]["dev_acc"] <= 1
    ck = torch.load(out / "student_best.pt", weights_only=False)
    m = ck["meta"]
    assert m["temperature_dev"] > 0 and len(m["logit_bias_dev"]) == 7 and "PublicTest not used" in m["selection"]
    mdir = tmp_path / "models"
    mdir.mkdir()
    assert export.main(["--ckpt", str(out / "student_best.pt"), "--models-dir", str(mdir), "--limit-val", "100",
                        "--calib", "32", "--logit-bias", "--train", str(train),
                        "--val", str(shared_data / "faces" / "fer2013_val.npz")]) == 0
    man = load_manifest(mdir / "manifest.json")
    e = man.entry("face-expr-int8")
    assert e["temperature"] == pytest.approx(m["temperature_dev"])
    assert e["train"]["temperature_fitted_on"] == "dev split" and len(e["train"]["logit_bias"]) == 7
    from emoedge.cli import main as cli_main
    assert cli_main(["eval", "face", "--data", str(shared_data / "faces" / "fer2013_val.npz"), "--limit", "40",
                     "--json", "--manifest", str(mdir / "manifest.json")]) == 0
