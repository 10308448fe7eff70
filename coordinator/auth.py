"""Who is calling (issue 18): credentials, read-only tickets, the failed-auth limit,
and the middleware that enforces auth_policy's table.

A request names itself with `Authorization: Bearer <token>` only (a token in a URL
ends up in logs and browser history). Event streams and <img> tags cannot set
headers: they carry `?ticket=`, a short-lived read-only ticket (POST /api/tickets).
"""
from __future__ import annotations

import hmac
import ipaddress
import logging
import secrets
import socket
import time
from collections import deque
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler

from . import auth_policy, keys
from .auth_policy import ADMIN, ARTIST, NODE, READS, Rule
from .batches import Batches
from .database import Database
from .store import audit as audit_sql
from .store import credentials as credential_sql

log = logging.getLogger("brender.auth")

PRINCIPAL = "brender.principal"  # request[PRINCIPAL]: the caller, or None
TICKET_SECONDS = 600.0
FAILURE_WINDOW = 60.0
GUARDED_PREFIXES = ("/api/", "/files/", "/addon/", "/metrics")
NO_TOKEN = "missing or wrong token (send Authorization: Bearer <token>)"


@dataclass(frozen=True)
class Principal:
    role: str
    name: str
    credential_id: str | None = None   # None: the farm token
    node_id: str | None = None         # a node credential's node
    priority_cap: int | None = None    # an artist's highest priority (None: any)
    ticket: bool = False               # a read-only ticket stands in for the credential

    def describe(self) -> dict:
        return {"role": self.role, "name": self.name, "credential_id": self.credential_id,
                "node_id": self.node_id, "priority_cap": self.priority_cap}


class Auth:
    """The farm token (an admin's), credentials from the database (cached: they are
    checked on every frame upload), tickets and failure counts (memory only)."""

    def __init__(self, farm_token: str, max_failures: int = 30,
                 served: frozenset[str] = frozenset({"localhost"})):
        self.farm_token = farm_token
        self.max_failures = max_failures
        self.served = served
        self._cache: dict[str, Principal] = {}
        self._tickets: dict[str, tuple[Principal, float]] = {}
        self._failures: dict[str, deque[float]] = {}

    async def principal(self, request: web.Request, token: str) -> Principal | None:
        if hmac.compare_digest(token.encode("utf-8", "surrogatepass"),
                               self.farm_token.encode()):
            return Principal(ADMIN, "admin")
        digest = credential_sql.token_hash(token)
        cached = self._cache.get(digest)
        if cached is not None:
            return cached
        found = await request.app[keys.DB].read(credential_sql.by_token_hash, digest)
        if found is None:
            return None
        principal = Principal(found["role"], found["name"], found["id"], found["node_id"],
                              found["priority_cap"])
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = principal
        return principal

    def forget(self, credential_id: str) -> None:
        """A revoked credential stops working at once."""
        for digest, p in list(self._cache.items()):
            if p.credential_id == credential_id:
                del self._cache[digest]
        for ticket, (p, _) in list(self._tickets.items()):
            if p.credential_id == credential_id:
                del self._tickets[ticket]

    # -- tickets ---------------------------------------------------------------------
    def issue_ticket(self, principal: Principal) -> tuple[str, float]:
        now = time.monotonic()
        for ticket, (_, until) in list(self._tickets.items()):
            if until < now:
                del self._tickets[ticket]
        ticket = secrets.token_urlsafe(24)
        self._tickets[ticket] = (Principal(principal.role, principal.name,
                                           principal.credential_id, ticket=True),
                                 now + TICKET_SECONDS)
        return ticket, TICKET_SECONDS

    def ticket(self, ticket: str) -> Principal | None:
        found = self._tickets.get(ticket)
        if found is None or found[1] < time.monotonic():
            return None
        return found[0]

    # -- failures ----------------------------------------------------------------------
    def too_many_failures(self, address: str) -> bool:
        seen = self._failures.get(address)
        if not seen:
            return False
        cutoff = time.monotonic() - FAILURE_WINDOW
        while seen and seen[0] < cutoff:
            seen.popleft()
        return len(seen) >= self.max_failures

    def failed(self, address: str) -> None:
        if len(self._failures) > 100_000:
            self._failures.clear()
        self._failures.setdefault(address, deque()).append(time.monotonic())


def principal_of(request: web.Request) -> Principal | None:
    p: Principal | None = request.get(PRINCIPAL)
    return p


def route_of(request: web.Request) -> tuple[str, str] | None:
    """(method, path as the router writes it) of the matched route."""
    resource = request.match_info.route.resource
    if resource is None:
        return None
    return request.method, resource.canonical


