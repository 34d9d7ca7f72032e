"""The bundled FP16 variants (export/fp16_export.py): manifest contract, FP32 graph boundary, FP16 inside,
closeness to their source, and the conversion helpers."""
import importlib.util
import pathlib
import sys

import numpy as np
import onnx
import pytest

from emoedge.manifest import load_manifest

REPO = pathlib.Path(__file__).resolve().parents[1]
MAN = load_manifest()
FP16 = sorted(n for n in MAN.names() if MAN.entry(n).get("precision") == "fp16")


def _export_module():
    sys.path.insert(0, str(REPO / "export"))
    spec = importlib.util.spec_from_file_location("fp16_export", REPO / "export" / "fp16_export.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_each_gpu_family_has_an_fp16_variant():
    fams = {MAN.entry(n)["family"] for n in FP16}
    for task in ("face_expression", "voice", "text"):
        default = MAN.data["defaults"][task]
        assert MAN.entry(default)["family"] in fams, f"{default}: no fp16 variant; run python export/fp16_export.py"


@pytest.mark.parametrize("name", FP16)
def test_fp16_entry_tracks_its_source(name):
    e = MAN.entry(name)
    src = e["fp16"]["source"]
    assert src in MAN.models, f"{name}: source {src} is gone; re-run python export/fp16_export.py"
    s = MAN.entry(src)
    assert e["fp16"]["source_sha256"] == s["sha256"], (
        f"{name} was made from an older {src}; re-run python export/fp16_export.py")
    assert e["family"] == s["family"] and e["task"] == s["task"] and e["labels"] == s["labels"]
    assert e["made_by"] == "python export/fp16_export.py"
    MAN.model_path(name)  # sha256 checked
    for split, m in e["metrics"].items():
        metric = m.get("metric", "accuracy")
        assert abs(m[metric] - m[f"fp32_{metric}"]) <= 0.003 + 1e-12, f"{name} {split}: outside the 0.3-point bound"
        assert m["within_bound"] and m["vs_fp32"]["top1_agreement"] >= 0.99


@pytest.mark.parametrize("name", FP16)
def test_fp16_graph_has_fp32_boundary_and_fp16_weights(name):
    m = onnx.load(str(MAN.model_path(name)))
    src = onnx.load(str(MAN.model_path(MAN.entry(name)["fp16"]["source"])))
    sig = lambda vs: [(v.name, v.type.tensor_type.elem_type) for v in vs]  # noqa: E731
    assert sig(m.graph.input) == sig(src.graph.input) and sig(m.graph.output) == sig(src.graph.output)
    assert all(v.type.tensor_type.elem_type != onnx.TensorProto.FLOAT16 for v in list(m.graph.input) + list(m.graph.output))
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in m.graph.initializer)


def test_voice_fp16_keeps_its_probability_tail_fp32():
    """The ensemble tail (softmax, mean, clip at 1e-6, log) must not round through FP16: a Cast to FP16 on
    that path would flush small probabilities and give -inf log-probabilities."""
    name = next(n for n in FP16 if MAN.entry(n)["task"] == "voice")
    m = onnx.shape_inference.infer_shapes(onnx.load(str(MAN.model_path(name))))
    types = {v.name: v.type.tensor_type.elem_type for v in list(m.graph.value_info) + list(m.graph.output)}
    for n in m.graph.node:
        if n.op_type in ("Softmax", "Clip", "Log", "Div"):
            assert all(types.get(o) == onnx.TensorProto.FLOAT for o in n.output), n.name
    import onnxruntime as ort
    s = ort.InferenceSession(str(MAN.model_path(name)), providers=["CPUExecutionProvider"])
    x = np.full((2, 200, 64), -100.0, np.float32)  # digital silence: some classes get tiny probabilities
    out = s.run(None, {"logmel": x})[0]
    assert np.isfinite(out).all() and out.min() >= np.log(1e-6) - 1e-3


