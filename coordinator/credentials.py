"""Credentials as the farm changes them (issue 18): tokens made and revoked, join
codes issued and redeemed, a node revoked (its channel closed, its lease requeued).

The routes (routes/tokens.py) and the coordinator's CLI (`brender-coordinator token`,
`join-code`) both come here; the CLI with a database of its own while the coordinator
may be running (a credential it makes is found on first use: auth.Auth reads through).
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiohttp import web

from brender_protocol import requirements
from brender_protocol.text import name_text

from . import keys
from .auth_policy import ARTIST, ROLES
from .store import credentials as credential_sql
from .store import jobs as job_sql
from .validation import ValidationError

log = logging.getLogger("brender.auth")
MAX_JOIN_SECONDS = 30 * 86400
DEFAULT_JOIN_SECONDS = 86400.0


def token_request(body: Any) -> tuple[str, str, int | None]:
    """(role, name, priority cap) from a POST /api/tokens body."""
    if not isinstance(body, dict):
        raise ValidationError("body", "must be an object with role and name")
    unknown = sorted(set(body) - {"role", "name", "priority_cap"})
    if unknown:
        raise ValidationError(str(unknown[0])[:40], "is not a field of a token")
    role = body.get("role")
    if role not in ("artist", "admin"):
        raise ValidationError("role", "must be artist or admin (nodes join with a join code)")
    name = name_text(body.get("name"), "name", 100)
    if not name.strip():
        raise ValidationError("name", "must not be empty")
    cap = body.get("priority_cap")
    if cap is not None:
        if role != ARTIST:
            raise ValidationError("priority_cap", "only artists have a priority cap")
        if not isinstance(cap, int) or isinstance(cap, bool) or not 0 <= cap <= 100:
            raise ValidationError("priority_cap", "must be a whole number from 0 to 100")
    return role, name, cap


def join_request(body: Any) -> tuple[str, list[str], float]:
    """(node name, tags, seconds the code lives) from a POST /api/join-codes body."""
    if body is None or body == {}:
        return "", [], DEFAULT_JOIN_SECONDS
    if not isinstance(body, dict):
        raise ValidationError("body", "must be an object (name, tags, expires_in)")
    unknown = sorted(set(body) - {"name", "tags", "expires_in"})
    if unknown:
        raise ValidationError(str(unknown[0])[:40], "is not a field of a join code")
    name = name_text(body.get("name") or "", "name", 100)
    tags = requirements.parse_tags(body.get("tags"), "tags")
    seconds = body.get("expires_in", DEFAULT_JOIN_SECONDS)
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) \
            or not 60 <= seconds <= MAX_JOIN_SECONDS:
        raise ValidationError("expires_in", f"must be 60 to {MAX_JOIN_SECONDS} seconds")
    return name, tags, float(seconds)


async def create_token(app: web.Application, role: str, name: str, created_by: str,
                       priority_cap: int | None = None) -> dict:
    assert role in ROLES
    token = credential_sql.new_token()
    credential = await app[keys.DB].write(credential_sql.create, role, name, token, created_by,
                                          None, priority_cap)
    return {**credential, "token": token}


async def create_join_code(app: web.Application, name: str, tags: list[str],
                           created_by: str, seconds: float) -> dict:
    code = credential_sql.new_token(18)
    made = await app[keys.DB].write(credential_sql.create_join_code, code, name, tags,
                                    created_by, time.time() + seconds)
    return {**made, "code": code}


async def redeem(app: web.Application, code: str, name: str) -> dict | None:
    return await app[keys.DB].write(credential_sql.redeem_join_code, code, name)


async def revoke(app: web.Application, credential_id: str) -> dict | None:
    """Revoke a credential; a node's loses its channel and its job at once, an
    artist's (or admin's) event streams end."""
    credential = await app[keys.DB].write(credential_sql.revoke, credential_id)
    if credential is None:
        return None
    await forget_revoked(app, credential)
    return credential


async def revoke_node(app: web.Application, node_id: str) -> dict | None:
    credential = await app[keys.DB].read(credential_sql.node_credential, node_id)
    if credential is None:
        return None
    return await revoke(app, credential["id"])


async def forget_revoked(app: web.Application, credential: dict) -> None:
    """What a revoked credential still holds on this coordinator goes: its cached
    sign-in and its tickets, its event streams, a node's channel and lease. Safe to
    repeat (the API's revoke, then the watch below, both come here)."""
    app[keys.AUTH].forget(credential["id"])
    ended = app[keys.EVENTS].end_streams_of(credential["id"])
    if ended:
        log.info("%d event stream(s) of %s ended: its credential was revoked", ended,
                 credential["name"])
    if credential["node_id"]:
        await disconnect_node(app, credential["node_id"])


async def disconnect_node(app: web.Application, node_id: str) -> None:
    farm = app[keys.FARM]
    # The job first: when the node hears its channel close, its job is back in the
    # queue (what it reports meanwhile is refused as a stale attempt).
    held = await app[keys.DB].read(job_sql.running_attempt_of, node_id)
    if held:
        await farm.outcomes.requeue(held, "its node's credential was revoked")
    session = farm.sessions.get(node_id)
    closed = False
    if session is not None and not session.ws.closed:
        await session.ws.close(code=4401, message=b"this node's credential was revoked")
        closed = True
    if closed or held:
        log.info("node %s revoked", node_id)


async def watch_revocations(app: web.Application, interval: float) -> None:
    """Credentials revoked elsewhere stop working here too, within `interval`: by
    `brender-coordinator token revoke` on this farm's database, or by another
    coordinator sharing it (the cache, tickets, streams and channels are each
    coordinator's own). A revocation is never undone, so a count that grew is the
    cheap sign; then the new ones are found by id (no clocks compared)."""
    db = app[keys.DB]
    known: set[str] | None = None
    while True:
        try:
            if known is None:
                known = {r["id"] for r in await db.read(credential_sql.revoked)}
            elif await db.read(credential_sql.revoked_count) != len(known):
                for credential in await db.read(credential_sql.revoked):
                    if credential["id"] not in known:
                        await forget_revoked(app, credential)
                        known.add(credential["id"])
        except Exception as exc:  # the database is restarting: look again next time
            log.warning("could not look for revoked credentials: %s", exc)
        await asyncio.sleep(interval)
