"""Server-Sent Events: the dashboard's live feed."""
from __future__ import annotations

import json

from aiohttp import web

from .. import __version__, keys
from ..auth import principal_of
from ..middleware import json_error

routes = web.RouteTableDef()


@routes.get("/api/events")
async def event_stream(request: web.Request) -> web.StreamResponse:
    """A text/event-stream of frame, shot, job and node events; it ends when the
    credential it was opened with (or its ticket's) is revoked."""
    config, broker = request.app[keys.CONFIG], request.app[keys.EVENTS]
    address = request.remote or ""
    if broker.streams >= config.max_event_streams:
        return _busy(f"the coordinator serves {config.max_event_streams} event streams "
                     "at most; try again later")
    if broker.streams_from(address) >= config.max_event_streams_per_address:
        return _busy(f"at most {config.max_event_streams_per_address} event streams per "
                     "client address; close another dashboard tab")
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no"})
    who = principal_of(request)
    # Its credential's: revoking that credential ends the stream (credentials.py).
    sub = broker.subscribe(address, who.credential_id if who else None)
    try:
        await response.prepare(request)
        hello = json.dumps({"version": __version__})
        await response.write(f"retry: 2000\nevent: hello\ndata: {hello}\n\n".encode())
        while (batch := await broker.next_batch(sub)) is not None:
            await response.write(batch or b": ping\n\n")
    except ConnectionResetError:
        pass
    finally:
        broker.unsubscribe(sub)
    return response


def _busy(message: str) -> web.Response:
    response = json_error(503, message)
    response.headers["Retry-After"] = "10"
    return response
