"""Files under the data dir: blobs by sha256, frames, thumbnails; never outside it."""
from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import AsyncIterator, BinaryIO

from .validation import SHA256

CHUNK = 256 * 1024
IN_MEMORY = 8 * 1024 * 1024


class TooLarge(Exception):
    pass


class DigestMismatch(Exception):
    pass


class OutsideDataDir(Exception):
    pass


class Storage:
    def __init__(self, root: Path):
        self.root = root.resolve()
        self.tmp = self.root / "tmp"
        self.blobs = self.root / "blobs"
        for d in (self.root, self.tmp, self.blobs, self.root / "shots"):
            d.mkdir(parents=True, exist_ok=True)
        # Half-written uploads from a previous run are never frames: drop them.
        for leftover in self.tmp.iterdir():
            leftover.unlink(missing_ok=True)

    def inside(self, relative: str | Path) -> Path:
        """Resolve a data-dir-relative path, refusing anything that escapes the root."""
        path = (self.root / relative).resolve()
        if path != self.root and self.root not in path.parents:
            raise OutsideDataDir(str(relative))
        return path

    def relative(self, path: Path) -> str:
        return path.resolve().relative_to(self.root).as_posix()

    def blob_path(self, sha: str) -> Path:
        if not SHA256.match(sha):
            raise OutsideDataDir(sha)
        return self.blobs / sha[:2] / sha

    def has_blob(self, sha: str) -> bool:
        return self.blob_path(sha).is_file()

    def shot_dir(self, shot_id: int, kind: str) -> Path:
        return self.root / "shots" / str(int(shot_id)) / kind

    async def receive(self, chunks: AsyncIterator[bytes], dest: Path, max_bytes: int,
                      expected_sha: str | None = None) -> tuple[str, int]:
        """Stream a body to `dest` atomically; the file appears whole or not at all.

        The bytes are hashed on the way and go to a temp file in the data dir, which
        is fsynced, then renamed into place. Any failure (size, digest, disk full)
        leaves nothing. Small bodies (most frames) are held in memory and written by
        one call in a worker thread: file-system calls stay off the event loop.
        """
        digest, size = hashlib.sha256(), 0
        pending = bytearray()
        spill: BinaryIO | None = None
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise TooLarge(f"body is larger than {max_bytes} bytes")
                digest.update(chunk)
                pending += chunk
                if len(pending) >= IN_MEMORY:
                    spill = spill or await asyncio.to_thread(self._open_temp)
                    await asyncio.to_thread(spill.write, bytes(pending))
                    pending.clear()
            sha = digest.hexdigest()
            if expected_sha is not None and sha != expected_sha:
                raise DigestMismatch(f"body sha256 is {sha}, expected {expected_sha}")
            await asyncio.to_thread(self._finish_temp, spill, bytes(pending), dest)
            return sha, size
        except BaseException:
            if spill is not None:
                spill.close()
                Path(spill.name).unlink(missing_ok=True)
            raise

    def _open_temp(self) -> BinaryIO:
        return tempfile.NamedTemporaryFile(dir=self.tmp, prefix="upload-", delete=False)

    def _finish_temp(self, spill: BinaryIO | None, rest: bytes, dest: Path) -> None:
        f = spill or self._open_temp()
        try:
            with f:
                f.write(rest)
                f.flush()
                os.fsync(f.fileno())
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(f.name, dest)
        except BaseException:
            Path(f.name).unlink(missing_ok=True)
            raise

    def delete_shot(self, shot_id: int) -> None:
        shutil.rmtree(self.root / "shots" / str(int(shot_id)), ignore_errors=True)
