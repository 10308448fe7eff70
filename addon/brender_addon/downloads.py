"""Take a shot's frames home: its zip (`GET /api/shots/{id}/frames.zip`) streamed to
disk, unpacked into a folder, and every frame checked against the sha256 the farm
recorded for it. No bpy: `brender-submit --download` and the add-on both use it."""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .client import BrenderError, Client, Unreachable, _error_message

CHUNK = 1024 * 1024


@dataclass
class Download:
    folder: Path
    files: list[Path] = field(default_factory=list)
    verified: int = 0
    bytes: int = 0


def zip_url(shot_id: int, frames: str | None = None, pass_name: str | None = None) -> str:
    query = {k: v for k, v in (("frames", frames), ("pass", pass_name)) if v}
    path = f"/api/shots/{int(shot_id)}/frames.zip"
    return path + ("?" + urllib.parse.urlencode(query) if query else "")


def movie_url(farm_url: str, shot_id: int, ticket: str = "") -> str:
    """The preview movie's address, for a browser; with a read-only `ticket` when
    there is one (a farm started with --lock-reads answers 401 without it)."""
    url = f"{farm_url.strip().rstrip('/')}/api/shots/{int(shot_id)}/movie"
    return url + "?" + urllib.parse.urlencode({"ticket": ticket}) if ticket else url


def movie_link(client: Client, shot_id: int) -> str:
    """The movie's address a browser can open, on an open farm or a locked one: with a
    ticket fetched with the artist's token (never the token itself, which would end up
    in the browser's history and the server's logs). No token: the plain address
    (an open farm's). A coordinator from before tickets (404): the plain address."""
    if not client.token:
        return movie_url(client.url, shot_id)
    try:
        ticket = client.ticket()
    except BrenderError as err:
        if err.status != 404:
            raise
        ticket = ""
    return movie_url(client.url, shot_id, ticket)


def fetch_zip(client: Client, path: str, dest: Path,
              on_bytes: Callable[[int], None] | None = None) -> int:
    """Stream the zip at `path` to the file `dest`, a megabyte at a time."""
    req = urllib.request.Request(client.url.rstrip("/") + path, headers=(
        {"Authorization": f"Bearer {client.token}"} if client.token else {}))
    size = 0
    try:
        with urllib.request.urlopen(req, timeout=client.timeout) as resp, open(dest, "wb") as f:
            while block := resp.read(CHUNK):
                f.write(block)
                size += len(block)
                if on_bytes:
                    on_bytes(size)
    except urllib.error.HTTPError as err:
        raise BrenderError(_error_message(err), err.code) from None
    except (urllib.error.URLError, OSError) as err:
        raise Unreachable(f"Cannot download from {client.url}: "
                          f"{getattr(err, 'reason', err)}") from None
    return size


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def download_frames(client: Client, shot_id: int, folder: Path, frames: str | None = None,
                    pass_name: str | None = None,
                    on_bytes: Callable[[int], None] | None = None) -> Download:
    """The shot's landed frames (or `frames`, e.g. "1-10"; or the pass `pass_name` of
    their extra outputs, into a subfolder) into `folder`, each file's sha256 checked
    against the farm's record; BrenderError when one differs."""
    folder.mkdir(parents=True, exist_ok=True)
    listed = [f for f in client.frames(shot_id) if f.get("status") == "done" and f.get("name")]
    if pass_name is None:
        expected = {f["name"]: f["sha256"] for f in listed}
    else:
        expected = {}
        for f in listed:
            outputs = client._request(
                "GET", f"/api/shots/{int(shot_id)}/frames/{int(f['number'])}/outputs")
            for output in outputs["outputs"]:
                if output["kind"] == "pass" and output["name"] == pass_name:
                    stem = f["name"].rsplit(".", 1)[0]
                    expected[(stem, output["format"])] = output["sha256"]
    result = Download(folder)
    with tempfile.TemporaryDirectory(prefix=".brender-zip-", dir=folder) as tmp:
        archive = Path(tmp) / "frames.zip"
        result.bytes = fetch_zip(client, zip_url(shot_id, frames, pass_name), archive,
                                 on_bytes)
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                parts = info.filename.split("/")
                if len(parts) > (1 if pass_name is None else 2) or \
                        any(not p or p.startswith(".") or p == ".." for p in parts):
                    raise BrenderError(f"unexpected file in the download: {info.filename!r}")
                part = Path(tmp) / "part"
                with zf.open(info) as src, open(part, "wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
                digest = _sha256(part)
                name = parts[-1]
                if pass_name is None:
                    ok = expected.get(name) == digest
                else:
                    ok = digest in {sha for (stem, _), sha in expected.items()
                                    if name.rsplit(".", 1)[0] == stem}
                if not ok:
                    raise BrenderError(f"{info.filename} does not match the farm's sha256; "
                                       "download again")
                dest = folder.joinpath(*parts)
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(part, dest)
                result.files.append(dest)
                result.verified += 1
    return result
