"""Model-file integrity (issue #20): manifest files are checked by content on every load, must sit inside
the models folder, need a sha256; compiled artifacts are verified like models; recorded commands carry no
machine paths; the loaded bytes are the checked bytes."""
import json
import os
import re
import shutil

import numpy as np
import pytest

from emoedge import backends
from emoedge.errors import ModelError
from emoedge.manifest import MANIFEST_PATH, Manifest, load_manifest, sha256_file
from emoedge.session import SessionOptions, make_session, session_info

from test_compile import _tiny_model


def _manifest(tmp_path, entries: dict) -> Manifest:
    p = tmp_path / "models" / "manifest.json"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps({"schema": 1, "models": entries}))
    return load_manifest(p)


@pytest.fixture()
def one_model(tmp_path):
    d = tmp_path / "models"
    d.mkdir()
    m = _tiny_model(d / "tiny.onnx")
    return _manifest(tmp_path, {"tiny": {"file": "tiny.onnx", "sha256": sha256_file(m), "task": "t"}})


def test_swapped_file_with_same_size_and_mtime_is_rejected_in_the_same_process(one_model):
    p = one_model.model_path("tiny")
    st = p.stat()
    data = bytearray(p.read_bytes())
    data[-5] ^= 0xFF  # same size
    p.write_bytes(bytes(data))
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime
    assert p.stat().st_size == st.st_size and p.stat().st_mtime_ns == st.st_mtime_ns
    with pytest.raises(ModelError, match="does not match its manifest sha256"):
        one_model.model_path("tiny")


def test_file_changed_between_verification_and_load_is_caught(one_model):
    p = one_model.model_path("tiny")
    _tiny_model(p, seed=3)  # replaced after the check
    with pytest.raises(ModelError, match="changed after it was verified"):
        make_session(p, SessionOptions(use_compiled=False))


@pytest.mark.parametrize("bad", ["../outside.onnx", "../../etc/passwd", "/etc/passwd", "sub/../../outside.onnx"])
def test_manifest_file_outside_the_models_folder_is_rejected(tmp_path, bad):
    _tiny_model(tmp_path / "outside.onnx")
    man = _manifest(tmp_path, {"x": {"file": bad, "sha256": "0" * 64}})
    with pytest.raises(ModelError, match="not a path inside"):
        man.model_path("x")


def test_link_leaving_the_models_folder_is_rejected(tmp_path):
    out = _tiny_model(tmp_path / "outside.onnx")
    man = _manifest(tmp_path, {"x": {"file": "x.onnx", "sha256": sha256_file(out)}})
    (man.root / "x.onnx").symlink_to(out)
    with pytest.raises(ModelError, match="link that leads outside"):
        man.model_path("x")
    # a link that stays inside the folder is fine
    inner = _tiny_model(man.root / "inner.onnx")
    (man.root / "y.onnx").symlink_to(inner)
    man2 = _manifest(tmp_path, {"y": {"file": "y.onnx", "sha256": sha256_file(inner)}})
    assert man2.model_path("y").name == "y.onnx"


@pytest.mark.parametrize("sha", [None, "", "abc"])
def test_missing_or_empty_sha256_is_an_error(tmp_path, sha):
    d = tmp_path / "models"
    d.mkdir()
    _tiny_model(d / "tiny.onnx")
    e = {"file": "tiny.onnx"}
    if sha is not None:
        e["sha256"] = sha
    man = _manifest(tmp_path, {"tiny": e})
    with pytest.raises(ModelError, match="no valid sha256"):
        man.model_path("tiny")


def test_bundled_manifest_commands_have_no_machine_paths():
    data = json.loads(MANIFEST_PATH.read_text())
    bad = []

    def walk(o, where):
        if isinstance(o, dict):
            for k, v in o.items():
                if k in ("made_by", "command") and isinstance(v, str):
                    if re.search(r"(^|[\s=])(/|~)[\w.]", v) or re.search(r"\bnohup\b|venv|/work/|/home/", v):
                        bad.append(f"{where}.{k}: {v[:120]}")
                else:
                    walk(v, f"{where}.{k}")
        elif isinstance(o, list):
            for i, v in enumerate(o):
                walk(v, f"{where}[{i}]")
    walk(data, "manifest")
    assert not bad, "\n".join(bad)


def test_every_bundled_entry_with_a_file_verifies():
    man = load_manifest()
    for name, e in man.models.items():
        if "file" in e:
            assert man.model_path(name).is_file()


# ---------------------------------------------------------------- compiled artifacts


