"""HTTP client for the Brender coordinator, standard library only.

Blender's bundled Python has neither aiohttp nor requests, so the add-on and
`brender-submit` share this bpy-free module.
"""
from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from .protocol import transport

if TYPE_CHECKING:
    import ssl

CHUNK = 1 << 20


class BrenderError(Exception):
    """The coordinator refused a call or could not be reached."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class Unreachable(BrenderError):
    pass


class Unauthorized(BrenderError):
    pass


class Cancelled(BrenderError):
    """The caller's `cancelled()` answered True during an upload."""


class _ProgressReader:
    """A file wrapper for urllib's streamed body: counts bytes, honours cancel."""

    def __init__(self, f: Any, on_bytes: Callable[[int], None] | None,
                 cancelled: Callable[[], bool] | None):
        self._f = f
        self._on_bytes = on_bytes
        self._cancelled = cancelled

    def read(self, size: int = -1) -> bytes:
        if self._cancelled and self._cancelled():
            raise Cancelled("Upload cancelled")
        block = self._f.read(size)
        if block and self._on_bytes:
            self._on_bytes(len(block))
        return block


MISSING_BATCH = 10_000


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class Client:
    url: str
    token: str = ""          # an artist's (or admin's) token
    timeout: float = 30.0
    ca_file: str = ""        # verify an https:// coordinator against this too
    insecure: bool = False   # allow plain http:// to another machine

    def _context(self) -> "ssl.SSLContext | None":
        try:
            transport.check_url(self.url, self.insecure)
        except transport.InsecureURL as exc:
            raise BrenderError(str(exc)) from None
        if not self.url.lower().startswith("https:"):
            return None
        try:
            return transport.ssl_context(self.ca_file or None)
        except ImportError:
            raise BrenderError("this Python has no ssl module: it cannot reach an https:// "
                               "coordinator") from None
        except OSError as exc:
            raise BrenderError(f"cannot read the CA file {self.ca_file}: {exc}") from None

    def _request(self, method: str, path: str, body: Any = None, *,
                 data: Any = None, headers: dict | None = None,
                 raw: bool = False) -> Any:
        url = self.url.rstrip("/") + path
        hdrs = {"Accept": "application/json"}
        if self.token:
            hdrs["Authorization"] = f"Bearer {self.token}"
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
        context = self._context()
        try:
            with urllib.request.urlopen(req, timeout=self.timeout, context=context) as resp:
                payload = resp.read()
        except urllib.error.HTTPError as err:
            message = _error_message(err)
            if err.code == 401:
                raise Unauthorized(f"Wrong token: {message}", 401) from None
            raise BrenderError(message, err.code) from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise Unreachable(f"Cannot reach the coordinator at {self.url}: {reason}") from None
        if raw:
            return payload
        return json.loads(payload) if payload else None

    # -- farm -------------------------------------------------------------
    def version(self) -> dict:
        return self._request("GET", "/api/version")

    def check_token(self) -> dict:
        return self._request("GET", "/api/auth")

    def ticket(self) -> str:
        """A read-only ticket (about 10 minutes) for a link a browser opens: the
        token itself never goes into a URL."""
        return str(self._request("POST", "/api/tickets", {})["ticket"])

    # -- blobs ------------------------------------------------------------
    def missing_blobs(self, digests: Iterable[str]) -> list[str]:
        unique = sorted(set(digests))
        # The coordinator checks at most MISSING_BATCH digests per call.
        return [d for start in range(0, len(unique), MISSING_BATCH)
                for d in self._request("POST", "/api/blobs/missing",
                                       {"sha256": unique[start:start + MISSING_BATCH]})["missing"]]

    def upload_blob(self, path: str | Path, digest: str) -> None:
        path = Path(path)
        size = path.stat().st_size
        with open(path, "rb") as f:
            self._request("PUT", f"/api/blobs/{digest}", data=f,
                          headers={"Content-Type": "application/octet-stream",
                                   "Content-Length": str(size)})

    def upload_blob_progress(self, path: str | Path, digest: str,
                             on_bytes: Callable[[int], None] | None = None,
                             cancelled: Callable[[], bool] | None = None) -> None:
        """Like `upload_blob`, reporting each block sent to `on_bytes(n)` and
        raising `Cancelled` as soon as `cancelled()` answers True."""
        path = Path(path)
        size = path.stat().st_size
        with open(path, "rb") as f:
            self._request("PUT", f"/api/blobs/{digest}", data=_ProgressReader(f, on_bytes, cancelled),
                          headers={"Content-Type": "application/octet-stream",
                                   "Content-Length": str(size)})

    def upload_missing(self, files: list[dict], root: str | Path,
                       progress: Callable[[int, int], None] | None = None,
                       cancelled: Callable[[], bool] | None = None) -> tuple[int, int]:
        """Upload the manifest's files the coordinator lacks, with byte-level
        `progress(sent, total)`; `Cancelled` when `cancelled()` answers True.

        Returns (files sent, bytes sent).
        """
        missing = set(self.missing_blobs(f["sha256"] for f in files))
        todo: dict[str, dict] = {}
        for f in files:
            if f["sha256"] in missing and f["sha256"] not in todo:
                todo[f["sha256"]] = f
        total = sum(f["size"] for f in todo.values())
        sent = 0

        def on_bytes(n: int) -> None:
            nonlocal sent
            sent += n
            if progress:
                progress(sent, total)

        if progress:
            progress(0, total)
        for digest, f in todo.items():
            if cancelled and cancelled():
                raise Cancelled("Upload cancelled")
            self.upload_blob_progress(Path(root) / f["path"], digest, on_bytes, cancelled)
        return len(todo), sent

    def upload_files(self, files: list[dict], root: str | Path,
                     progress: Callable[[int, int], None] | None = None,
                     cancelled: Callable[[], bool] | None = None) -> int:
        """Upload each file the coordinator lacks; `files` is the shot's manifest.

        Returns the number of bytes sent. Files the coordinator already has
        (same sha256) are skipped.
        """
        missing = set(self.missing_blobs(f["sha256"] for f in files))
        todo = [f for f in files if f["sha256"] in missing]
        total = sum(f["size"] for f in todo)
        sent = 0
        seen: set[str] = set()
        for f in todo:
            if cancelled and cancelled():
                raise BrenderError("Upload cancelled")
            if f["sha256"] in seen:
                continue
            seen.add(f["sha256"])
            self.upload_blob(Path(root) / f["path"], f["sha256"])
            sent += f["size"]
            if progress:
                progress(sent, total)
        return sent

    # -- shots ------------------------------------------------------------
    def create_shot(self, spec: dict) -> dict:
        return self._request("POST", "/api/shots", spec)

    def shot(self, shot_id: int) -> dict:
        return self._request("GET", f"/api/shots/{int(shot_id)}")

    def frames(self, shot_id: int) -> list[dict]:
        return self._request("GET", f"/api/shots/{int(shot_id)}/frames")["frames"]

    def latest_frame(self) -> dict | None:
        try:
            return self._request("GET", "/api/frames/latest")
        except BrenderError as err:
            if err.status == 404:
                return None
            raise

    def download(self, url_path: str) -> bytes:
        return self._request("GET", url_path, raw=True)

    def frames_page(self, shot_id: int, offset: int = 0, limit: int = 100) -> dict:
        """`{"frames": [...], "total": n}` for one page of a shot's frames."""
        query = urllib.parse.urlencode({"offset": int(offset), "limit": int(limit)})
        return self._request("GET", f"/api/shots/{int(shot_id)}/frames?{query}")

    def download_url(self, url: str) -> bytes:
        """Download a URL the coordinator gave (absolute, or a path on it)."""
        parts = urllib.parse.urlsplit(url)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        return self.download(path)

    def suspicious_frames(self, shot_id: int) -> list[dict]:
        """The shot's frames the farm's checks flagged ([] from a farm without checks)."""
        try:
            return self._request("GET", f"/api/shots/{int(shot_id)}/suspicious")["frames"]
        except BrenderError as err:
            if err.status == 404:
                return []
            raise

    def shot_action(self, shot_id: int, action: str) -> dict:
        return self._request("POST", f"/api/shots/{int(shot_id)}/{urllib.parse.quote(action)}", {})


def _error_message(err: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(err.read() or b"{}")
        return str(body.get("error") or err.reason)
    except (ValueError, OSError):
        return f"HTTP {err.code} {err.reason}"
