"""The Triton backend against a REAL Triton server on 127.0.0.1: nvidia-pytriton's bundled tritonserver
(Python backend) serving the exported models under their exported names and IO, each bound to an
onnxruntime session of the same graph (emoedge.triton.testing). The server runs under the interpreter from
$EMOEDGE_PYTRITON_PYTHON (Debian's python3 venv in .ci/run); without one the server tests skip, saying why.

Also, without any server: a down server raises BackendUnavailableError quickly (never a hang) and a missing
tritonclient names the extra to install."""
import socket
import sys
import time

import numpy as np
import pytest

pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] is not installed (pip install 'emoedge[triton]')")

from emoedge.errors import BackendUnavailableError, InvalidInputError
from emoedge.manifest import load_manifest
from emoedge.session import SessionOptions, make_session
from emoedge.triton.client import TritonOptions, close_connections, connection

#: what the default engine needs (manifest defaults), served by the module's server
SERVED = sorted(set(load_manifest().data["defaults"].values()))


def _dead_url():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()   # nothing listens there now
    return f"127.0.0.1:{port}"


# ----------------------------------------------------------------------------- no server needed

def test_server_down_raises_fast_and_names_the_url():
    url = _dead_url()
    path = load_manifest().model_path("face-expr-int8")
    t0 = time.monotonic()
    with pytest.raises(BackendUnavailableError, match=url.replace(".", r"\.")) as ei:
        connection(TritonOptions(url=url, connect_timeout_s=3.0)).session(path)
    assert time.monotonic() - t0 < 3.5
    assert "emoedge export triton" in str(ei.value)


def test_missing_tritonclient_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "tritonclient.grpc", None)
    from emoedge.triton.client import TritonConnection
    with pytest.raises(BackendUnavailableError, match=r"emoedge\[triton\]"):
        TritonConnection(TritonOptions(url="127.0.0.1:1"))


def test_options_validation():
    for bad in (dict(url=""), dict(url="grpc://h:8001"), dict(timeout_s=0), dict(connect_timeout_s=float("nan"))):
        with pytest.raises(InvalidInputError):
            TritonOptions(**bad)


# ----------------------------------------------------------------------------- real server

@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from emoedge.triton.export import ExportOptions, export_repository
    from emoedge.triton.testing import (
        LocalTritonServer,
        ServerStartError,
        find_server_python,
    )
    py, why = find_server_python()
    if py is None:
        pytest.skip(why)
    repo = tmp_path_factory.mktemp("triton") / "repo"
    export_repository(repo, ExportOptions(max_batch=8, queue_delay_us=2000))
    srv = LocalTritonServer(repo, SERVED, python=py, startup_timeout_s=180)
    try:
        srv.start()
    except ServerStartError as e:
        if e.stub_failure:   # the interpreter cannot host pytriton's backend stub: environment, not emoedge
            pytest.skip(f"pytriton's backend stub does not run under {py} (use Debian's python3 venv, see "
                        f".ci/run): {e.reason[:300]}")
        raise
    yield srv
    srv.stop()
    close_connections()


def _feeds(name, rng, batch=3):
    if name == "silero-vad":
        return {"input": rng.standard_normal((1, 576)).astype(np.float32), "state": rng.standard_normal((2, 1, 128)).astype(np.float32),
                "sr": np.array(16000, np.int64)}
    if name.startswith("text"):
        return {"indices": np.array([3, 17, 40000, 5], np.int64), "tf": np.array([1, .5, .25, 2], np.float32),
                "segment": np.array([0, 1, 2, 2], np.int64), "n_texts": np.array([1], np.int64)}
    sess = make_session(load_manifest().model_path(name), SessionOptions())
    return {i.name: rng.standard_normal([d if isinstance(d, int) else batch for d in i.shape]).astype(np.float32)
            for i in sess.get_inputs()}


@pytest.mark.parametrize("name", SERVED)
def test_session_parity_with_onnxruntime(server, name):
    man = load_manifest()
    rng = np.random.default_rng(7)
    feeds = _feeds(name, rng)
    local = make_session(man.model_path(name), SessionOptions())
    remote = connection(TritonOptions(url=server.url)).session(man.model_path(name))
    assert [i.name for i in remote.get_inputs()] == [i.name for i in local.get_inputs()]
    assert [o.name for o in remote.get_outputs()] == [o.name for o in local.get_outputs()]
    a, b = remote.run(None, feeds), local.run(None, feeds)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.shape == y.shape and x.dtype == y.dtype
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-5)
    outs = [o.name for o in local.get_outputs()][::-1]     # named outputs come back in the asked order
    for x, y in zip(remote.run(outs, feeds), local.run(outs, feeds)):
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-5)


