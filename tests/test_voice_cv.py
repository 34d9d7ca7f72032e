"""Voice cross-validation: fold definitions, `emoedge eval voice --folds/--crop`, masked pooling (torch parts skip
without torch, which only export/ needs)."""
import io
import json
import pathlib
from contextlib import redirect_stdout

import numpy as np
import pytest

from emoedge.errors import InvalidInputError
from emoedge.evaluation.voice import CV_FOLDS, evaluate_file, evaluate_folds, parse_folds

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_cv_folds_partition_the_released_speakers():
    rav = [a for g in CV_FOLDS["ravdess"] for a in g]
    assert sorted(rav) == list(range(1, 21))                         # every actor 1-20 exactly once
    for g in CV_FOLDS["ravdess"]:
        assert len(g) == 4 and sum(a % 2 for a in g) == 2            # 2 male (odd) + 2 female per fold
    emo = [s for g in CV_FOLDS["emodb"] for s in g]
    assert sorted(emo) == [3, 8, 9, 10, 11, 12, 13, 14]
    assert len(CV_FOLDS["ravdess"]) == len(CV_FOLDS["emodb"]) == 5


def test_parse_folds():
    assert parse_folds("1,2/3-5") == ((1, 2), (3, 4, 5))
    with pytest.raises(InvalidInputError, match="more than one group"):
        parse_folds("1,2/2,3")
    with pytest.raises(InvalidInputError, match="at least two"):
        parse_folds("1,2")
    with pytest.raises(InvalidInputError, match="not a RAVDESS or EmoDB"):
        parse_folds("auto", {"label_names": np.array(["x", "y"])}, "other.npz")


def test_folds_report_marks_groups_the_model_trained_on(shared_data):
    from emoedge.manifest import load_manifest
    path = shared_data / "speech" / "emodb_speakers_no15-16_16k.npz"
    rep = evaluate_folds(path, "auto", precision="fp32", limit=3)
    assert rep["corpus"] == "emodb" and len(rep["folds"]) == 5
    assert all(f["n"] == 3 for f in rep["folds"])
    ts = load_manifest().entry(rep["folds"][0]["model"]).get("trained_speakers")
    for f in rep["folds"]:
        if ts is None:
            assert f["out_of_fold"] is None
        else:                                      # out-of-fold only when no speaker of the group was trained on
            assert f["out_of_fold"] == (not set(f["speakers"]) & set(ts["emodb"]))
    assert rep["n_folds_summarised"] == sum(1 for f in rep["folds"] if f["out_of_fold"])


def test_eval_cli_folds_and_crop(shared_data, capsys):
    from emoedge.cli import main
    data = str(shared_data / "speech" / "ravdess_speech_actors01-20_16k.npz")
    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = main(["eval", "voice", "--data", data, "--folds", "1/2", "--limit", "2", "--crop", "1.0", "--json"])
    assert rc in (0, None)
    rep = json.loads(buf.getvalue())
    assert [f["speakers"] for f in rep["folds"]] == [[1], [2]] and rep["crop_s"] == 1.0
    capsys.readouterr()
    assert main(["eval", "voice", "--data", data, "--folds", "--speakers", "1"]) not in (0, None)
    assert "exclude each other" in capsys.readouterr().err
    assert main(["eval", "voice", "--data", data, "--fold-models", "x{k}"]) not in (0, None)
    assert "needs --folds" in capsys.readouterr().err


def test_crop_scores_the_centre_only(shared_data):
    path = shared_data / "speech" / "ravdess_speech_actors01-20_16k.npz"
    rep = evaluate_file(path, speakers=(1,), limit=4, crop_s=1.0)
    assert rep["n"] == 4 and rep["windows"] == 4                     # 1.0 s -> exactly one window per clip
    with pytest.raises(InvalidInputError, match="--crop"):
        evaluate_file(path, speakers=(1,), limit=1, crop_s=-1.0)


# ----------------------------------------------------------------------------- export/ (torch)

@pytest.fixture()
def vm(monkeypatch):
    pytest.importorskip("torch", reason="torch is only needed by export/ (pip install .[train])")
    monkeypatch.syspath_prepend(str(REPO / "export"))
    import voice_model
    return voice_model


