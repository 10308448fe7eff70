"""Server-Sent Events: the dashboard's live feed."""
from __future__ import annotations

import asyncio
import json

from aiohttp import web

from .. import __version__, keys

routes = web.RouteTableDef()
PING_SECONDS = 15


@routes.get("/api/events")
async def event_stream(request: web.Request) -> web.StreamResponse:
    """A text/event-stream of frame, shot, job and node events."""
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no"})
    await response.prepare(request)
    broker = request.app[keys.EVENTS]
    sub = broker.subscribe()
    try:
        hello = json.dumps({"version": __version__})
        await response.write(f"retry: 2000\nevent: hello\ndata: {hello}\n\n".encode())
        while True:
            try:
                message = await asyncio.wait_for(sub.queue.get(), PING_SECONDS)
            except asyncio.TimeoutError:
                message = b": ping\n\n"
            if message is None:
                break
            # Whatever queued up meanwhile goes out in the same write.
            batch, closed = [message], False
            while not sub.queue.empty() and len(batch) < 1024:
                more = sub.queue.get_nowait()
                if more is None:
                    closed = True
                    break
                batch.append(more)
            await response.write(b"".join(batch))
            if closed:
                break
    except ConnectionResetError:
        pass
    finally:
        broker.unsubscribe(sub)
    return response
