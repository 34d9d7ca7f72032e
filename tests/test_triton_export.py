"""`emoedge export triton`: every generated config.pbtxt parses into Triton's ModelConfig message and
matches its ONNX graph (read here with onnx directly); batching only where the graph has a shared symbolic
batch dimension; atomic writing; --force rules; the CLI."""
import hashlib
import json
import os

import pytest

pytest.importorskip("tritonclient.grpc.model_config_pb2",
                    reason="tritonclient[grpc] is not installed (pip install 'emoedge[triton]' or '.[test]')")
import onnx
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from emoedge.errors import InvalidInputError
from emoedge.manifest import load_manifest
from emoedge.triton.export import ExportOptions, export_repository

ONNX_TYPE = {onnx.TensorProto.FLOAT: mc.TYPE_FP32, onnx.TensorProto.INT64: mc.TYPE_INT64,
             onnx.TensorProto.FLOAT16: mc.TYPE_FP16, onnx.TensorProto.INT32: mc.TYPE_INT32}


def _parse(path):
    return text_format.Parse(path.read_text(), mc.ModelConfig())


def _graph(path):
    m = onnx.load(str(path))
    inits = {i.name for i in m.graph.initializer}

    def shape(v):
        return [d.dim_param if d.dim_param else (d.dim_value if d.dim_value > 0 else None)
                for d in v.type.tensor_type.shape.dim]
    return ([(v.name, v.type.tensor_type.elem_type, shape(v)) for v in m.graph.input if v.name not in inits],
            [(v.name, v.type.tensor_type.elem_type, shape(v)) for v in m.graph.output])


def _check_against_graph(cfg, graph_path):
    gin, gout = _graph(graph_path)
    firsts = {s[0] if s else None for _, _, s in gin + gout}
    batched = len(firsts) == 1 and isinstance(next(iter(firsts)), str)
    assert (cfg.max_batch_size > 0) == batched, (cfg.name, cfg.max_batch_size, firsts)
    for tensors, graph in ((cfg.input, gin), (cfg.output, gout)):
        assert [t.name for t in tensors] == [n for n, _, _ in graph]
        for t, (n, et, shp) in zip(tensors, graph):
            assert t.data_type == ONNX_TYPE[et], (cfg.name, n)
            want = [d if isinstance(d, int) else -1 for d in (shp[1:] if batched else shp)]
            if not want:   # scalar: [1] on the wire, reshaped to [] for the model
                assert list(t.dims) == [1] and t.HasField("reshape") and list(t.reshape.shape) == []
            else:
                assert list(t.dims) == want, (cfg.name, n, list(t.dims), shp)
    if batched:
        db = cfg.dynamic_batching
        assert cfg.HasField("dynamic_batching") and db.max_queue_delay_microseconds >= 0
        assert list(db.preferred_batch_size) and max(db.preferred_batch_size) <= cfg.max_batch_size
    else:
        assert not cfg.HasField("dynamic_batching")


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    out = tmp_path_factory.mktemp("triton") / "repo"
    res = export_repository(out, ExportOptions(max_batch=16, instances=2))
    return out, res


def test_every_bundled_graph_exported_and_configs_match_graphs(repo):
    out, res = repo
    man = load_manifest()
    graphs = sorted(n for n in man.names() if "file" in man.entry(n))
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == graphs == sorted(m.name for m in res.models)
    for name in graphs:
        d = out / name
        cfg = _parse(d / "config.pbtxt")
        assert cfg.name == name and cfg.platform == "onnxruntime_onnx"
        onnx_file = d / "1" / "model.onnx"
        assert hashlib.sha256(onnx_file.read_bytes()).hexdigest() == man.entry(name)["sha256"]
        assert cfg.parameters["emoedge_sha256"].string_value == man.entry(name)["sha256"]
        _check_against_graph(cfg, onnx_file)
        assert [(g.count, g.kind) for g in cfg.instance_group] == [(2, mc.ModelInstanceGroup.KIND_CPU)]
        assert not cfg.optimization.execution_accelerators.gpu_execution_accelerator
        labels = man.entry(name).get("labels")
        if labels:
            lab = [o for o in cfg.output if o.label_filename]
            assert len(lab) == 1 and lab[0].dims[-1] == len(labels)
            assert (d / lab[0].label_filename).read_text().split("\n")[:-1] == labels


def test_batching_decisions(repo):
    out, _ = repo
    mbs = {p.name: _parse(p / "config.pbtxt").max_batch_size for p in out.iterdir() if p.is_dir()}
    assert mbs["face-expr-int8"] == mbs["voice-ser-int8"] == 16
    assert mbs["blazeface-short"] == 0      # fixed batch of 1 in the graph
    assert mbs["text-carer"] == 0           # ragged concatenated features
    assert mbs["silero-vad"] == 0           # recurrent state as explicit IO
    vad = _parse(out / "silero-vad" / "config.pbtxt")
    assert [t.name for t in vad.input] == ["input", "state", "sr"] and [t.name for t in vad.output] == ["output", "stateN"]


