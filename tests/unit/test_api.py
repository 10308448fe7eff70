"""The HTTP API in-process: auth, validation, blobs, shots, fencing, documentation."""
from __future__ import annotations

import asyncio
import hashlib
import json
import time

import pytest

from coordinator import keys
from coordinator.app import create_app
from coordinator.config import Config
from coordinator.openapi import documented_routes

pytestmark = pytest.mark.usefixtures("backend")

TOKEN = "t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BLEND = b"BLENDER-v304" + b"\x00" * 100


@pytest.fixture
async def api(aiohttp_client, tmp_path):
    app = create_app(Config(data_dir=tmp_path / "data", lease_timeout=30), TOKEN)
    return await aiohttp_client(app)


async def put_blob(api, data: bytes = BLEND) -> str:
    sha = hashlib.sha256(data).hexdigest()
    resp = await api.put(f"/api/blobs/{sha}", data=data, headers=AUTH)
    assert resp.status in (200, 201)
    return sha


async def create_shot(api, **over) -> dict:
    sha = await put_blob(api)
    body = {"name": "s", "files": [{"path": "s.blend", "sha256": sha, "size": len(BLEND)}],
            "frame_start": 1, "frame_end": 4, "chunk_size": 2}
    body.update(over)
    resp = await api.post("/api/shots", json=body, headers=AUTH)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def test_every_route_is_documented(api):
    doc = await (await api.get("/api/openapi.json")).json()
    for method, path, summary in documented_routes(api.server.app):
        assert summary, f"{method.upper()} {path} has no docstring"
        assert method in doc["paths"][path]
    text = open("docs/api.md").read()
    for method, path, _ in documented_routes(api.server.app):
        if path.startswith(("/api", "/files", "/addon")):
            assert f"`{path}`" in text, f"{path} is missing from docs/api.md"


async def test_mutations_need_the_token(api):
    for method, path in [("post", "/api/shots"), ("post", "/api/blobs/missing"),
                         ("delete", "/api/shots/1"), ("post", "/api/shots/1/cancel"),
                         ("post", "/api/nodes/" + "0" * 32 + "/disable")]:
        resp = await getattr(api, method)(path, json={})
        assert resp.status == 401
        assert "token" in (await resp.json())["error"]
        bad = await getattr(api, method)(path, json={}, headers={"Authorization": "Bearer x"})
        assert bad.status == 401
    assert (await api.get("/api/shots")).status == 200
    assert (await api.get("/api/node/ws")).status == 401


async def test_lock_reads_guards_reads_too(aiohttp_client, tmp_path):
    app = create_app(Config(data_dir=tmp_path / "d", lock_reads=True), TOKEN)
    client = await aiohttp_client(app)
    assert (await client.get("/api/shots")).status == 401
    assert (await client.get("/api/shots", headers=AUTH)).status == 200
    # A token never travels in a URL (logs, history): a read-only ticket does.
    assert (await client.get(f"/api/shots?token={TOKEN}")).status == 401
    ticket = (await (await client.post("/api/tickets", headers=AUTH)).json())["ticket"]
    assert (await client.get(f"/api/shots?ticket={ticket}")).status == 200
    assert (await client.post(f"/api/shots/1/pause?ticket={ticket}")).status == 401


async def test_blob_upload_checks_the_digest_and_leaves_nothing(api, tmp_path):
    wrong = "b" * 64
    resp = await api.put(f"/api/blobs/{wrong}", data=BLEND, headers=AUTH)
    assert resp.status == 422
    data_dir = api.server.app[keys.CONFIG].data_dir
    assert not (data_dir / "blobs" / "bb" / wrong).exists()
    assert list((data_dir / "tmp").iterdir()) == []
    sha = await put_blob(api)
    missing = await api.post("/api/blobs/missing", json={"sha256": [sha, wrong]}, headers=AUTH)
    assert (await missing.json())["missing"] == [wrong]


async def test_bad_input_gets_json_4xx(api):
    cases = [
        (api.get("/api/shots/abc"), 400), (api.get("/api/shots/99"), 404),
        (api.get("/api/jobs/99"), 404), (api.get("/api/shots?status=nope"), 400),
        (api.post("/api/shots", data=b"{oops", headers={**AUTH, "Content-Type": "application/json"}), 400),
        (api.post("/api/shots", json=[1, 2], headers=AUTH), 400),
        (api.put("/api/blobs/..%2F..%2Fetc", data=b"x", headers=AUTH), 400),
        (api.get("/files/shots/1/frames/..%2F..%2Ftoken"), 404),
        (api.get("/files/shots/1/secret/x.png"), 404),
        (api.get("/api/frames/latest"), 404),
    ]
    for request, status in cases:
        resp = await request
        assert resp.status == status, (resp.url, await resp.text())
        assert "error" in await resp.json()


