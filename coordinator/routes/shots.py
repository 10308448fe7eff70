"""Shots: submit, list, read, change priority and node cap, pause/resume/cancel/requeue, delete."""
from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable

from aiohttp import web

from .. import auth, delivery_paths, keys, validation
from ..json_stream import stream_list
from ..middleware import read_json
from ..store import frames as frame_sql
from ..store import jobs as job_sql
from ..store import shots as shot_sql

routes = web.RouteTableDef()

# `?limit=` of a frames page, at most; a full list is streamed STREAM_PAGE rows at a time.
MAX_PAGE = 10_000
STREAM_PAGE = 1000
BLEND_MAGIC = (b"BLENDER", b"\x1f\x8b", b"\x28\xb5\x2f\xfd")  # plain, gzip, zstd


def shot_id_of(request: web.Request) -> int:
    return validation.positive_id(request.match_info["shot_id"], "shot_id")


async def shot_or_404(request: web.Request, with_files: bool = False) -> dict:
    shot_id = shot_id_of(request)
    shot = await request.app[keys.DB].read(shot_sql.get, shot_id, with_files)
    if shot is None:
        raise web.HTTPNotFound(text=f"no shot {shot_id}")
    return request.app[keys.FARM].shot_view(shot)


async def listed_shot_or_404(request: web.Request) -> dict:
    """`shot_or_404` for the big listings: on their own connection, so that a summary
    (which counts a big shot's jobs) does not hold up the quick reads either."""
    shot_id = shot_id_of(request)
    shot = await request.app[keys.FARM].load_shot(shot_id)
    if shot is None:
        raise web.HTTPNotFound(text=f"no shot {shot_id}")
    return shot


@routes.post("/api/shots")
async def create_shot(request: web.Request) -> web.Response:
    """Submit a shot whose files were uploaded as blobs; jobs are made at once."""
    body = await read_json(request)
    spec = validation.shot_spec(body)
    auth.priority_allowed(request, spec.priority)
    spec.submitted_by = auth.submitter(request)
    spec.output_template, spec.output_root = delivery_paths.shot_output(
        body, request.app[keys.CONFIG].output_roots)  # type: ignore[arg-type]
    storage = request.app[keys.STORAGE]
    missing = [f["path"] for f in spec.files if not storage.has_blob(f["sha256"])]
    if missing:
        raise validation.ValidationError(
            "files", f"upload these first (PUT /api/blobs/<sha256>): {', '.join(missing[:20])}")
    blend = next(f for f in spec.files if f["path"] == spec.blend_path)
    with open(storage.blob_path(blend["sha256"]), "rb") as f:
        head = f.read(8)
    if not head.startswith(BLEND_MAGIC):
        raise validation.ValidationError("blend_path", f"{spec.blend_path} is not a .blend file")
    shot = await request.app[keys.FARM].submit(spec)
    return web.json_response(shot, status=201)


@routes.get("/api/shots")
async def list_shots(request: web.Request) -> web.Response:
    """Every shot, newest first, with progress; `?status=` filters."""
    status = request.query.get("status")
    if status is not None and status not in {s.value for s in shot_sql.ShotStatus}:
        raise validation.ValidationError("status", f"unknown status {status[:40]!r}")
    shots = await request.app[keys.DB].read(shot_sql.list_all, status)
    farm = request.app[keys.FARM]
    return web.json_response({"shots": [farm.shot_view(s) for s in shots]})


@routes.get("/api/shots/{shot_id}")
async def get_shot(request: web.Request) -> web.Response:
    """One shot with progress and its file manifest."""
    return web.json_response(await shot_or_404(request, with_files=True))


@routes.patch("/api/shots/{shot_id}")
async def patch_shot(request: web.Request) -> web.Response:
    """Change a shot's priority (0-100, higher first) and its cap on nodes (max_nodes)."""
    shot = await shot_or_404(request)
    changes = validation.shot_changes(await read_json(request))
    auth.priority_allowed(request, changes.get("priority"))
    return web.json_response(await request.app[keys.FARM].change_shot(shot["id"], changes))