@pytest.mark.parametrize("name", FP16)
def test_fp16_file_close_to_source_on_cpu(name):
    """onnxruntime CPU (FP16 weights, FP32 compute) vs the source on the same inputs: same argmax nearly
    everywhere (the real FP16 numbers are in the manifest; see export/fp16_export.py)."""
    import onnxruntime as ort
    from emoedge.compile import sample_feeds
    e = MAN.entry(name)
    a = ort.InferenceSession(str(MAN.model_path(e["fp16"]["source"])), providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(str(MAN.model_path(name)), providers=["CPUExecutionProvider"])
    feeds = sample_feeds(a, 16, np.random.default_rng(0))
    ya, yb = a.run(None, feeds)[0], b.run(None, feeds)[0]
    assert ya.shape == yb.shape and yb.dtype == np.float32
    assert np.mean(ya.argmax(1) == yb.argmax(1)) >= 0.9
    assert np.max(np.abs(ya - yb)) < 0.1


def test_fold_constant_dequantize_reproduces_the_int8_text_graph():
    sys.path.insert(0, str(REPO / "export"))
    import onnxruntime as ort
    import text_onnx
    fx = _export_module()
    rng = np.random.default_rng(1)
    W = rng.standard_normal((4096, 5)).astype(np.float32)
    idf = (1 + rng.random(4096) * 5).astype(np.float32)
    q = text_onnx.build(W, np.zeros(5, np.float32), idf, (1.0, 0.5, 0.5), precision="int8")
    f = fx.fold_constant_dequantize(q)
    assert not any(n.op_type == "DequantizeLinear" for n in f.graph.node)
    n = 300
    feeds = {"indices": rng.integers(0, 4096, n).astype(np.int64), "tf": (1 + rng.random(n)).astype(np.float32),
             "segment": np.sort(rng.integers(0, 6, n)).astype(np.int64), "n_texts": np.array([2], np.int64)}
    ya = ort.InferenceSession(q.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    yb = ort.InferenceSession(f.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    np.testing.assert_allclose(ya, yb, rtol=0, atol=1e-5)


def test_fp16_runner_rounds_between_ops_and_accumulates_in_fp32():
    """The accuracy evaluator: FP16 tensors between ops, FP32 accumulation inside a MatMul."""
    from onnx import TensorProto, helper, numpy_helper
    fx = _export_module()
    w = numpy_helper.from_array(np.ones((4097, 1), np.float16), "w")
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [1, 4097])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [1, 1])], [w])
    r = fx.Fp16Runner(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))
    y = r.run(None, {"x": np.ones((1, 4097), np.float16)})[0]
    assert y.dtype == np.float16 and float(y[0, 0]) == 4096.0  # 4097 accumulated exactly, rounded to FP16 once


def test_engine_refuses_fp16_on_cpu_and_names_the_fix():
    from emoedge import Engine
    from emoedge.errors import InvalidInputError
    with pytest.raises(InvalidInputError, match=r"precision='fp16'.*GPUs.*On CPU use precision=None"):
        Engine(precision="fp16")


def test_engine_cuda_fp16_selects_the_fp16_variants(monkeypatch):
    """Engine(backend='cuda', precision='fp16') loads the FP16 files of every family that has one, without a
    variant warning. The CUDA provider is faked here by CPU sessions (make_session replaced); the real GPU
    run is benchmarks/gpu_check.py."""
    import warnings

    import onnxruntime as ort

    import emoedge.session as S
    import emoedge.text  # noqa: F401  (imports make_session by name)
    from emoedge import Engine
    orig, loaded = S.make_session, []

    def fake(path, opts=None, provider_options=None):
        loaded.append((pathlib.Path(path).name, opts.backend))
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for mod in [m for n, m in list(sys.modules.items()) if n.startswith("emoedge") and getattr(m, "make_session", None) is orig]:
        monkeypatch.setattr(mod, "make_session", fake)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no "no 'fp16' variant" fallback for these families
        eng = Engine(backend="cuda", precision="fp16", face=True, voice=True, text=True)
    info = eng.info()
    assert info["face_model"] == "face-expr-fp16" and info["voice_model"] == "voice-ser-fp16"
    text_fam = MAN.entry(MAN.data["defaults"]["text"])["family"]
    assert MAN.entry(info["text_model"])["family"] == text_fam and MAN.entry(info["text_model"])["precision"] == "fp16"
    files = {f for f, _ in loaded}
    assert {"face-expr-fp16.onnx", "voice-ser-fp16.onnx"} <= files and {b for _, b in loaded} == {"cuda"}
    assert not info["notes"]
