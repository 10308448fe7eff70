"""One route module per resource; `setup` wires them onto the app."""
from __future__ import annotations

from aiohttp import web

from . import (blobs, events, frame_news, frames, meta, node_ws, nodes, outputs, shots,
               webhooks)


def setup(app: web.Application) -> None:
    for module in (meta, blobs, shots, frames, outputs, nodes, events, node_ws,
                   frame_news, webhooks):
        app.router.add_routes(module.routes)
    meta.setup_static(app)
