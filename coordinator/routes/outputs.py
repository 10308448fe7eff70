"""Extra outputs of frames (compositor passes, multiview views): nodes upload them
under their lease, before the frame; everyone lists and downloads them."""
from __future__ import annotations

import hashlib
import re
from functools import partial
from pathlib import Path

from aiohttp import web

from .. import keys, validation
from ..storage import Storage
from ..store import frames as frame_sql
from ..store import outputs as output_sql
from .frames import NotAnImage, attempt_of, number_of, receive_image
from .shots import shot_or_404

routes = web.RouteTableDef()

KINDS = ("pass", "view")
# Every still format Blender writes: a File Output node may use any of them.
EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "OPEN_EXR": "exr", "OPEN_EXR_MULTILAYER": "exr",
              "TIFF": "tif", "BMP": "bmp", "TARGA": "tga", "TARGA_RAW": "tga", "WEBP": "webp",
              "JPEG2000": "jp2", "HDR": "hdr", "CINEON": "cin", "DPX": "dpx", "IRIS": "rgb"}
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
INVALID_TEXT = re.compile("[\ufffd\ud800-\udfff]")  # undecodable bytes, lone surrogates
UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
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
    if fmt and fmt not in EXTENSIONS:
        raise validation.ValidationError("X-Output-Format",
                                         f"must be one of {', '.join(EXTENSIONS)}")
    return kind, name, fmt


@routes.put("/api/attempts/{attempt_id}/frames/{number}/outputs")
async def upload_output(request: web.Request) -> web.Response:
    """A node uploads one extra output of a frame (`?kind=pass|view&name=`), before the
    frame itself; refused (409) if its lease is gone. The same name again replaces it."""
    attempt_id, number = attempt_of(request), number_of(request)
    kind, name, fmt = _kind_name_format(request)
    expected = validation.sha256(request.headers.get("X-Sha256"), "X-Sha256")
    app = request.app
    storage = app[keys.STORAGE]
    body = storage.temp_path("output")
    made: list[Path] = [body]
    placed = False
    try:
        try:
            sha, size, thumbs = await receive_image(request, body, expected)
        except NotAnImage as exc:
            thumbs, sha, size = None, exc.sha, exc.size  # kept and downloadable all the same
        if thumbs is not None and thumbs.preview is not None:
            made.append(thumbs.preview)
        upload = output_sql.OutputUpload(
            attempt_id, number, kind, name, fmt, body, sha, size,
            thumbs.thumbnail if thumbs else None, thumbs.thumbnail_ext if thumbs else None,
            thumbs.preview if thumbs else None, thumbs.width if thumbs else None,
            thumbs.height if thumbs else None)
        output, stale = await app[keys.DB].write(output_sql.record, upload,
                                                 partial(_place, storage))
        placed = True
    except frame_sql.NotInJob:
        raise web.HTTPBadRequest(text=f"frame {number} is not part of this job") from None
    except frame_sql.StaleAttempt:
        raise web.HTTPConflict(text="this attempt no longer holds the job (it was requeued)") \
            from None
    finally:
        if not placed:
            for path in made:
                path.unlink(missing_ok=True)
    for old in stale:
        storage.inside(old).unlink(missing_ok=True)
    return web.json_response(output, status=201)


def _place(storage: Storage, shot_id: int,
           up: output_sql.OutputUpload) -> tuple[str, str | None]:
    """Move an output's files into place (inside the record's transaction). The file
    name is made from the output's name, cut to safe characters, and a digest of the
    name, so that names differing only in other characters never share a file."""
    digest = hashlib.sha1(f"{up.kind}/{up.name}".encode()).hexdigest()[:10]
    safe = UNSAFE.sub("_", up.name).strip("._")[:80] or up.kind
    frame = f"frame_{'-' if up.number < 0 else ''}{abs(up.number):06d}"
    stem = f"shots/{int(shot_id)}/outputs/{frame}/{up.kind}-{safe}-{digest}"
    path = f"{stem}.{EXTENSIONS.get(up.format, 'bin')}"
    storage.move_into(up.body, path)
    preview = None
    if up.preview is not None:
        preview = f"{stem}_preview.jpg"
        storage.move_into(up.preview, preview)
    return path, preview


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
