"""Files under the data dir: blobs by sha256, frames, thumbnails; never outside it."""
from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import shutil
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, BinaryIO, Callable, TypeVar

from .pacing import DEFAULT_PACE, Pace, paced
from .validation import SHA256

CHUNK = 256 * 1024
IN_MEMORY = 8 * 1024 * 1024
T = TypeVar("T")


class TooLarge(Exception):
    pass


class DigestMismatch(Exception):
    pass


class OutsideDataDir(Exception):
    pass


def _background_thread() -> None:
    """Uploads' file work and thumbnails yield the CPU to the event loop, which
    decides how soon a node gets its next job."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 5)
    except (AttributeError, OSError):  # not Linux: every thread shares one priority
        pass


def _farm_id(path: Path) -> str:
    """This data dir's farm id (32 hex digits), made once and kept: nodes key their
    per-shot files by (farm id, shot id), since another farm's shot 7 is not ours."""
    try:
        value = path.read_text().strip()
        if len(value) == 32 and all(c in "0123456789abcdef" for c in value):
            return value
    except FileNotFoundError:
        pass
    value = uuid.uuid4().hex
    temp = path.with_name(path.name + ".tmp")
    with open(temp, "w") as f:
        f.write(value + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, path)
    return value


def _temp_owner(temp_name: str) -> int | None:
    """The pid in a temp file's name (`prefix-pid-serial`)."""
    parts = temp_name.rsplit("-", 2)
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


def _owner_alive(temp_name: str) -> bool:
    """Whether another process that made this temp file still runs."""
    pid = _temp_owner(temp_name)
    if pid is None or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True   # it exists, and is not ours to signal
    return True


