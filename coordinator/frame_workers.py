"""Frame workers: processes that write an uploaded frame to disk and make its thumbnail.

Why processes and not threads: the coordinator's event loop decides how soon a node
gets its next job, and threads in the same process take turns with it for the GIL.
With four file threads making thumbnails beside it, a 1,000-node farm's loop was
20-300 ms late; with that work in processes the loop has the GIL to itself
(docs/performance.md). The round trip is one write and one read on a pipe.

The protocol on a worker's stdin/stdout, all integers big-endian:
  request:  id (u32), path length (u32), body length (u64), path (UTF-8), body
  reply:    id (u32), status (u8), extension (u8), width (u32), height (u32),
            payload length (u32), payload
Status OK carries the thumbnail; NEEDS_POOL means the frame was written but its
thumbnail needs the process pool (EXR, very large); FAILED carries an error text.
A worker ends when its stdin closes.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import os
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import BinaryIO

from .thumbnails import ThumbResult, make_from_bytes

log = logging.getLogger("brender.frames")

REQUEST = struct.Struct("!IIQ")
REPLY = struct.Struct("!IBBIII")
OK, NEEDS_POOL, FAILED = 0, 1, 2
EXTENSIONS = ("jpg", "png")


def store_frame(dest: Path, body: bytes, size: int) -> ThumbResult | None:
    """Write `body` to `dest` durably, then thumbnail it (None: it needs the pool)."""
    with open(dest, "wb") as f:
        f.write(body)
        f.flush()
        os.fsync(f.fileno())
    return make_from_bytes(body, size)


class WorkerGone(Exception):
    pass


class _Worker(asyncio.SubprocessProtocol):
    """One worker process; replies are parsed as they arrive on its stdout (a
    protocol, not a stream reader: no task wake-up per reply)."""

    def __init__(self) -> None:
        self.transport: asyncio.SubprocessTransport | None = None
        self.stdin: asyncio.WriteTransport | None = None
        self.pending: dict[int, asyncio.Future] = {}
        self.exited = asyncio.get_running_loop().create_future()
        self._buffer = bytearray()

    @property
    def alive(self) -> bool:
        return not self.exited.done()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.stdin = self.transport.get_pipe_transport(0)  # type: ignore[union-attr,assignment]

    def send(self, rid: int, dest: Path, body: bytes) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self.pending[rid] = future
        path = os.fsencode(dest)
        assert self.stdin is not None
        self.stdin.write(REQUEST.pack(rid, len(path), len(body)) + path)
        self.stdin.write(body)
        return future

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        buf = self._buffer
        buf += data
        while len(buf) >= REPLY.size:
            rid, status, ext, width, height, length = REPLY.unpack_from(buf)
            if len(buf) < REPLY.size + length:
                return
            payload = bytes(buf[REPLY.size:REPLY.size + length])
            del buf[:REPLY.size + length]
            future = self.pending.pop(rid, None)
            if future is None or future.done():
                continue
            if status == OK:
                future.set_result(ThumbResult(payload, EXTENSIONS[ext], None, width, height))
            elif status == NEEDS_POOL:
                future.set_result(None)
            else:
                future.set_exception(OSError(payload.decode(errors="replace")))

    def process_exited(self) -> None:
        for future in self.pending.values():
            if not future.done():
                future.set_exception(WorkerGone("the frame worker exited"))
        self.pending.clear()
        if not self.exited.done():
            self.exited.set_result(None)


class FrameWorkers:
    """A few worker processes, started with the first frame; a frame goes to the one
    with the least work queued. If a worker dies its frames are done in a thread."""

    def __init__(self, count: int, size: int):
        self.count, self.size = max(1, count), size
        self._workers: list[_Worker] = []
        self._ids = itertools.count(1)
        self._starting: asyncio.Task | None = None
        self._start_after = 0.0   # after a failed start, threads for a while

    async def store(self, dest: Path, body: bytes) -> ThumbResult | None:
        """`store_frame` in a worker process."""
        worker = await self._pick()
        if worker is not None:
            rid = next(self._ids)
            try:
                return await worker.send(rid, dest, body)
            except (WorkerGone, ConnectionError, RuntimeError):
                worker.pending.pop(rid, None)
                log.warning("a frame worker exited; writing this frame in a thread")
        return await asyncio.to_thread(store_frame, dest, body, self.size)

    async def _pick(self) -> _Worker | None:
        self._workers = [w for w in self._workers if w.alive]
        if len(self._workers) < self.count and time.monotonic() >= self._start_after:
            if self._starting is None or self._starting.done():
                self._starting = asyncio.create_task(self._start(self.count - len(self._workers)))
            if not self._workers:
                await asyncio.shield(self._starting)
                self._workers = [w for w in self._workers if w.alive]
        return min(self._workers, key=lambda w: len(w.pending), default=None)

    async def _start(self, how_many: int) -> None:
        package_root = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            p for p in (package_root, os.environ.get("PYTHONPATH")) if p))
        for _ in range(how_many):
            try:
                _, worker = await asyncio.get_running_loop().subprocess_exec(
                    _Worker, sys.executable, "-m", "coordinator.frame_workers", str(self.size),
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
            except OSError as exc:
                log.warning("cannot start a frame worker (%s): frames are written in threads",
                            exc)
                self._start_after = time.monotonic() + 30
                return
            self._workers.append(worker)

    async def close(self) -> None:
        workers, self._workers = self._workers, []
        for worker in workers:
            if worker.stdin is not None:
                worker.stdin.close()   # the worker ends at the end of its input
        for worker in workers:
            try:
                await asyncio.wait_for(asyncio.shield(worker.exited), 5)
            except asyncio.TimeoutError:
                assert worker.transport is not None
                worker.transport.kill()
                await worker.exited
            if worker.transport is not None:
                worker.transport.close()


def serve(size: int, requests: BinaryIO, replies: BinaryIO) -> None:
    """The worker's loop: one frame at a time, until stdin closes."""
    while True:
        head = requests.read(REQUEST.size)
        if len(head) < REQUEST.size:
            return
        rid, path_length, body_length = REQUEST.unpack(head)
        dest = Path(os.fsdecode(requests.read(path_length)))
        body = requests.read(body_length)
        try:
            thumb = store_frame(dest, body, size)
            if thumb is None:
                reply = REPLY.pack(rid, NEEDS_POOL, 0, 0, 0, 0)
            else:
                reply = REPLY.pack(rid, OK, EXTENSIONS.index(thumb.thumbnail_ext), thumb.width,
                                   thumb.height, len(thumb.thumbnail)) + thumb.thumbnail
        except Exception as exc:  # the coordinator reports it; this worker goes on
            text = f"{type(exc).__name__}: {exc}".encode()[:4000]
            reply = REPLY.pack(rid, FAILED, 0, 0, 0, len(text)) + text
        replies.write(reply)
        replies.flush()


def main() -> None:
    from .thumbnails import _worker_init
    _worker_init()   # die with the coordinator
    try:
        # The event loop decides how soon nodes get work: it goes first for a CPU.
        os.nice(5)
    except (AttributeError, OSError):
        pass
    # Replies own stdout; anything a library prints goes to stderr instead.
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(int(sys.argv[1]), sys.stdin.buffer, replies)


if __name__ == "__main__":
    main()