async def test_a_non_blend_file_is_refused(api):
    sha = await put_blob(api, b"<html>not a blend</html>")
    resp = await api.post("/api/shots", headers=AUTH, json={
        "name": "x", "files": [{"path": "x.blend", "sha256": sha, "size": 24}],
        "frame_start": 1, "frame_end": 2})
    assert resp.status == 400 and "not a .blend" in (await resp.json())["error"]


async def test_files_must_be_uploaded_before_the_shot(api):
    resp = await api.post("/api/shots", headers=AUTH, json={
        "name": "x", "files": [{"path": "x.blend", "sha256": "c" * 64, "size": 1}],
        "frame_start": 1, "frame_end": 2})
    assert resp.status == 400 and "upload these first" in (await resp.json())["error"]


async def test_shot_is_split_into_jobs_and_frames(api):
    shot = await create_shot(api, frame_end=10, chunk_size=3)
    assert shot["frames_total"] == 10 and shot["status"] == "queued"
    jobs = (await (await api.get(f"/api/shots/{shot['id']}/jobs")).json())["jobs"]
    # Exactly the chunk size asked for; the jobs with the first, last and middle frames first.
    assert [j["frames"] for j in jobs] == [[1, 2, 3], [10], [4, 5, 6], [7, 8, 9]]
    frames = await (await api.get(f"/api/shots/{shot['id']}/frames?offset=2&limit=3")).json()
    assert [f["number"] for f in frames["frames"]] == [3, 4, 5] and frames["total"] == 10


async def shot_when_completed(api, shot_id: int, seconds: float = 2.5) -> dict:
    """The shot once it is completed, or as it stands after `seconds`."""
    for _ in range(int(seconds / 0.05)):
        shot = await (await api.get(f"/api/shots/{shot_id}")).json()
        if shot["status"] == "completed":
            break
        await asyncio.sleep(0.05)
    return shot


async def node_hello(ws, name="n1", node_id=None, running=None) -> dict:
    await ws.send_json({"type": "hello", "name": name, "node_id": node_id,
                        "hostname": "h", "platform": "p", "blender_version": "3.4.1",
                        "cpu_count": 2, "tags": [], "running_attempt": running})
    return await ws.receive_json()


async def test_handshake_assign_upload_and_stale_attempt_is_fenced(api):
    shot = await create_shot(api, frame_end=2, chunk_size=2)
    ws = await api.ws_connect("/api/node/ws", headers=AUTH)
    welcome = await node_hello(ws)
    assert welcome["type"] == "welcome" and len(welcome["node_id"]) == 32
    await ws.send_json({"type": "ready"})
    assign = await ws.receive_json()
    job = assign["job"]
    assert job["frames"] == [1, 2] and job["shot_id"] == shot["id"]

    png = _png()
    sha = hashlib.sha256(png).hexdigest()
    url = f"/api/attempts/{job['attempt_id']}/frames/1"
    bad = await api.put(url, data=png, headers={**AUTH, "X-Sha256": "d" * 64})
    assert bad.status == 422  # a half-written or corrupt body never becomes a frame
    ok = await api.put(url, data=png, headers={**AUTH, "X-Sha256": sha, "X-Render-Time": "1.5"})
    assert ok.status == 201
    again = await api.put(url, data=png, headers={**AUTH, "X-Sha256": sha})
    assert again.status == 200 and (await again.json())["recorded"] is False
    outside = await api.put(f"/api/attempts/{job['attempt_id']}/frames/7", data=png,
                            headers={**AUTH, "X-Sha256": sha})
    assert outside.status == 400

    # The node vanishes; its lease is requeued; a late upload from it is refused.
    await ws.close()
    dispatcher = api.server.app[keys.DISPATCHER]
    import time
    await dispatcher.reap(time.time() + 3600)
    late = await api.put(f"/api/attempts/{job['attempt_id']}/frames/2", data=png,
                         headers={**AUTH, "X-Sha256": sha})
    assert late.status == 409
    frames = (await (await api.get(f"/api/shots/{shot['id']}/frames")).json())["frames"]
    assert [f["status"] for f in frames] == ["done", "queued"]

    # A new node gets only the frame that is still missing.
    ws2 = await api.ws_connect("/api/node/ws", headers=AUTH)
    await node_hello(ws2, "n2")
    await ws2.send_json({"type": "ready"})
    job2 = (await ws2.receive_json())["job"]
    assert job2["frames"] == [2] and job2["attempt_id"] != job["attempt_id"]
    ok2 = await api.put(f"/api/attempts/{job2['attempt_id']}/frames/2", data=png,
                        headers={**AUTH, "X-Sha256": sha})
    assert ok2.status == 201
    await ws2.send_json({"type": "job_done", "attempt_id": job2["attempt_id"]})
    await ws2.send_json({"type": "ready"})
    shot_now = await shot_when_completed(api, shot["id"])
    assert shot_now["status"] == "completed" and shot_now["frames_done"] == 2
    await ws2.close()


