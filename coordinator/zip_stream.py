"""A zip of a shot's frames, written to the HTTP response as it is made.

`zipfile` writes to a file object that cannot seek (each entry's sizes and CRC follow
its data, zip64 where needed), here one that hands its bytes to the response on the
event loop and waits until they are sent: what is held is one buffer, whatever the
shot's size. Entries are stored, not compressed (frames are compressed images
already), and files are read in a worker thread, a page of entries at a time.
"""
from __future__ import annotations

import asyncio
import io
import logging
import os
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator

from aiohttp import web

log = logging.getLogger("brender.downloads")

READ_SIZE = 4 * 1024 * 1024
FLUSH_AT = 1024 * 1024


@dataclass
class Entry:
    """One file of the zip: where it is and the name it gets."""
    path: Path
    name: str
    size: int


class ResponseWriter(io.RawIOBase):
    """A write-only, unseekable file whose bytes go to `response`; used from a worker
    thread, each flush waits until the loop has sent them (the client sets the pace)."""

    def __init__(self, response: web.StreamResponse, loop: asyncio.AbstractEventLoop):
        self.response = response
        self.loop = loop
        self.buffer = bytearray()
        self.sent = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        if not self.buffer and len(data) >= FLUSH_AT and isinstance(data, bytes):
            self._send(data)   # a file's block: sent as it is, no copy
            return len(data)
        self.buffer += data
        if len(self.buffer) >= FLUSH_AT:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self.buffer:
            chunk, self.buffer = bytes(self.buffer), bytearray()
            self._send(chunk)

    def _send(self, chunk: bytes) -> None:
        asyncio.run_coroutine_threadsafe(self.response.write(chunk), self.loop).result()
        self.sent += len(chunk)


def _add(archive: zipfile.ZipFile, entries: list[Entry], when: tuple) -> None:
    for entry in entries:
        try:
            src = open(entry.path, "rb")
        except OSError as exc:  # removed under us (the shot deleted): leave it out
            log.warning("zip: %s left out: %s", entry.name, exc)
            continue
        with src:
            size = os.fstat(src.fileno()).st_size
            info = zipfile.ZipInfo(entry.name, when)
            info.compress_type = zipfile.ZIP_STORED
            info.file_size = size
            info.external_attr = 0o644 << 16
            with archive.open(info, "w") as dest:
                while block := src.read(READ_SIZE):
                    dest.write(block)


async def stream_zip(request: web.Request, filename: str,
                     pages: AsyncIterator[list[Entry]]) -> web.StreamResponse:
    """Send the entries of `pages` as one zip named `filename`."""
    response = web.StreamResponse(headers={
        "Content-Type": "application/zip",
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Cache-Control": "no-store"})
    await response.prepare(request)
    loop = asyncio.get_running_loop()
    writer = ResponseWriter(response, loop)
    archive = zipfile.ZipFile(writer, "w", zipfile.ZIP_STORED, allowZip64=True)
    when = time.localtime()[:6]
    async for page in pages:
        await asyncio.to_thread(_add, archive, page, when)
    await asyncio.to_thread(_close, archive, writer)
    await response.write_eof()
    return response


def _close(archive: zipfile.ZipFile, writer: ResponseWriter) -> None:
    archive.close()   # the central directory
    writer.flush()
