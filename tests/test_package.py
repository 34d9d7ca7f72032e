import json
import tempfile
import subprocess
import sys


def test_runtime_never_imports_torch():
    code = ("import sys, emoedge, emoedge.kernels, emoedge.cli; import emoedge.cli as c; c.build_parser(); "
            "import pkgutil, importlib, emoedge\n"
            "for m in pkgutil.walk_packages(emoedge.__path__, 'emoedge.'):\n"
            "    if not m.name.startswith('emoedge.cli.') and m.name != 'emoedge.__main__': importlib.import_module(m.name)\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tempfile.gettempdir())
    assert out.stdout.strip().splitlines()[-1] == "False", out.stdout + out.stderr


def test_native_extension_loads():
    import emoedge._native as n
    assert isinstance(n.cpu_flags(), str)


def test_info_json():
    out = subprocess.run([sys.executable, "-m", "emoedge", "info", "--json"], capture_output=True, text=True, check=True,
                         cwd=tempfile.gettempdir())
    info = json.loads(out.stdout)
    assert info["kernels"] == "native"
    assert "CPUExecutionProvider" in info["ort_available_providers"]


def test_top_level_exports_are_lazy_and_resolve():
    code = ("import sys, emoedge; heavy = 'emoedge.engine' in sys.modules; "
            "from emoedge import Engine, EmotionEvent; print(heavy, Engine.__module__, EmotionEvent.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tempfile.gettempdir())
    assert out.stdout.split() == ["False", "emoedge.engine", "emoedge.events"]
