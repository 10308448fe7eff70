"""The right work on the right node, in-process: tags, devices, Blender versions, caps,
fair share and the reasons a shot waits, seen through the API and the node channel."""
from __future__ import annotations

import asyncio

import pytest

from coordinator.app import create_app
from coordinator.config import Config
from tests.unit.test_api import AUTH, TOKEN, create_shot
from tests.unit.test_node_lifecycle import receive, upload

# Every test runs on SQLite and on PostgreSQL.
pytestmark = pytest.mark.usefixtures("backend")

GPU = [{"type": "CPU", "name": "CPU", "id": "CPU"},
       {"type": "CUDA", "name": "RTX", "id": "CUDA_0"}]


@pytest.fixture
async def api(aiohttp_client, tmp_path):
    app = create_app(Config(data_dir=tmp_path / "data", lease_timeout=30), TOKEN)
    return await aiohttp_client(app)


async def node(api, name: str, tags=(), devices=None, blenders=("3.4.1",), node_id=None,
               ready: bool = True):
    ws = await api.ws_connect("/api/node/ws", headers=AUTH)
    hello = {"type": "hello", "name": name, "node_id": node_id, "hostname": "h",
             "platform": "p", "blender_version": blenders[0], "cpu_count": 2,
             "tags": list(tags), "running_attempt": None, "blenders": list(blenders)}
    if devices is not None:
        hello["devices"] = devices
    await ws.send_json(hello)
    welcome = await ws.receive_json()
    assert welcome["type"] == "welcome", welcome
    if ready:
        await ws.send_json({"type": "ready"})
    return ws, welcome["node_id"]


async def nothing_for(ws, seconds: float = 0.4) -> None:
    with pytest.raises(asyncio.TimeoutError):
        await ws.receive(timeout=seconds)


async def shot_view(api, shot_id: int) -> dict:
    return await (await api.get(f"/api/shots/{shot_id}")).json()


