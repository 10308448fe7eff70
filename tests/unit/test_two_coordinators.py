"""Two coordinators on one PostgreSQL database and one data dir serve one farm
(in-process apps; tests/reliability/test_multi_coordinator.py kills real ones)."""
from __future__ import annotations

import asyncio
import hashlib
import json

from coordinator import keys
from coordinator.app import create_app
from coordinator.config import Config
from tests.unit.test_api import AUTH, TOKEN, _png, create_shot, node_hello


async def events_until(resp, wanted, seconds: float = 10.0) -> list[tuple[str, dict]]:
    """Read an event stream until `wanted(events)`; the events read."""
    seen: list[tuple[str, dict]] = []
    buffer = b""

    async def read() -> None:
        nonlocal buffer
        while not wanted(seen):
            buffer += await resp.content.readany()
            while b"\n\n" in buffer:
                block, buffer = buffer.split(b"\n\n", 1)
                lines = dict(line.split(": ", 1) for line in block.decode().split("\n")
                             if ": " in line and not line.startswith(":"))
                if "event" in lines:
                    seen.append((lines["event"], json.loads(lines["data"])))
    await asyncio.wait_for(read(), seconds)
    return seen


async def test_a_node_on_one_coordinator_renders_a_shot_sent_to_the_other(
        pg_url, aiohttp_client, tmp_path):
    data = tmp_path / "data"
    a = await aiohttp_client(create_app(Config(data_dir=data, database=pg_url), TOKEN))
    b = await aiohttp_client(create_app(Config(data_dir=data, database=pg_url), TOKEN))
    dashboard = await b.get("/api/events")
    ws = await b.ws_connect("/api/node/ws", headers=AUTH)
    await node_hello(ws, "on-b")
    await ws.send_json({"type": "ready"})
    await asyncio.sleep(0.3)      # idle on b: nothing to do yet

    shot = await create_shot(a, frame_end=2, chunk_size=2)   # submitted to a
    job = (await asyncio.wait_for(ws.receive_json(), 10))["job"]  # a's kick reached b
    assert job["shot_id"] == shot["id"]
    png = _png()
    sha = hashlib.sha256(png).hexdigest()
    for n in job["frames"]:   # uploaded to a, the other coordinator
        resp = await a.put(f"/api/attempts/{job['attempt_id']}/frames/{n}", data=png,
                           headers={**AUTH, "X-Sha256": sha})
        assert resp.status == 201
    # The same frame again, through b: recorded once.
    again = await b.put(f"/api/attempts/{job['attempt_id']}/frames/1", data=png,
                        headers={**AUTH, "X-Sha256": sha})
    assert again.status == 200 and (await again.json())["recorded"] is False
    await ws.send_json({"type": "job_done", "attempt_id": job["attempt_id"]})

    # b's dashboard heard the frames that landed on a, and the shot complete.
    seen = await events_until(dashboard, lambda ev: any(
        k == "shot" and d.get("status") == "completed" for k, d in ev))
    assert sorted(d["number"] for k, d in seen if k == "frame") == [1, 2]
    for api in (a, b):
        frames = (await (await api.get(f"/api/shots/{shot['id']}/frames")).json())["frames"]
        assert [f["status"] for f in frames] == ["done", "done"]
    # One of the two does the farm's duties.
    links = [api.server.app[keys.FARM].reaper.holds_duties() for api in (a, b)]
    assert sorted(links) == [False, True]
    await ws.close()


async def test_a_credential_revoked_on_one_coordinator_stops_on_the_other(
        pg_url, aiohttp_client, tmp_path):
    data = tmp_path / "data"
    config = dict(data_dir=data, database=pg_url, lock_reads=True, revocation_check_seconds=0.2)
    a = await aiohttp_client(create_app(Config(**config), TOKEN))
    b = await aiohttp_client(create_app(Config(**config), TOKEN))
    made = await (await a.post("/api/tokens", headers=AUTH,
                               json={"role": "artist", "name": "anna"})).json()
    anna = {"Authorization": f"Bearer {made['token']}"}
    stream = await b.get("/api/events", headers=anna)     # b knows her credential now
    assert stream.status == 200
    assert (await a.delete(f"/api/tokens/{made['id']}", headers=AUTH)).status == 200

    async def ended() -> None:
        while await stream.content.readany():
            pass
    await asyncio.wait_for(ended(), 10)                   # b ended her stream
    assert (await b.get("/api/shots", headers=anna)).status == 401
