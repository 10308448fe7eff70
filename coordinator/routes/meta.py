"""The farm itself: version, overview, token check, API document, add-on, dashboard."""
from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from .. import __version__, keys
from .. import addon_zip as addon_build
from ..auth import principal_of
from ..openapi import openapi_document
from ..store import jobs as job_sql
from ..store import nodes as node_sql
from ..store import shots as shot_sql
from ..validation import ValidationError, text_problem

log = logging.getLogger("brender.meta")
routes = web.RouteTableDef()


@routes.get("/api/version")
async def version(request: web.Request) -> web.Response:
    """Coordinator version and how many nodes are connected."""
    return web.json_response({"version": __version__,
                              "nodes_online": len(request.app[keys.FARM].sessions)})


@routes.get("/api/auth")
async def check_auth(request: web.Request) -> web.Response:
    """Who the Authorization header's token is: role, name, priority cap (401: nobody)."""
    who = principal_of(request)
    assert who is not None  # the policy admits credentials only
    return web.json_response({"ok": True, **who.describe()})


@routes.get("/api/farm")
async def farm(request: web.Request) -> web.Response:
    """The farm at a glance: nodes by status, frames waiting, active shots, how long
    nodes waited for a job and how late the coordinator's event loop ran (over the
    last `?window=` seconds, default 60)."""
    raw = request.query.get("window", "60")
    try:
        window = float(raw)
    except ValueError:
        raise ValidationError("window", "must be a number of seconds") from None
    if not 0 < window <= 3600:
        raise ValidationError("window", "must be between 0 and 3600 seconds")
    farm, db = request.app[keys.FARM], request.app[keys.DB]
    counts = {"idle": 0, "rendering": 0, "asleep": 0, "offline": 0, "disabled": 0}
    for node in await db.read(node_sql.list_all):
        view = farm.node_view(node)
        counts[view["status"]] += 1
        if not node["enabled"]:
            counts["disabled"] += 1
    return web.json_response({"version": __version__, "nodes": counts,
                              "frames_queued": await db.read(job_sql.frames_queued),
                              "shots_active": await db.read(shot_sql.active_count),
                              "dispatch_latency": farm.latencies.summary(window),
                              "loop_lag": request.app[keys.LOOP_LAG].summary(window)})


@routes.get("/api/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    """This API as an OpenAPI 3.1 document."""
    return web.json_response(openapi_document(request.app))


@routes.get("/addon/brender_addon.zip")
async def addon_zip(request: web.Request) -> web.StreamResponse:
    """The current Blender add-on, built into the data dir when it is missing or stale."""
    try:
        path = await asyncio.to_thread(addon_build.current, request.app[keys.CONFIG].data_dir / "addon")
    except (addon_build.BuildError, OSError) as exc:
        log.error("could not build the add-on: %s", exc)
        raise web.HTTPNotFound(text="the add-on zip is not available") from None
    return web.FileResponse(path, headers={
        "Content-Type": "application/zip",
        "Content-Disposition": f'attachment; filename="{path.name}"'})


async def index(request: web.Request) -> web.StreamResponse:
    """The dashboard."""
    path = request.app[keys.CONFIG].dashboard_dir / "index.html"
    if not path.is_file():
        return web.Response(text="Brender coordinator: the dashboard is not installed.")
    return web.FileResponse(path, headers={"Cache-Control": "no-cache"})


async def dashboard_file(request: web.Request) -> web.StreamResponse:
    """A file of the dashboard (scripts, styles, images)."""
    root = request.app[keys.CONFIG].dashboard_dir.resolve()
    relative = request.match_info["path"]
    if relative.startswith("static/"):
        relative = relative[len("static/"):]
    if text_problem(relative):
        raise web.HTTPNotFound(text="no such page")
    path = (root / relative).resolve()
    if root not in path.parents or not path.is_file():
        raise web.HTTPNotFound(text="no such page")
    return web.FileResponse(path, headers={"Cache-Control": "no-cache"})


def setup_static(app: web.Application) -> None:
    # Registered last, so every /api and /files route wins over the dashboard's files.
    app.router.add_get("/", index)
    app.router.add_get("/{path:(?!api/|files/).+}", dashboard_file)