def host_allowed(request: web.Request, served: frozenset[str]) -> bool:
    """A DNS-rebinding page reaches the coordinator under the attacker's name: serve
    only addresses (IP literals) and the names in `served` (`served_names`)."""
    host = request.host.lower()
    if host.startswith("["):
        host = host[1:host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.rsplit(":", 1)[0]
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return host.rstrip(".") in served


def served_names(config_host: str, allowed: tuple[str, ...]) -> frozenset[str]:
    """localhost, this machine's names, the name it listens on and --allowed-host.
    Looked up once, at start: a slow resolver must not stall requests."""
    names = {"localhost", config_host.lower(), *(a.lower() for a in allowed)}
    try:
        names |= {socket.gethostname().lower(), socket.getfqdn().lower()}
    except OSError:
        pass
    return frozenset(n for n in names if n)


def _unauthorized(message: str) -> web.Response:
    return web.json_response({"error": message}, status=401,
                             headers={"WWW-Authenticate": 'Bearer realm="brender"'})


def _too_many() -> web.Response:
    return web.json_response({"error": "too many failed sign-ins from this address; wait a "
                              "minute"}, status=429, headers={"Retry-After": "60"})


def _forbidden(message: str) -> web.Response:
    return web.json_response({"error": message}, status=403)


async def _who(request: web.Request, auth: Auth) -> tuple[Principal | None, bool]:
    """The caller and whether it tried to name itself (and failed)."""
    header = request.headers.get("Authorization")
    if header is not None:
        token = header[7:].strip() if header[:7].lower() == "bearer " else ""
        principal = await auth.principal(request, token) if token else None
        return principal, principal is None
    ticket = request.query.get("ticket")
    if ticket is not None and request.method in READS:
        principal = auth.ticket(ticket)
        return principal, principal is None
    return None, False


async def _may(request: web.Request, rule: Rule, who: Principal) -> str | None:
    """Why `who` may not make this call (None: it may)."""
    if who.role not in rule.roles:
        return f"a {who.role} credential may not do this"
    if who.ticket and request.method not in READS:
        return "a ticket only reads"
    db = request.app[keys.DB]
    info = request.match_info
    if rule.own_lease and who.role == NODE:
        exists, holder = await db.read(credential_sql.attempt_holder, info["attempt_id"])
        if exists and holder != who.node_id:
            return "this attempt is leased to another node"
    if rule.leased_blob and who.role == NODE:
        sha = info["sha256"].lower()
        if len(sha) != 64 or not await db.read(credential_sql.node_leases_blob,
                                                who.node_id, sha):
            return "a node reads only the files of the shot it renders"
    if rule.own_shot and who.role == ARTIST:
        try:
            shot_id = int(info["shot_id"])
        except ValueError:
            return None  # the route answers 400 for a bad id
        owner = await db.read(credential_sql.shot_owner, shot_id) if 0 < shot_id < 2**63 \
            else None
        if owner is not None and owner != who.name:
            return "an artist may change only her own shots"
    return None


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    config, auth = request.app[keys.CONFIG], request.app[keys.AUTH]
    if not host_allowed(request, auth.served):
        return web.json_response({"error": f"this coordinator does not serve the host "
                                  f"{request.host[:100]!r}; see --allowed-host"}, status=421)
    request[PRINCIPAL] = None
    route = route_of(request)
    if route is None or not request.path.startswith(GUARDED_PREFIXES):
        return await handler(request)
    rule = auth_policy.rule_for(*route)
    address = request.remote or ""
    limited = auth.too_many_failures(address)
    if rule.public:
        # Open to anyone: a wrong token is no reason to refuse (the add-on shows the
        # version before it checks the token). POST /api/join stays limited: its code
        # is a credential to guess.
        if limited and request.method not in READS:
            return _too_many()
        who, failed = await _who(request, auth)
        request[PRINCIPAL] = None if failed else who
        return await handler(request)
    if limited:
        return _too_many()
    who, failed = await _who(request, auth)
    if failed:
        auth.failed(address)
        return _unauthorized(NO_TOKEN)
    request[PRINCIPAL] = who
    if who is None:
        open_read = rule.open_read and not config.lock_reads and request.method in READS
        if not open_read:
            return _unauthorized(NO_TOKEN)
    else:
        refused = await _may(request, rule, who)
        if refused:
            return _forbidden(refused)
    response = await handler(request)
    return response


def audit_rows(db: Database) -> Batches[tuple, None]:
    """The audit log's writes: the rows of calls answered together in one statement."""
    async def write(rows: list[tuple]) -> list[None]:
        await db.write(audit_sql.record_many, rows)
        return [None] * len(rows)
    return Batches(write, 500)


@web.middleware
async def audit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every mutating call, answered or refused, lands in the audit log before it is
    answered (the rows of calls answered together are written as one statement)."""
    if request.method in READS:
        return await handler(request)
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        who = principal_of(request)
        try:
            await request.app[keys.AUDIT_ROWS].add((
                time.time(), who.name if who else "", who.role if who else "",
                request.method, request.path[:500], status, request.remote or ""))
        except Exception:  # the answer stands; the log says what was lost
            log.exception("could not record %s %s in the audit log", request.method,
                          request.path)


def priority_allowed(request: web.Request, priority: int | None) -> None:
    """An artist's shots go no higher than her cap (403)."""
    who = principal_of(request)
    if who is None or who.role != ARTIST or who.priority_cap is None or priority is None:
        return
    if priority > who.priority_cap:
        raise web.HTTPForbidden(text=f"priority: your cap is {who.priority_cap}")


def submitter(request: web.Request) -> str:
    """Who submits: the credential's name, never a free-text field."""
    who = principal_of(request)
    return who.name if who else ""
