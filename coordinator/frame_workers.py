"""Frame workers: processes that write uploaded frames and make thumbnails and previews.

Why processes and not threads: the coordinator's event loop decides how soon a node
gets its next job, and threads in the same process take turns with it for the GIL.
With four file threads making thumbnails beside it, a 1,000-node farm's loop was
20-300 ms late; with that work in processes the loop has the GIL to itself
(docs/performance.md). The round trip is one write and one read on a pipe.

One kind of worker does every job of the frame path; `frame_pipeline.py` keeps two
pools of them. The light pool writes each small frame (fsync) and thumbnails it when
it is a PNG/JPEG of up to ~4 megapixels: a millisecond or two a frame, with every
frame behind it waiting. The heavy pool thumbnails (and previews) what the light one
left: EXR tone mapping, very large frames, other formats; seconds for a big EXR,
which would hold up the frames queued behind it in a light worker. A pool's
processes start with the first request it gets, so a farm rendering small PNGs never
starts the heavy pool. If a worker cannot start or dies, its requests run in a
thread instead: slower for the event loop, but no frame is lost.

The protocol on a worker's stdin/stdout, all integers big-endian:
  request:  id (u32), op (u8), path length (u32), body length (u64), path (UTF-8), body
  reply:    id (u32), status (u8), extension (u8), preview (u8), width (u32),
            height (u32), payload length (u32), checks length (u16), payload, checks
            (the frame checks' findings, JSON: `frame_checks.py`)
Op STORE writes the body (the frame) to the path, fsyncs it and thumbnails it; op
THUMBNAIL thumbnails the file at the path (body: its output format, may be empty),
an EXR with a browser preview next to it (preview 1). Status OK carries the
thumbnail; NEEDS_HEAVY means the frame was written but its thumbnail needs a
THUMBNAIL request; FAILED carries an error text, and in the width field the error's
errno (0: none), so that a full disk is told as one (507, "No space left on device").
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

import orjson

from . import worker_process
from .thumbnails import ThumbResult, make, make_from_bytes, preview_path

log = logging.getLogger("brender.frames")

REQUEST = struct.Struct("!IBIQ")
REPLY = struct.Struct("!IBBBIIIH")
STORE, THUMBNAIL = 0, 1
OK, NEEDS_HEAVY, FAILED = 0, 1, 2
EXTENSIONS = ("jpg", "png")


def store_frame(dest: Path, body: bytes, size: int) -> ThumbResult | None:
    """Write `body` to `dest` durably, then thumbnail it (None: it is heavy work).
    Read-only: a stored frame is replaced by a rename, never rewritten, and where it
    is delivered as a hard link (`delivered_files.py`) the studio's file is this one."""
    with open(dest, "wb", opener=_read_only) as f:
        f.write(body)
        f.flush()
        os.fsync(f.fileno())
    return make_from_bytes(body, size)


def _read_only(path: str, flags: int) -> int:
    return os.open(path, flags, 0o444)


def handle(op: int, path: Path, body: bytes, size: int) -> ThumbResult | None:
    """One request, in a worker process or (fallback) a thread."""
    if op == STORE:
        return store_frame(path, body, size)
    return make(path, size, body.decode() or None)


class WorkerGone(Exception):
    pass


