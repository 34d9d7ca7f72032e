"""Safe outputs: every file emoedge writes goes to a temporary file beside its target and is renamed into
place only when complete, and no output may be one of the run's inputs.

- :func:`check_outputs` refuses an output path that resolves to an input (the same path, a symlink to it
  or a hard link: compared by ``os.path.realpath`` and by ``(st_dev, st_ino)``), two outputs naming one
  file, a folder as an output, and an output whose folder is missing or not writable. Call it before
  anything is opened.
- :class:`AtomicOutput` owns the temporary path of one output: ``commit()`` renames it over the target,
  ``discard()`` deletes it. Readers see the old file or the new one, never a half-written one; a failed
  run leaves the target as it was.
- :func:`atomic_write_bytes` / :func:`atomic_write_text` for whole-file writes.
"""
from __future__ import annotations

import contextlib
import os
import pathlib
import secrets
from typing import Any, Iterable, Optional, Union

from .errors import InvalidInputError, OutputError

PathLike = Union[str, "os.PathLike[str]"]

_TMP_TAG = ".emoedge-tmp-"


def _umask() -> int:
    # os.umask can only be read by setting it; done once per temp file (cheap), restored at once
    m = os.umask(0)
    os.umask(m)
    return m


def _same_file(a: pathlib.Path, b: pathlib.Path) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def check_outputs(outputs: Iterable[Any], inputs: Iterable[Optional[PathLike]] = (),
                  *, what: str = "the output") -> None:
    """Raise :class:`InvalidInputError` (naming the file and the fix) when an output would overwrite an
    input or another output, is a folder, or its folder is missing or not writable. ``outputs``: paths or
    ``(label, path)`` pairs (the label, e.g. ``'--out'``, is named in the message). ``None`` entries and
    ``'-'`` (stdout) are ignored; inputs that are not files (camera indices, 'mic') never match."""
    pairs = [(o if isinstance(o, tuple) else (what, o)) for o in outputs]
    named = [(label, pathlib.Path(o)) for label, o in pairs if o is not None and str(o) != "-"]
    outs = [o for _, o in named]
    ins = [pathlib.Path(i) for i in inputs if i is not None and os.path.exists(i)]
    for i, (label, o) in enumerate(named):
        for src in ins:
            if _same_file(o, src):
                same = "" if str(o) == str(src) else f" (the same file as the input {src})"
                raise InvalidInputError(f"{o}: is an input of this run{same}; refusing to write {label} over "
                                        "it: choose another output path")
        for other in outs[:i]:
            if _same_file(o, other) or os.path.abspath(o) == os.path.abspath(other):
                raise InvalidInputError(f"{o}: given for two outputs; choose a different path for each")
        if o.is_dir():
            raise InvalidInputError(f"{o}: is a folder; give a file name for {named[i][0]}")
        parent = o.parent if str(o.parent) else pathlib.Path(".")
        if not parent.is_dir():
            raise InvalidInputError(f"{o}: the folder {parent} does not exist; create it first")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise InvalidInputError(f"{o}: the folder {parent} is not writable (permission denied); "
                                    "choose another output folder")


class AtomicOutput:
    """The temporary file of one output, beside ``target`` (same folder, so the final rename is atomic).

    ``tmp`` keeps the target's suffix (encoders pick the container format from it). ``commit()`` moves it
    over the target (permissions as a plain ``open()`` would give, or the target's if it existed);
    ``discard()`` removes it. Both are idempotent; a context manager commits on success and discards on
    an exception."""

    def __init__(self, target: PathLike):
        self.target = pathlib.Path(target)
        parent = self.target.parent if str(self.target.parent) else pathlib.Path(".")
        if not parent.is_dir():
            raise InvalidInputError(f"{self.target}: the folder {parent} does not exist; create it first")
        self.tmp = parent / f".{self.target.stem}{_TMP_TAG}{secrets.token_hex(4)}{self.target.suffix}"
        try:
            fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as e:
            raise OutputError(f"{self.target}: cannot create a file in {parent} ({e.strerror or e}); "
                              "choose another output folder") from None
        os.close(fd)
        self.done = False

    def commit(self) -> pathlib.Path:
        """Rename the finished temporary file over the target; returns the target."""
        if self.done:
            return self.target
        try:
            mode = os.stat(self.target).st_mode & 0o7777
        except OSError:
            mode = 0o666 & ~_umask()
        try:
            os.chmod(self.tmp, mode)
            os.replace(self.tmp, self.target)
        except OSError as e:
            self.discard()
            raise OutputError(f"{self.target}: could not be put in place ({e.strerror or e})") from None
        self.done = True
        return self.target

    def discard(self) -> None:
        """Remove the temporary file; the target is left as it was."""
        self.done = True
        with contextlib.suppress(OSError):
            os.unlink(self.tmp)

    def __enter__(self) -> "AtomicOutput":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


def write_error(target: PathLike, e: OSError) -> OutputError:
    """An :class:`OutputError` naming ``target`` for an OSError met while writing it (disk full, file too
    large, I/O error)."""
    why = e.strerror or str(e) or type(e).__name__
    hint = "; free some space or choose another folder" if getattr(e, "errno", None) in (27, 28, 122) else ""
    return OutputError(f"{target}: writing failed ({why}){hint}; the file was left as it was (no partial output)")


def atomic_write_bytes(path: PathLike, data: bytes, *, fsync: bool = True) -> pathlib.Path:
    """Write ``data`` to a temporary file beside ``path``, fsync, rename over ``path``."""
    out = AtomicOutput(path)
    try:
        with open(out.tmp, "wb") as f:
            f.write(data)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
    except OSError as e:
        out.discard()
        raise write_error(path, e) from None
    except BaseException:
        out.discard()
        raise
    return out.commit()


def atomic_write_text(path: PathLike, text: str, *, encoding: str = "utf-8") -> pathlib.Path:
    """:func:`atomic_write_bytes` of ``text`` encoded with ``encoding``."""
    return atomic_write_bytes(path, text.encode(encoding))
