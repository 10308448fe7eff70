"""The node control channel: the double handshake, then job traffic, on a WebSocket."""
from __future__ import annotations

import contextlib
import json
import logging
import time
from typing import Any

from aiohttp import WSMsgType, web
from brender_protocol import messages

from .. import keys, validation
from ..node_identity import node_identity
from ..service import Farm
from ..sessions import NodeSession
from ..store.connection import StoreUnavailable
from ..validation import ValidationError

log = logging.getLogger("brender.nodes")
routes = web.RouteTableDef()
INTERNAL = "internal error; see the coordinator log"


@routes.get("/api/node/ws")
async def node_channel(request: web.Request) -> web.WebSocketResponse:
    """WebSocket for nodes (token required): hello/welcome, ready/assign, reports."""
    # No aiohttp heartbeat: one sweep watches every channel (coordinator/liveness.py),
    # which needs to see the pongs, so pings are answered here too.
    ws = web.WebSocketResponse(autoping=False, max_msg_size=messages.MAX_MESSAGE)
    await ws.prepare(request)
    farm = request.app[keys.FARM]
    session = None
    try:
        first = await ws.receive(timeout=30)
        while first.type in (WSMsgType.PING, WSMsgType.PONG):
            if first.type == WSMsgType.PING:
                await ws.pong(first.data)
            first = await ws.receive(timeout=30)
        hello = await node_identity(request, messages.parse_hello(_decode(first)))
        session = await _handshake(request.app, farm, ws, hello)
        async for message in ws:
            session.heard = time.monotonic()
            if message.type == WSMsgType.PING:
                await ws.pong(message.data)
                continue
            if message.type == WSMsgType.PONG:
                continue
            if message.type != WSMsgType.TEXT:
                break
            try:
                await _handle(farm, session, _decode(message))
            except ValidationError as exc:
                await session.send(messages.error(str(exc)))
            except StoreUnavailable as exc:
                # The message was not acted on: the node reconnects (here or to another
                # coordinator) and its hello settles the job it held either way.
                log.warning("node %s: %s; closing its channel", session.node_id, exc)
                await ws.close(code=1013, message=b"database unavailable")
                break
            except Exception:  # the channel stays up; never an HTTP response on it
                log.exception("node %s: a message failed", session.node_id)
                await session.send(messages.error(INTERNAL))
    except ValidationError as exc:
        await ws.send_str(json.dumps(messages.error(str(exc))))
        await ws.close(code=4400, message=str(exc)[:100].encode())
    except TimeoutError:
        await ws.close(code=4408, message=b"no hello")
    except Exception:
        log.exception("node channel failed")
        if not ws.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_str(json.dumps(messages.error(INTERNAL)))
            await ws.close(code=1011, message=b"internal error")
    finally:
        if session is not None:
            farm.node_disconnected(session)
            log.info("node %s (%s) disconnected", session.node["name"], session.node_id)
    return ws


def _decode(message: Any) -> Any:
    if message.type != WSMsgType.TEXT:
        raise ValidationError("message", "expected a JSON text message")
    return validation.parse_json(message.data, "message")


async def _handshake(app: web.Application, farm: Farm,
                     ws: web.WebSocketResponse, hello: dict) -> NodeSession:
    """Check the identity, add or update the node, confirm with its id."""
    session = await farm.node_connected(hello, ws)
    node = session.node
    resume = session.attempt_id is not None
    await session.send(messages.welcome(node["id"], app[keys.STORAGE].farm_id,
                                        app[keys.CONFIG].heartbeat_interval, resume))
    log.info("node %s (%s) connected%s", node["name"], node["id"],
             ", resuming its job" if resume else "")
    return session


async def _handle(farm: Farm, session: NodeSession, msg: Any) -> None:
    kind = messages.message_type(msg)
    if kind == "ready":
        await farm.node_ready(session)
        return
    if kind == "heartbeat":
        return
    if kind == "goodbye":
        await farm.node_leaving(session)
        await session.ws.close()
        return
    attempt_id = msg.get("attempt_id")
    if not isinstance(attempt_id, str) or attempt_id != session.attempt_id:
        # Late news about an attempt this node no longer holds (cancelled, say): only
        # a report's request for the next job still counts.
        if kind == "job_done" and messages.asks_ready(msg) and session.attempt_id is None:
            await farm.node_ready(session)
        return
    if kind == "progress":
        farm.progress_changed(session, messages.progress_of(msg))
    elif kind == "render_settings":
        await farm.render_settings(session, messages.settings_of(msg))
    elif kind == "job_done":
        await farm.job_done(session, attempt_id, messages.log_tail_of(msg),
                            ready=messages.asks_ready(msg))
    elif kind == "job_failed":
        await farm.job_failed(attempt_id, messages.reason_of(msg), messages.log_tail_of(msg))
