"""Delivery's file work in a process of its own (`delivered_files.copy_batch`), driven
from the delivery thread.

Why a process: a copied frame is about ten system calls (open, create, sendfile, sync,
rename, close...). In a thread each one gives up the GIL and takes it back beside the
event loop, and the loop's own work a frame grew by as much as the copies cost
(benchmarks/README.md, "Issue 17, tenth pass"). In a process they take no turn with
the loop: a group of up to 512 frames costs the thread one request and one reply on a
pipe.

The protocol on the process's stdin and stdout: a request is a length (u32, big-endian)
and a pickle of (copies, links); its reply, a length and a pickle of each copy's error
in order (None: done), or of the exception that stopped the whole group. Pickle,
because both ends are this package, over a pipe nobody else holds.

If the process cannot start, or dies, the group is copied in the thread instead
(nothing is lost: a copy is atomic and is made again whole) and a new process is tried
a while later. The process ends when its stdin closes, or with the coordinator.
"""
from __future__ import annotations

import logging
import pickle
import signal
import struct
import subprocess
import sys
import time
from typing import IO, BinaryIO

from . import worker_process
from .delivered_files import Copy, copy_batch

log = logging.getLogger("brender.delivery")

LENGTH = struct.Struct("!I")
RESTART_AFTER = 30.0   # seconds of copies in the thread after a failed start or death


class CopierProcess:
    """`copy(copies, links)`: `copy_batch` in the process; used from one thread only."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None
        self._start_after = 0.0

    def copy(self, copies: list[Copy], links: bool) -> None:
        proc = self._running()
        if proc is not None:
            try:
                errors = self._ask(proc, copies, links)
            except (OSError, EOFError, pickle.UnpicklingError) as exc:
                log.warning("the delivery process failed (%s): copying in a thread", exc)
                self._stop(kill=True)
                self._start_after = time.monotonic() + RESTART_AFTER
            else:
                for copy, error in zip(copies, errors):
                    copy.error = error
                return
        copy_batch(copies, links)

    def close(self) -> None:
        self._stop(kill=False)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None \
            else None

    def _running(self) -> subprocess.Popen | None:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        self._proc = None
        if time.monotonic() < self._start_after:
            return None
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "coordinator.delivery_process"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=worker_process.environment())
        except OSError as exc:
            log.warning("cannot start the delivery process (%s): copying in a thread", exc)
            self._start_after = time.monotonic() + RESTART_AFTER
        return self._proc

    @staticmethod
    def _ask(proc: subprocess.Popen, copies: list[Copy], links: bool) -> list:
        assert proc.stdin is not None and proc.stdout is not None
        request = pickle.dumps((copies, links), protocol=pickle.HIGHEST_PROTOCOL)
        proc.stdin.write(LENGTH.pack(len(request)) + request)
        proc.stdin.flush()
        reply = pickle.loads(_read(proc.stdout))
        if isinstance(reply, Exception):
            raise reply
        if len(reply) != len(copies):
            raise EOFError("the delivery process answered for another group")
        return reply

    def _stop(self, kill: bool) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if kill:
            proc.kill()
        else:
            try:
                assert proc.stdin is not None
                proc.stdin.close()   # the process ends at the end of its input
            except OSError:
                pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _read(stream: IO[bytes]) -> bytes:
    head = stream.read(LENGTH.size)
    if len(head) < LENGTH.size:
        raise EOFError("the delivery process exited")
    size = LENGTH.unpack(head)[0]
    body = stream.read(size)
    if len(body) < size:
        raise EOFError("the delivery process exited mid-reply")
    return body


def serve(requests: BinaryIO, replies: BinaryIO) -> None:
    while True:
        try:
            copies, links = pickle.loads(_read(requests))
        except EOFError:
            return
        try:
            copy_batch(copies, links)
            reply: object = [copy.error for copy in copies]
        except Exception as exc:   # the group fails as a whole, as it would in a thread
            reply = RuntimeError(f"{type(exc).__name__}: {exc}")
        body = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        replies.write(LENGTH.pack(len(body)) + body)
        replies.flush()


def main() -> None:
    replies = worker_process.begin()
    # Ctrl-C in the coordinator's terminal reaches its whole group: the coordinator
    # ends this process by closing its input, after the group in hand.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    serve(sys.stdin.buffer, replies)


if __name__ == "__main__":
    main()
