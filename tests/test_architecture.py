"""The package's structure (issue #12): written component interfaces that the bundled components and the
test fakes implement, one runtime vocabulary, no import circles, a stream that touches no private
member of another object."""
import ast
import pathlib
import sys

import numpy as np
import pytest

from emoedge import components as C
from emoedge.engine import Engine
from emoedge.errors import InvalidInputError, VariantNotFoundError
from emoedge.manifest import MANIFEST_PATH, load_manifest
from emoedge.options import RunningMode, RuntimeOptions
from test_engine import FakeFace, FakeText, FakeVoice, fake_engine

PKG = pathlib.Path(__file__).resolve().parents[1] / "emoedge"


def test_fakes_implement_the_protocols():
    face, voice, text = FakeFace(), FakeVoice(), FakeText()
    assert isinstance(face, C.FaceComponent) and isinstance(face.new_tracker(), C.Tracker)
    assert isinstance(voice, C.VoiceComponent) and isinstance(voice.stream(), C.VoiceStreamLike)
    assert isinstance(text, C.TextComponent) and isinstance(text.predict("so happy"), C.TextObservation)
    obs = face.analyze(np.full((120, 160, 3), 90, np.uint8), 0.0, face.new_tracker())
    assert obs and all(isinstance(o, C.FaceObservation) for o in obs)


def test_an_object_without_the_interface_is_refused_by_name():
    class NoTracker:
        name = "x"

        def analyze(self, frame, t=None, tracker=None):
            return []
    with pytest.raises(InvalidInputError, match="FaceComponent.*new_tracker"):
        Engine(face=NoTracker(), voice=False, text=False)


def test_running_mode_enum_and_strings():
    eng = fake_engine()
    assert eng.stream("live").mode is RunningMode.LIVE
    assert eng.stream(RunningMode.FILE).mode == "file"
    with pytest.raises(InvalidInputError, match="mode must be one of"):
        eng.stream("batch")


def test_runtime_options_validated_and_shared():
    with pytest.raises(InvalidInputError, match="threads"):
        RuntimeOptions(threads=0)
    with pytest.raises(InvalidInputError, match="gpu_precision"):
        RuntimeOptions(gpu_precision="int4")
    rt = RuntimeOptions(backend="cpu", threads=2)
    assert RuntimeOptions.from_dict(rt.to_dict()) == rt
    so = rt.session_options()
    assert (so.backend, so.intra_threads, so.precision) == ("cpu", 2, "fp32")
    eng = fake_engine(runtime=rt)
    assert eng.runtime is rt and eng.threads == 2 and eng.backend == "cpu"
    with pytest.raises(InvalidInputError, match="disagree"):
        fake_engine(runtime=rt, threads=1)


def test_factory_passes_one_runtime_and_manifest_to_every_component(monkeypatch):
    import emoedge.faces
    import emoedge.text
    import emoedge.voice
    seen = []

    def spy(what):
        def make(*a, **kw):
            seen.append((what, kw["runtime"], kw["manifest"]))
            return {"face": FakeFace, "voice": FakeVoice, "text": FakeText}[what]()
        return make
    monkeypatch.setattr(emoedge.faces, "FaceAnalyzer", spy("face"))
    monkeypatch.setattr(emoedge.voice, "VoiceModel", spy("voice"))
    monkeypatch.setattr(emoedge.text.TextModel, "load", staticmethod(spy("text")))
    rt = RuntimeOptions(threads=3)
    eng = Engine(runtime=rt, manifest=str(MANIFEST_PATH))
    assert [w for w, _, _ in seen] == ["face", "voice", "text"]
    assert all(r is rt for _, r, _ in seen)
    assert all(m is eng.manifest for _, _, m in seen)          # loaded once, shared


def test_engine_takes_a_manifest_path_or_object():
    m = load_manifest()
    for man in (str(MANIFEST_PATH), m):
        eng = Engine(face=False, voice=False, manifest=man)
        assert eng.has_text and eng.manifest.path == MANIFEST_PATH
    assert Engine(face=False, voice=False, manifest=m).manifest is m


def test_variant_not_found_is_its_own_error():
    m = load_manifest()
    fam = m.find("face_detector")
    have = m.entry(fam).get("precision")
    with pytest.raises(VariantNotFoundError, match="no 'fp16' variant"):
        m.find("face_detector", precision="fp16")
    assert have != "fp16"


# ----------------------------------------------------------------------------- static structure

