"""What the coordinator's worker processes share (the frame workers, the delivery
process): started as `python -m coordinator.<module>` with this package importable,
they die with the coordinator, yield the CPU to its event loop, and answer on stdout.

Kept apart from the workers' own modules so that a worker imports only what it uses
(the delivery process needs neither Pillow nor NumPy)."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import BinaryIO


def environment() -> dict[str, str]:
    """The environment of a worker process: this one's, with this package importable
    however the coordinator was started."""
    package_root = str(Path(__file__).resolve().parent.parent)
    return dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (package_root, os.environ.get("PYTHONPATH")) if p))


def begin() -> BinaryIO:
    """In the worker, first: die with the coordinator, give way to its event loop, and
    take stdout for the replies (anything a library prints goes to stderr instead).
    Returns the replies' stream."""
    _die_with_parent()
    try:
        # The event loop decides how soon nodes get work: it goes first for a CPU.
        os.nice(5)
    except (AttributeError, OSError):
        pass
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    return replies


def _die_with_parent() -> None:
    """Die with the coordinator (Linux: with the thread that started this process, which
    lives as long as the coordinator's use of it): an orphaned worker would keep its
    port and files."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
