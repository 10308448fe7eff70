"""Webhooks (issue 17): an admin registers URLs that hear of shots done or failed and
nodes lost; every route is an admin's, reads included (auth_policy.py)."""
from __future__ import annotations

import re
import secrets

from aiohttp import web
from yarl import URL

from .. import keys, validation
from ..middleware import read_json
from ..store import webhooks as webhook_sql
from ..webhooks import EVENTS

routes = web.RouteTableDef()
MAX_URL = 2000
WEBHOOK_ID = re.compile(r"^[0-9a-f]{16}$")
SECRET = re.compile(r"^[\x21-\x7e]{16,200}$")


def webhook_spec(body: object) -> tuple[str, list[str], str]:
    """(url, events, secret) of a new webhook, checked; a secret not given is made."""
    if not isinstance(body, dict):
        raise validation.ValidationError("body", "must be a JSON object")
    unknown = sorted(set(body) - {"url", "events", "secret"})
    if unknown:
        raise validation.ValidationError(str(unknown[0])[:40], "is not a webhook field "
                                         "(url, events, secret)")
    url = body.get("url")
    if not isinstance(url, str) or not url or len(url) > MAX_URL:
        raise validation.ValidationError("url", f"must be an http(s) URL of at most {MAX_URL} "
                                         "characters")
    validation.text(url, "url", MAX_URL)
    try:
        parsed = URL(url)
    except (ValueError, TypeError):
        raise validation.ValidationError("url", "is not a URL") from None
    if parsed.scheme not in ("http", "https") or not parsed.host or parsed.fragment:
        raise validation.ValidationError("url", "must be an http:// or https:// URL with a "
                                         "host and no #fragment")
    events = body.get("events", list(EVENTS))
    if not isinstance(events, list) or not events or \
            any(not isinstance(e, str) or e not in EVENTS for e in events):
        raise validation.ValidationError("events", f"must be a non-empty list of "
                                         f"{', '.join(EVENTS)}")
    secret = body.get("secret")
    if secret is None:
        secret = secrets.token_urlsafe(32)
    elif not isinstance(secret, str) or not SECRET.match(secret):
        raise validation.ValidationError("secret", "must be 16 to 200 printable ASCII "
                                         "characters, no spaces")
    return url, sorted(set(events), key=EVENTS.index), secret


def webhook_id_of(request: web.Request) -> str:
    webhook_id = request.match_info["webhook_id"]
    if not WEBHOOK_ID.match(webhook_id):
        raise validation.ValidationError("webhook_id", "must be 16 hex digits")
    return webhook_id


@routes.post("/api/webhooks")
async def add_webhook(request: web.Request) -> web.Response:
    """Register a URL for shot.done, shot.failed and/or node.lost; the answer carries
    the secret its deliveries are signed with (X-Brender-Signature), shown only here."""
    url, events, secret = webhook_spec(await read_json(request))
    webhook = await request.app[keys.DB].write(webhook_sql.create, url, secret, events)
    return web.json_response({**webhook, "secret": secret}, status=201)


@routes.get("/api/webhooks")
async def list_webhooks(request: web.Request) -> web.Response:
    """The registered webhooks (their secrets are never shown again)."""
    return web.json_response({"webhooks": await request.app[keys.DB].read(webhook_sql.list_all)})


@routes.delete("/api/webhooks/{webhook_id}")
async def delete_webhook(request: web.Request) -> web.Response:
    """Remove a webhook with its deliveries."""
    webhook_id = webhook_id_of(request)
    if not await request.app[keys.DB].write(webhook_sql.delete, webhook_id):
        raise web.HTTPNotFound(text=f"no webhook {webhook_id}")
    return web.json_response({"deleted": webhook_id})


@routes.get("/api/webhooks/{webhook_id}/deliveries")
async def webhook_deliveries(request: web.Request) -> web.Response:
    """A webhook's last 100 deliveries, newest first: event, status (pending, delivered,
    failed), attempts, the last answer's HTTP status and error."""
    webhook_id = webhook_id_of(request)
    db = request.app[keys.DB]
    if await db.read(webhook_sql.get, webhook_id) is None:
        raise web.HTTPNotFound(text=f"no webhook {webhook_id}")
    return web.json_response({"deliveries": await db.read(webhook_sql.deliveries, webhook_id)})