def _module_graph(root: pathlib.Path):
    mods = {}
    for f in root.rglob("*.py"):
        parts = list(f.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = f
    graph = {}
    for m, f in mods.items():
        tree = ast.parse(f.read_text())
        typing_only = {id(c) for n in ast.walk(tree) if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test)
                       for c in ast.walk(n)}
        pkg = m if f.name == "__init__.py" else m.rsplit(".", 1)[0]
        deps = set()
        for n in ast.walk(tree):
            if id(n) in typing_only or not isinstance(n, (ast.Import, ast.ImportFrom)):
                continue
            if isinstance(n, ast.Import):
                names = [a.name for a in n.names]
            else:
                base = n.module or ""
                if n.level:
                    up = pkg.split(".")[:len(pkg.split(".")) - (n.level - 1)]
                    base = ".".join(up + ([base] if base else []))
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base
                         for a in n.names if not a.name == "_native"]   # the compiled extension
            for d in names:
                while d and d not in mods:
                    d = d.rsplit(".", 1)[0] if "." in d else ""
                if d and d != m:
                    deps.add(d)
        graph[m] = deps
    return graph


def _cycles(graph):
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 5000))
    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_circles_in_the_package():
    # every import counts, also the ones inside functions (a lazy import is still a dependency)
    assert _cycles(_module_graph(PKG)) == []


def test_stream_touches_no_private_member_of_another_object():
    tree = ast.parse((PKG / "stream.py").read_text())
    bad = [f"line {n.lineno}: {ast.unparse(n)}" for n in ast.walk(tree)
           if isinstance(n, ast.Attribute) and n.attr.startswith("_") and not n.attr.startswith("__")
           and not (isinstance(n.value, ast.Name) and n.value.id in ("self", "cls"))]
    assert bad == []


def test_engine_module_stays_small():
    assert len((PKG / "engine.py").read_text().splitlines()) <= 350


# ----------------------------------------------------------------------------- one error model

def test_native_stub_names_exactly_the_extension_members():
    import emoedge._native as nat
    tree = ast.parse((PKG / "_native.pyi").read_text())
    stub = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    stub |= {n.target.id for n in tree.body if isinstance(n, ast.AnnAssign)}
    assert stub == {k for k in dir(nat) if not k.startswith("_")} | {"__version__"}
    assert (PKG / "py.typed").is_file()


@pytest.mark.parametrize("backend", ["native", "numba"])
def test_kernel_wrappers_raise_invalid_input(monkeypatch, backend):
    from emoedge import _native_loader, kernels
    from emoedge.errors import InvalidTypeError
    from emoedge.kernels import logmel as logmel_mod
    if backend == "numba":
        monkeypatch.setitem(_native_loader._state, "mod", None)
        monkeypatch.setattr(logmel_mod, "_cache", {})
    img = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(InvalidTypeError, match="uint8"):          # also a TypeError
        kernels.preprocess(img.astype(np.float32), size=(8, 8))
    with pytest.raises(InvalidInputError, match="boxes"):
        kernels.preprocess(img, size=(8, 8), box=(0, 0, -1, 4))
    with pytest.raises(InvalidInputError, match="1-D mono"):
        kernels.log_mel(np.zeros((4, 4), np.float32))
    with pytest.raises(InvalidTypeError, match="int16 PCM or float32"):
        kernels.log_mel(np.zeros(400, np.int32))


def test_native_invalid_argument_arrives_as_invalid_input():
    nat = pytest.importorskip("emoedge._native")
    # C++ LogMelConfig validation throws std::invalid_argument; the binding's translator maps it
    cfg = nat.LogMelConfig()
    cfg.n_fft = 500
    with pytest.raises(InvalidInputError, match="n_fft"):
        nat.LogMel(cfg)
    with pytest.raises(InvalidInputError):                          # a py::value_error of the binding
        nat.LogMel().compute(np.zeros((2, 2), np.float32))
    from emoedge.errors import InvalidTypeError
    with pytest.raises(InvalidTypeError):                           # a py::type_error of the binding
        nat.LogMel().compute(np.zeros(400, np.int32))


def test_engine_precision_fallback_needs_no_message_matching():
    # a family without the variant keeps its default, warned and noted (VariantNotFoundError drives it)
    # (the text family ships int8 + fp16 files, no fp32; fp16 itself is refused on the CPU backend)
    with pytest.warns(RuntimeWarning, match="no 'fp32' variant"):
        eng = Engine(face=False, voice=False, precision="fp32")
    assert eng.has_text and any("fp32" in n for n in eng.info()["notes"])
