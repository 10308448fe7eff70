"""Credentials: tokens, join codes and a node's enrollment, revocation, read-only
tickets, the audit log (issue 18). Who may call each: auth_policy.py."""
from __future__ import annotations

import re

from aiohttp import web

from .. import credentials, keys, validation
from ..auth import principal_of, submitter
from ..middleware import read_json
from ..store import audit as audit_sql
from ..store import credentials as credential_sql

routes = web.RouteTableDef()
HEX32 = re.compile(r"^[0-9a-f]{32}$")


@routes.get("/api/tokens")
async def list_tokens(request: web.Request) -> web.Response:
    """Every credential (never its token): role, name, node, priority cap, revoked."""
    return web.json_response(
        {"tokens": await request.app[keys.DB].read(credential_sql.list_all)})


@routes.post("/api/tokens")
async def create_token(request: web.Request) -> web.Response:
    """Make an artist or admin token (`role`, `name`, `priority_cap`); shown once."""
    role, name, cap = credentials.token_request(await read_json(request))
    made = await credentials.create_token(request.app, role, name, submitter(request), cap)
    return web.json_response(made, status=201)


@routes.delete("/api/tokens/{credential_id}")
async def revoke_token(request: web.Request) -> web.Response:
    """Revoke a credential; a node's channel closes at once and its job is requeued; the
    event streams opened with it (or its tickets) end."""
    credential_id = request.match_info["credential_id"]
    if not HEX32.match(credential_id):
        raise web.HTTPNotFound(text="no such token")
    revoked = await credentials.revoke(request.app, credential_id)
    if revoked is None:
        raise web.HTTPNotFound(text="no such token")
    return web.json_response(revoked)


@routes.post("/api/nodes/{node_id}/revoke")
async def revoke_node(request: web.Request) -> web.Response:
    """Revoke an enrolled node: its channel closes, its job is requeued, its uploads
    answer 401."""
    node_id = request.match_info["node_id"]
    if not HEX32.match(node_id):
        raise web.HTTPNotFound(text="no such node")
    revoked = await credentials.revoke_node(request.app, node_id)
    if revoked is None:
        raise web.HTTPNotFound(text="no enrolled node with that id")
    return web.json_response(revoked)


@routes.get("/api/join-codes")
async def list_join_codes(request: web.Request) -> web.Response:
    """Join codes issued (never the codes): name, tags, expiry, when used."""
    return web.json_response(
        {"join_codes": await request.app[keys.DB].read(credential_sql.list_join_codes)})


@routes.post("/api/join-codes")
async def create_join_code(request: web.Request) -> web.Response:
    """Issue a one-time join code for a node (`name`, `tags`, `expires_in` seconds)."""
    name, tags, seconds = credentials.join_request(await read_json(request))
    made = await credentials.create_join_code(request.app, name, tags, submitter(request),
                                              seconds)
    return web.json_response(made, status=201)


@routes.post("/api/join")
async def join(request: web.Request) -> web.Response:
    """A node trades a join code (`code`, `name`) for its own credential, once."""
    body = await read_json(request, 4096)
    if not isinstance(body, dict):
        raise validation.ValidationError("body", "must be an object with code and name")
    code = body.get("code")
    if not isinstance(code, str) or not 8 <= len(code) <= 100:
        raise validation.ValidationError("code", "must be the join code the farm gave")
    name = validation.name_text(body.get("name") or "node", "name", 100)
    made = await credentials.redeem(request.app, code, name)
    if made is None:
        request.app[keys.AUTH].failed(request.remote or "")
        raise web.HTTPUnauthorized(text="unknown, used or expired join code")
    return web.json_response({"token": made["token"], "node_id": made["node_id"],
                              "name": made["name"], "credential_id": made["id"]}, status=201)


@routes.post("/api/tickets")
async def create_ticket(request: web.Request) -> web.Response:
    """A short-lived read-only `?ticket=` for what cannot send a header (event streams,
    images)."""
    who = principal_of(request)
    assert who is not None  # the policy admits credentials only
    ticket, seconds = request.app[keys.AUTH].issue_ticket(who)
    return web.json_response({"ticket": ticket, "expires_in": seconds}, status=201)


@routes.get("/api/audit")
async def audit_log(request: web.Request) -> web.Response:
    """The audit log, newest first: who called what, when, from which address, and the
    answer; `?limit=` (≤1000) and `?before=` (an entry id) page back."""
    limit = validation.whole_number(request.query.get("limit", "200"), "limit", 1,
                                    audit_sql.MAX_PAGE)
    before = request.query.get("before")
    before_id = validation.positive_id(before, "before") if before is not None else None
    entries = await request.app[keys.DB].read(audit_sql.recent, limit, before_id)
    return web.json_response({"entries": entries})