def _constant_model(path):
    """Same input/output names as _tiny_model, constant output (the audit's planted model)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    c = numpy_helper.from_array(np.array([[0.0, 0.0, 9.0, 0.0]], np.float32), "c")
    nodes = [helper.make_node("Shape", ["input"], ["s"]), helper.make_node("Identity", ["c"], ["logits"])]
    g = helper.make_graph(nodes, "const", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 16, 16])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4])], [c])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return path


def _plant(model, cache, name="model.opt.onnx", meta_extra=None, preferred=None):
    d = backends.cpu_dir(model, cache)
    d.mkdir(parents=True, exist_ok=True)
    _constant_model(d / name)
    meta = {"model_sha256": sha256_file(model), "preferred": preferred or name}
    meta.update(meta_extra or {})
    (d / "meta.json").write_text(json.dumps(meta))
    return d


def _run(sess):
    x = np.random.default_rng(0).standard_normal((1, 1, 16, 16)).astype(np.float32)
    return sess.run(None, {"input": x})[0]


def test_planted_compiled_model_without_recorded_hash_is_rejected(tmp_path):
    model = _tiny_model(tmp_path / "m.onnx")
    _plant(model, tmp_path / "cache")
    with pytest.warns(RuntimeWarning, match="records no sha256"):
        sess = make_session(model, SessionOptions(compiled_dir=str(tmp_path / "cache")))
    assert not session_info(sess)["compiled"]
    ref = make_session(model, SessionOptions(use_compiled=False))
    np.testing.assert_allclose(_run(sess), _run(ref))


def test_planted_compiled_model_over_a_compiled_one_is_rejected(tmp_path):
    from emoedge.compile import compile_cpu
    model = _tiny_model(tmp_path / "m.onnx")
    cache = tmp_path / "cache"
    meta = compile_cpu(model, cache, log=lambda m: None)
    sess = make_session(model, SessionOptions(compiled_dir=str(cache)))
    assert session_info(sess)["compiled"]  # the genuine artifact is used
    d = backends.cpu_dir(model, cache)
    _constant_model(d / meta["preferred"])  # swapped after compile
    with pytest.warns(RuntimeWarning, match="does not match the sha256 recorded"):
        sess = make_session(model, SessionOptions(compiled_dir=str(cache)))
    assert not session_info(sess)["compiled"]
    np.testing.assert_allclose(_run(sess), _run(make_session(model, SessionOptions(use_compiled=False))))


@pytest.mark.parametrize("preferred", ["../../m.onnx", "/etc/passwd", "other.onnx", "sub/model.ort"])
def test_compiled_preferred_path_must_name_an_artifact(tmp_path, preferred):
    model = _tiny_model(tmp_path / "m.onnx")
    _plant(model, tmp_path / "cache", preferred=preferred)
    with pytest.warns(RuntimeWarning, match="preferred file"):
        assert backends.find_compiled_cpu(model, tmp_path / "cache") is None


def test_compiled_meta_of_another_model_is_rejected(tmp_path):
    model = _tiny_model(tmp_path / "m.onnx")
    d = _plant(model, tmp_path / "cache", meta_extra={"model_sha256": "f" * 64})
    assert d.is_dir()
    with pytest.warns(RuntimeWarning, match="another model"):
        assert backends.find_compiled_cpu(model, tmp_path / "cache") is None


def test_planted_cache_cannot_flip_the_real_text_model(tmp_path):
    """The audit's case: a constant-output model under the real text model's cache key is not used."""
    from emoedge.text import TextModel
    man = load_manifest()
    name = man.find("text")
    path = man.model_path(name)
    cache = tmp_path / "cache"
    d = backends.cpu_dir(path, cache)
    d.mkdir(parents=True)
    shutil.copy(path, d / "model.opt.onnx")
    data = bytearray((d / "model.opt.onnx").read_bytes())
    data[len(data) // 2] ^= 0x01
    (d / "model.opt.onnx").write_bytes(bytes(data))  # a different model under the right name
    (d / "meta.json").write_text(json.dumps({"model_sha256": sha256_file(path), "preferred": "model.opt.onnx",
                                             "artifacts_sha256": {"model.opt.onnx": sha256_file(path)}}))
    with pytest.warns(RuntimeWarning, match="does not match the sha256 recorded"):
        sess = make_session(path, SessionOptions(compiled_dir=str(cache), intra_threads=1))
    assert not session_info(sess)["compiled"]
    tm = TextModel.load(name)
    assert tm.predict("I am so happy and delighted today").label in ("happy", "joy")


def test_session_info_entries_go_with_their_sessions(tmp_path):
    import gc
    from emoedge import session as S
    model = _tiny_model(tmp_path / "m.onnx")
    before = len(S._info)
    for _ in range(5):
        s = make_session(model, SessionOptions(use_compiled=False))
        del s
    gc.collect()
    assert len(S._info) <= before + 1
