"""A farm in-process with one caller of each kind (issue 18): node A renders artist
anna's shot, node B is idle, artist bob owns nothing, the farm token is the admin's.
Shared by the role table test and the attack tests."""
from __future__ import annotations

import hashlib
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from coordinator.app import create_app
from coordinator.config import Config

TOKEN = "farm-t0ken"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
BLEND = b"BLENDER-v304" + b"\x00" * 100
BLEND_SHA = hashlib.sha256(BLEND).hexdigest()


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class RoleFarm:
    client: TestClient
    data_dir: Path
    tokens: dict[str, str] = field(default_factory=dict)   # caller -> token
    node_ids: dict[str, str] = field(default_factory=dict)  # "A"/"B" -> node id
    ws: dict = field(default_factory=dict)                  # "A"/"B" -> open channel
    shot: dict = field(default_factory=dict)                # anna's shot
    attempt_id: str = ""                                    # node A's lease
    job_id: int = 0
    spare_credential: str = ""                              # a token to revoke

    def headers(self, caller: str) -> dict:
        return bearer(self.tokens[caller]) if caller in self.tokens else {}

    async def close(self) -> None:
        for ws in self.ws.values():
            await ws.close()
        await self.client.close()


async def make_token(client: TestClient, role: str, name: str, cap: int | None = None) -> dict:
    resp = await client.post("/api/tokens", headers=ADMIN,
                             json={"role": role, "name": name, "priority_cap": cap})
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def enroll(client: TestClient, name: str) -> dict:
    code = (await (await client.post("/api/join-codes", headers=ADMIN,
                                     json={"name": name})).json())["code"]
    resp = await client.post("/api/join", json={"code": code, "name": name})
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def hello(ws, name: str, node_id: str | None = None, running: str | None = None) -> dict:
    await ws.send_json({"type": "hello", "name": name, "node_id": node_id, "hostname": "h",
                        "platform": "p", "blender_version": "3.4.1", "cpu_count": 2,
                        "tags": [], "running_attempt": running})
    return await ws.receive_json()


async def submit(client: TestClient, headers: dict, **over) -> dict:
    assert (await client.put(f"/api/blobs/{BLEND_SHA}", data=BLEND, headers=headers)).status \
        in (200, 201)
    body = {"name": "s", "files": [{"path": "s.blend", "sha256": BLEND_SHA,
                                    "size": len(BLEND)}],
            "frame_start": 1, "frame_end": 4, "chunk_size": 4}
    body.update(over)
    resp = await client.post("/api/shots", json=body, headers=headers)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def role_farm(data_dir: Path, **config) -> RoleFarm:
    app = create_app(Config(data_dir=data_dir, **config), TOKEN)
    client = TestClient(TestServer(app))
    await client.start_server()
    farm = RoleFarm(client, data_dir)
    farm.tokens["admin"] = TOKEN
    farm.tokens["anna"] = (await make_token(client, "artist", "anna", 60))["token"]
    farm.tokens["bob"] = (await make_token(client, "artist", "bob"))["token"]
    farm.spare_credential = (await make_token(client, "artist", "spare"))["id"]
    for name in ("A", "B"):
        joined = await enroll(client, f"node-{name}")
        farm.tokens[f"node{name}"] = joined["token"]
        farm.node_ids[name] = joined["node_id"]
    farm.shot = await submit(client, farm.headers("anna"))
    ws = await client.ws_connect("/api/node/ws", headers=farm.headers("nodeA"))
    welcome = await hello(ws, "node-A")
    assert welcome["type"] == "welcome" and welcome["node_id"] == farm.node_ids["A"]
    await ws.send_json({"type": "ready"})
    assign = await ws.receive_json()
    assert assign["type"] == "assign", assign
    farm.attempt_id, farm.job_id = assign["job"]["attempt_id"], assign["job"]["job_id"]
    farm.ws["A"] = ws
    return farm


def snapshot(data_dir: Path) -> tuple:
    """Every row of every table but the audit log (which records refusals too), and
    every file of the data dir but the database's own."""
    with sqlite3.connect(f"file:{data_dir / 'brender.db'}?mode=ro", uri=True) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        rows = {t: sorted(map(repr, conn.execute(f'SELECT * FROM "{t}"'))) for t in tables
                if t != "audit_log"}
    files = sorted(
        (str(Path(d).relative_to(data_dir) / f), os.path.getsize(Path(d) / f))
        for d, _, names in os.walk(data_dir) for f in names
        if not f.startswith("brender.db") and "tmp" not in Path(d).relative_to(data_dir).parts)
    return rows, files