class Storage:
    def __init__(self, root: Path, threads: int = 4, pace: Pace | None = None):
        self.root = root.resolve()
        self.pace = pace or DEFAULT_PACE
        self.tmp = self.root / "tmp"
        self.blobs = self.root / "blobs"
        self.trash = self.root / "trash"
        for d in (self.root, self.tmp, self.blobs, self.root / "shots", self.trash):
            d.mkdir(parents=True, exist_ok=True)
        # Half-written uploads from a previous run are never frames: drop them. Not
        # those of another coordinator running on this data dir (the pid in the name).
        for leftover in self.tmp.iterdir():
            if not _owner_alive(leftover.name):
                leftover.unlink(missing_ok=True)
        self.farm_id = _farm_id(self.root / "farm_id")
        # Temp names: unique within this run, since tmp starts empty (cheaper than uuid4).
        self._serial = itertools.count()
        self._made_dirs: set[Path | str] = set()
        self._root, self._tmp = str(self.root), str(self.tmp)
        self.executor = ThreadPoolExecutor(threads, thread_name_prefix="files",
                                           initializer=_background_thread)
        self.executor.submit(self._empty_trash)  # what a previous run had no time to remove

    def close(self) -> None:
        self.executor.shutdown(wait=True)

    def drop_orphaned_temps(self) -> int:
        """Remove half-written uploads of coordinators that died on this shared data
        dir (their pid is gone); the number removed. An upload whose temp file was
        taken by mistake (a pid of another machine) fails and its client retries."""
        dropped = 0
        for leftover in self.tmp.iterdir():
            if _temp_owner(leftover.name) != os.getpid() and not _owner_alive(leftover.name):
                leftover.unlink(missing_ok=True)
                dropped += 1
        return dropped

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    def temp_path(self, prefix: str) -> Path:
        return self.tmp / f"{prefix}-{os.getpid()}-{next(self._serial)}"

    def inside(self, relative: str | Path) -> Path:
        """Resolve a data-dir-relative path, refusing anything that escapes the root."""
        path = (self.root / relative).resolve()
        if path != self.root and self.root not in path.parents:
            raise OutsideDataDir(str(relative))
        return path

    def ensure_dir(self, path: Path | str) -> None:
        """mkdir -p, remembered: frames land in a handful of folders thousands of times."""
        if path not in self._made_dirs:
            os.makedirs(path, exist_ok=True)
            self._made_dirs.add(path)

    def move_into(self, src: Path | str, relative: str) -> None:
        """Rename a file of ours to a data-dir path this code built (never a request's)."""
        dest = f"{self._root}/{relative}"
        self.ensure_dir(dest.rsplit("/", 1)[0])
        os.replace(src, dest)

    def blob_path(self, sha: str) -> Path:
        if not SHA256.match(sha):
            raise OutsideDataDir(sha)
        return self.blobs / sha[:2] / sha

    def has_blob(self, sha: str) -> bool:
        return self.blob_path(sha).is_file()

    def missing_blobs(self, digests: list[str]) -> list[str]:
        """Those of `digests` (checked ones) with no blob (a stat each: not on the loop)."""
        # String paths: a Path per digest cost more than its stat.
        root, isfile = str(self.blobs), os.path.isfile
        return [d for d in digests if not isfile(f"{root}/{d[:2]}/{d}")]

    async def receive(self, chunks: AsyncIterator[bytes], dest: Path, max_bytes: int,
                      expected_sha: str | None = None,
                      store: Callable[[Path, bytes], Awaitable[T]] | None = None,
                      ) -> tuple[str, int, T | None]:
        """Stream a body to `dest` atomically; the file appears whole or not at all.

        The bytes are hashed on the way and go to a temp file in the data dir, which
        is fsynced, then renamed into place. Any failure (size, digest, disk full, a
        body slower than the storage's pace) leaves nothing. Small bodies (most
        frames) are held in memory and written by one call in a worker thread: file-system calls stay off the event loop.
        `store(dest, body)`, for a small body bound for tmp (a frame awaiting its
        record), writes it durably instead of that thread and returns a result (a
        thumbnail); the result is None when the body was not small.
        """
        digest, size = hashlib.sha256(), 0
        pending = bytearray()
        spill: BinaryIO | None = None
        try:
            async for chunk in paced(chunks, self.pace):
                size += len(chunk)
                if size > max_bytes:
                    raise TooLarge(f"body is larger than {max_bytes} bytes")
                digest.update(chunk)
                pending += chunk
                if len(pending) >= IN_MEMORY:
                    if spill is None:
                        spill = await self._in_thread(self._open_temp)
                    await self._in_thread(spill.write, bytes(pending))
                    pending.clear()
            sha = digest.hexdigest()
            if expected_sha is not None and sha != expected_sha:
                raise DigestMismatch(f"body sha256 is {sha}, expected {expected_sha}")
            if store is not None and spill is None and os.path.dirname(dest) == self._tmp:
                return sha, size, await store(dest, bytes(pending))
            await self._in_thread(self._finish_temp, spill, bytes(pending), dest)
            return sha, size, None
        except BaseException:
            if spill is not None:
                spill.close()
                Path(spill.name).unlink(missing_ok=True)
            raise

    def _open_temp(self) -> BinaryIO:
        return open(self.temp_path("upload"), "xb")

    def _finish_temp(self, spill: BinaryIO | None, rest: bytes, dest: Path) -> None:
        # A body bound for tmp anyway is written there directly; anything else goes
        # through a temp file and a rename.
        direct = spill is None and dest.parent == self.tmp
        f = spill or open(dest if direct else self.temp_path("upload"), "xb")
        try:
            with f:
                f.write(rest)
                f.flush()
                os.fsync(f.fileno())
            if not direct:
                self.ensure_dir(dest.parent)
                os.replace(f.name, dest)
        except BaseException:
            Path(f.name).unlink(missing_ok=True)
            raise

    def delete_shot(self, shot_id: int) -> None:
        """Take the shot's folder out of `shots/` at once (a rename, before the delete is
        acknowledged); its files are removed from the trash in a worker thread."""
        try:
            os.rename(self.root / "shots" / str(int(shot_id)),
                      self.trash / f"shot-{int(shot_id)}-{uuid.uuid4().hex}")
        except FileNotFoundError:  # the shot never had a frame
            return
        self._made_dirs.clear()
        self.executor.submit(self._empty_trash)

    def _empty_trash(self) -> None:
        for entry in self.trash.iterdir():
            shutil.rmtree(entry, ignore_errors=True)
