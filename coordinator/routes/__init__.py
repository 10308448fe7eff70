"""One route module per resource; `setup` wires them onto the app."""
from __future__ import annotations

from aiohttp import web

from . import (blobs, downloads, events, frame_news, frames, meta, metrics, node_ws, nodes,
               outputs, shots, tokens, webhooks)


def setup(app: web.Application) -> None:
    for module in (meta, blobs, shots, frames, outputs, nodes, events, node_ws, tokens,
                   frame_news, webhooks, downloads, metrics):
        app.router.add_routes(module.routes)
    meta.setup_static(app)
