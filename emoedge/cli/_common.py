"""Helpers shared by the subcommands: argparse value types and the graceful stop on SIGINT/SIGTERM."""
from __future__ import annotations

import argparse
import signal
import threading
from typing import Callable, Optional


def positive_float(text: str) -> float:
    """argparse type: a number > 0 (seconds, intervals)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not v > 0 or v != v or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return v


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (thread counts, batch sizes)."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return v


class GracefulStop:
    """While active, the first SIGINT (Ctrl-C) or SIGTERM asks the run to stop: ``on_stop()`` is called (the
    run stops reading, drains what is queued and flushes) and :attr:`signal` names the signal; the command
    then finishes its outputs, prints its summary marked "interrupted" and exits 130. A second signal raises
    KeyboardInterrupt (stop now; unfinished outputs are dropped). Only the main thread can install handlers:
    elsewhere this does nothing."""

    def __init__(self, on_stop: Optional[Callable[[], None]] = None):
        self.on_stop = on_stop
        self.signal: Optional[str] = None
        self._old: dict = {}

    @property
    def requested(self) -> bool:
        return self.signal is not None

    def _handle(self, signum, frame) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signal.Signals(signum).name
        if self.on_stop is not None:
            self.on_stop()

    def __enter__(self) -> "GracefulStop":
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
        self._old.clear()