async def test_malformed_node_messages_get_an_error_not_a_crash(api):
    ws = await api.ws_connect("/api/node/ws", headers=AUTH)
    await ws.send_str("{not json")
    msg = await ws.receive_json()
    assert msg["type"] == "error"
    await ws.close()
    ws = await api.ws_connect("/api/node/ws", headers=AUTH)
    await node_hello(ws)
    await ws.send_str("[]")
    assert (await ws.receive_json())["type"] == "error"
    await ws.send_json({"type": "warp-drive"})
    assert "unknown message type" in (await ws.receive_json())["error"]
    await ws.close()


def _png() -> bytes:
    import io

    from PIL import Image
    buf = io.BytesIO()
    Image.new("RGB", (32, 18), (200, 40, 40)).save(buf, "PNG")
    return buf.getvalue()


async def test_farm_summary_reports_how_long_nodes_waited_for_a_job(api):
    empty = await (await api.get("/api/farm")).json()
    assert empty["dispatch_latency"] == {"samples": 0, "p50_ms": None, "p99_ms": None,
                                         "max_ms": None}
    await create_shot(api, frame_end=2, chunk_size=1)
    ws = await api.ws_connect("/api/node/ws", headers=AUTH)
    await node_hello(ws)
    await ws.send_json({"type": "ready"})
    assert (await ws.receive_json())["type"] == "assign"
    farm = await (await api.get("/api/farm")).json()
    assert farm["nodes"]["rendering"] == 1 and farm["frames_queued"] == 2
    lat = farm["dispatch_latency"]
    assert lat["samples"] == 1 and 0 <= lat["p50_ms"] == lat["p99_ms"] == lat["max_ms"] < 5000
    resp = await api.get("/api/farm?window=soon")
    assert resp.status == 400 and "window" in (await resp.json())["error"]
    await ws.close()


async def test_farm_summary_reports_when_the_coordinator_was_held_up(api):
    await asyncio.sleep(0.1)
    time.sleep(0.15)  # the test shares the coordinator's event loop: hold it
    await asyncio.sleep(0.05)
    lag = (await (await api.get("/api/farm")).json())["loop_lag"]
    assert lag["samples"] >= 5
    assert lag["p50_ms"] < 100 and 100 <= lag["max_ms"] < 1000


async def test_a_report_that_asks_for_more_is_answered_with_the_next_job(api):
    shot = await create_shot(api, frame_end=3, chunk_size=1)
    ws = await api.ws_connect("/api/node/ws", headers=AUTH)
    welcome = await node_hello(ws)
    assert "ready_in_report" in welcome["features"]
    await ws.send_json({"type": "ready"})
    png = _png()
    sha = hashlib.sha256(png).hexdigest()
    seen = []
    job = (await ws.receive_json())["job"]
    while True:
        seen += job["frames"]
        put = await api.put(f"/api/attempts/{job['attempt_id']}/frames/{job['frames'][0]}",
                            data=png, headers={**AUTH, "X-Sha256": sha})
        assert put.status == 201
        # No separate "ready": the report itself asks for the next job.
        await ws.send_json({"type": "job_done", "attempt_id": job["attempt_id"], "ready": True})
        if len(seen) == 3:
            break
        msg = await ws.receive_json()
        assert msg["type"] == "assign"
        job = msg["job"]
    assert sorted(seen) == [1, 2, 3]
    done = await shot_when_completed(api, shot["id"])
    assert done["status"] == "completed" and done["frames_done"] == 3
    # The node is idle now, and a later shot reaches it without another "ready".
    await create_shot(api, frame_end=1, chunk_size=1)
    assert (await ws.receive_json())["type"] == "assign"
    await ws.close()
