"""Who may call which route: the one table the auth middleware enforces, the OpenAPI
document publishes (`x-roles`) and tests/unit/test_roles.py checks route by route.

Roles (issue 18):
- `node`: dials the node channel, fetches the files of the shots it renders, uploads
  frames of the attempts it holds. Nothing else.
- `artist`: submits, reads the farm, pauses/resumes/cancels/requeues and re-prioritises
  the shots she submitted (within her priority cap), downloads frames.
- `admin`: everything. The farm token of a data dir made before roles is an admin's.

A route this table does not list still gets a safe answer (`rule_for`): a GET is for
artists and admins, anything else for admins only. The table test fails for such a
route, so whoever added it decides and writes its line here.
"""
from __future__ import annotations

from dataclasses import dataclass

NODE, ARTIST, ADMIN = "node", "artist", "admin"
ROLES = (NODE, ARTIST, ADMIN)
READS = ("GET", "HEAD", "OPTIONS")


@dataclass(frozen=True)
class Rule:
    roles: frozenset[str]
    public: bool = False      # anyone, credential or not (the version, the API document)
    open_read: bool = False   # anyone too while reads are open (no --lock-reads)
    own_shot: bool = False    # an artist only on shots she submitted
    own_lease: bool = False   # a node only on attempts it holds
    leased_blob: bool = False  # a node only files of shots it is rendering
    capped: bool = False      # an artist's priority is held to her cap


def rule(*roles: str, **flags: bool) -> Rule:
    return Rule(frozenset(roles), **flags)


PUBLIC = rule(public=True)
FARM_READ = rule(ARTIST, ADMIN, open_read=True)
ADMIN_ONLY = rule(ADMIN)
OWN_SHOT = rule(ARTIST, ADMIN, own_shot=True)

# (method, path as the router writes it): rule.
POLICY: dict[tuple[str, str], Rule] = {
    ("GET", "/api/version"): PUBLIC,
    ("GET", "/api/openapi.json"): PUBLIC,
    ("GET", "/api/auth"): rule(NODE, ARTIST, ADMIN),
    ("GET", "/api/farm"): FARM_READ,
    ("GET", "/addon/brender_addon.zip"): FARM_READ,
    # Blobs: the scene files. Never open: a node reads those of the shot it renders.
    ("POST", "/api/blobs/missing"): rule(ARTIST, ADMIN),
    ("PUT", "/api/blobs/{sha256}"): rule(ARTIST, ADMIN),
    ("GET", "/api/blobs/{sha256}"): rule(NODE, ARTIST, ADMIN, leased_blob=True),
    # Shots.
    ("POST", "/api/shots"): rule(ARTIST, ADMIN, capped=True),
    ("GET", "/api/shots"): FARM_READ,
    ("GET", "/api/shots/{shot_id}"): FARM_READ,
    ("PATCH", "/api/shots/{shot_id}"): rule(ARTIST, ADMIN, own_shot=True, capped=True),
    ("DELETE", "/api/shots/{shot_id}"): ADMIN_ONLY,
    ("POST", "/api/shots/{shot_id}/pause"): OWN_SHOT,
    ("POST", "/api/shots/{shot_id}/resume"): OWN_SHOT,
    ("POST", "/api/shots/{shot_id}/cancel"): OWN_SHOT,
    ("POST", "/api/shots/{shot_id}/requeue"): OWN_SHOT,
    ("GET", "/api/shots/{shot_id}/frames"): FARM_READ,
    ("GET", "/api/shots/{shot_id}/jobs"): FARM_READ,
    ("GET", "/api/jobs/{job_id}"): FARM_READ,
    ("GET", "/api/frames/latest"): FARM_READ,
    ("GET", "/api/shots/{shot_id}/frames/{number}/outputs"): FARM_READ,
    ("GET", "/files/shots/{shot_id}/{kind}/{name}"): FARM_READ,
    ("GET", "/files/shots/{shot_id}/outputs/{output_id}/{part}"): FARM_READ,
    # A node's uploads: bound to the node holding the attempt.
    ("PUT", "/api/attempts/{attempt_id}/frames/{number}"): rule(NODE, ADMIN, own_lease=True),
    ("PUT", "/api/attempts/{attempt_id}/frames/{number}/outputs"):
        rule(NODE, ADMIN, own_lease=True),
    ("GET", "/api/node/ws"): rule(NODE, ADMIN),
    # Nodes.
    ("GET", "/api/nodes"): FARM_READ,
    ("POST", "/api/nodes/{node_id}/enable"): ADMIN_ONLY,
    ("POST", "/api/nodes/{node_id}/disable"): ADMIN_ONLY,
    ("PATCH", "/api/nodes/{node_id}"): ADMIN_ONLY,
    ("POST", "/api/nodes/{node_id}/revoke"): ADMIN_ONLY,
    ("GET", "/api/events"): FARM_READ,
    # Credentials, enrollment, the audit log (routes/tokens.py).
    ("GET", "/api/tokens"): ADMIN_ONLY,
    ("POST", "/api/tokens"): ADMIN_ONLY,
    ("DELETE", "/api/tokens/{credential_id}"): ADMIN_ONLY,
    ("GET", "/api/join-codes"): ADMIN_ONLY,
    ("POST", "/api/join-codes"): ADMIN_ONLY,
    ("POST", "/api/join"): PUBLIC,  # the one-time code in the body is the credential
    ("POST", "/api/tickets"): rule(ARTIST, ADMIN),
    ("GET", "/api/audit"): ADMIN_ONLY,
    # Frame checks and delivery to studio storage (issue 17).
    ("GET", "/api/shots/{shot_id}/delivery"): FARM_READ,
    ("GET", "/api/shots/{shot_id}/suspicious"): FARM_READ,
    # What the artist takes home (issue 17): the preview movie, the frames as a zip, the
    # farm's figures for Prometheus.
    ("POST", "/api/shots/{shot_id}/movie"): rule(ARTIST, ADMIN),
    ("GET", "/api/shots/{shot_id}/movie"): FARM_READ,
    ("GET", "/api/shots/{shot_id}/frames.zip"): FARM_READ,
    ("GET", "/metrics"): FARM_READ,
    # Webhooks: their URLs and secrets are the farm's settings (issue 17).
    ("GET", "/api/webhooks"): ADMIN_ONLY,
    ("POST", "/api/webhooks"): ADMIN_ONLY,
    ("DELETE", "/api/webhooks/{webhook_id}"): ADMIN_ONLY,
    ("GET", "/api/webhooks/{webhook_id}/deliveries"): ADMIN_ONLY,
    # The dashboard's own files.
    ("GET", "/"): PUBLIC,
    ("GET", "/{path}"): PUBLIC,
}

UNLISTED_READ = rule(ARTIST, ADMIN)


def rule_for(method: str, path: str) -> Rule:
    """The route's rule; for a route missing from the table, the safe default."""
    if method == "HEAD":
        method = "GET"
    found = POLICY.get((method, path))
    if found is not None:
        return found
    return UNLISTED_READ if method in READS else ADMIN_ONLY


def listed(method: str, path: str) -> bool:
    return ((method if method != "HEAD" else "GET"), path) in POLICY


def roles_of(method: str, path: str) -> list[str]:
    """The roles a route admits, as the OpenAPI document lists them (`x-roles`):
    `anyone` for public routes, plus `anyone (open reads)` where reads are open."""
    r = rule_for(method.upper(), path)
    if r.public:
        return ["anyone"]
    out = [role for role in ROLES if role in r.roles]
    if r.open_read:
        out.append("anyone (open reads)")
    return out
