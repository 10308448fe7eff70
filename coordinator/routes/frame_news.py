"""A shot's frame checks and its delivery to studio storage (issue 17)."""
from __future__ import annotations

from aiohttp import web

from .. import keys
from ..store import delivery as delivery_sql
from ..store import frame_checks as check_sql
from .shots import shot_or_404

routes = web.RouteTableDef()


@routes.get("/api/shots/{shot_id}/delivery")
async def shot_delivery(request: web.Request) -> web.Response:
    """Where the shot's frames are delivered (output_template, output_root) and how far:
    frames pending, delivered and failed, failures so far, the last error and the
    frames failing now."""
    shot = await shot_or_404(request)
    return web.json_response(await request.app[keys.DB].read(delivery_sql.summary, shot["id"]))


@routes.get("/api/shots/{shot_id}/suspicious")
async def shot_suspicious(request: web.Request) -> web.Response:
    """The shot's frames the frame checks flagged, with why (one colour, NaN/Inf
    pixels, far smaller than their neighbours) and the node a re-render avoided."""
    shot = await shot_or_404(request)
    frames = await request.app[keys.DB].read(check_sql.suspicious, shot["id"])
    return web.json_response({"frames": frames})
