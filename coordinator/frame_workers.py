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
import sys
import time
from pathlib import Path
from typing import BinaryIO

from .thumbnails import ThumbResult, make_in_thread

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
    return make_in_thread(body, size)


class WorkerGone(Exception):
    pass


class _Worker:
    def __init__(self, proc: asyncio.subprocess.Process):
        self.proc = proc
        self.pending: dict[int, asyncio.Future] = {}
        self.reader = asyncio.create_task(self._read_replies(), name="frame-worker-replies")

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None and not self.reader.done()

    async def _read_replies(self) -> None:
        out = self.proc.stdout
        assert out is not None
        try:
            while True:
                head = await out.readexactly(REPLY.size)
                rid, status, ext, width, height, length = REPLY.unpack(head)
                payload = await out.readexactly(length) if length else b""
                future = self.pending.pop(rid, None)
                if future is None or future.done():
                    continue
                if status == OK:
                    future.set_result(ThumbResult(payload, EXTENSIONS[ext], None, width, height))
                elif status == NEEDS_POOL:
                    future.set_result(None)
                else:
                    future.set_exception(OSError(payload.decode(errors="replace")))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            for future in self.pending.values():
                if not future.done():
                    future.set_exception(WorkerGone("the frame worker exited"))
            self.pending.clear()


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
            future = asyncio.get_running_loop().create_future()
            worker.pending[rid] = future
            path = os.fsencode(dest)
            stdin = worker.proc.stdin
            assert stdin is not None
            try:
                stdin.write(REQUEST.pack(rid, len(path), len(body)) + path)
                stdin.write(body)
                await stdin.drain()   # waits only when the pipe is full
                return await future
            except (WorkerGone, ConnectionError):
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
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "coordinator.frame_workers", str(self.size),
                    stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env)
            except OSError as exc:
                log.warning("cannot start a frame worker (%s): frames are written in threads",
                            exc)
                self._start_after = time.monotonic() + 30
                return
            self._workers.append(_Worker(proc))

    async def close(self) -> None:
        workers, self._workers = self._workers, []
        for worker in workers:
            if worker.proc.stdin is not None:
                worker.proc.stdin.close()
        for worker in workers:
            try:
                await asyncio.wait_for(worker.proc.wait(), 5)
            except asyncio.TimeoutError:
                worker.proc.kill()
                await worker.proc.wait()
            await asyncio.gather(worker.reader, return_exceptions=True)


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
