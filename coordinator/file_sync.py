"""A group of new files made durable with one sync per file system.

A copy to studio storage is atomic when its bytes are on disk before it is renamed
over its final name. An fdatasync per file costs a journal commit per file: 0.2-0.45 ms
of CPU a small frame on ext4 here, counting the kernel's own threads. syncfs(2) writes
every dirty file of one file system and commits its journal once for the whole group:
0.07-0.10 ms a frame. It is Linux's (glibc's, through ctypes: Python's `os` has none),
and it reports write errors only since Linux 5.8; elsewhere, and when it fails, the
caller falls back to an fdatasync per file, which also tells which file failed.
"""
from __future__ import annotations

import ctypes
import os
import re
from typing import Callable, Iterable


def _syncfs() -> Callable[[int], int] | None:
    match = re.match(r"(\d+)\.(\d+)", os.uname().release)
    if os.uname().sysname != "Linux" or not match \
            or (int(match[1]), int(match[2])) < (5, 8):
        return None
    try:
        syncfs = ctypes.CDLL(None, use_errno=True).syncfs
    except (AttributeError, OSError):
        return None
    syncfs.argtypes = (ctypes.c_int,)
    syncfs.restype = ctypes.c_int
    return syncfs


SYNCFS = _syncfs()


def sync_file_systems(fds: Iterable[int]) -> bool:
    """Sync, once each, the file systems the open `fds` lie on. False when one could
    not be synced (no syncfs here, or it reported an error): sync each file instead."""
    if SYNCFS is None:
        return False
    synced: set[int] = set()
    for fd in fds:
        device = os.fstat(fd).st_dev
        if device not in synced:
            if SYNCFS(fd) != 0:
                return False
            synced.add(device)
    return True
