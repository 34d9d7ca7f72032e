"""The model manifest (emoedge/models/manifest.json, a *contract*): every bundled model with its
file, sha256, task, precision, labels (in model output order), input spec, preprocessing
parameters, calibration temperature and measured metrics with the split they were measured on.

Layout::

    {"schema": 1,
     "canonical_labels": [...],
     "defaults": {"face_expression": "face-expr-int8", ...},   # task -> entry name
     "models": {"face-expr-int8": {"file": "...onnx", "sha256": "...", "task": "face_expression",
                                   "family": "face-expr", "precision": "int8", "labels": [...], ...}}}
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import pathlib
import tempfile
import threading
from typing import Any, Dict, List, Optional, Union

from .errors import ModelError, ModelNotFoundError, VariantNotFoundError

PathLike = Union[str, "os.PathLike[str]"]

MODELS_DIR = pathlib.Path(__file__).resolve().parent / "models"
MANIFEST_PATH = MODELS_DIR / "manifest.json"

#: Canonical label set used by fusion; each model maps its own labels onto these by name.
CANONICAL_LABELS = ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")

# path (resolved) -> the sha256 its manifest entry expects; make_session checks the bytes it loads against
# it, so a file swapped between the check in model_path and the load is still caught.
_expected: Dict[str, str] = {}
_lock = threading.Lock()


def sha256_file(path: PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Manifest:
    """Read-only view of a manifest file; model paths are resolved next to it."""

    def __init__(self, data: Dict[str, Any], path: PathLike):
        self.data = data
        self.path = pathlib.Path(path)
        self.root = self.path.parent

    @property
    def models(self) -> Dict[str, Dict[str, Any]]:
        models: Dict[str, Dict[str, Any]] = self.data.get("models", {})
        return models

    def names(self) -> List[str]:
        return sorted(self.models)

    def entry(self, name: str) -> Dict[str, Any]:
        """The manifest entry named ``name`` (a deep copy)."""
        try:
            return copy.deepcopy(self.models[name])
        except KeyError:
            raise ModelNotFoundError(f"no model named {name!r} in {self.path}; available: {', '.join(self.names()) or 'none'}") from None

    def find(self, task: str, precision: Optional[str] = None, name: Optional[str] = None) -> str:
        """Entry name for ``task``: the named one, else the task default, switched to ``precision``
        (another entry of the same family) when given."""
        if name is None:
            name = self.data.get("defaults", {}).get(task)
            if name is None:
                cands = sorted(n for n, e in self.models.items() if e.get("task") == task)
                if not cands:
                    raise ModelNotFoundError(f"no model for task {task!r} in {self.path}; "
                                             f"reinstall emoedge or pass a model name (available: {', '.join(self.names()) or 'none'})")
                name = cands[0]
        e = self.entry(name)
        if precision is None or e.get("precision") == precision:
            return name
        fam = e.get("family", name)
        for n, other in sorted(self.models.items()):
            if other.get("family", n) == fam and other.get("precision") == precision:
                return str(n)
        have = sorted({str(o.get("precision")) for n, o in self.models.items() if o.get("family", n) == fam})
        raise VariantNotFoundError(f"model family {fam!r} has no {precision!r} variant; choose one of {have}")

    def resolve_file(self, name: str) -> pathlib.Path:
        """The entry's ``file`` resolved inside the manifest's folder. Absolute paths, ``..`` components and
        links that lead outside the folder are rejected (ModelError): a manifest names bundled files only."""
        e = self.entry(name)
        rel = e.get("file")
        if not isinstance(rel, str) or not rel.strip():
            raise ModelError(f"manifest entry {name!r} in {self.path} has no 'file'")
        pure = pathlib.PurePosixPath(rel.replace("\\", "/"))
        if pure.is_absolute() or pathlib.PureWindowsPath(rel).drive or ".." in pure.parts:
            raise ModelError(f"manifest entry {name!r} in {self.path} names file {rel!r}, which is not a path inside "
                             f"{self.root}: model files must sit in the manifest's folder (no absolute paths, no '..')")
        p = self.root / pure
        root = self.root.resolve()
        try:
            inside = p.resolve().is_relative_to(root)
        except OSError:  # a link loop
            inside = False
        if not inside:
            raise ModelError(f"model file {p} (manifest entry {name!r}) is a link that leads outside {root}; "
                             "model files must sit in the manifest's folder (copy the file there instead)")
        return p

    def model_path(self, name: str, verify: bool = True) -> pathlib.Path:
        """Path to the entry's file (inside the manifest's folder); checks it exists and, with ``verify``, its
        content against the entry's sha256 on every call (hashing these few-MB files costs milliseconds; a
        cache keyed by size and mtime accepted a swapped file of the same size and mtime)."""
        e = self.entry(name)
        p = self.resolve_file(name)
        if not p.is_file():
            raise ModelNotFoundError(f"model file {p} (manifest entry {name!r}) is missing; reinstall emoedge "
                                     "(`pip install --force-reinstall emoedge`) or restore the file")
        if verify:
            want = e.get("sha256")
            if not isinstance(want, str) or len(want) != 64:
                raise ModelError(f"manifest entry {name!r} in {self.path} has no valid sha256 (got {want!r}): every "
                                 "model entry must carry the sha256 of its file; re-run its export step or "
                                 "emoedge.manifest.update_entry to record it")
            got = sha256_file(p)
            if got != want.lower():
                raise ModelError(f"model file {p} does not match its manifest sha256 ({want[:12]}..., file has "
                                 f"{got[:12]}...): the file is corrupt or was replaced; reinstall emoedge or re-run "
                                 f"the export step ({e.get('made_by', 'see export/')})")
            with _lock:
                _expected[str(p.resolve())] = want.lower()
        return p


def expected_sha256(path: "Union[str, os.PathLike[str]]") -> Optional[str]:
    """The sha256 a manifest entry recorded for ``path`` (after :meth:`Manifest.model_path` verified it), else None."""
    with _lock:
        return _expected.get(str(pathlib.Path(path).resolve()))


def load_manifest(path: "Union[str, os.PathLike[str], Manifest, None]" = None) -> Manifest:
    """Load a manifest (default: the bundled one; a folder means its manifest.json; a :class:`Manifest`
    is returned as it is, so callers may pass either). Errors name the file and the fix."""
    if isinstance(path, Manifest):
        return path
    p = pathlib.Path(path) if path is not None else MANIFEST_PATH
    if p.is_dir():
        p = p / "manifest.json"
    if not p.is_file():
        raise ModelNotFoundError(f"model manifest {p} not found; reinstall emoedge or pass the path of a manifest.json")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ModelError(f"model manifest {p} is not valid JSON ({e}); reinstall emoedge") from None
    if not isinstance(data, dict) or not isinstance(data.get("models", {}), dict):
        raise ModelError(f"model manifest {p} has an unexpected layout (need an object with 'models')")
    return Manifest(data, p)


def update_entry(name: str, entry: Dict[str, Any], path: Optional[PathLike] = None,
                 default_for: Optional[str] = None) -> None:
    """Add or replace one entry (used by export/ scripts); computes sha256 of the entry's file.
    Writes atomically with sorted keys so concurrent editors merge cleanly."""
    p = pathlib.Path(path) if path is not None else MANIFEST_PATH
    data = json.loads(p.read_text()) if p.is_file() else {}
    data.setdefault("schema", 1)
    data["canonical_labels"] = list(CANONICAL_LABELS)
    data.setdefault("defaults", {})
    data.setdefault("models", {})
    entry = dict(entry)
    if "file" in entry:
        entry["sha256"] = sha256_file(p.parent / entry["file"])
        entry["bytes"] = (p.parent / entry["file"]).stat().st_size
    data["models"][name] = entry
    if default_for:
        data["defaults"][default_for] = name
    fd, tmp = tempfile.mkstemp(dir=str(p.parent), prefix=".manifest.")
    os.chmod(tmp, 0o644)  # mkstemp makes it 0600; the manifest ships with the package
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, p)