def test_masked_pooling_ignores_padding_steps(vm):
    import torch
    torch.manual_seed(0)
    h = torch.randn(2, 5, 13)
    m = torch.zeros(2, 1, 13)
    m[:, :, 6:] = 1.0                                                # the last 7 steps are real
    for kind in ("mean", "stats"):
        got = vm.pool_time(h, m, kind)
        ref = vm.pool_time(h[:, :, 6:], None, kind)
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pool,mask", [("stats", True), ("mean", True), ("mean", False)])
def test_export_graph_equals_training_model(vm, pool, mask):
    """The time-major export graph (BN folded) computes the training model's function, padding mask included."""
    import torch
    torch.manual_seed(1)
    m = vm.VoiceCNN(widths=(8, 8, 16, 16), pool=pool, mask=mask, pad_value=-100.0)
    m.set_norm(np.full(64, -50.0), np.full(64, 15.0))
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.normal_()
            mod.running_var.uniform_(0.5, 2.0)
    m.eval()
    x = torch.randn(3, 200, 64) * 15 - 50
    x[0, :130] = -100.0                                              # 0.7 s utterance, left-padded like the stream
    x[1, :40] = -100.0
    e = vm.VoiceEnsemble([m], [200]).eval()
    with torch.no_grad():
        torch.testing.assert_close(e(x), torch.log_softmax(m(x), dim=1), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("pool,mask", [("mean", False), ("stats", True)])
def test_grouped_training_network_equals_its_members(vm, pool, mask, monkeypatch):
    """export/voice_group.py trains K seeds as one grouped network: forward outputs, gradients and the weights
    written back must be each member's own (so each member trains as it would alone)."""
    import torch
    import voice_group as vg
    members = []
    for s in (1, 2, 3):
        torch.manual_seed(s)
        m = vm.VoiceCNN(widths=(8, 8, 16, 16), pool=pool, mask=mask, pad_value=-100.0)
        m.set_norm(np.full(64, -50.0), np.full(64, 15.0))
        members.append(m)
    g = vg.GroupedVoiceCNN(members)
    xs = [torch.randn(4, 200, 64) * 15 - 50 for _ in members]
    xs[1][:2, :120] = -100.0                                         # short, left-padded utterances
    ys = [torch.randint(0, 8, (4,)) for _ in members]
    for mod in [g, *members]:
        mod.train()
        mod.drop.p = 0.0                                             # dropout masks differ by construction
    out = g.forward_normalized(torch.cat([g.normalize(x) for x in xs], dim=1))
    sum(torch.nn.functional.cross_entropy(out[:, k], y) for k, y in enumerate(ys)).backward()
    for k, (m, x, y) in enumerate(zip(members, xs, ys)):
        ref = m(x)
        torch.testing.assert_close(out[:, k], ref, rtol=1e-5, atol=1e-5)
        torch.nn.functional.cross_entropy(ref, y).backward()
        gw = g.features[3][0].weight.grad.chunk(3)[k]
        torch.testing.assert_close(gw, m.features[3][0].weight.grad, rtol=1e-4, atol=1e-6)
    with torch.no_grad():                                            # perturb, then write back
        for p in g.parameters():
            p.add_(0.01)
    g.eval()
    g.unpack_into(members)
    z = torch.cat([g.normalize(x) for x in xs], dim=1)
    for k, (m, x) in enumerate(zip(members, xs)):
        m.eval()
        torch.testing.assert_close(g.forward_normalized(z)[:, k], m(x), rtol=1e-5, atol=1e-5)


def test_publish_copies_one_precision_of_the_fold_models_with_their_manifest(tmp_path, monkeypatch, export_module):
    from emoedge.manifest import update_entry
    vc = export_module("voice_cv")
    recipe = tmp_path / "runs" / "R1"
    (recipe / "fold0").mkdir(parents=True)
    md = recipe / "models"
    md.mkdir()
    for k in range(2):
        for p in ("fp32", "int8"):
            (md / f"voice-cv-fold{k}-{p}.onnx").write_bytes(f"{k}{p}".encode() * 10)
            update_entry(f"voice-cv-fold{k}-{p}", {"task": "voice", "precision": p, "file": f"voice-cv-fold{k}-{p}.onnx",
                                                   "trained_speakers": {"ravdess": [k + 2]}}, path=md / "manifest.json")
    (recipe / "summary.json").write_text('{"recipe": "R1"}')
    (recipe / "runtime.json").write_text('{"command": "--manifest runs/cv/R1/models/manifest.json"}')
    monkeypatch.setattr(vc, "PUBLISHED_ROOT", tmp_path / "published")
    assert vc.fold_models_manifest(recipe) == md / "manifest.json"          # the local export wins
    dest = vc.publish(str(recipe))
    assert dest == tmp_path / "published" / "R1"
    assert sorted(f.name for f in dest.iterdir()) == ["manifest.json", "runtime.json", "summary.json",
                                                      "voice-cv-fold0-int8.onnx", "voice-cv-fold1-int8.onnx"]
    assert json.loads((dest / "runtime.json").read_text())["command"] == \
        "--manifest export/results/voice_cv/R1/manifest.json"           # the command names the published copy
    man = json.loads((dest / "manifest.json").read_text())["models"]
    assert sorted(man) == ["voice-cv-fold0-int8", "voice-cv-fold1-int8"]
    assert man["voice-cv-fold1-int8"]["trained_speakers"] == {"ravdess": [3]}
    import hashlib
    assert man["voice-cv-fold0-int8"]["sha256"] == hashlib.sha256(b"0int8" * 10).hexdigest()
    import shutil
    shutil.rmtree(md)
    assert vc.fold_models_manifest(recipe) == dest / "manifest.json"        # then the published copy
    with pytest.raises(SystemExit, match="export-folds"):                     # nothing to publish: says what to run
        vc.publish(str(recipe))
    assert (dest / "voice-cv-fold0-int8.onnx").is_file()                     # and the published copy is kept


def test_published_fold_models_are_intact_and_each_skips_its_own_speakers(shared_data):
    import hashlib
    man_path = REPO / "export" / "results" / "voice_cv" / "A200" / "manifest.json"
    models = json.loads(man_path.read_text())["models"]
    assert sorted(models) == [f"voice-cv-fold{k}-int8" for k in range(5)]
    for k in range(5):
        e = models[f"voice-cv-fold{k}-int8"]
        assert hashlib.sha256((man_path.parent / e["file"]).read_bytes()).hexdigest() == e["sha256"]
        trained = {c: set(v) for c, v in e["trained_speakers"].items()}
        assert not trained["ravdess"] & set(CV_FOLDS["ravdess"][k])          # its held-out actors
        assert set(CV_FOLDS["ravdess"][(k + 1) % 5]) <= trained["ravdess"]   # and it did train on the others
    rep = evaluate_folds(shared_data / "speech" / "emodb_speakers_no15-16_16k.npz", "auto", manifest=man_path,
                         fold_models="voice-cv-fold{k}-int8", limit=2)
    assert [f["model"] for f in rep["folds"]] == [f"voice-cv-fold{k}-int8" for k in range(5)]
    assert rep["n_folds_summarised"] == 5 and all(f["n"] == 2 for f in rep["folds"])