def test_repository_readme_and_summary(repo):
    out, res = repo
    readme = (out / "README.md").read_text()
    assert "tritonserver --model-repository=/models" in readme and "nvcr.io/nvidia/tritonserver:" in readme
    assert "-igpu" in readme and "--backend triton --triton-url" in readme
    summary = json.loads((out / "emoedge-repository.json").read_text())
    assert set(summary["models"]) == {m.name for m in res.models}
    # readable by a server that mounts the folder as another user
    assert oct(os.stat(out).st_mode & 0o777) == "0o755"
    assert oct(os.stat(out / "face-expr-int8" / "config.pbtxt").st_mode & 0o777) == "0o644"


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_gpu_tensorrt_configs(tmp_path, precision):
    out = tmp_path / "gpu"
    res = export_repository(out, ExportOptions(precision=precision, gpu=True, max_batch=8, instances=1))
    man = load_manifest()
    names = {m.name for m in res.models}
    if precision == "int8":
        assert {"face-expr-int8", "voice-ser-int8", "blazeface-short"} <= names and "face-expr-fp32" not in names
        assert any("blazeface-short" in n for n in res.notes)   # no int8 detector: its default, noted
    else:
        assert {"face-expr-fp32", "voice-ser-fp32"} <= names and "face-expr-int8" not in names
    for m in res.models:
        cfg = _parse(out / m.name / "config.pbtxt")
        _check_against_graph(cfg, out / m.name / "1" / "model.onnx")
        kind = cfg.instance_group[0].kind
        acc = cfg.optimization.execution_accelerators.gpu_execution_accelerator
        if man.entry(m.name)["task"] in ("vad", "text"):
            assert kind == mc.ModelInstanceGroup.KIND_CPU and not acc
            continue
        assert kind == mc.ModelInstanceGroup.KIND_GPU and len(acc) == 1 and acc[0].name == "tensorrt"
        mode = acc[0].parameters["precision_mode"]
        assert mode == ("INT8" if man.entry(m.name)["precision"] == "int8" else
                        "FP16" if precision == "fp16" else "FP32")
        if cfg.max_batch_size:
            assert acc[0].parameters["trt_profile_max_shapes"].startswith(f"{cfg.input[0].name}:{cfg.max_batch_size}x")


def test_no_gpu_no_tensorrt(tmp_path):
    res = export_repository(tmp_path / "r", ExportOptions(gpu=True, tensorrt=False, models=["face-expr-int8"]))
    cfg = _parse(tmp_path / "r" / "face-expr-int8" / "config.pbtxt")
    assert cfg.instance_group[0].kind == mc.ModelInstanceGroup.KIND_GPU
    assert not cfg.optimization.execution_accelerators.gpu_execution_accelerator
    assert [m.name for m in res.models] == ["face-expr-int8"]


def test_refuses_to_overwrite_and_force_rules(tmp_path):
    keep = tmp_path / "notes"
    keep.mkdir()
    (keep / "mine.txt").write_text("precious")
    with pytest.raises(InvalidInputError, match="not empty"):
        export_repository(keep, ExportOptions(models=["face-expr-int8"]))
    with pytest.raises(InvalidInputError, match="not an emoedge Triton repository"):
        export_repository(keep, ExportOptions(models=["face-expr-int8"], force=True))
    assert (keep / "mine.txt").read_text() == "precious" and sorted(os.listdir(keep)) == ["mine.txt"]
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(InvalidInputError, match="not a folder"):
        export_repository(f, ExportOptions())
    empty = tmp_path / "empty"
    empty.mkdir()
    export_repository(empty, ExportOptions(models=["face-expr-int8"]))
    with pytest.raises(InvalidInputError, match="--force"):
        export_repository(empty, ExportOptions(models=["voice-ser-int8"]))
    export_repository(empty, ExportOptions(models=["voice-ser-int8"], force=True))
    assert sorted(p.name for p in empty.iterdir() if p.is_dir()) == ["voice-ser-int8"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]   # no temp folders left


def test_failure_leaves_nothing(tmp_path, monkeypatch):
    from emoedge.triton import export as ex
    calls = {"n": 0}
    real = ex.config_text

    def boom(m, o):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk full")
        return real(m, o)
    monkeypatch.setattr(ex, "config_text", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        export_repository(tmp_path / "r", ExportOptions())
    assert list(tmp_path.iterdir()) == []


def test_invalid_options():
    for bad in (dict(max_batch=0), dict(instances=0), dict(precision="fp8"), dict(queue_delay_us=-1),
                dict(precision="fp16")):
        with pytest.raises(InvalidInputError):
            ExportOptions(**bad).validate()


def test_cli(tmp_path, capsys):
    from emoedge.cli import main
    out = tmp_path / "cli-repo"
    assert main(["export", "triton", "--out", str(out), "--max-batch", "4", "--instances", "3", "--precision", "int8",
                 "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["models"]["face-expr-int8"]["max_batch_size"] == 4
    cfg = _parse(out / "face-expr-int8" / "config.pbtxt")
    assert cfg.instance_group[0].count == 3 and list(cfg.dynamic_batching.preferred_batch_size) == [4]
    assert main(["export", "triton", "--out", str(tmp_path / "x"), "--precision", "fp16"]) == 1
    assert "--gpu" in capsys.readouterr().err
    assert main(["export", "triton", "--out", str(out)]) == 1
    assert "not empty" in capsys.readouterr().err
