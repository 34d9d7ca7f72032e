"""Where the export scripts find ../shared (the read-only data); EMOEDGE_SHARED overrides."""
from __future__ import annotations

import os
import pathlib

REPO = pathlib.Path(__file__).resolve().parents[1]


def shared_dir() -> pathlib.Path:
    """../shared next to the checkout (or next to its worktree folder)."""
    if os.environ.get("EMOEDGE_SHARED"):
        return pathlib.Path(os.environ["EMOEDGE_SHARED"])
    for p in (REPO.parent / "shared", REPO.parent.parent / "shared"):
        if p.is_dir():
            return p
    return REPO.parent / "shared"
