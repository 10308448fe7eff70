"""The node's file cache: each blob downloaded once, verified by its sha256."""
from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import aiohttp


class CacheError(Exception):
    pass


class BlobCache:
    def __init__(self, root: Path):
        self.root = root
        self.blobs = root / "blobs"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self._locks: dict[str, asyncio.Lock] = {}

    def path(self, sha: str) -> Path:
        return self.blobs / sha[:2] / sha

    async def ensure(self, http: aiohttp.ClientSession, base_url: str, files: list[dict]) -> int:
        """Download every blob we lack, in parallel, each verified by its sha256;
        returns how many were downloaded."""
        todo = {f["sha256"] for f in files if not self.path(f["sha256"]).is_file()}
        await asyncio.gather(*(self._fetch(http, base_url, sha) for sha in todo))
        return len(todo)

    async def _fetch(self, http: aiohttp.ClientSession, base_url: str, sha: str) -> None:
        lock = self._locks.setdefault(sha, asyncio.Lock())
        async with lock:
            dest = self.path(sha)
            if dest.is_file():
                return
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{sha}.part")
            digest = hashlib.sha256()
            try:
                async with http.get(f"{base_url}/api/blobs/{sha}") as resp:
                    if resp.status != 200:
                        raise CacheError(f"download of {sha[:12]} failed: HTTP {resp.status}")
                    with open(tmp, "wb") as f:
                        async for chunk in resp.content.iter_chunked(1 << 20):
                            digest.update(chunk)
                            f.write(chunk)
                if digest.hexdigest() != sha:
                    raise CacheError(f"download of {sha[:12]} was corrupt")
                os.replace(tmp, dest)
            finally:
                tmp.unlink(missing_ok=True)
