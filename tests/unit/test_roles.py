"""The role table (coordinator/auth_policy.py), checked route by route: every route of
the OpenAPI document is called by an anonymous caller, two nodes, two artists and the
admin; those the table refuses get 401/403 and change nothing, the others get past
the gate. A route missing from the table fails here, so whoever added it decides who
may call it."""
from __future__ import annotations

import re
import tempfile

import pytest

from coordinator import auth_policy, keys
from coordinator.app import create_app
from coordinator.auth_policy import READS
from coordinator.config import Config
from coordinator.openapi import documented_routes
from tests.unit.roles_kit import BLEND_SHA, TOKEN, RoleFarm, role_farm, snapshot

ROLE_OF = {"nodeA": "node", "nodeB": "node", "anna": "artist", "bob": "artist",
           "admin": "admin"}
CALLERS = ["anonymous", "nodeA", "nodeB", "bob", "anna", "admin"]


def app_routes() -> list[tuple[str, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(Config(data_dir=tmp), TOKEN)
        return sorted({(m.upper(), p) for m, p, _ in documented_routes(app)})


ROUTES = app_routes()


def may_call(rule: auth_policy.Rule, caller: str, method: str, lock_reads: bool) -> bool:
    if rule.public:
        return True
    if caller == "anonymous":
        return rule.open_read and method in READS and not lock_reads
    if ROLE_OF[caller] not in rule.roles:
        return False
    if caller == "bob" and rule.own_shot:       # anna's shot
        return False
    if caller == "nodeB" and (rule.own_lease or rule.leased_blob):  # node A's lease
        return False
    return True


def fill(farm: RoleFarm, path: str) -> str:
    values = {"shot_id": farm.shot["id"], "job_id": farm.job_id,
              "attempt_id": farm.attempt_id, "number": 1,
              "sha256": BLEND_SHA,
              "node_id": farm.node_ids["A"], "credential_id": farm.spare_credential,
              "kind": "frames", "name": "frame_000001.png", "output_id": 1, "part": "file",
              "path": "index.html", "webhook_id": "0" * 16}
    return re.sub(r"\{(\w+)\}", lambda m: str(values[m[1]]), path)


async def call(farm: RoleFarm, caller: str, method: str, path: str) -> int:
    body = None if method in READS else b"{}"
    headers = {**farm.headers(caller), "Content-Type": "application/json"}
    async with farm.client.request(method, fill(farm, path), data=body,
                                   headers=headers) as resp:
        return resp.status  # a stream (events) is not read: its status is the answer


def test_every_route_is_in_the_role_table():
    missing = [f"{m} {p}" for m, p in ROUTES if not auth_policy.listed(m, p)]
    assert not missing, ("routes missing from coordinator/auth_policy.py's POLICY "
                         f"(they get the safe default until listed): {missing}")
    stale = [f"{m} {p}" for m, p in auth_policy.POLICY if (m, p) not in ROUTES
             and p not in ("/{path}",)]
    assert not stale, f"the role table lists routes that do not exist: {stale}"


async def test_the_openapi_document_publishes_the_table(tmp_path):
    farm = await role_farm(tmp_path / "data")
    try:
        doc = await (await farm.client.get("/api/openapi.json")).json()
        for method, path in ROUTES:
            op = doc["paths"][path][method.lower()]
            assert op["x-roles"] == auth_policy.roles_of(method, path), (method, path)
            assert ("security" in op) == ("anyone" not in op["x-roles"]), (method, path)
    finally:
        await farm.close()


def test_unlisted_routes_get_the_safe_default():
    assert auth_policy.rule_for("POST", "/api/new-thing").roles == {"admin"}
    assert auth_policy.rule_for("DELETE", "/api/x/{id}").roles == {"admin"}
    unlisted_read = auth_policy.rule_for("GET", "/api/new-thing")
    assert unlisted_read.roles == {"artist", "admin"} and not unlisted_read.open_read


@pytest.mark.parametrize("method,path", ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
async def test_route_admits_only_its_roles(tmp_path, method, path):
    farm = await role_farm(tmp_path / "data")
    try:
        rule = auth_policy.rule_for(method, path)
        allowed = [c for c in CALLERS if may_call(rule, c, method, False)]
        refused = [c for c in CALLERS if c not in allowed]
        for caller in refused:
            before = snapshot(farm.data_dir)
            status = await call(farm, caller, method, path)
            assert status == (401 if caller == "anonymous" else 403), (caller, status)
            assert snapshot(farm.data_dir) == before, f"{caller}'s refused call changed data"
        for caller in allowed:
            status = await call(farm, caller, method, path)
            assert status not in (401, 403), (caller, status)
        # With --lock-reads, nothing but the public routes is open to anonymous callers.
        farm.client.app[keys.CONFIG].lock_reads = True
        if not rule.public:
            assert await call(farm, "anonymous", method, path) == 401
    finally:
        await farm.close()
