"""`emoedge` command line. Each subcommand lives in its own module of this package and
exposes ``register(subparsers)``, which adds its parser and sets ``func(args) -> int``.

Exit codes: 0 success, 1 an error (one line on stderr naming the file or setting and the fix; emoedge's
own error types and OSError), 2 a usage error (argparse), 130 interrupted (SIGINT/SIGTERM)."""
from __future__ import annotations

import argparse
import importlib
import sys

# Order shown in --help.
SUBCOMMANDS = ("demo", "run", "eval", "bench", "compile", "models", "export", "info")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__
    p = argparse.ArgumentParser(prog="emoedge", description="Edge-optimized streaming multimodal emotion recognition")
    p.add_argument("--version", action="version", version=f"emoedge {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            mod = importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as e:
            if e.name == f"{__name__}.{name}":
                continue  # subcommand not part of this build
            raise
        mod.register(sub)
    return p


def main(argv=None) -> int:
    from ..errors import EmoEdgeError
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    cmd = " ".join(str(x) for x in (args.command, getattr(args, "modality", None)) if x)
    try:
        return int(args.func(args) or 0)
    except EmoEdgeError as e:
        print(f"emoedge {cmd}: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # e.g. a file that cannot be read: one line naming it, no traceback
        name = f"{e.filename}: " if getattr(e, "filename", None) else ""
        print(f"emoedge {cmd}: error: {name}{e.strerror or e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted (unfinished outputs were not written)", file=sys.stderr)
        return 130
