"""Files under the data dir: blobs by sha256, frames, thumbnails; never outside it."""
from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import AsyncIterator

from .validation import SHA256

CHUNK = 256 * 1024


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

        The bytes go to a temp file in the data dir, are hashed on the way, fsynced,
        then renamed into place. Any failure (size, digest, disk full) leaves nothing.
        """
        fd, tmp_name = tempfile.mkstemp(dir=self.tmp, prefix="upload-")
        digest, size = hashlib.sha256(), 0
        try:
            with os.fdopen(fd, "wb") as f:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > max_bytes:
                        raise TooLarge(f"body is larger than {max_bytes} bytes")
                    digest.update(chunk)
                    f.write(chunk)
                f.flush()
                await asyncio.to_thread(os.fsync, f.fileno())
            sha = digest.hexdigest()
            if expected_sha is not None and sha != expected_sha:
                raise DigestMismatch(f"body sha256 is {sha}, expected {expected_sha}")
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp_name, dest)
            return sha, size
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise

    def delete_shot(self, shot_id: int) -> None:
        shutil.rmtree(self.root / "shots" / str(int(shot_id)), ignore_errors=True)
