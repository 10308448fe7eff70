"""The frame path: every rendered file a node uploads goes through here, in order:

  receive   the body, streamed (paced, size-capped) by `Storage.receive`
  check     its sha256 and size, and that it is an image the coordinator reads
  write     to `tmp/`, fsynced, by a light frame worker (a storage thread when the
            body is big or said to be neither PNG nor JPEG)
  thumbnail PNG/JPEG up to ~4 megapixels by the same light worker, in the same
            request; EXR (tone-mapped, with a browser preview), large frames and
            other formats by the heavy pool (`frame_workers.py` says why two pools)
  place     renamed from `tmp/` into the shot's folder
  record    the row, its thumbnail and the shot's counters
  announce  the farm's `frame_landed` (frames only: outputs come before their frame)

Place and record are one step: the rename runs inside the record's transaction,
after the lease check, so a stale attempt never touches a frame on disk (the lease
fence); the transaction is shared with the other frames arriving then
(`batched=True`). Whatever fails on the way, nothing of the upload is left in
`tmp/` or the shot's folder. The routes are thin HTTP adapters: they parse the
request and map the outcomes: the record (201), `StaleAttempt` (409), `NotInJob`
(400), `NotAnImage` (422); a full disk is an `OSError` (507, in the middleware),
a bad digest `DigestMismatch`, a big body `TooLarge`.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, AsyncIterator, Callable

from brender_protocol.formats import STILL_FORMATS, frame_stem

from .frame_workers import FrameWorkers
from .storage import Storage
from .store import frames as frame_sql
from .store import outputs as output_sql
from .store.frames import NotInJob, StaleAttempt
from .thumbnails import ThumbResult, preview_path
from .validation import OUTPUT_FORMATS

if TYPE_CHECKING:
    from .database import Database

__all__ = ["FramePipeline", "NotAnImage", "NotInJob", "StaleAttempt"]

# Every still format Blender writes: a File Output node may use any of them.
OUTPUT_EXTENSIONS = STILL_FORMATS
UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
# Formats a light frame worker thumbnails as it writes them (None: not said, sniffed).
LIGHT_FORMATS = (None, "PNG", "JPEG")


class NotAnImage(Exception):
    """The body was received whole but is no image the coordinator reads."""


@dataclass
class _Received:
    """An upload written to `tmp/`: its files there, digest, size and thumbnail."""
    body: Path
    sha256: str
    size: int
    thumbs: ThumbResult | None
    unreadable: str | None   # why it is not an image, when it is not

    def discard(self) -> None:
        self.body.unlink(missing_ok=True)
        preview_path(self.body).unlink(missing_ok=True)


class FramePipeline:
    def __init__(self, storage: Storage, db: Database, announce_frame: Callable[[dict], None],
                 max_bytes: int, thumbnail_size: int, light_workers: int,
                 heavy_workers: int):
        self.storage, self.db, self.max_bytes = storage, db, max_bytes
        self._announce = announce_frame
        # Shared farms: the frame's NOTIFY (channel, payload), sent in its record's
        # transaction (store/frames.record_told).
        self.tell_peers: Callable[[dict], tuple[str, str] | None] | None = None
        self.light = FrameWorkers(light_workers, thumbnail_size)
        self.heavy = FrameWorkers(heavy_workers, thumbnail_size)

    async def close(self) -> None:
        await self.light.close()
        await self.heavy.close()

    async def frame(self, chunks: AsyncIterator[bytes], attempt_id: str, number: int,
                    expected_sha: str, render_time: float | None,
                    output_format: str | None) -> dict | None:
        """A rendered frame, through to its `frame` event: returns the recorded frame,
        or None when that frame was already recorded (nothing is kept)."""
        got = await self._receive(chunks, "frame", expected_sha, output_format)
        try:
            if got.thumbs is None:
                raise NotAnImage(got.unreadable)
            t = got.thumbs
            upload = frame_sql.Upload(attempt_id, number, got.body, t.thumbnail,
                                      t.thumbnail_ext, t.preview, got.sha256, got.size,
                                      render_time, t.width, t.height, output_format,
                                      t.checks)
            if self.tell_peers is None:
                frame = await self.db.write(frame_sql.record, upload, OUTPUT_FORMATS,
                                            self._place_frame, batched=True)
            else:
                frame = await self.db.write(frame_sql.record_told, upload, OUTPUT_FORMATS,
                                            self._place_frame, self.tell_peers, batched=True)
        except BaseException:
            got.discard()
            raise
        if frame is None:
            got.discard()
            return None
        self._announce(frame)
        return frame

    async def output(self, chunks: AsyncIterator[bytes], attempt_id: str, number: int,
                     kind: str, name: str, output_format: str, expected_sha: str) -> dict:
        """An extra output of a frame (a pass or a view): returns the recorded output.
        One that is not an image the coordinator reads is kept all the same (no
        thumbnail); the same (frame, kind, name) again replaces the earlier one."""
        # Outputs are sniffed, not read by their format: Blender writes more formats
        # than the readers know, and a File Output node's may be unknown ("").
        got = await self._receive(chunks, "output", expected_sha, None)
        t = got.thumbs
        try:
            upload = output_sql.OutputUpload(
                attempt_id, number, kind, name, output_format, got.body, got.sha256,
                got.size, t.thumbnail if t else None, t.thumbnail_ext if t else None,
                t.preview if t else None, t.width if t else None, t.height if t else None)
            output, replaced = await self.db.write(output_sql.record, upload,
                                                   self._place_output)
        except BaseException:
            got.discard()
            raise
        for old in replaced:
            self.storage.inside(old).unlink(missing_ok=True)
        return output

    async def _receive(self, chunks: AsyncIterator[bytes], prefix: str, expected_sha: str,
                       output_format: str | None) -> _Received:
        """Receive, check, write and thumbnail: the steps before the lease matters."""
        body = self.storage.temp_path(prefix)
        got = _Received(body, "", 0, None, None)
        try:
            got.sha256, got.size, got.thumbs = await self.storage.receive(
                chunks, body, self.max_bytes, expected_sha=expected_sha,
                store=self.light.store if output_format in LIGHT_FORMATS else None)
            if got.thumbs is None:
                try:
                    got.thumbs = await self.heavy.thumbnail(body, output_format)
                except Exception as exc:  # the worker's reason, or the reader's
                    got.unreadable = str(exc)
        except BaseException:
            got.discard()
            raise
        return got

    def _place_frame(self, shot_id: int, name: str,
                     up: frame_sql.Upload) -> tuple[str, str, str | None]:
        """Move a recorded frame's files into place (inside the record's transaction);
        returns the data-dir paths of frame, thumbnail (kept in the database) and preview.

        This runs on the event loop with the rest of the write: the lease fence needs
        the rename inside the transaction, and a rename (a folder is made once per
        shot) is a metadata change of tens of microseconds, less than a hand-off to a
        thread. Paths are plain strings here: pathlib cost more than the rename itself."""
        stem = name.rsplit(".", 1)[0]
        base = f"shots/{int(shot_id)}"
        frame = f"{base}/frames/{name}"
        preview = self._move(up.body, frame, up.preview, f"{base}/previews/{stem}_preview.jpg")
        return frame, f"{base}/thumbnails/{stem}_thumbnail.{up.thumbnail_ext}", preview

    def _place_output(self, shot_id: int,
                      up: output_sql.OutputUpload) -> tuple[str, str | None]:
        """Move an output's files into place (inside the record's transaction). The file
        name is made from the output's name, cut to safe characters, and a digest of the
        name, so that names differing only in other characters never share a file."""
        digest = hashlib.sha1(f"{up.kind}/{up.name}".encode()).hexdigest()[:10]
        safe = UNSAFE.sub("_", up.name).strip("._")[:80] or up.kind
        frame = frame_stem(up.number)
        stem = f"shots/{int(shot_id)}/outputs/{frame}/{up.kind}-{safe}-{digest}"
        path = f"{stem}.{OUTPUT_EXTENSIONS.get(up.format, 'bin')}"
        return path, self._move(up.body, path, up.preview, f"{stem}_preview.jpg")

    def _move(self, body: Path, path: str, preview: Path | None,
              preview_path: str) -> str | None:
        """Move an upload and its preview (if it has one) to their data-dir paths;
        returns the preview's path."""
        self.storage.move_into(body, path)
        if preview is None:
            return None
        self.storage.move_into(preview, preview_path)
        return preview_path