class _Worker(asyncio.SubprocessProtocol):
    """One worker process; replies are parsed as they arrive on its stdout (a
    protocol, not a stream reader: no task wake-up per reply)."""

    def __init__(self) -> None:
        self.transport: asyncio.SubprocessTransport | None = None
        self.stdin: asyncio.WriteTransport | None = None
        self.pending: dict[int, tuple[asyncio.Future, Path]] = {}
        self.exited = asyncio.get_running_loop().create_future()
        self._buffer = bytearray()

    @property
    def alive(self) -> bool:
        return not self.exited.done()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.stdin = self.transport.get_pipe_transport(0)  # type: ignore[union-attr,assignment]

    def send(self, rid: int, op: int, path: Path, body: bytes) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self.pending[rid] = (future, path)
        encoded = os.fsencode(path)
        assert self.stdin is not None
        self.stdin.write(REQUEST.pack(rid, op, len(encoded), len(body)) + encoded)
        self.stdin.write(body)
        return future

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        buf = self._buffer
        buf += data
        while len(buf) >= REPLY.size:
            rid, status, ext, preview, width, height, length, extra = REPLY.unpack_from(buf)
            if len(buf) < REPLY.size + length + extra:
                return
            payload = bytes(buf[REPLY.size:REPLY.size + length])
            checks = orjson.loads(bytes(buf[REPLY.size + length:REPLY.size + length + extra])) \
                if extra else None
            del buf[:REPLY.size + length + extra]
            entry = self.pending.pop(rid, None)
            if entry is None or entry[0].done():
                continue
            future, path = entry
            if status == OK:
                future.set_result(ThumbResult(payload, EXTENSIONS[ext],
                                              preview_path(path) if preview else None,
                                              width, height, checks))
            elif status == NEEDS_HEAVY:
                future.set_result(None)
            else:
                future.set_exception(
                    OSError(width, os.strerror(width), os.fspath(path)) if width
                    else OSError(payload.decode(errors="replace")))

    def process_exited(self) -> None:
        for future, _ in self.pending.values():
            if not future.done():
                future.set_exception(WorkerGone("the frame worker exited"))
        self.pending.clear()
        if not self.exited.done():
            self.exited.set_result(None)


class FrameWorkers:
    """A pool of worker processes, started with the first request; a request goes to
    the one with the least work queued. If a worker dies its requests run in a thread."""

    def __init__(self, count: int, size: int):
        self.count, self.size = max(1, count), size
        self._workers: list[_Worker] = []
        self._ids = itertools.count(1)
        self._starting: asyncio.Task | None = None
        self._start_after = 0.0   # after a failed start, threads for a while

    async def store(self, dest: Path, body: bytes) -> ThumbResult | None:
        """`store_frame` in a worker process."""
        return await self._run(STORE, dest, body)

    async def thumbnail(self, frame: Path, output_format: str | None) -> ThumbResult:
        """The thumbnail of the file `frame` (and an EXR's preview next to it), in a
        worker process; raises when it is not an image the coordinator reads."""
        result = await self._run(THUMBNAIL, frame, (output_format or "").encode())
        assert result is not None
        return result

    async def _run(self, op: int, path: Path, body: bytes) -> ThumbResult | None:
        worker = await self._pick()
        if worker is not None:
            rid = next(self._ids)
            try:
                return await worker.send(rid, op, path, body)
            except (WorkerGone, ConnectionError, RuntimeError):
                worker.pending.pop(rid, None)
                log.warning("a frame worker exited; doing its work in a thread")
        return await asyncio.to_thread(handle, op, path, body, self.size)

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
        env = worker_process.environment()
        for _ in range(how_many):
            try:
                _, worker = await asyncio.get_running_loop().subprocess_exec(
                    _Worker, sys.executable, "-m", "coordinator.frame_workers", str(self.size),
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
            except OSError as exc:
                log.warning("cannot start a frame worker (%s): its work is done in threads",
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
    """The worker's loop: one request at a time, until stdin closes."""
    while True:
        head = requests.read(REQUEST.size)
        if len(head) < REQUEST.size:
            return
        rid, op, path_length, body_length = REQUEST.unpack(head)
        path = Path(os.fsdecode(requests.read(path_length)))
        body = requests.read(body_length)
        try:
            thumb = handle(op, path, body, size)
            if thumb is None:
                reply = REPLY.pack(rid, NEEDS_HEAVY, 0, 0, 0, 0, 0, 0)
            else:
                checks = orjson.dumps(thumb.checks) if thumb.checks is not None else b""
                reply = REPLY.pack(rid, OK, EXTENSIONS.index(thumb.thumbnail_ext),
                                   thumb.preview is not None, thumb.width, thumb.height,
                                   len(thumb.thumbnail), len(checks)) + thumb.thumbnail + checks
        except Exception as exc:  # the coordinator reports it; this worker goes on
            text = f"{type(exc).__name__}: {exc}".encode()[:4000]
            errno = exc.errno if isinstance(exc, OSError) and exc.errno else 0
            reply = REPLY.pack(rid, FAILED, 0, 0, errno, 0, len(text), 0) + text
        replies.write(reply)
        replies.flush()


def main() -> None:
    replies = worker_process.begin()
    serve(int(sys.argv[1]), sys.stdin.buffer, replies)


if __name__ == "__main__":
    main()
