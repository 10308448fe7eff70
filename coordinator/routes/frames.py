"""Frames: nodes upload them under their lease; everyone reads them and thumbnails."""
from __future__ import annotations

import logging
import re
from functools import partial
from pathlib import Path

from aiohttp import web

from .. import keys, render_spec, validation
from ..storage import Storage
from ..store import frames as frame_sql
from ..thumbnails import ThumbResult
from ..validation import OUTPUT_FORMATS

log = logging.getLogger("brender.frames")
routes = web.RouteTableDef()

ATTEMPT = re.compile(r"^[0-9a-f]{32}$")
FILE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
FILE_KINDS = ("frames", "thumbnails", "previews")
THUMBNAIL_NAME = re.compile(r"^frame_(?P<number>-?[0-9]{1,7})_thumbnail\.(?P<ext>jpg|png)$")


@routes.put("/api/attempts/{attempt_id}/frames/{number}")
async def upload_frame(request: web.Request) -> web.Response:
    """A node uploads one rendered frame; refused (409) if its lease is gone."""
    attempt_id, number = attempt_of(request), number_of(request)
    expected = validation.sha256(request.headers.get("X-Sha256"), "X-Sha256")
    render_time = _float_header(request, "X-Render-Time")
    fmt = request.headers.get("X-Output-Format")
    fmt = render_spec.output_format(fmt, "X-Output-Format") if fmt is not None else None
    app = request.app
    db, storage = app[keys.DB], app[keys.STORAGE]
    body = storage.temp_path("frame")
    made: list[Path] = [body]
    placed = False
    try:
        try:
            sha, size, thumbs = await receive_image(request, body, expected, fmt)
        except NotAnImage as exc:
            raise web.HTTPUnprocessableEntity(
                text=f"frame {number} is not an image the coordinator can read: {exc}") \
                from None
        if thumbs.preview is not None:
            made.append(thumbs.preview)
        upload = frame_sql.Upload(attempt_id, number, body, thumbs.thumbnail,
                                  thumbs.thumbnail_ext, thumbs.preview, sha, size, render_time,
                                  thumbs.width, thumbs.height, fmt)
        frame = await db.write(frame_sql.record, upload, OUTPUT_FORMATS,
                               partial(_place, storage), batched=True)
        placed = frame is not None
    except frame_sql.NotInJob:
        raise web.HTTPBadRequest(text=f"frame {number} is not part of this job") from None
    except frame_sql.StaleAttempt:
        raise web.HTTPConflict(text="this attempt no longer holds the job (it was requeued)") \
            from None
    finally:
        if not placed:
            for path in made:
                path.unlink(missing_ok=True)
    if frame is None:
        return web.json_response({"recorded": False, "reason": "frame already recorded"})
    app[keys.EVENTS].publish("frame", frame)
    app[keys.EVENTS].shot_changed(frame["shot_id"])
    return web.json_response({"recorded": True, "name": frame["name"]}, status=201)


class NotAnImage(Exception):
    """The body was received and written but is no image the coordinator reads."""

    def __init__(self, reason: str, sha: str, size: int):
        super().__init__(reason)
        self.sha, self.size = sha, size


def attempt_of(request: web.Request) -> str:
    attempt_id = request.match_info["attempt_id"]
    if not ATTEMPT.match(attempt_id):
        raise validation.ValidationError("attempt_id", "must be 32 hex digits")
    return attempt_id


def number_of(request: web.Request) -> int:
    return validation.whole_number(request.match_info["number"], "number",
                                   -validation.FRAME_LIMIT, validation.FRAME_LIMIT)


async def receive_image(request: web.Request, body: Path, expected: str,
                        output_format: str | None = None) -> tuple[str, int, ThumbResult]:
    """Receive an upload's body into `body` (in tmp), checked against its sha256 and
    written durably, and make its thumbnail (and an EXR's preview); NotAnImage when
    the body is not an image the coordinator reads (the body is still written).
    `output_format` (X-Output-Format) picks the image reader."""
    app = request.app
    sha, size, thumbs = await app[keys.STORAGE].receive(
        request.content.iter_chunked(256 * 1024), body, app[keys.CONFIG].max_upload_bytes,
        expected_sha=expected,
        # Frame workers thumbnail PNG and JPEG; other formats go to the pool.
        store=app[keys.FRAME_WORKERS].store if output_format in (None, "PNG", "JPEG")
        else None)
    if thumbs is None:
        try:
            thumbs = await app[keys.THUMBNAILER].make(body, body, output_format)
        except Exception as exc:
            raise NotAnImage(str(exc), sha, size) from None
    return sha, size, thumbs


def _place(storage: Storage, shot_id: int, name: str,
           up: frame_sql.Upload) -> tuple[str, str, str | None]:
    """Move a recorded frame's files into place (inside the record's transaction);
    returns the data-dir paths of frame, thumbnail (kept in the database) and preview.

    This runs on the event loop with the rest of the write: the lease fence needs the
    rename inside the transaction, and a rename (a folder is made once per shot) is a
    metadata change of tens of microseconds, less than a hand-off to a thread. Paths
    are plain strings here: pathlib cost more than the rename itself."""
    stem = name.rsplit(".", 1)[0]
    base = f"shots/{int(shot_id)}"
    frame = f"{base}/frames/{name}"
    storage.move_into(up.body, frame)
    preview = None
    if up.preview is not None:
        preview = f"{base}/previews/{stem}_preview.jpg"
        storage.move_into(up.preview, preview)
    return frame, f"{base}/thumbnails/{stem}_thumbnail.{up.thumbnail_ext}", preview


def _float_header(request: web.Request, name: str) -> float | None:
    raw = request.headers.get(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise validation.ValidationError(name, "must be a number") from None
    if not 0 <= value < 10**7:
        raise validation.ValidationError(name, "out of range")
    return value


@routes.get("/api/frames/latest")
async def latest_frame(request: web.Request) -> web.Response:
    """The last frame rendered anywhere on the farm, with its shot's name."""
    frame = await request.app[keys.DB].read(frame_sql.latest)
    if frame is None:
        raise web.HTTPNotFound(text="no frame has been rendered yet")
    return web.json_response(frame)


@routes.get("/files/shots/{shot_id}/{kind}/{name}")
async def shot_file(request: web.Request) -> web.StreamResponse:
    """A frame, thumbnail or preview file from the data dir."""
    shot_id = validation.positive_id(request.match_info["shot_id"], "shot_id")
    kind, name = request.match_info["kind"], request.match_info["name"]
    if kind not in FILE_KINDS or not FILE_NAME.match(name) or name.startswith("."):
        raise web.HTTPNotFound(text="no such file")
    immutable = {"Cache-Control": "public, max-age=31536000, immutable"}
    wanted = THUMBNAIL_NAME.match(name) if kind == "thumbnails" else None
    if wanted:
        stored = await request.app[keys.DB].read(frame_sql.thumbnail, shot_id,
                                                 int(wanted["number"]))
        if stored is not None and frame_sql.THUMBNAIL_TYPES[wanted["ext"]] == stored[0]:
            return web.Response(body=stored[1], content_type=stored[0], headers=immutable)
    # Frames and previews, and thumbnails made before they were kept in the database.
    path = request.app[keys.STORAGE].inside(f"shots/{shot_id}/{kind}/{name}")
    if not path.is_file():
        raise web.HTTPNotFound(text="no such file")
    return web.FileResponse(path, headers=immutable if kind != "frames" else None)
