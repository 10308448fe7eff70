"""One route module per resource; `setup` wires them onto the app."""
from __future__ import annotations

from aiohttp import web

from . import blobs, events, frames, meta, node_ws, nodes, outputs, shots, tokens


def setup(app: web.Application) -> None:
    for module in (meta, blobs, shots, frames, outputs, nodes, events, node_ws, tokens):
        app.router.add_routes(module.routes)
    meta.setup_static(app)
