"""`emoedge eval face`: label mapping by name, metrics, JSON keys and clear errors, on a tiny synthetic
ONNX model (built with onnx.helper, no torch) and a synthetic face file."""
import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from emoedge.cli import main as cli_main
from emoedge.evaluation import face as evface
from emoedge.manifest import update_entry

FILE_NAMES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
# the model's output order differs from the file's on purpose (and uses other synonyms)
MODEL_LABELS = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt"]
PREPROCESS = {"size": [48, 48], "color": "gray", "mean": [0.5], "std": [0.25], "interpolation": "linear", "layout": "nchw"}
LEVELS = np.linspace(20, 235, len(MODEL_LABELS))  # pixel value that model class j "recognises"


def _tiny_model(path):
    """logits_j = 2 c_j m - c_j^2 with m = mean of the preprocessed image: argmax = nearest level c_j."""
    c = (LEVELS / 255.0 - 0.5) / 0.25
    nodes = [helper.make_node("ReduceMean", ["input"], ["m4"], axes=[1, 2, 3], keepdims=0),
             helper.make_node("Unsqueeze", ["m4", "ax"], ["m"]),
             helper.make_node("Gemm", ["m", "W", "B"], ["logits"])]
    g = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 48, 48])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", len(c)])],
                          [helper.make_tensor("W", TensorProto.FLOAT, [1, len(c)], (2 * c).astype(np.float32)),
                           helper.make_tensor("B", TensorProto.FLOAT, [len(c)], (-c * c).astype(np.float32)),
                           helper.make_tensor("ax", TensorProto.INT64, [1], [1])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(path))


@pytest.fixture()
def setup(tmp_path):
    _tiny_model(tmp_path / "tiny.onnx")
    man = tmp_path / "manifest.json"
    entry = {"file": "tiny.onnx", "task": "face_expression", "family": "tiny", "precision": "fp32",
             "labels": MODEL_LABELS, "output": "logits", "preprocess": PREPROCESS,
             "input": {"name": "input", "shape": [None, 1, 48, 48], "layout": "nchw"}}
    update_entry("tiny-fp32", entry, path=man, default_for="face_expression")
    rng = np.random.default_rng(0)
    y = rng.integers(0, len(FILE_NAMES), 70)
    y[:7] = np.arange(7)
    # an image of file class k has the level of the model label with the same canonical name
    canon = {"angry": "anger", "disgust": "disgust", "fear": "fear", "happy": "happiness", "sad": "sadness",
             "surprise": "surprise", "neutral": "neutral"}
    lv = np.array([LEVELS[MODEL_LABELS.index(canon[n])] for n in FILE_NAMES])
    images = np.repeat(lv[y][:, None, None], 48, 1).repeat(48, 2)
    images = np.clip(images + rng.integers(-3, 4, images.shape), 0, 255).astype(np.uint8)
    images[-1] = int(LEVELS[MODEL_LABELS.index("contempt")])  # predicted as contempt -> '(other)', an error
    data = tmp_path / "faces.npz"
    np.savez(data, images=images, labels=y.astype(np.int8), class_names=np.array(FILE_NAMES))
    return man, data, y


def test_eval_face_json_and_label_mapping(setup, capsys):
    man, data, y = setup
    rc = cli_main(["eval", "face", "--data", str(data), "--json", "--manifest", str(man)])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    for k in ("model", "precision", "n", "accuracy", "macro_f1", "per_class_recall", "confusion_matrix",
              "labels", "ms_per_face", "preprocess_ms_per_face"):
        assert k in out, k
    assert out["model"] == "tiny-fp32" and out["n"] == len(y)
    assert out["labels"] == FILE_NAMES + ["(other)"]
    assert out["unmatched_model_labels"] == ["contempt"]
    assert out["accuracy"] == pytest.approx((len(y) - 1) / len(y))
    cm = np.array(out["confusion_matrix"])
    assert cm[y[-1], -1] == 1 and np.trace(cm) == len(y) - 1
    assert set(out["per_class_recall"]) == set(FILE_NAMES)


def test_eval_face_limit_and_text(setup, capsys):
    man, data, y = setup
    assert cli_main(["eval", "face", "--data", str(data), "--limit", "7", "--manifest", str(man)]) == 0
    txt = capsys.readouterr().out
    assert "N=7" in txt and "accuracy=1.0000" in txt and "confusion matrix" in txt


def test_eval_face_errors(setup, tmp_path, capsys):
    # exit code 1 like every other command's errors (2 is argparse's usage error)
    man, data, y = setup
    assert cli_main(["eval", "face", "--data", str(tmp_path / "nope.npz"), "--manifest", str(man)]) == 1
    assert "not found" in capsys.readouterr().err
    bad = tmp_path / "bad_keys.npz"
    np.savez(bad, pixels=np.zeros((2, 48, 48), np.uint8))
    assert cli_main(["eval", "face", "--data", str(bad), "--manifest", str(man)]) == 1
    assert "lacks the array" in capsys.readouterr().err
    badt = tmp_path / "bad_dtype.npz"
    np.savez(badt, images=np.zeros((2, 48, 48), np.float32), labels=np.zeros(2, np.int8), class_names=np.array(FILE_NAMES))
    assert cli_main(["eval", "face", "--data", str(badt), "--manifest", str(man)]) == 1
    assert "uint8 [N,H,W]" in capsys.readouterr().err
    bads = tmp_path / "bad_shape.npz"
    np.savez(bads, images=np.zeros((2, 48, 48, 3), np.uint8), labels=np.zeros(2, np.int8), class_names=np.array(FILE_NAMES))
    assert cli_main(["eval", "face", "--data", str(bads), "--manifest", str(man)]) == 1
    assert "[N,H,W]" in capsys.readouterr().err
    badl = tmp_path / "bad_labels.npz"
    np.savez(badl, images=np.zeros((2, 48, 48), np.uint8), labels=np.array([0, 9]), class_names=np.array(FILE_NAMES))
    assert cli_main(["eval", "face", "--data", str(badl), "--manifest", str(man)]) == 1
    assert "labels must lie in" in capsys.readouterr().err
    assert cli_main(["eval", "face", "--data", str(data), "--model", "nope", "--manifest", str(man)]) == 1
    assert "no model named" in capsys.readouterr().err
    assert cli_main(["eval", "face", "--data", str(data), "--precision", "int8", "--manifest", str(man)]) == 1
    assert "no 'int8' variant" in capsys.readouterr().err


def test_label_map_by_name():
    m = evface.label_map(MODEL_LABELS, FILE_NAMES)
    assert [FILE_NAMES[j] if j < 7 else None for j in m] == ["neutral", "happy", "surprise", "sad", "angry",
                                                             "disgust", "fear", None]