async def waiting(api, shot_id: int, expected: str | None, timeout: float = 3) -> dict:
    """The shot once its waiting reason is `expected` (reasons follow node changes)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        shot = await shot_view(api, shot_id)
        if shot["waiting"] == expected or loop.time() > end:
            assert shot["waiting"] == expected
            return shot
        await asyncio.sleep(0.05)


async def test_a_shot_needing_tags_goes_only_to_a_node_with_all_of_them(api):
    shot = await create_shot(api, frame_end=1, chunk_size=1, requires_tags=["gpu", "bigram"])
    assert shot["requires_tags"] == ["gpu", "bigram"]
    assert shot["waiting"] == "no node is connected"
    ws_gpu, _ = await node(api, "gpu-only", tags=["gpu"])
    await nothing_for(ws_gpu)
    await waiting(api, shot["id"], "no node has tag bigram")
    ws_both, _ = await node(api, "both", tags=["bigram", "gpu", "fast"])
    job = (await receive(ws_both))["job"]
    assert job["shot_id"] == shot["id"]
    assert (await shot_view(api, shot["id"]))["waiting"] is None
    await nothing_for(ws_gpu)


async def test_a_gpu_shot_waits_for_a_gpu_and_says_so(api):
    shot = await create_shot(api, frame_end=1, chunk_size=1, device="gpu")
    cpu, _ = await node(api, "cpu-box")
    await nothing_for(cpu)
    await waiting(api, shot["id"], "no node has a GPU")
    gpu, _ = await node(api, "gpu-box", devices=GPU)
    job = (await receive(gpu))["job"]
    assert job["device"] == "gpu" and job["shot_id"] == shot["id"]


async def test_the_blender_version_follows_the_file_or_the_range(api):
    both = ("5.0.1", "3.4.1")
    own = await create_shot(api, frame_end=1, chunk_size=1, blender_saved_with="3.4")
    ws, _ = await node(api, "two-blenders", blenders=both)
    job = (await receive(ws))["job"]
    assert (job["shot_id"], job["blender_version"]) == (own["id"], "3.4.1")
    await ws.close()
    # Saved with a version no node has: the newest, with a notice on the shot.
    newer = await create_shot(api, frame_end=1, chunk_size=1, blender_saved_with="4.2")
    ranged = await create_shot(api, frame_end=1, chunk_size=1, blender=">=5")
    ws, _ = await node(api, "two-blenders-again", blenders=both)
    first = (await receive(ws))["job"]
    assert (first["shot_id"], first["blender_version"]) == (newer["id"], "5.0.1")
    assert (await shot_view(api, newer["id"]))["notices"] == [
        "no node has Blender 4.2 (the file's version); rendering with 5.0"]
    old, _ = await node(api, "old-only", blenders=("3.4.1",))
    await nothing_for(old)
    await waiting(api, ranged["id"], None)  # the node with 5.0.1 can, once free


async def test_shots_a_node_cannot_open_wait_with_the_reason(api):
    too_new = await create_shot(api, frame_end=1, chunk_size=1, blender_saved_with="5.0")
    out_of_range = await create_shot(api, frame_end=1, chunk_size=1, blender=">=4.2,<5")
    ws, node_id = await node(api, "old", blenders=("3.4.1",))
    await nothing_for(ws)
    await waiting(api, too_new["id"], "saved with Blender 5.0; the newest node has 3.4.1")
    await waiting(api, out_of_range["id"], "no node has Blender >=4.2,<5")
    resp = await api.post(f"/api/nodes/{node_id}/disable", headers=AUTH)
    assert resp.status == 200
    free = await create_shot(api, frame_end=1, chunk_size=1)
    await waiting(api, free["id"], "every node that can take it is disabled")


async def test_shots_of_one_priority_share_the_nodes(api):
    a = await create_shot(api, name="a", frame_end=8, chunk_size=1)
    b = await create_shot(api, name="b", frame_end=8, chunk_size=1)
    sockets = [(await node(api, f"n{i}"))[0] for i in range(4)]
    shots = [(await receive(ws))["job"]["shot_id"] for ws in sockets]
    assert sorted(shots) == sorted([a["id"], a["id"], b["id"], b["id"]])


async def test_a_higher_priority_shot_takes_its_pool_and_a_lower_one_the_idle_pool(api):
    gpu_work = await create_shot(api, name="gpu", frame_end=8, chunk_size=1, priority=90,
                                 requires_tags=["gpu"])
    any_work = await create_shot(api, name="any", frame_end=8, chunk_size=1, priority=10)
    cpu, _ = await node(api, "cpu-box")
    assert (await receive(cpu))["job"]["shot_id"] == any_work["id"]
    gpu, _ = await node(api, "gpu-box", tags=["gpu"])
    assert (await receive(gpu))["job"]["shot_id"] == gpu_work["id"]


async def test_a_node_takes_first_the_shot_that_prefers_its_tags(api):
    plain = await create_shot(api, name="plain", frame_end=2, chunk_size=1)
    fond = await create_shot(api, name="fond", frame_end=2, chunk_size=1, prefers_tags=["ssd"])
    ssd, _ = await node(api, "ssd-box", tags=["ssd"])
    assert (await receive(ssd))["job"]["shot_id"] == fond["id"]
    other, _ = await node(api, "hdd-box")
    assert (await receive(other))["job"]["shot_id"] == plain["id"]


async def test_a_capped_shot_never_has_more_nodes_than_its_limit(api):
    shot = await create_shot(api, frame_end=6, chunk_size=1, max_nodes=1)
    first, _ = await node(api, "n1")
    await receive(first)
    second, _ = await node(api, "n2")
    await nothing_for(second)
    view = await waiting(api, shot["id"], "at its limit of 1 node")
    assert (view["max_nodes"], view["nodes_rendering"]) == (1, 1)
    resp = await api.patch(f"/api/shots/{shot['id']}", json={"max_nodes": 2}, headers=AUTH)
    assert resp.status == 200 and (await resp.json())["max_nodes"] == 2
    assert (await receive(second))["job"]["shot_id"] == shot["id"]


@pytest.mark.parametrize("field, value", [
    ("blender", ">=4.2,<<5"), ("blender", "four"), ("device", "tpu"), ("max_nodes", 0),
    ("requires_tags", "a" * 60), ("requires_tags", [""]), ("blender_saved_with", "v5"),
    ("prefers_tags", [1]),
])
async def test_bad_requirements_are_refused_naming_the_field(api, field, value):
    sha = (await create_shot(api))["files"][0]["sha256"]
    body = {"name": "s", "files": [{"path": "s.blend", "sha256": sha, "size": 112}],
            "frame_start": 1, "frame_end": 1, field: value}
    resp = await api.post("/api/shots", json=body, headers=AUTH)
    assert resp.status == 400, await resp.text()
    assert (await resp.json())["field"].startswith(field)


async def test_unknown_tags_and_devices_are_accepted_and_shown_as_the_reason(api):
    shot = await create_shot(api, frame_end=1, requires_tags=["quantum"], device="gpu")
    await node(api, "n1", tags=["gpu"], devices=GPU)
    await waiting(api, shot["id"], "no node has tag quantum")


async def test_an_admins_tags_win_over_the_nodes_own_across_reconnects(api):
    ws, node_id = await node(api, "box", tags=["cpu"], ready=False)
    resp = await api.patch(f"/api/nodes/{node_id}", json={"tags": "gpu, bigram"}, headers=AUTH)
    assert resp.status == 200, await resp.text()
    view = await resp.json()
    assert (view["tags"], view["tags_edited"], view["own_tags"]) == (["gpu", "bigram"], True,
                                                                     ["cpu"])
    await ws.close()
    shot = await create_shot(api, frame_end=1, requires_tags=["bigram"])
    ws, _ = await node(api, "box", tags=["cpu"], node_id=node_id)
    assert (await receive(ws))["job"]["shot_id"] == shot["id"]
    resp = await api.patch(f"/api/nodes/{node_id}", json={"tags": None}, headers=AUTH)
    assert (await resp.json())["tags"] == ["cpu"]


@pytest.mark.parametrize("body, field", [
    ({"tags": ["ok", ""]}, "tags[1]"), ({"colour": "red"}, "colour"), ({}, "body"),
    ({"schedule": {"mode": "weekly", "windows": [{"days": ["mon"], "start": "25:00",
                                                  "end": "08:00"}]}},
     "schedule.windows[0].start"),
    ({"schedule": {"mode": "sometimes"}}, "schedule.mode"),
])
async def test_bad_node_edits_are_refused_naming_the_field(api, body, field):
    _, node_id = await node(api, "box", ready=False)
    resp = await api.patch(f"/api/nodes/{node_id}", json=body, headers=AUTH)
    assert resp.status == 400, await resp.text()
    assert (await resp.json())["field"] == field
    assert (await api.patch(f"/api/nodes/{'0' * 32}", json={"tags": []},
                            headers=AUTH)).status == 404
    assert (await api.patch(f"/api/nodes/{node_id}", json={"tags": []})).status == 401


async def test_a_node_outside_its_window_sleeps_and_hands_back_when_asked(api):
    shot = await create_shot(api, frame_end=4, chunk_size=1)
    ws, node_id = await node(api, "night-box")
    job = (await receive(ws))["job"]
    never = {"mode": "never", "on_sleep": "handback"}
    resp = await api.patch(f"/api/nodes/{node_id}", json={"schedule": never}, headers=AUTH)
    assert resp.status == 200 and (await resp.json())["schedule"]["mode"] == "never"
    assert await receive(ws) == {"type": "cancel", "attempt_id": job["attempt_id"]}
    await ws.send_json({"type": "ready"})
    await nothing_for(ws)
    nodes = (await (await api.get("/api/nodes")).json())["nodes"]
    assert next(n for n in nodes if n["id"] == node_id)["status"] == "asleep"
    await waiting(api, shot["id"], "every node that can take it is asleep")
    resp = await api.patch(f"/api/nodes/{node_id}", json={"schedule": {"mode": "always"}},
                           headers=AUTH)
    assert resp.status == 200
    assert (await receive(ws))["job"]["shot_id"] == shot["id"]


async def test_a_node_set_to_finish_keeps_its_job_and_takes_no_more(api):
    await create_shot(api, frame_end=4, chunk_size=1)
    ws, node_id = await node(api, "day-box")
    await receive(ws)
    resp = await api.patch(f"/api/nodes/{node_id}", json={"schedule": {"mode": "never"}},
                           headers=AUTH)
    assert (await resp.json())["status"] == "rendering"
    await nothing_for(ws)  # no cancel: the job finishes


async def test_the_farm_summary_counts_sleeping_nodes(api):
    _, node_id = await node(api, "night-box", ready=False)
    await api.patch(f"/api/nodes/{node_id}", json={"schedule": {"mode": "never"}}, headers=AUTH)
    counts = (await (await api.get("/api/farm")).json())["nodes"]
    assert (counts["asleep"], counts["idle"]) == (1, 0)


async def test_a_shot_fails_once_every_node_able_to_take_it_failed_it(aiohttp_client, tmp_path):
    """Nodes outside its pool do not keep a shot alive that its pool cannot render."""
    app = create_app(Config(data_dir=tmp_path / "data", lease_timeout=30,
                            blocklist_threshold=1, max_attempts=5), TOKEN)
    api = await aiohttp_client(app)
    shot = await create_shot(api, frame_end=2, chunk_size=1, requires_tags=["gpu"])
    await node(api, "cpu-box")
    gpu, _ = await node(api, "gpu-box", tags=["gpu"])
    job = (await receive(gpu))["job"]
    await gpu.send_json({"type": "job_failed", "attempt_id": job["attempt_id"],
                         "reason": "CUDA out of memory", "log_tail": ""})
    loop = asyncio.get_running_loop()
    end = loop.time() + 3
    while (view := await shot_view(api, shot["id"]))["status"] != "failed":
        assert loop.time() < end, view
        await asyncio.sleep(0.05)
    assert "CUDA out of memory" in view["failure_reason"]


async def done_then_next(api, ws, job: dict) -> dict:
    """The node renders `job` (one frame), reports it done and asks for more: the job
    it is given next."""
    await upload(api, job, job["frames"][0])
    await ws.send_json({"type": "job_done", "attempt_id": job["attempt_id"], "ready": True})
    message = await receive(ws)
    assert message["type"] == "assign", message
    job = message["job"]
    return job


async def test_a_node_done_with_its_job_gets_the_best_work_as_the_farm_is_now(api):
    """The next job follows the farm as it is when the node reports, not as it was when
    its last job was chosen: a shot of higher priority submitted meanwhile comes first,
    and a paused one is passed over. (On PostgreSQL the scheduler keeps the shots it
    read between claims, while the farm's dispatch generation says nothing changed.)"""
    low = await create_shot(api, name="low", frame_end=8, chunk_size=1, priority=10)
    ws, _ = await node(api, "box")
    job = (await receive(ws))["job"]
    for _ in range(3):
        job = await done_then_next(api, ws, job)
        assert job["shot_id"] == low["id"]
    high = await create_shot(api, name="high", frame_end=4, chunk_size=1, priority=90)
    for _ in range(2):
        job = await done_then_next(api, ws, job)
        assert job["shot_id"] == high["id"]
    assert (await api.post(f"/api/shots/{high['id']}/pause", headers=AUTH)).status == 200
    job = await done_then_next(api, ws, job)   # its running job finished; none after
    assert job["shot_id"] == low["id"]
    assert (await api.post(f"/api/shots/{high['id']}/resume", headers=AUTH)).status == 200
    job = await done_then_next(api, ws, job)
    assert job["shot_id"] == high["id"]
    assert (await api.patch(f"/api/shots/{low['id']}", json={"priority": 95},
                            headers=AUTH)).status == 200
    job = await done_then_next(api, ws, job)
    assert job["shot_id"] == low["id"]
    await ws.close()
