"""A node's channel in-process: every way its job ends leaves it free for the next one,
and a job that cannot be sent fails alone, never as an HTTP response on the channel."""
from __future__ import annotations

import hashlib
import time

import pytest
from aiohttp import WSMsgType

from coordinator import keys
from coordinator.app import create_app
from coordinator.config import Config
from coordinator.outcomes import UNDELIVERABLE
from coordinator.store import shots as shot_sql
from coordinator.validation import ShotSpec
from tests.unit.test_api import AUTH, TOKEN, _png, create_shot, node_hello

# Every test runs on SQLite and on PostgreSQL.
pytestmark = pytest.mark.usefixtures("backend")


@pytest.fixture
async def api(aiohttp_client, tmp_path):
    app = create_app(Config(data_dir=tmp_path / "data", lease_timeout=30), TOKEN)
    return await aiohttp_client(app)


async def receive(ws, timeout: float = 5) -> dict:
    """The next message, which must be a node-protocol JSON message."""
    msg = await ws.receive(timeout=timeout)
    assert msg.type == WSMsgType.TEXT, f"not a protocol message: {msg}"
    return msg.json()


async def ready_node(api, name: str = "n1"):
    ws = await api.ws_connect("/api/node/ws", headers=AUTH)
    welcome = await node_hello(ws, name)
    await ws.send_json({"type": "ready"})
    return ws, welcome["node_id"]


async def node_view(api, node_id: str) -> dict:
    nodes = (await (await api.get("/api/nodes")).json())["nodes"]
    return next(n for n in nodes if n["id"] == node_id)


async def job_of(api, shot_id: int) -> dict:
    [job] = (await (await api.get(f"/api/shots/{shot_id}/jobs")).json())["jobs"]
    return job


async def upload(api, job: dict, number: int) -> None:
    png = _png()
    resp = await api.put(f"/api/attempts/{job['attempt_id']}/frames/{number}", data=png,
                         headers={**AUTH, "X-Sha256": hashlib.sha256(png).hexdigest()})
    assert resp.status == 201


@pytest.mark.parametrize("ending", ["cancel", "delete"])
async def test_a_node_whose_shot_ends_takes_the_next_shot(api, ending):
    first = await create_shot(api, frame_end=2, chunk_size=2)
    second = await create_shot(api, frame_end=1, chunk_size=1)
    ws, node_id = await ready_node(api)
    job = (await receive(ws))["job"]
    assert job["shot_id"] == first["id"]
    if ending == "cancel":
        assert (await api.post(f"/api/shots/{first['id']}/cancel", headers=AUTH)).status == 200
    else:
        assert (await api.delete(f"/api/shots/{first['id']}", headers=AUTH)).status == 200
    assert await receive(ws) == {"type": "cancel", "attempt_id": job["attempt_id"]}
    view = await node_view(api, node_id)
    assert view["status"] == "idle" and view["current_job_id"] is None
    await ws.send_json({"type": "ready"})  # what a node does once it stopped Blender
    nxt = (await receive(ws))["job"]
    assert nxt["shot_id"] == second["id"]
    assert (await node_view(api, node_id))["current_job_id"] == nxt["job_id"]
    await ws.close()


async def test_a_report_crossing_the_cancel_still_asks_for_the_next_job(api):
    """The node finished just as the shot was cancelled: its report, about an attempt
    it no longer holds, still counts as asking for work (it sends no other "ready")."""
    first = await create_shot(api, frame_end=1, chunk_size=1)
    second = await create_shot(api, frame_end=1, chunk_size=1)
    ws, _ = await ready_node(api)
    job = (await receive(ws))["job"]
    await upload(api, job, 1)
    await api.post(f"/api/shots/{first['id']}/cancel", headers=AUTH)
    await ws.send_json({"type": "job_done", "attempt_id": job["attempt_id"], "ready": True})
    assert (await receive(ws))["type"] == "cancel"
    assert (await receive(ws))["job"]["shot_id"] == second["id"]
    await ws.close()


async def test_a_ready_node_holds_no_job(api):
    """A node that says "ready" while the coordinator thinks it holds a job dropped that
    job: it goes back to the queue and the node is served."""
    shot = await create_shot(api, frame_end=2, chunk_size=1)
    ws, node_id = await ready_node(api)
    dropped = (await receive(ws))["job"]
    await ws.send_json({"type": "ready"})
    taken = (await receive(ws))["job"]
    jobs = {j["id"]: j for j in (await (await api.get(f"/api/shots/{shot['id']}/jobs"))
                                 .json())["jobs"]}
    assert taken["attempt_id"] != dropped["attempt_id"]
    assert jobs[taken["job_id"]]["status"] == "running"
    assert jobs[taken["job_id"]]["attempt_id"] == taken["attempt_id"]
    assert (await node_view(api, node_id))["current_job_id"] == taken["job_id"]
    assert sum(j["status"] == "running" for j in jobs.values()) == 1
    await ws.close()


