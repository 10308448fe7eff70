"""Extra outputs of frames (compositor passes, multiview views): nodes upload them
under their lease, before the frame; everyone lists and downloads them."""
from __future__ import annotations

import re

from aiohttp import web
from brender_protocol.text import CONTROL

from .. import keys, validation
from ..frame_pipeline import OUTPUT_EXTENSIONS, UNSAFE, NotInJob, StaleAttempt
from ..store import outputs as output_sql
from .frames import STALE, attempt_of, body_of, number_of
from .shots import shot_or_404

routes = web.RouteTableDef()

KINDS = ("pass", "view")
INVALID_TEXT = re.compile("[\ufffd\ud800-\udfff]")  # undecodable bytes, lone surrogates
FILE_PARTS = ("file", "thumbnail", "preview")


def _kind_name_format(request: web.Request) -> tuple[str, str, str]:
    kind = request.query.get("kind")
    if kind not in KINDS:
        raise validation.ValidationError("kind", f"must be one of {', '.join(KINDS)}")
    name = request.query.get("name")
    if not name or len(name) > 200:
        raise validation.ValidationError("name", "must be 1 to 200 characters")
    if CONTROL.search(name) or INVALID_TEXT.search(name):
        raise validation.ValidationError("name", "must be valid text without control characters")
    fmt = request.headers.get("X-Output-Format", "")
    if fmt and fmt not in OUTPUT_EXTENSIONS:
        raise validation.ValidationError("X-Output-Format",
                                         f"must be one of {', '.join(OUTPUT_EXTENSIONS)}")
    return kind, name, fmt


@routes.put("/api/attempts/{attempt_id}/frames/{number}/outputs")
async def upload_output(request: web.Request) -> web.Response:
    """A node uploads one extra output of a frame (`?kind=pass|view&name=`), before the
    frame itself; refused (409) if its lease is gone. The same name again replaces it."""
    attempt_id, number = attempt_of(request), number_of(request)
    kind, name, fmt = _kind_name_format(request)
    expected = validation.sha256(request.headers.get("X-Sha256"), "X-Sha256")
    try:
        output = await request.app[keys.FRAME_PIPELINE].output(
            body_of(request), attempt_id, number, kind, name, fmt, expected)
    except NotInJob:
        raise web.HTTPBadRequest(text=f"frame {number} is not part of this job") from None
    except StaleAttempt:
        raise web.HTTPConflict(text=STALE) from None
    request.app[keys.FARM].landed.output_landed(output)
    return web.json_response(output, status=201)


@routes.get("/api/shots/{shot_id}/frames/{number}/outputs")
async def frame_outputs(request: web.Request) -> web.Response:
    """A frame's extra outputs: kind, name, format, size, sha256 and their file URLs."""
    shot = await shot_or_404(request)
    number = number_of(request)
    outputs = await request.app[keys.DB].read(output_sql.for_frame, shot["id"], number)
    return web.json_response({"outputs": outputs})


@routes.get("/files/shots/{shot_id}/outputs/{output_id}/{part}")
async def output_file(request: web.Request) -> web.StreamResponse:
    """An extra output's `file` (download), `thumbnail`, or `preview` (EXR tone-mapped)."""
    shot_id = validation.positive_id(request.match_info["shot_id"], "shot_id")
    output_id = validation.positive_id(request.match_info["output_id"], "output_id")
    part = request.match_info["part"]
    if part not in FILE_PARTS:
        raise web.HTTPNotFound(text="no such file")
    stored = await request.app[keys.DB].read(output_sql.stored, shot_id, output_id)
    if stored is None:
        raise web.HTTPNotFound(text="no such output")
    if part == "thumbnail":
        if stored["thumbnail"] is None:
            raise web.HTTPNotFound(text="this output has no thumbnail")
        return web.Response(body=stored["thumbnail"], content_type=stored["thumbnail_type"])
    relative = stored["path"] if part == "file" else stored["preview_path"]
    if relative is None:
        raise web.HTTPNotFound(text="this output has no preview")
    path = request.app[keys.STORAGE].inside(relative)
    if not path.is_file():
        raise web.HTTPNotFound(text="no such file")
    headers = None
    if part == "file":
        download = UNSAFE.sub("_", stored["name"]).strip("._") or "output"
        headers = {"Content-Disposition":
                   f'attachment; filename="{download}{path.suffix}"'}
    return web.FileResponse(path, headers=headers)
