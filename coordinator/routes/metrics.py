"""`GET /metrics`: the farm's figures for Prometheus (coordinator/metrics.py)."""
from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from .. import keys
from ..metrics import NODE_STATES
from ..store import nodes as node_sql
from ..store import takeaway as takeaway_sql

routes = web.RouteTableDef()


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """The farm's figures in Prometheus' text format: frames rendered and per second,
    queue depth, nodes by state, dispatch latency, render seconds per shot, upload bytes."""
    app = request.app
    farm, db = app[keys.FARM], app[keys.DB]
    nodes = dict.fromkeys(NODE_STATES, 0)
    for node in await db.read(node_sql.list_all):
        nodes[farm.node_view(node)["status"]] += 1
        if not node["enabled"]:
            nodes["disabled"] += 1
    snapshot = {"counters": farm.landed, "store": await db.read_bulk(takeaway_sql.metrics),
                "nodes": nodes, "dispatch": farm.latencies.summary(60),
                "lag": app[keys.LOOP_LAG].summary(60), "movies_made": farm.movies.made}
    body = app[keys.METRICS].render(snapshot)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
