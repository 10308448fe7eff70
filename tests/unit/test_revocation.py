"""Revoking a credential ends what it still holds (in-process farms, tests/unit/
roles_kit.py): an artist's event streams, whether opened with her token or a ticket;
and `brender-coordinator token revoke` works on a stopped farm's database and on a
running one's (the coordinator notices within seconds and closes what it holds)."""
from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient, TestServer

from coordinator import admin_cli, keys
from coordinator.app import create_app
from coordinator.config import Config
from tests.unit.roles_kit import ADMIN, TOKEN, bearer, role_farm


async def credential_id(farm, name: str) -> str:
    tokens = (await (await farm.client.get("/api/tokens", headers=ADMIN)).json())["tokens"]
    return next(t["id"] for t in tokens if t["name"] == name)


async def open_stream(farm, caller: str | None = None, ticket: str | None = None):
    """An event stream, its hello read."""
    url = f"/api/events?ticket={ticket}" if ticket else "/api/events"
    resp = await farm.client.get(url, headers=farm.headers(caller) if caller else {})
    assert resp.status == 200, await resp.text()
    first = await asyncio.wait_for(resp.content.readuntil(b"\n\n"), 10)
    assert b"event: hello" in first
    return resp


async def ends(resp, seconds: float = 10.0) -> bool:
    """Whether the stream reaches its end (within `seconds`; else it stays open)."""
    async def drain() -> None:
        while await resp.content.readany():
            pass
    try:
        await asyncio.wait_for(drain(), seconds)
        return True
    except asyncio.TimeoutError:
        return False


async def next_event(resp, kind: str, seconds: float = 10.0) -> dict:
    async def read() -> dict:
        while True:
            block = (await resp.content.readuntil(b"\n\n")).decode()
            lines = dict(line.split(": ", 1) for line in block.strip().split("\n")
                         if ": " in line and not line.startswith(":"))
            if lines.get("event") == kind:
                return json.loads(lines["data"])
    return await asyncio.wait_for(read(), seconds)


async def ticket_of(farm, caller: str) -> str:
    resp = await farm.client.post("/api/tickets", headers=farm.headers(caller))
    assert resp.status == 201
    return (await resp.json())["ticket"]


async def test_revoking_an_artist_ends_her_event_streams_and_no_one_elses(tmp_path):
    farm = await role_farm(tmp_path / "data", lock_reads=True)
    try:
        ticket = await ticket_of(farm, "anna")
        with_token = await open_stream(farm, "anna")
        with_ticket = await open_stream(farm, ticket=ticket)
        bobs = await open_stream(farm, "bob")
        resp = await farm.client.delete(f"/api/tokens/{await credential_id(farm, 'anna')}",
                                        headers=ADMIN)
        assert resp.status == 200
        assert await ends(with_token) and await ends(with_ticket)
        # Nor can she open another: her ticket went with her token.
        assert (await farm.client.get(f"/api/events?ticket={ticket}")).status == 401
        assert (await farm.client.get("/api/events", headers=farm.headers("anna"))
                ).status == 401
        # Bob's stream goes on and hears the farm.
        assert farm.client.app[keys.EVENTS].streams == 1
        assert (await farm.client.post(f"/api/shots/{farm.shot['id']}/pause",
                                       headers=ADMIN)).status == 200
        assert (await next_event(bobs, "shot"))["id"] == farm.shot["id"]
        bobs.close()
    finally:
        await farm.close()


async def cli(*argv: str) -> None:
    """`brender-coordinator ...` as a command line runs it (its own event loop)."""
    await asyncio.to_thread(admin_cli.main, list(argv))


async def revoke_cli(data_dir, who: str) -> None:
    await cli("token", "revoke", who, "--data-dir", str(data_dir))


async def test_the_cli_revokes_on_a_running_farm(tmp_path, capsys):
    data = tmp_path / "data"
    farm = await role_farm(data, lock_reads=True, revocation_check_seconds=0.2,
                           lease_timeout=300)
    try:
        anna = await open_stream(farm, "anna")   # her credential is cached now
        await revoke_cli(data, "anna")
        assert "Revoked the artist credential of anna" in capsys.readouterr().out
        assert await ends(anna)
        assert (await farm.client.get("/api/shots", headers=farm.headers("anna"))
                ).status == 401
        # A node, by its name: its channel closes and its job goes back to the queue.
        await revoke_cli(data, "node-A")
        msg = await farm.ws["A"].receive(timeout=10)
        while msg.type == WSMsgType.TEXT:
            msg = await farm.ws["A"].receive(timeout=10)
        assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)
        assert farm.ws["A"].close_code == 4401
        jobs = (await (await farm.client.get(f"/api/shots/{farm.shot['id']}/jobs",
                                             headers=ADMIN)).json())["jobs"]
        assert [j["status"] for j in jobs] == ["queued"]
        # Others keep working.
        assert (await farm.client.get("/api/shots", headers=farm.headers("bob"))).status == 200
    finally:
        await farm.close()


async def test_the_cli_revokes_on_a_stopped_farm_by_id_and_refuses_what_is_unclear(
        tmp_path, capsys):
    data = tmp_path / "data"
    farm = await role_farm(data, lock_reads=True)
    node_b = farm.node_ids["B"]
    bob = await credential_id(farm, "bob")
    second_bob = await (await farm.client.post(
        "/api/tokens", headers=ADMIN, json={"role": "artist", "name": "bob"})).json()
    tokens = dict(farm.tokens)
    await farm.close()

    await revoke_cli(data, node_b)                      # a node's id
    assert f"node {node_b}" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="2 live credentials are 'bob'"):
        await revoke_cli(data, "bob")                   # two artists named bob: which?
    await revoke_cli(data, bob)                         # a credential's id
    with pytest.raises(SystemExit, match="no live credential is 'nobody'"):
        await revoke_cli(data, "nobody")
    with pytest.raises(SystemExit, match="no live credential"):
        await revoke_cli(data, node_b)                  # already revoked
    capsys.readouterr()
    await cli("token", "list", "--data-dir", str(data))
    listed = {c["id"]: c for c in json.loads(capsys.readouterr().out)}
    assert listed[bob]["revoked_at"] and not listed[second_bob["id"]]["revoked_at"]

    # The farm starts again: the revoked tokens answer 401, the others work.
    client = TestClient(TestServer(create_app(Config(data_dir=data, lock_reads=True), TOKEN)))
    await client.start_server()
    try:
        assert (await client.get("/api/shots", headers=bearer(tokens["bob"]))).status == 401
        assert (await client.get("/api/shots", headers=bearer(second_bob["token"]))
                ).status == 200
        assert (await client.get("/api/node/ws", headers=bearer(tokens["nodeB"]))
                ).status == 401
        assert (await client.get("/api/shots", headers=bearer(tokens["anna"]))).status == 200
    finally:
        await client.close()
