import importlib
import os
import pathlib
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


def _find_shared() -> pathlib.Path:
    if os.environ.get("EMOEDGE_SHARED"):
        return pathlib.Path(os.environ["EMOEDGE_SHARED"])
    for up in REPO.parents:  # ../shared beside the clone (CI), or further up (git worktrees)
        if (up / "shared" / "data").is_dir():
            return up / "shared"
    return REPO.parent / "shared"


SHARED = _find_shared()
DATA = SHARED / "data"


def pytest_report_header(config):
    import emoedge
    from emoedge._native_loader import backend_name
    return f"emoedge {emoedge.__version__} from {pathlib.Path(emoedge.__file__).parent}; kernels: {backend_name()}"


@pytest.fixture(scope="session")
def shared_data():
    """Path to ../shared/data; tests that need it skip with a reason when it is absent."""
    if not DATA.is_dir():
        pytest.skip(f"shared data not found at {DATA} (set EMOEDGE_SHARED)")
    return DATA


@pytest.fixture(scope="session")
def export_module():
    """``export_module("face_train")`` imports a script of export/ by module name; export/ is on sys.path
    only while it imports (the scripts import their siblings by plain name)."""
    def load(name: str):
        path = str(REPO / "export")
        sys.path.insert(0, path)
        try:
            return importlib.import_module(name)
        finally:
            sys.path.remove(path)
    return load
