"""Evaluation commands (`emoedge eval MODALITY`); one module per modality exposing
``add_arguments(parser)`` and ``main(args) -> int``. Errors raise emoedge's error types (the CLI prints
one line and exits 1)."""
from __future__ import annotations

import pathlib
import zipfile


def data_file(path, what: str, fix: str) -> pathlib.Path:
    """``path`` as a Path after checking it is a non-empty regular file; InvalidInputError naming it otherwise."""
    from ..errors import InvalidInputError
    p = pathlib.Path(path)
    if not p.exists():
        raise InvalidInputError(f"{what} {p} not found; {fix}")
    if not p.is_file():
        raise InvalidInputError(f"{what} {p} is not a regular file; {fix}")
    if p.stat().st_size == 0:
        raise InvalidInputError(f"{what} {p} is empty; {fix}")
    return p


def load_npz(path, what: str, fix: str):
    """``np.load`` of an .npz data file with errors that say what is wrong with the file (not numpy's
    allow_pickle message for a file that is not an npz at all)."""
    import numpy as np
    from ..errors import InvalidInputError
    p = data_file(path, what, fix)
    if not zipfile.is_zipfile(p):
        raise InvalidInputError(f"{what} {p} is not an .npz archive (an .npz is a zip of .npy arrays; this file is "
                                f"something else); {fix}")
    try:
        return np.load(p, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - any reader failure is the file's fault: one clear message
        raise InvalidInputError(f"{what} {p} could not be read as an .npz archive ({type(e).__name__}: {e}); "
                                f"{fix}") from None


def read_lines(path, what: str, fix: str) -> list:
    """The lines of a UTF-8 data file; a binary or non-UTF-8 file raises InvalidInputError naming it."""
    from ..errors import InvalidInputError
    p = data_file(path, what, fix)
    try:
        return p.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise InvalidInputError(f"{what} {p} is not UTF-8 text (byte {e.start}: {e.reason}); {fix}") from None
