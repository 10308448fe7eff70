"""The node control channel: the double handshake, then job traffic, on a WebSocket."""
from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from .. import keys, validation
from ..service import Farm
from ..sessions import NodeSession
from ..validation import ValidationError

log = logging.getLogger("brender.nodes")
routes = web.RouteTableDef()
MAX_MESSAGE = 1 << 20
# What this coordinator understands beyond the first protocol, for nodes to check:
# "ready_in_report": `job_done` may carry `"ready": true` instead of a separate `ready`.
FEATURES = ["ready_in_report"]
INTERNAL = "internal error; see the coordinator log"
KNOWN = {"ready", "heartbeat", "goodbye", "progress", "job_done", "job_failed",
         "render_settings"}
MAX_SETTINGS = 16 * 1024


def parse_hello(msg: Any) -> dict:
    if not isinstance(msg, dict) or msg.get("type") != "hello":
        raise ValidationError("type", "the first message must be a hello")

    def text(key: str, default: str = "", limit: int = 200) -> str:
        return validation.name_text(msg.get(key, default), key, limit)

    name = text("name").strip()
    if not name:
        raise ValidationError("name", "must not be empty")
    tags = msg.get("tags", [])
    if not isinstance(tags, list) or len(tags) > 50 or \
            not all(isinstance(t, str) and 0 < len(t) <= 50 for t in tags):
        raise ValidationError("tags", "must be a list of short strings")
    for i, tag in enumerate(tags):
        validation.name_text(tag, f"tags[{i}]", 50)
    cpu = msg.get("cpu_count", 0)
    if isinstance(cpu, bool) or not isinstance(cpu, int) or not 0 <= cpu <= 100_000:
        raise ValidationError("cpu_count", "must be a whole number")
    node_id = msg.get("node_id")
    if node_id is not None and (not isinstance(node_id, str) or len(node_id) != 32):
        node_id = None
    running = msg.get("running_attempt")
    return {"node_id": node_id, "name": name, "hostname": text("hostname"),
            "platform": text("platform"), "blender_version": text("blender_version"),
            "cpu_count": cpu, "tags": tags, "allow_scripts": msg.get("allow_scripts") is True,
            "running_attempt": running if isinstance(running, str) else None}


@routes.get("/api/node/ws")
async def node_channel(request: web.Request) -> web.WebSocketResponse:
    """WebSocket for nodes (token required): hello/welcome, ready/assign, reports."""
    config = request.app[keys.CONFIG]
    ws = web.WebSocketResponse(heartbeat=config.heartbeat_interval, max_msg_size=MAX_MESSAGE)
    await ws.prepare(request)
    farm = request.app[keys.FARM]
    session = None
    try:
        first = await ws.receive(timeout=30)
        hello = parse_hello(_decode(first))
        session = await _handshake(request.app, farm, ws, hello)
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                break
            try:
                await _handle(farm, session, _decode(message))
            except ValidationError as exc:
                await session.send({"type": "error", "error": str(exc)})
            except Exception:  # the channel stays up; never an HTTP response on it
                log.exception("node %s: a message failed", session.node_id)
                await session.send({"type": "error", "error": INTERNAL})
    except ValidationError as exc:
        await ws.send_str(json.dumps({"type": "error", "error": str(exc)}))
        await ws.close(code=4400, message=str(exc)[:100].encode())
    except TimeoutError:
        await ws.close(code=4408, message=b"no hello")
    except Exception:
        log.exception("node channel failed")
        if not ws.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_str(json.dumps({"type": "error", "error": INTERNAL}))
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
    await session.send({"type": "welcome", "node_id": node["id"],
                        "farm_id": app[keys.STORAGE].farm_id,
                        "heartbeat_interval": app[keys.CONFIG].heartbeat_interval,
                        "resume_attempt": resume, "features": FEATURES})
    log.info("node %s (%s) connected%s", node["name"], node["id"],
             ", resuming its job" if resume else "")
    return session


async def _handle(farm: Farm, session: NodeSession, msg: Any) -> None:
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise ValidationError("type", "each message is an object with a type")
    kind = msg["type"]
    if kind not in KNOWN:
        raise ValidationError("type", f"unknown message type {kind[:40]!r}")
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
        if kind == "job_done" and msg.get("ready") is True and session.attempt_id is None:
            await farm.node_ready(session)
        return
    if kind == "progress":
        progress = {k: msg.get(k) for k in ("frame", "sample", "samples")
                    if isinstance(msg.get(k), int)}
        farm.progress_changed(session, progress)
    elif kind == "render_settings":
        settings = msg.get("settings")
        if not isinstance(settings, dict) or len(orjson.dumps(settings)) > MAX_SETTINGS:
            raise ValidationError("settings", f"must be an object of at most {MAX_SETTINGS} bytes")
        await farm.render_settings(session, settings)
    elif kind == "job_done":
        await farm.job_done(session, attempt_id, str(msg.get("log_tail") or "")[-20_000:],
                            ready=msg.get("ready") is True)
    elif kind == "job_failed":
        reason = str(msg.get("reason") or "unknown")[:500]
        await farm.job_failed(attempt_id, reason, str(msg.get("log_tail") or "")[-20_000:])
