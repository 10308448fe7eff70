"""Every way a job can end, on a real node with real Blender: the node takes its next job
within a second.

The second is measured on the coordinator's clock (the job rows' `started_at` and
`finished_at`, the shot's `finished_at`, the node's `connected_at`; the test runs on
the same machine, so a request's send time is on that clock too). It covers the
coordinator's part and the node's (stopping Blender, saying `ready`), never the render.
"""
from __future__ import annotations

import time

import pytest

from tests.farm import Farm, wait_for
from tests.reliability.proxy import CuttableProxy

pytestmark = pytest.mark.blender

NEXT_JOB_WITHIN = 1.0  # seconds from the end of one job to the node's next one


def jobs(farm: Farm, shot_id: int) -> list[dict]:
    return farm.client()._request("GET", f"/api/shots/{shot_id}/jobs")["jobs"]


def the_node(farm: Farm) -> dict:
    [node] = farm.client()._request("GET", "/api/nodes")["nodes"]
    return node


def frames_done(farm: Farm, shot_id: int) -> int:
    return farm.client().shot(shot_id)["frames_done"]


def start_long_job(farm: Farm, blend, frames: int = 12, chunk: int = 12) -> tuple[dict, dict]:
    """Submit a shot of about half a second a frame and wait until its first job has
    rendered a frame: (shot, its running job)."""
    shot = farm.submit(blend, frame_end=frames, chunk_size=chunk)
    wait_for(lambda: frames_done(farm, shot["id"]) >= 1, 90, what="the first frame")
    running = [j for j in jobs(farm, shot["id"]) if j["status"] == "running"]
    assert len(running) == 1, farm.debug_dump(shot["id"])
    return shot, running[0]


def next_job_started(farm: Farm, shot_id: int, node_id: str, after: float = 0.0) -> float:
    """When the node was given a job of the shot (at or after `after`)."""
    def started():
        return next((j["started_at"] for j in jobs(farm, shot_id)
                     if j["node_id"] == node_id and j["started_at"] and
                     j["started_at"] >= after), None)
    try:
        return wait_for(started, 30, what=f"a job of shot {shot_id} on the node")
    except TimeoutError:
        raise AssertionError("the node never got its next job\n" +
                             farm.debug_dump(shot_id)) from None


def assert_next_job_within_a_second(ended_at: float, started_at: float) -> None:
    gap = started_at - ended_at
    assert 0 <= gap < NEXT_JOB_WITHIN, f"the next job came {gap:.3f} s after the last ended"


@pytest.fixture
def one_node(farm_factory) -> Farm:
    return farm_factory(nodes=1)


def test_done(one_node, slow_scene, scene):
    farm = one_node
    first = farm.submit(slow_scene, frame_end=2, chunk_size=2)
    second = farm.submit(scene, frame_end=1, chunk_size=1)
    farm.wait_shot(first["id"])
    [job] = jobs(farm, first["id"])
    assert job["status"] == "done"
    assert_next_job_within_a_second(
        job["finished_at"], next_job_started(farm, second["id"], job["node_id"]))


def test_failed(farm_factory, scene, tmp_path):
    farm = farm_factory(nodes=1, max_attempts=1)
    broken = tmp_path / "broken.blend"
    broken.write_bytes(b"BLENDER-v304" + b"\x00garbage" * 100)
    first = farm.submit(broken, frame_end=1, chunk_size=1)
    second = farm.submit(scene, frame_end=1, chunk_size=1)
    assert farm.wait_shot(first["id"])["status"] == "failed"
    [job] = jobs(farm, first["id"])
    assert job["status"] == "failed"
    assert_next_job_within_a_second(
        job["finished_at"], next_job_started(farm, second["id"], job["node_id"]))


def test_cancelled(one_node, slow_scene, scene):
    farm = one_node
    first, job = start_long_job(farm, slow_scene)
    second = farm.submit(scene, frame_end=1, chunk_size=1)
    cancelled = farm.client().shot_action(first["id"], "cancel")
    assert cancelled["status"] == "cancelled"
    started = next_job_started(farm, second["id"], job["node_id"])
    assert_next_job_within_a_second(cancelled["finished_at"], started)
    assert frames_done(farm, first["id"]) < 12, "the cancelled job stopped"


def test_shot_deleted(one_node, slow_scene, scene):
    farm = one_node
    first, job = start_long_job(farm, slow_scene)
    second = farm.submit(scene, frame_end=1, chunk_size=1)
    asked = time.time()
    farm.client()._request("DELETE", f"/api/shots/{first['id']}")
    assert_next_job_within_a_second(asked, next_job_started(farm, second["id"],
                                                            job["node_id"]))


def test_shot_paused(one_node, slow_scene, scene):
    farm = one_node
    first, job = start_long_job(farm, slow_scene, frames=12, chunk=4)
    second = farm.submit(scene, frame_end=1, chunk_size=1)
    assert farm.client().shot_action(first["id"], "pause")["status"] == "paused"
    started = next_job_started(farm, second["id"], job["node_id"])
    statuses = {j["status"] for j in jobs(farm, first["id"])}
    assert statuses == {"done", "queued"}, "the running job finished; the rest waits"
    last_done = max(j["finished_at"] for j in jobs(farm, first["id"]) if j["finished_at"])
    assert_next_job_within_a_second(last_done, started)


def test_lease_lost(farm_factory, slow_scene):
    farm = farm_factory(lease_timeout=3)
    proxy = CuttableProxy(farm.port)
    try:
        farm.url, direct = proxy.url, farm.url
        farm.add_node("node1")
        farm.url = direct
        farm.wait_nodes_online(1)
        first, job = start_long_job(farm, slow_scene)
        proxy.cut()
        wait_for(lambda: jobs(farm, first["id"])[0]["status"] == "queued", 20,
                 what="the lease to expire")
        lost_at = time.time()
        proxy.restore()
        # The node comes back holding a job it lost: it drops it and takes the next one
        # (the same frames, requeued).
        node = wait_for(lambda: (n := the_node(farm))["status"] != "offline" and n, 30,
                        what="the node to reconnect")
        started = next_job_started(farm, first["id"], job["node_id"], after=lost_at)
        assert_next_job_within_a_second(node["connected_at"], started)
    finally:
        proxy.close()


def test_node_disabled(one_node, slow_scene, scene):
    farm = one_node
    # Eight frames (2-4 s): three finished before the test saw the job running on a
    # quiet machine.
    first, job = start_long_job(farm, slow_scene, frames=8, chunk=8)
    second = farm.submit(scene, frame_end=1, chunk_size=1)
    node_id = job["node_id"]
    farm.client()._request("POST", f"/api/nodes/{node_id}/disable", {})
    assert farm.wait_shot(first["id"])["status"] == "completed", "its running job finishes"
    time.sleep(1.5)  # longer than any dispatch takes: a disabled node gets nothing
    assert [j["status"] for j in jobs(farm, second["id"])] == ["queued"]
    assert the_node(farm)["status"] == "idle"
    asked = time.time()
    farm.client()._request("POST", f"/api/nodes/{node_id}/enable", {})
    assert_next_job_within_a_second(asked, next_job_started(farm, second["id"], node_id))
