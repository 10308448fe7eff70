"""Delivery to studio storage: each recorded frame of a shot with an output template
is copied to its place under the shot's output root (`delivery_paths.py`).

After the record (the frame is safe in the data dir whatever happens here) the frame
is queued; a task delivers them in groups (about one a second) through the delivery
process (`delivery_process.py`: the copies' system calls take no turns with the event
loop for the GIL), driven from a thread. There `delivered_files.copy_batch` makes the
copies atomic and durable together, or read-only hard links where the root is on the
data dir's file system. A frame rendered again later is delivered again and replaces
the first; one frame is never delivered
twice at once. A failure (disk full, no permission, a path that now leads outside its
root) is recorded on the frame and the shot, and the frame is tried again after a
backoff (doubling, up to a few minutes) until it is delivered; frames left undelivered
when the coordinator stopped are queued again at start. Where coordinators share the
farm, each delivers the frames it records, and the one holding the farm's duties also
takes over, now and then, what has waited long (a dead peer's frames).
"""
from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from . import delivery_paths
from .config import Config
from .database import Database
from .delivered_files import Copy, Key
from .delivery_process import CopierProcess
from .storage import Storage, _background_thread
from .store import delivery as delivery_sql

log = logging.getLogger("brender.delivery")
# Frames delivered as one group (synced together), a group at most every
# GATHER_SECONDS unless a full one waits. A frame copied alone cost 2-3x as much; and
# in capacity runs a group each second cost a busy coordinator half what five groups
# a second did: every group wakes threads that then take turns with the event loop
# for the GIL.
BATCH = 512
GATHER_SECONDS = 1.0
# Outcomes recorded this many at a time: one write holds the event loop ~10 ms.
RECORD_CHUNK = 64
FIRST_RETRY = 2.0
# Shared farms: how often the duty holder looks for frames nobody delivers, and how
# long a frame waits before it counts as nobody's (a live peer copies within seconds).
SWEEP_SECONDS = 30.0
ABANDONED_SECONDS = 60.0
MAX_RETRY = 300.0


class _Sources:
    """The frames' files in the data dir, each folder resolved and checked once per
    group; the file itself is opened without following a symlink (`copy_batch`)."""

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


class Delivery:
    def __init__(self, config: Config, db: Database, storage: Storage,
                 shot_changed: Callable[[int], None],
                 takes_over: Callable[[], bool] = lambda: False):
        """`takes_over()`: this coordinator shares the farm and holds its duties."""
        self._takes_over = takes_over
        self.roots = config.output_roots
        self.links = config.delivery_links
        self.db, self.storage = db, storage
        self._shot_changed = shot_changed
        self._queue: asyncio.Queue[Key] = asyncio.Queue()
        self._queued: set[Key] = set()
        self._busy: set[Key] = set()
        self._again: set[Key] = set()
        self._failures: dict[Key, int] = {}
        self._retries: dict[Key, asyncio.TimerHandle] = {}
        self.delivered = 0
        # One group at a time, from a thread of its own (the storage's threads take
        # uploads, which must not queue behind studio storage), which alone talks to
        # the delivery process.
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="delivery",
                                           initializer=_background_thread)
        self.copier = CopierProcess()

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
        tasks = [asyncio.create_task(self._copier())]
        if shared:
            tasks.append(asyncio.create_task(self._sweep()))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            for handle in self._retries.values():
                handle.cancel()

    async def close(self) -> None:
        """End the delivery process once the group in hand is copied."""
        await asyncio.get_running_loop().run_in_executor(self.executor, self.copier.close)
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
        loop = asyncio.get_running_loop()
        next_group = 0.0
        while True:
            batch = [await self._queue.get()]
            # A group at most every GATHER_SECONDS, unless a full one is waiting.
            wait = next_group - loop.time()
            if wait > 0 and self._queue.qsize() < BATCH - 1:
                await asyncio.sleep(wait)
            next_group = loop.time() + GATHER_SECONDS
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
            await asyncio.get_running_loop().run_in_executor(self.executor, self.copier.copy,
                                                             todo, self.links)
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
            for first in range(0, len(done), RECORD_CHUNK):
                self.delivered += await self.db.write(
                    delivery_sql.delivered_many, done[first:first + RECORD_CHUNK],
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