def test_large_batch_split_at_max_batch_size(server):
    man = load_manifest()
    x = np.random.default_rng(1).standard_normal((19, 1, 48, 48)).astype(np.float32)
    conn = connection(TritonOptions(url=server.url))
    before = conn.statistics(["face-expr-int8"]).get("face-expr-int8", {}).get("inference_count", 0)
    got = conn.session(man.model_path("face-expr-int8")).run(None, {"input": x})[0]
    want = make_session(man.model_path("face-expr-int8"), SessionOptions()).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    assert conn.statistics(["face-expr-int8"])["face-expr-int8"]["inference_count"] - before == 19
    empty = conn.session(man.model_path("face-expr-int8")).run(None, {"input": x[:0]})[0]
    assert empty.shape == (0, 7)


def test_wrong_dtype_and_missing_input(server):
    s = connection(TritonOptions(url=server.url)).session(load_manifest().model_path("face-expr-int8"))
    with pytest.raises(InvalidInputError, match="float32"):
        s.run(None, {"input": np.zeros((1, 1, 48, 48), np.float64)})
    with pytest.raises(InvalidInputError, match="missing"):
        s.run(None, {})


def test_missing_models_named_together(server):
    man = load_manifest()
    conn = connection(TritonOptions(url=server.url))
    with pytest.raises(BackendUnavailableError) as ei, conn.collect_problems():
        conn.session(man.model_path("face-expr-fp32"))
        conn.session(man.model_path("voice-ser-fp32"))
        conn.session(man.model_path("face-expr-int8"))   # served: no problem
    msg = str(ei.value)
    assert "face-expr-fp32" in msg and "voice-ser-fp32" in msg and "face-expr-int8:" not in msg
    assert "emoedge export triton" in msg


def test_deadline_exceeded_is_backend_unavailable(server):
    s = connection(TritonOptions(url=server.url, timeout_s=1e-5)).session(load_manifest().model_path("voice-ser-int8"))
    x = np.zeros((8, 200, 64), np.float32)
    with pytest.raises(BackendUnavailableError, match="deadline|reachable"):
        s.run(None, {"logmel": x})


# ----------------------------------------------------------------------------- the engine on the server

def _drive(engine, frames, pcm, sr, lines):
    """One stream: frames at 15 fps interleaved with 100 ms audio chunks, then the text lines; event dicts."""
    s = engine.stream(stream_id="x")
    out, n, ai = [], sr // 10, 0
    for i, f in enumerate(frames):
        t = i / 15.0
        while ai * n < pcm.size and (ai + 1) * n / sr <= t:
            out += s.push_audio(pcm[ai * n:(ai + 1) * n], sr, ai * n / sr)
            ai += 1
        out += s.push_frame(f, t)
    while ai * n < pcm.size:
        out += s.push_audio(pcm[ai * n:(ai + 1) * n], sr, ai * n / sr)
        ai += 1
    out += s.flush()
    for k, line in enumerate(lines):
        out += s.push_text(line, 100.0 + k)
    s.close()
    return [e.to_dict() for e in out]


def _assert_same_events(a, b, tol=1e-5):
    assert len(a) == len(b) and a
    for x, y in zip(a, b):
        assert (x["t"], x["trigger"], x["label"]) == (y["t"], y["trigger"], y["label"])
        assert x["probs"].keys() == y["probs"].keys()
        assert max(abs(x["probs"][k] - y["probs"][k]) for k in x["probs"]) <= tol
        assert set(x["evidence"]) == set(y["evidence"])
        for m in x["evidence"]:
            assert x["evidence"][m]["label"] == y["evidence"][m]["label"]
            px, py = x["evidence"][m]["probs"], y["evidence"][m]["probs"]
            assert max(abs(px[k] - py[k]) for k in px) <= tol
        assert len(x["faces"]) == len(y["faces"])
        for fx, fy in zip(x["faces"], y["faces"]):
            assert fx["label"] == fy["label"] and fx["track_id"] == fy["track_id"]
            assert max(abs(u - v) for u, v in zip(fx["box"], fy["box"])) <= 1e-3
            assert max(abs(fx["probs"][k] - fy["probs"][k]) for k in fx["probs"]) <= tol


def test_engine_stream_matches_local_backend(server):
    """Same events (labels, probabilities within 1e-5, faces, tracks) from Engine(backend='triton') as from
    the in-process engine, over faces, speech (VAD + voice on the server) and text; and the faces of one
    frame travel in one request (server statistics: one execution per frame, batch = faces in it)."""
    from emoedge.bench.e2e import sample_audio, sample_frames, tiled
    from emoedge.engine import Engine
    frames = sample_frames(16)
    frames = [tiled(f, 2) if i % 2 else f for i, f in enumerate(frames)]   # 1 and 2 faces per frame
    pcm, sr = sample_audio()
    pcm = pcm[: 4 * sr]
    lines = ["I am really happy to see you today!", "this is awful, I hate it", "..."]
    local = Engine()
    remote = Engine(backend="triton", triton_url=server.url)
    assert remote.info()["backend"] == "triton" and remote.info()["triton_url"] == server.url
    conn = connection(TritonOptions(url=server.url))
    before = conn.statistics(["face-expr-int8"])["face-expr-int8"]
    got = _drive(remote, frames, pcm, sr, lines)
    after = conn.statistics(["face-expr-int8"])["face-expr-int8"]
    want = _drive(local, frames, pcm, sr, lines)
    _assert_same_events(got, want)
    triggers = {e["trigger"] for e in got}
    assert triggers == {"frame", "audio", "text"}, triggers
    n_faces = sum(len(e["faces"]) for e in got if e["trigger"] == "frame")
    frames_with_faces = sum(1 for e in got if e["trigger"] == "frame" and e["faces"])
    assert n_faces > frames_with_faces          # some frames had several faces
    assert after["inference_count"] - before["inference_count"] == n_faces
    assert after["execution_count"] - before["execution_count"] == frames_with_faces