@routes.delete("/api/shots/{shot_id}")
async def delete_shot(request: web.Request) -> web.Response:
    """Delete a shot with its frames and thumbnails; running jobs are stopped."""
    shot = await shot_or_404(request)
    await request.app[keys.FARM].delete(shot["id"])
    return web.json_response({"deleted": shot["id"]})


@routes.post("/api/shots/{shot_id}/pause")
async def pause_shot(request: web.Request) -> web.Response:
    """Stop handing out this shot's jobs; running jobs finish."""
    shot = await shot_or_404(request)
    return await _transition(request.app[keys.FARM].pause(shot["id"]))


@routes.post("/api/shots/{shot_id}/resume")
async def resume_shot(request: web.Request) -> web.Response:
    """Hand out a paused shot's jobs again."""
    shot = await shot_or_404(request)
    return await _transition(request.app[keys.FARM].resume(shot["id"]))


@routes.post("/api/shots/{shot_id}/cancel")
async def cancel_shot(request: web.Request) -> web.Response:
    """Cancel the shot; nodes rendering it stop at once."""
    shot = await shot_or_404(request)
    return await _transition(request.app[keys.FARM].cancel(shot["id"]))


@routes.post("/api/shots/{shot_id}/requeue")
async def requeue_shot(request: web.Request) -> web.Response:
    """Put the shot's failed jobs back in the queue and clear its blocklist."""
    shot = await shot_or_404(request)
    return await _transition(request.app[keys.FARM].requeue_failed(shot["id"]))


@routes.get("/api/shots/{shot_id}/frames")
async def shot_frames(request: web.Request) -> web.StreamResponse:
    """A shot's frames in order, with status and image URLs; `?offset=&limit=` pages."""
    shot = await listed_shot_or_404(request)
    offset = validation.positive_id(request.query.get("offset", "0"), "offset")
    limit = request.query.get("limit")
    db = request.app[keys.DB]
    if limit is not None:
        count = validation.whole_number(limit, "limit", 0, MAX_PAGE)
        frames, total = await db.read(frame_sql.for_shot, shot["id"], offset, count)
        return web.json_response({"frames": frames, "total": total})

    async def pages() -> AsyncIterator[list[dict]]:
        page, _ = await db.read_bulk(frame_sql.for_shot, shot["id"], offset, STREAM_PAGE)
        while page:
            yield page
            if len(page) < STREAM_PAGE:
                return
            page = await db.read_bulk(frame_sql.page_after, shot["id"], page[-1]["number"],
                                      STREAM_PAGE)

    return await stream_list(request, "frames", pages(),
                             {"total": shot["frames_total"]})


@routes.get("/api/shots/{shot_id}/jobs")
async def shot_jobs(request: web.Request) -> web.StreamResponse:
    """A shot's jobs with node, attempts and live progress."""
    shot = await listed_shot_or_404(request)
    farm, db = request.app[keys.FARM], request.app[keys.DB]

    async def pages() -> AsyncIterator[list[dict]]:
        after = (-1, -1)
        while page := await db.read_bulk(job_sql.page_after, shot["id"], after, STREAM_PAGE):
            after = (page[-1]["ordinal"], page[-1]["id"])
            for job in page:
                del job["ordinal"]
                job["progress"] = farm.job_progress(job)
            yield page
            if len(page) < STREAM_PAGE:
                return

    return await stream_list(request, "jobs", pages())


@routes.get("/api/jobs/{job_id}")
async def get_job(request: web.Request) -> web.Response:
    """One job with the tail of its last failed attempt's log."""
    job_id = validation.positive_id(request.match_info["job_id"], "job_id")
    job = await request.app[keys.DB].read(job_sql.get, job_id)
    if job is None:
        raise web.HTTPNotFound(text=f"no job {job_id}")
    job["progress"] = request.app[keys.FARM].job_progress(job)
    return web.json_response(job)


async def _transition(change: Awaitable[dict | None]) -> web.Response:
    """The shot after a change of state; 409 when its state does not allow the change."""
    try:
        return web.json_response(await change)
    except ValueError as exc:
        raise web.HTTPConflict(text=str(exc)) from None
