"""Delivery to studio storage: each recorded frame of a shot with an output template
is copied to its place under the shot's output root (`delivery_paths.py`).

After the record (the frame is safe in the data dir whatever happens here) the frame
is queued; a few tasks copy frames in a worker thread each: a temp name in the target
folder, fsync, `os.replace` onto the final name, fsync of the folder. Frames waiting are
copied in groups, synced together (one syncfs of their file system, unless it is the
data dir's: then each on its own). A frame rendered
again later is copied again and replaces the first copy; one frame is never copied
twice at once. A failure (disk full, no permission, a path that now leads outside its
root) is recorded on the frame and the shot, and the frame is tried again after a
backoff (doubling, up to a few minutes) until it is delivered; frames left undelivered
when the coordinator stopped are queued again at start. Where coordinators share the
farm, each copies the frames it records, and the one holding the farm's duties also
takes over, now and then, what has waited long (a dead peer's frames).
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import os
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import delivery_paths, file_sync
from .config import Config
from .database import Database
from .storage import Storage, _background_thread
from .store import delivery as delivery_sql

log = logging.getLogger("brender.delivery")
# Copies at once: each waits mostly on its fsync, in threads of its own (the storage's
# threads take uploads, which must not queue behind studio storage).
COPIERS = 2
# Frames copied as one group (synced together), gathered for this long after the
# first one: a frame copied alone cost 2-3x as much.
BATCH = 64
GATHER_SECONDS = 0.2
FIRST_RETRY = 2.0
# Shared farms: how often the duty holder looks for frames nobody delivers, and how
# long a frame waits before it counts as nobody's (a live peer copies within seconds).
SWEEP_SECONDS = 30.0
ABANDONED_SECONDS = 60.0
MAX_RETRY = 300.0
CHUNK = 1024 * 1024
Key = tuple[int, int]   # (shot id, frame number)


@dataclass
class Copy:
    """One frame to copy: its file, its root and its path there; `error` after a try."""
    key: Key
    source: Path
    root: Path
    relative: str
    error: Exception | None = None


def copy_batch(copies: list[Copy]) -> None:
    """Copy each frame to its place, atomically, as one group: every temp file written
    (a new name in the target folder, the bytes file to file in the kernel: sendfile),
    then synced, all with one syncfs of their file system (`file_sync.py`; where that
    cannot be done, each with its own fdatasync), then each renamed over its final
    name, then each folder synced once. A copy that fails keeps its error and leaves
    no temp file; the others go on.

    Each target folder is resolved, checked to lie inside its root and opened once per
    group (the frames of a shot share one); its files are then named relative to the
    open folder, so a symlink swapped into the path meanwhile cannot redirect them. The
    final name needs no check: the temp file is created anew (`O_EXCL`, which follows
    no symlink) and a rename replaces a symlink at the final name, never its target.
    A source that is a symlink is not copied (`O_NOFOLLOW`): frames are plain files."""
    folders = _Folders()
    written: list[tuple[Copy, int, str, str, int]] = []   # copy, folder fd, temp, name, fd
    data_dirs: set[int] = set()   # the file systems the frames are read from
    for copy in copies:
        src = -1
        try:
            src = os.open(copy.source, _SOURCE)
            folder, name = folders.open(copy.root, copy.relative)
            temp = f".{name}.{_TEMP_TAG}-{next(_temp_numbers)}.brender-tmp"
            out = os.open(temp, _CREATE, 0o666, dir_fd=folder)
        except (OSError, ValueError) as exc:
            copy.error = exc
            if src >= 0:
                os.close(src)
            continue
        written.append((copy, folder, temp, name, out))
        try:
            stat = os.fstat(src)
            size, offset = stat.st_size, 0
            data_dirs.add(stat.st_dev)
            while offset < size:
                sent = os.sendfile(out, src, offset, size - offset)
                if not sent:
                    break   # the source shrank (replaced meanwhile): copied as it is
                offset += sent
        except OSError as exc:
            copy.error = exc
        finally:
            os.close(src)
    synced: set[int] = set()
    try:
        # One syncfs per file system for the group, else an fdatasync per file. Not on
        # the data dir's own file system: syncfs writes every dirty file there, the
        # database's WAL and the frames being stored too, at every group (in capacity
        # runs it was no cheaper than an fdatasync per copy; docs/performance.md).
        devices = {folder: os.fstat(folder).st_dev
                   for copy, folder, _, _, _ in written if copy.error is None}
        apart = {folder for folder, device in devices.items() if device not in data_dirs}
        durable = bool(apart) and file_sync.sync_file_systems(apart)
        for copy, folder, temp, name, out in written:
            try:
                if copy.error is None and not (durable and folder in apart):
                    os.fdatasync(out)
            except OSError as exc:
                copy.error = exc
            finally:
                os.close(out)
            try:
                if copy.error is None:
                    os.replace(temp, name, src_dir_fd=folder, dst_dir_fd=folder)
                    synced.add(folder)
            except OSError as exc:
                copy.error = exc
            if copy.error is not None:
                try:
                    os.unlink(temp, dir_fd=folder)
                except FileNotFoundError:
                    pass
        for folder in synced:
            os.fsync(folder)
    finally:
        folders.close()


class _Sources:
    """The frames' files in the data dir, each folder resolved and checked once per
    group; the file itself is opened without following a symlink (`_SOURCE`)."""

    def __init__(self, storage: Storage):
        self.storage = storage
        self.folders: dict[str, Path] = {}

    def path(self, relative: str) -> Path:
        folder, _, name = relative.rpartition("/")
        if name in ("", ".", ".."):
            return self.storage.inside(relative)
        real = self.folders.get(folder)
        if real is None:
            real = self.folders[folder] = self.storage.inside(folder)
        return real / name


# A temp file's name: unique to this process (and host: coordinators may share studio
# storage) without asking the system for randomness once per frame.
_TEMP_TAG = f"{os.getpid()}-{secrets.token_hex(4)}"
_temp_numbers = itertools.count()
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_SOURCE = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class _Folders:
    """The target folders of one group, each resolved, checked and opened once."""

    def __init__(self) -> None:
        self.fds: dict[tuple[Path, str], int | Exception] = {}

    def open(self, root: Path, relative: str) -> tuple[int, str]:
        """(an open fd of the folder of `relative` under `root`, the file's name)."""
        folder, _, name = relative.rpartition("/")
        if name in ("", ".", "..") or relative.startswith("/"):
            raise ValueError(f"{relative!r} names no file under the output root")
        key = (root, folder)
        fd = self.fds.get(key)
        if fd is None:
            try:
                fd = self.fds[key] = self._open(root, folder)
            except (OSError, ValueError) as exc:
                self.fds[key] = exc
                raise
        if isinstance(fd, Exception):
            raise fd
        return fd, name

    @staticmethod
    def _open(root: Path, folder: str) -> int:
        path = delivery_paths.inside_folder(root, folder)
        try:
            fd = os.open(path, _FOLDER)
        except (FileNotFoundError, NotADirectoryError):
            os.makedirs(path, exist_ok=True)
            # Resolved again: a symlink may have been made meanwhile.
            fd = os.open(delivery_paths.inside_folder(root, folder), _FOLDER)
        try:
            # The folder opened, whatever was swapped into the path since the check,
            # is the one written to: on Linux /proc names it.
            opened = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return fd   # no /proc: the check before the open stands
        if not delivery_paths.within(os.path.realpath(root), opened):
            os.close(fd)
            raise ValueError(f"{folder!r} leads outside the output root")
        return fd

    def close(self) -> None:
        for fd in self.fds.values():
            if isinstance(fd, int):
                os.close(fd)


def copy_atomically(source: Path, root: Path, relative: str) -> None:
    """One copy (`copy_batch` of one); raises its error."""
    copy = Copy((0, 0), source, root, relative)
    copy_batch([copy])
    if copy.error is not None:
        raise copy.error


class Delivery:
    def __init__(self, config: Config, db: Database, storage: Storage,
                 shot_changed: Callable[[int], None],
                 takes_over: Callable[[], bool] = lambda: False):
        """`takes_over()`: this coordinator shares the farm and holds its duties."""
        self._takes_over = takes_over
        self.roots = config.output_roots
        self.db, self.storage = db, storage
        self._shot_changed = shot_changed
        self._queue: asyncio.Queue[Key] = asyncio.Queue()
        self._queued: set[Key] = set()
        self._busy: set[Key] = set()
        self._again: set[Key] = set()
        self._failures: dict[Key, int] = {}
        self._retries: dict[Key, asyncio.TimerHandle] = {}
        self.delivered = 0
        self.executor = ThreadPoolExecutor(COPIERS, thread_name_prefix="delivery",
                                           initializer=_background_thread)

    def frame_landed(self, frame: dict) -> None:
        """A frame was recorded; it is delivered when its shot asks for it."""
        if frame.get("delivery") == "pending":
            self.put((frame["shot_id"], frame["number"]))

    def put(self, key: Key) -> None:
        handle = self._retries.pop(key, None)
        if handle is not None:
            handle.cancel()
        if key in self._busy:
            self._again.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    async def run(self, shared: bool = False) -> None:
        """`shared`: coordinators share the farm; at start each takes back only what has
        waited long (the others may be copying the rest)."""
        await self.take_over(time.time() - ABANDONED_SECONDS if shared else None)
        copiers = [asyncio.create_task(self._copier()) for _ in range(COPIERS)]
        if shared:
            copiers.append(asyncio.create_task(self._sweep()))
        try:
            await asyncio.gather(*copiers)
        finally:
            for task in copiers:
                task.cancel()
            for handle in self._retries.values():
                handle.cancel()
            self.executor.shutdown(wait=False, cancel_futures=True)

    async def take_over(self, rendered_before: float | None) -> None:
        """Queue the undelivered frames (rendered before `rendered_before`) that this
        coordinator is not copying or retrying already."""
        for key in await self.db.read(delivery_sql.undelivered, rendered_before):
            if key not in self._retries and key not in self._busy:
                self.put(key)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            if self._takes_over():
                try:
                    await self.take_over(time.time() - ABANDONED_SECONDS)
                except Exception as exc:   # the store is away: next sweep
                    log.warning("could not look for abandoned deliveries: %s", exc)

    async def _copier(self) -> None:
        while True:
            batch = [await self._queue.get()]
            if self._queue.empty():
                await asyncio.sleep(GATHER_SECONDS)
            while len(batch) < BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            for key in batch:
                self._queued.discard(key)
                self._busy.add(key)
            try:
                await self._deliver(batch)
            except asyncio.CancelledError:
                raise
            except Exception:   # never lose the copier: the frames are tried again
                log.exception("delivering %d frames failed", len(batch))
                for key in batch:
                    self._retry(key)
            finally:
                for key in batch:
                    self._busy.discard(key)
                    if key in self._again:
                        self._again.discard(key)
                        self.put(key)

    async def _deliver(self, keys: list[Key]) -> None:
        """Copy a batch of frames (one read, one group of copies, one write)."""
        copies, digests, was_failed = [], {}, set()
        sources = _Sources(self.storage)
        for frame in await self.db.read(delivery_sql.sources, keys):
            key = (frame["shot_id"], frame["number"])
            if frame["status"] != "done" or not frame["output_template"] \
                    or frame["delivery"] is None:
                self._failures.pop(key, None)
                continue
            root = self.roots.get(frame["output_root"])
            copy = Copy(key, sources.path(frame["path"]), root or Path("/"), "")
            if root is None:
                copy.error = ValueError(f"the output root {frame['output_root']!r} is not "
                                        "configured on this coordinator")
            else:
                copy.relative = delivery_paths.render(
                    frame["output_template"], {"id": frame["shot_id"],
                                               "name": frame["shot_name"],
                                               "blend_path": frame["blend_path"]},
                    frame["number"], frame["name"].rsplit(".", 1)[-1])
            copies.append(copy)
            digests[key] = frame["sha256"]
            if frame["delivery"] == "failed":
                was_failed.add(key)
        todo = [c for c in copies if c.error is None]
        if todo:
            await asyncio.get_running_loop().run_in_executor(self.executor, copy_batch, todo)
        done = []
        for copy in copies:
            if copy.error is None:
                self._failures.pop(copy.key, None)
                done.append((*copy.key, digests[copy.key]))
                continue
            exc = copy.error
            reason = f"{exc.strerror} ({exc.filename})" if isinstance(exc, OSError) \
                and exc.strerror else str(exc)
            log.warning("frame %s of shot %s not delivered: %s", copy.key[1], copy.key[0],
                        reason)
            await self.db.write(delivery_sql.failed, *copy.key, reason[:500])
            self._shot_changed(copy.key[0])
            self._retry(copy.key)
        if done:
            # Delivered: the render whose record was read, unless a newer one landed
            # since (its record changed the digest, and its landing queued it again).
            self.delivered += await self.db.write(delivery_sql.delivered_many, done,
                                                  batched=True)
            for shot_id in {k[0] for k in was_failed}:
                self._shot_changed(shot_id)

    def _retry(self, key: Key) -> None:
        failures = self._failures[key] = self._failures.get(key, 0) + 1
        delay = min(MAX_RETRY, FIRST_RETRY * 2 ** (failures - 1))
        loop = asyncio.get_running_loop()
        self._retries[key] = loop.call_later(delay, self._retry_now, key)

    def _retry_now(self, key: Key) -> None:
        self._retries.pop(key, None)
        self.put(key)