@pytest.mark.filterwarnings("ignore:text. model family:RuntimeWarning")
def test_engine_names_every_missing_model(server):
    from emoedge.engine import Engine
    with pytest.raises(BackendUnavailableError) as ei:
        Engine(backend="triton", triton_url=server.url, precision="fp32")
    msg = str(ei.value)
    assert "face-expr-fp32" in msg and "voice-ser-fp32" in msg and "emoedge export triton" in msg


def test_engine_local_tasks_option(server):
    """VAD and detector in-process, expression and voice on the server: same events as all-local."""
    from emoedge.bench.e2e import sample_audio, sample_frames
    from emoedge.engine import Engine
    from emoedge.options import RuntimeOptions
    rt = RuntimeOptions(backend="triton", triton_url=server.url, triton_local_tasks=("vad", "face_detector"))
    eng = Engine(runtime=rt, text=False)
    assert type(eng.voice.vad_session).__name__ == "InferenceSession"
    assert type(eng.face.detector.session).__name__ == "InferenceSession"
    assert type(eng.voice.session).__name__ == type(eng.face.session).__name__ == "TritonSession"
    pcm, sr = sample_audio()
    frames = sample_frames(4)
    _assert_same_events(_drive(eng, frames, pcm[: 2 * sr], sr, []), _drive(Engine(text=False), frames, pcm[: 2 * sr], sr, []))
    with pytest.raises(InvalidInputError, match="local_tasks"):
        RuntimeOptions(backend="triton", triton_local_tasks=("vda",))
    with pytest.raises(InvalidInputError, match="backend='triton'"):
        RuntimeOptions(backend="cpu", triton_local_tasks=("vad",))


def test_cli_run_backend_triton(server, tmp_path):
    import json

    from emoedge.cli import main
    from emoedge.cli.demo import sample_paths
    video, _ = sample_paths()
    out = tmp_path / "ev.jsonl"
    assert main(["run", str(video), "--backend", "triton", "--triton-url", server.url, "--duration", "1.5",
                 "--jsonl", str(out), "--quiet"]) == 0
    evs = [json.loads(line) for line in out.read_text().splitlines()]
    assert evs and any(e["faces"] for e in evs)
    assert main(["run", str(video), "--triton-url", server.url]) == 1   # needs --backend triton
    assert main(["run", str(video), "--backend", "triton", "--triton-url", server.url, "--triton-local", "vad,face_detector",
                 "--duration", "0.5", "--quiet"]) == 0


def test_served_graph_with_another_sha256_is_refused(server, monkeypatch):
    """A config naming another graph sha256 (an older export) is refused by name; the pytriton server has no
    such parameter, so it is injected into the config the client reads."""
    from emoedge.triton.client import TritonConnection
    conn = TritonConnection(TritonOptions(url=server.url))
    real = conn.client.get_model_config

    def stale(name, **kw):
        cfg = real(name, **kw)
        cfg["config"].setdefault("parameters", {})["emoedge_sha256"] = {"string_value": "0" * 64}
        return cfg
    monkeypatch.setattr(conn.client, "get_model_config", stale)
    with pytest.raises(BackendUnavailableError, match="sha256 000000000000"):
        conn.session(load_manifest().model_path("face-expr-int8"))
    conn.close()


def test_zz_server_gone_mid_stream_raises_not_hangs(server):
    """Last in this file (it stops the module's server): a push after the server died raises
    BackendUnavailableError within the deadline instead of hanging."""
    from emoedge.bench.e2e import sample_frames
    from emoedge.engine import Engine
    from emoedge.faces import FaceAnalyzerOptions
    eng = Engine(backend="triton", triton_url=server.url, triton_timeout_s=2.0, voice=False, text=False)
    s = eng.stream()
    f = sample_frames(1)[0]
    assert s.push_frame(f, 0.0)[0].faces
    server.stop()
    t0 = time.monotonic()
    with pytest.raises(BackendUnavailableError, match=server.url.replace(".", r"\.")):
        # between classifications (classify_every) a tracked face makes no server call; the first push that
        # does call it must raise
        for i in range(1, 2 * FaceAnalyzerOptions().classify_every + 2):
            s.push_frame(f, 0.1 * i)
    assert time.monotonic() - t0 < 5.0

