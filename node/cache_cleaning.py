"""Keeping the node's work dir bounded: old layouts and the blobs only they used go.

Layouts unused for longer than the age limit are removed, and blobs no layout uses once
they are that old too; then, while blobs and layouts
together take more than the size limit, blobs no layout uses (oldest first), then the
least recently used layouts with the blobs only they used. A layout in use is never
removed, nor a blob it uses, so the limit is a target a single huge shot may exceed.
Layout files are mostly hard links to their blobs: space is counted once per inode.
"""
from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from .cache import BlobCache
from .layouts import MANIFEST, is_farm_key

log = logging.getLogger("brender.node.cache")
SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """'20G', '512M', '1.5T' or plain bytes; raises ValueError."""
    raw = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = raw[-1:] if raw[-1:] in SIZE_UNITS else ""
    number = float(raw[:len(raw) - len(unit)])
    if number < 0:
        raise ValueError("a size cannot be negative")
    return int(number * SIZE_UNITS[unit])


@dataclass
class _Layout:
    path: Path
    used: float
    shas: set[str]
    files: list[Path] = field(default_factory=list)


class _Usage:
    """Bytes on disk per inode, and how many of our paths still point at each."""

    def __init__(self) -> None:
        self.inodes: dict[tuple[int, int], list[int]] = {}
        self.total = 0

    def add(self, path: Path) -> None:
        try:
            st = path.stat()
        except OSError:
            return
        entry = self.inodes.setdefault((st.st_dev, st.st_ino), [st.st_size, 0])
        if entry[1] == 0:
            self.total += entry[0]
        entry[1] += 1

    def remove(self, path: Path) -> None:
        try:
            st = path.stat()
        except OSError:
            return
        entry = self.inodes.get((st.st_dev, st.st_ino))
        if entry and entry[1] > 0:
            entry[1] -= 1
            if entry[1] == 0:
                self.total -= entry[0]


def clean(projects: Path, blobs: BlobCache, size_limit: int, max_age: float,
          in_use: set[Path], now: float | None = None) -> list[Path]:
    """Remove what the limits say; returns the layouts and blobs removed."""
    now = time.time() if now is None else now
    keep = {p.resolve() for p in in_use}
    removed: list[Path] = []
    layouts = _scan_layouts(projects, keep, removed)
    for layout in [x for x in layouts if now - x.used > max_age and x.path not in keep]:
        _rmtree(layout.path, removed)
        layouts.remove(layout)
    usage = _Usage()
    blob_list = sorted(blobs.blobs.glob("??/*"), key=_mtime)
    for path in blob_list:
        usage.add(path)
    for layout in layouts:
        layout.files = [p for p in layout.path.rglob("*") if p.is_file()]
        for path in layout.files:
            usage.add(path)
    used_shas = set().union(*(x.shas for x in layouts))

    def drop_unused_blobs() -> None:
        for path in list(blob_list):
            if path.name in used_shas or \
                    usage.total <= size_limit and now - _mtime(path) <= max_age:
                continue
            usage.remove(path)
            path.unlink(missing_ok=True)
            blob_list.remove(path)
            removed.append(path)

    # A blob no layout uses outlives its layouts only while there is room, and not long.
    drop_unused_blobs()
    for layout in sorted(layouts, key=lambda x: x.used):
        if usage.total <= size_limit:
            break
        if layout.path in keep:
            continue
        for path in layout.files:
            usage.remove(path)
        _rmtree(layout.path, removed)
        layouts.remove(layout)
        used_shas = set().union(*(x.shas for x in layouts))
        drop_unused_blobs()
    for path in removed:
        log.info("cache: removed %s", path)
    return removed


def _scan_layouts(projects: Path, keep: set[Path], removed: list[Path]) -> list[_Layout]:
    """Every complete layout; what is not one (half laid out, or from an older node
    that keyed layouts by shot id alone) is removed unless in use."""
    found: list[_Layout] = []
    if not projects.is_dir():
        return found
    for farm in projects.iterdir():
        if not is_farm_key(farm.name) or not farm.is_dir():
            if farm.resolve() not in keep:
                _rmtree(farm, removed)
            continue
        for shot in farm.iterdir():
            path = shot.resolve()
            manifest = shot / MANIFEST
            try:
                files = json.loads(manifest.read_text())["files"]
                found.append(_Layout(path, manifest.stat().st_mtime,
                                     {f["sha256"] for f in files}))
            except (OSError, ValueError, KeyError, TypeError):
                if path not in keep:
                    _rmtree(shot, removed)
    return found


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _rmtree(path: Path, removed: list[Path]) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
    removed.append(path)
