"""Delivery to studio storage: each recorded frame of a shot with an output template
is copied to its place under the shot's output root (`delivery_paths.py`).

After the record (the frame is safe in the data dir whatever happens here) the frame
is queued; a few tasks copy frames in a worker thread each: a temp name in the target
folder, fsync, `os.replace` onto the final name, fsync of the folder. A frame rendered
again later is copied again and replaces the first copy; one frame is never copied
twice at once. A failure (disk full, no permission, a path that now leads outside its
root) is recorded on the frame and the shot, and the frame is tried again after a
backoff (doubling, up to a few minutes) until it is delivered; frames left undelivered
when the coordinator stopped are queued again at start.
"""
from __future__ import annotations

import asyncio
import logging
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from . import delivery_paths
from .config import Config
from .database import Database
from .storage import Storage, _background_thread
from .store import delivery as delivery_sql

log = logging.getLogger("brender.delivery")
# Copies at once: each waits mostly on its fsync, in threads of its own (the storage's
# threads take uploads, which must not queue behind studio storage).
COPIERS = 4
FIRST_RETRY = 2.0
MAX_RETRY = 300.0
CHUNK = 1024 * 1024
Key = tuple[int, int]   # (shot id, frame number)


def copy_atomically(source: Path, root: Path, relative: str) -> None:
    """Copy `source` to `relative` under `root`, atomically: a temp name in the target
    folder, the data synced, renamed over the final name, the folder synced. The bytes
    go file to file in the kernel (sendfile): no read into Python, no hash (the frame
    row's digest names what was copied, see `Delivery._deliver`)."""
    target = delivery_paths.inside(root, relative)
    if not target.parent.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        target = delivery_paths.inside(root, relative)   # a symlink made meanwhile
    temp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.brender-tmp")
    try:
        with open(source, "rb") as src, open(temp, "xb") as out:
            size, offset = os.fstat(src.fileno()).st_size, 0
            while offset < size:
                sent = os.sendfile(out.fileno(), src.fileno(), offset, size - offset)
                if not sent:
                    break   # the source shrank (replaced meanwhile): copied as it is
                offset += sent
            os.fdatasync(out.fileno())
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    folder = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


class Delivery:
    def __init__(self, config: Config, db: Database, storage: Storage,
                 shot_changed: Callable[[int], None]):
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

    async def run(self) -> None:
        for key in await self.db.read(delivery_sql.undelivered):
            self.put(key)
        copiers = [asyncio.create_task(self._copier()) for _ in range(COPIERS)]
        try:
            await asyncio.gather(*copiers)
        finally:
            for task in copiers:
                task.cancel()
            for handle in self._retries.values():
                handle.cancel()
            self.executor.shutdown(wait=False, cancel_futures=True)

    async def _copier(self) -> None:
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            self._busy.add(key)
            try:
                await self._deliver(key)
            except asyncio.CancelledError:
                raise
            except Exception:   # never lose the copier: the frame is tried again
                log.exception("delivering frame %s of shot %s failed", key[1], key[0])
                self._retry(key)
            finally:
                self._busy.discard(key)
                if key in self._again:
                    self._again.discard(key)
                    self.put(key)

    async def _deliver(self, key: Key) -> None:
        frame = await self.db.read(delivery_sql.source, *key)
        if frame is None or frame["status"] != "done" or not frame["output_template"] \
                or frame["delivery"] is None:
            self._failures.pop(key, None)
            return
        root = self.roots.get(frame["output_root"])
        try:
            if root is None:
                raise ValueError(f"the output root {frame['output_root']!r} is not "
                                 "configured on this coordinator")
            relative = delivery_paths.render(
                frame["output_template"],
                {"id": frame["shot_id"], "name": frame["shot_name"],
                 "blend_path": frame["blend_path"]},
                frame["number"], frame["name"].rsplit(".", 1)[-1])
            await asyncio.get_running_loop().run_in_executor(
                self.executor, copy_atomically,
                self.storage.inside(frame["path"]), root, relative)
        except (OSError, ValueError) as exc:
            reason = f"{exc.strerror} ({exc.filename})" if isinstance(exc, OSError) \
                and exc.strerror else str(exc)
            log.warning("frame %s of shot %s not delivered: %s", key[1], key[0], reason)
            await self.db.write(delivery_sql.failed, *key, reason[:500])
            self._shot_changed(key[0])
            self._retry(key)
            return
        self._failures.pop(key, None)
        # Delivered: the render whose record was read, unless a newer one landed since
        # (its record changed the digest, and its landing queued it again).
        if await self.db.write(delivery_sql.delivered, *key, frame["sha256"], batched=True):
            self.delivered += 1
            if frame["delivery"] == "failed":
                self._shot_changed(key[0])
        # Else a newer render landed while this one was copied: it is queued again.

    def _retry(self, key: Key) -> None:
        failures = self._failures[key] = self._failures.get(key, 0) + 1
        delay = min(MAX_RETRY, FIRST_RETRY * 2 ** (failures - 1))
        loop = asyncio.get_running_loop()
        self._retries[key] = loop.call_later(delay, self._retry_now, key)

    def _retry_now(self, key: Key) -> None:
        self._retries.pop(key, None)
        self.put(key)
