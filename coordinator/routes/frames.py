"""Frames: nodes upload them under their lease; everyone reads them and thumbnails."""
from __future__ import annotations

import logging
import re

from aiohttp import web

from .. import keys, validation
from ..store import frames as frame_sql
from ..validation import OUTPUT_FORMATS

log = logging.getLogger("brender.frames")
routes = web.RouteTableDef()

ATTEMPT = re.compile(r"^[0-9a-f]{32}$")
FILE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
FILE_KINDS = ("frames", "thumbnails", "previews")


def frame_name(number: int, output_format: str) -> str:
    sign = "-" if number < 0 else ""
    return f"frame_{sign}{abs(number):06d}.{OUTPUT_FORMATS[output_format]}"


@routes.put("/api/attempts/{attempt_id}/frames/{number}")
async def upload_frame(request: web.Request) -> web.Response:
    """A node uploads one rendered frame; refused (409) if its lease is gone."""
    attempt_id = request.match_info["attempt_id"]
    if not ATTEMPT.match(attempt_id):
        raise validation.ValidationError("attempt_id", "must be 32 hex digits")
    raw = request.match_info["number"]
    if not re.fullmatch(r"-?\d{1,7}", raw):
        raise validation.ValidationError("number", "must be a whole number")
    number = int(raw)
    expected = validation.sha256(request.headers.get("X-Sha256"), "X-Sha256")
    render_time = _float_header(request, "X-Render-Time")
    app = request.app
    db, storage, config = app[keys.DB], app[keys.STORAGE], app[keys.CONFIG]
    try:
        lease = await frame_sql.check_lease(db, attempt_id, number)
    except frame_sql.NotInJob:
        raise web.HTTPBadRequest(text=f"frame {number} is not part of this job") from None
    except frame_sql.StaleAttempt:
        raise web.HTTPConflict(text="this attempt no longer holds the job (it was requeued)") \
            from None
    if lease["status"] == "done":
        return web.json_response({"recorded": False, "reason": "frame already recorded"})
    shot = await db.fetchone("SELECT output_format FROM shots WHERE id = ?", (lease["shot_id"],))
    name = frame_name(number, shot["output_format"])
    frames_dir = storage.shot_dir(lease["shot_id"], "frames")
    tmp = storage.tmp / f"frame-{attempt_id}-{number}"
    sha, size = await storage.receive(request.content.iter_chunked(256 * 1024), tmp,
                                      config.max_upload_bytes, expected_sha=expected)
    dest = frames_dir / name
    try:
        lease, new = await frame_sql.record(
            db, attempt_id, number, name=name, path=storage.relative(frames_dir) + "/" + name,
            sha256=sha, size=size, render_time=render_time, width=None, height=None,
            place=lambda: _place(tmp, dest))
    except frame_sql.StaleAttempt:
        raise web.HTTPConflict(text="this attempt no longer holds the job (it was requeued)") \
            from None
    finally:
        tmp.unlink(missing_ok=True)
    if new:
        await publish_frame(app, lease["shot_id"], number)
    return web.json_response({"recorded": new, "name": name}, status=201 if new else 200)


def _place(tmp, dest) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp.replace(dest)


async def publish_frame(app: web.Application, shot_id: int, number: int) -> None:
    """Make the thumbnail (the server's duty), then tell every dashboard."""
    db, storage = app[keys.DB], app[keys.STORAGE]
    row = await db.fetchone("SELECT path FROM frames WHERE shot_id = ? AND number = ?",
                            (shot_id, number))
    if row is None:
        return
    try:
        result = await app[keys.THUMBNAILER].make(
            storage.inside(row["path"]), storage.shot_dir(shot_id, "thumbnails"),
            storage.shot_dir(shot_id, "previews"))
    except Exception as exc:  # a corrupt image must not take the upload down
        log.error("thumbnail failed for shot %s frame %s: %s", shot_id, number, exc)
        return
    await frame_sql.set_images(
        db, shot_id, number, storage.relative(result.thumbnail),
        storage.relative(result.preview) if result.preview else None,
        result.width, result.height)
    frame = await frame_sql.get(db, shot_id, number)
    if frame:
        shot = await db.fetchone("SELECT name FROM shots WHERE id = ?", (shot_id,))
        frame["shot_name"] = shot["name"] if shot else None
        app[keys.EVENTS].publish("frame", frame)
        app[keys.EVENTS].shot_changed(shot_id)


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
    frame = await frame_sql.latest(request.app[keys.DB])
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
    storage = request.app[keys.STORAGE]
    path = storage.inside(f"shots/{shot_id}/{kind}/{name}")
    if not path.is_file():
        raise web.HTTPNotFound(text="no such file")
    return web.FileResponse(path, headers={"Cache-Control": "public, max-age=31536000, immutable"}
                            if kind != "frames" else None)