async def test_a_disabled_node_finishes_its_job_then_waits_until_enabled(api):
    first = await create_shot(api, frame_end=1, chunk_size=1)
    second = await create_shot(api, frame_end=1, chunk_size=1)
    ws, node_id = await ready_node(api)
    job = (await receive(ws))["job"]
    assert (await api.post(f"/api/nodes/{node_id}/disable", headers=AUTH)).status == 200
    await upload(api, job, 1)
    await ws.send_json({"type": "job_done", "attempt_id": job["attempt_id"], "ready": True})
    with pytest.raises(TimeoutError):
        await receive(ws, timeout=0.5)
    assert (await job_of(api, first["id"]))["status"] == "done"
    assert (await job_of(api, second["id"]))["status"] == "queued"
    view = await node_view(api, node_id)
    assert view["status"] == "idle" and not view["enabled"]
    assert (await api.post(f"/api/nodes/{node_id}/enable", headers=AUTH)).status == 200
    assert (await receive(ws))["job"]["shot_id"] == second["id"]
    await ws.close()


def poison_spec() -> ShotSpec:
    """A shot as a coordinator from before kept it: a file name that is not valid
    Unicode (a Latin-1 name read as UTF-8 with surrogateescape)."""
    return ShotSpec(name="poison", blend_path="p.blend", frame_start=1, frame_end=1,
                    files=[{"path": "p.blend", "sha256": "0" * 64, "size": 1},
                           {"path": "caf\udce9.png", "sha256": "1" * 64, "size": 1}])


async def assert_failed_as_undeliverable(api, shot_id: int) -> None:
    job = await job_of(api, shot_id)
    assert job["status"] == "failed" and job["failure_reason"].startswith(UNDELIVERABLE)
    shot = await (await api.get(f"/api/shots/{shot_id}")).json()
    assert shot["status"] == "failed" and UNDELIVERABLE in shot["failure_reason"]


async def test_a_job_that_cannot_be_sent_fails_and_its_node_takes_the_next(api):
    db = api.server.app[keys.DB]
    poison = await db.write(shot_sql.create, poison_spec(), [[1]])
    good = await create_shot(api, frame_end=1, chunk_size=1)
    ws, node_id = await ready_node(api)
    assigned = await receive(ws)
    assert assigned["type"] == "assign" and assigned["job"]["shot_id"] == good["id"]
    await assert_failed_as_undeliverable(api, poison)
    assert (await node_view(api, node_id))["current_job_id"] == assigned["job"]["job_id"]
    await ws.close()


async def test_a_dispatch_round_fails_the_job_it_cannot_send_and_goes_on(api):
    """Work arrives while nodes wait: the background round meets the bad job first."""
    ws1, _ = await ready_node(api, "n1")
    ws2, _ = await ready_node(api, "n2")
    db, dispatcher = api.server.app[keys.DB], api.server.app[keys.DISPATCHER]
    poison = await db.write(shot_sql.create, poison_spec(), [[1]])
    good = await create_shot(api, frame_end=2, chunk_size=1)  # kicks the round
    shots = {(await receive(ws))["job"]["shot_id"] for ws in (ws1, ws2)}
    assert shots == {good["id"]}
    await assert_failed_as_undeliverable(api, poison)
    # No lease is left behind for a job no node has: nothing to renew or requeue.
    assert await dispatcher.reap(time.time() + 3600) == 0
    for ws in (ws1, ws2):
        await ws.close()


async def test_a_failing_handler_answers_with_a_protocol_error(api, monkeypatch):
    async def broken(session):
        raise RuntimeError("a bug")

    ws = await api.ws_connect("/api/node/ws", headers=AUTH)
    await node_hello(ws)
    monkeypatch.setattr(api.server.app[keys.DISPATCHER], "node_ready", broken)
    await ws.send_json({"type": "ready"})
    error = await receive(ws)
    assert error["type"] == "error" and "internal error" in error["error"]
    # The channel is still open and speaks the protocol.
    await ws.send_json({"type": "warp-drive"})
    assert "unknown message type" in (await receive(ws))["error"]
    await ws.close()
