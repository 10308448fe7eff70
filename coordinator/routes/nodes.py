"""Nodes: list them with live status; enable or disable one; edit its tags and schedule."""
from __future__ import annotations

import re

from aiohttp import web

from brender_protocol import requirements, schedule

from .. import keys
from ..middleware import read_json
from ..store import nodes as node_sql
from ..validation import ValidationError

routes = web.RouteTableDef()
NODE_ID = re.compile(r"^[0-9a-f]{32}$")


@routes.get("/api/nodes")
async def list_nodes(request: web.Request) -> web.Response:
    """Every node the farm has seen, with live status and progress."""
    farm = request.app[keys.FARM]
    nodes = await request.app[keys.DB].read(node_sql.list_all)
    return web.json_response({"nodes": [farm.node_view(n) for n in nodes]})


async def _set_enabled(request: web.Request, enabled: bool) -> web.Response:
    node_id = request.match_info["node_id"]
    if not NODE_ID.match(node_id):
        raise web.HTTPNotFound(text="no such node")
    node = await request.app[keys.FARM].set_node_enabled(node_id, enabled)
    if node is None:
        raise web.HTTPNotFound(text="no such node")
    return web.json_response(node)


@routes.post("/api/nodes/{node_id}/enable")
async def enable_node(request: web.Request) -> web.Response:
    """Let the node take jobs again."""
    return await _set_enabled(request, True)


@routes.post("/api/nodes/{node_id}/disable")
async def disable_node(request: web.Request) -> web.Response:
    """Give the node no new jobs; a job it is rendering finishes."""
    return await _set_enabled(request, False)


@routes.patch("/api/nodes/{node_id}")
async def edit_node(request: web.Request) -> web.Response:
    """Set a node's tags (null: its own --tags again) and availability schedule."""
    node_id = request.match_info["node_id"]
    if not NODE_ID.match(node_id):
        raise web.HTTPNotFound(text="no such node")
    body = await read_json(request)
    if not isinstance(body, dict) or not body:
        raise ValidationError("body", "must be an object with tags and/or schedule")
    unknown = sorted(set(body) - {"tags", "schedule"})
    if unknown:
        raise ValidationError(str(unknown[0])[:40], "cannot be changed (tags, schedule can)")
    changes: dict = {}
    if "tags" in body:
        changes["tags"] = None if body["tags"] is None \
            else requirements.parse_tags(body["tags"], "tags")
    if "schedule" in body:
        changes["schedule"] = schedule.parse_schedule(body["schedule"])
    node = await request.app[keys.FARM].edit_node(node_id, changes)
    if node is None:
        raise web.HTTPNotFound(text="no such node")
    return web.json_response(node)
