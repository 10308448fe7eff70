"""Frames: nodes upload them under their lease; everyone reads them and thumbnails."""
from __future__ import annotations

import re
from typing import AsyncIterator

from aiohttp import web

from .. import keys, render_spec, validation
from ..frame_pipeline import NotAnImage, NotInJob, StaleAttempt
from ..store import frames as frame_sql

routes = web.RouteTableDef()
STALE = "this attempt no longer holds the job (it was requeued)"

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
    try:
        frame = await request.app[keys.FRAME_PIPELINE].frame(
            body_of(request), attempt_id, number, expected, render_time, fmt)
    except NotAnImage as exc:
        raise web.HTTPUnprocessableEntity(
            text=f"frame {number} is not an image the coordinator can read: {exc}") from None
    except NotInJob:
        raise web.HTTPBadRequest(text=f"frame {number} is not part of this job") from None
    except StaleAttempt:
        raise web.HTTPConflict(text=STALE) from None
    if frame is None:
        return web.json_response({"recorded": False, "reason": "frame already recorded"})
    return web.json_response({"recorded": True, "name": frame["name"]}, status=201)


def attempt_of(request: web.Request) -> str:
    attempt_id = request.match_info["attempt_id"]
    if not ATTEMPT.match(attempt_id):
        raise validation.ValidationError("attempt_id", "must be 32 hex digits")
    return attempt_id


def number_of(request: web.Request) -> int:
    return validation.whole_number(request.match_info["number"], "number",
                                   -validation.FRAME_LIMIT, validation.FRAME_LIMIT)


def body_of(request: web.Request) -> AsyncIterator[bytes]:
    """An upload's body, as the frame pipeline receives it."""
    return request.content.iter_chunked(256 * 1024)


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
