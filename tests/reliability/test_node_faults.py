"""Nodes die, hand back, or drop off the network: every frame still lands exactly once."""
from __future__ import annotations

import signal
import subprocess
import time

import pytest

from tests.farm import wait_for
from tests.reliability.proxy import CuttableProxy

pytestmark = pytest.mark.blender
# On SQLite and on PostgreSQL (the processes inherit BRENDER_DATABASE).
both_databases = pytest.mark.usefixtures("backend")


def jobs(farm, shot_id):
    return farm.client()._request("GET", f"/api/shots/{shot_id}/jobs")["jobs"]


def done_frames(farm, shot_id) -> dict[int, dict]:
    return {f["number"]: f for f in farm.client().frames(shot_id) if f["status"] == "done"}


def assert_each_frame_once(farm, shot):
    frames = farm.client().frames(shot["id"])
    assert [f["number"] for f in frames] == list(range(shot["frame_start"], shot["frame_end"] + 1))
    assert all(f["status"] == "done" and f["thumbnail_url"] for f in frames)
    on_disk = sorted(p.name for p in (farm.data_dir / "shots" / str(shot["id"]) / "frames").iterdir())
    assert on_disk == sorted(f["name"] for f in frames)
    # The completed shot's preview movie is being made from links in tmp/: once it is
    # made, nothing is left there (no partial upload, no link).
    wait_for(lambda: (farm.client().shot(shot["id"]).get("movie") or {}).get("status")
             not in ("queued", "making"), 60, what="the preview movie")
    assert list((farm.data_dir / "tmp").iterdir()) == []


def running_job(farm, shot_id):
    return next((j for j in jobs(farm, shot_id) if j["status"] == "running"), None)


@both_databases
def test_sigkilled_node_loses_its_job_but_not_its_frames(farm_factory, slow_scene):
    farm = farm_factory(nodes=1, lease_timeout=4)
    shot = farm.submit(slow_scene, frame_end=12, chunk_size=12)
    wait_for(lambda: len(done_frames(farm, shot["id"])) >= 5, 90, what="5 frames")
    job = running_job(farm, shot["id"])
    assert job is not None
    farm.nodes["node1"].send_signal(signal.SIGKILL)
    farm.nodes["node1"].wait(10)
    killed_at = time.monotonic()
    time.sleep(0.5)
    kept = done_frames(farm, shot["id"])
    job_frames_left = [n for n in job["frames"] if n not in kept]
    assert job_frames_left, "the kill landed mid-job"

    # The lease runs out and the job goes back to the queue, within the timeout.
    wait_for(lambda: next(j for j in jobs(farm, shot["id"]) if j["id"] == job["id"])["status"]
             == "queued", 15, what="the job to be requeued")
    assert time.monotonic() - killed_at < 4 + 3

    farm.add_node("node2")
    shot = farm.wait_shot(shot["id"], 120)
    assert shot["status"] == "completed", farm.debug_dump(shot["id"])
    assert_each_frame_once(farm, shot)
    after = done_frames(farm, shot["id"])
    for number, frame in kept.items():  # frames already uploaded are kept as they were
        assert after[number]["sha256"] == frame["sha256"]
        assert after[number]["node_id"] == frame["node_id"]
    node2 = next(n for n in farm.client()._request("GET", "/api/nodes")["nodes"]
                 if n["name"] == "node2")
    redone = sorted(n for n, f in after.items() if f["node_id"] == node2["id"])
    assert set(job_frames_left) <= set(redone)
    assert not set(redone) & set(kept), "no frame was rendered into the record twice"
    second = next(j for j in jobs(farm, shot["id"]) if j["id"] == job["id"])
    assert second["attempts"] == 2 and second["failures"] == 0


def test_sigterm_hands_the_job_back_at_once(farm_factory, slow_scene):
    farm = farm_factory(nodes=1, lease_timeout=60)
    shot = farm.submit(slow_scene, frame_end=10, chunk_size=10)
    wait_for(lambda: len(done_frames(farm, shot["id"])) >= 4, 90, what="4 frames")
    job = running_job(farm, shot["id"])
    started = time.monotonic()
    farm.stop_node("node1", signal.SIGTERM, wait=20)
    assert farm.nodes["node1"].returncode == 0
    status = next(j for j in jobs(farm, shot["id"]) if j["id"] == job["id"])["status"]
    assert status == "queued", "handed back without waiting for the 60 s lease"
    assert time.monotonic() - started < 15
    work_dir = str(farm.root / "nodes" / "node1")
    leftover = subprocess.run(["pgrep", "-f", work_dir], capture_output=True, text=True)
    assert leftover.stdout.strip() == "", "no Blender outlives its node"
    farm.add_node("node2")
    shot = farm.wait_shot(shot["id"], 120)
    assert shot["status"] == "completed"
    assert_each_frame_once(farm, shot)


def start_behind_proxy(farm, proxy, blend):
    """node1 reaches the coordinator through the proxy; returns (shot, its running job)."""
    farm.url, direct = proxy.url, farm.url
    farm.add_node("node1")
    farm.url = direct
    farm.wait_nodes_online(1)
    shot = farm.submit(blend, frame_end=12, chunk_size=12)
    wait_for(lambda: len(done_frames(farm, shot["id"])) >= 4, 90, what="4 frames")
    return shot, running_job(farm, shot["id"])


@both_databases
def test_short_outage_resumes_the_lease(farm_factory, slow_scene):
    farm = farm_factory(lease_timeout=10)
    proxy = CuttableProxy(farm.port)
    try:
        shot, job = start_behind_proxy(farm, proxy, slow_scene)
        proxy.cut()
        wait_for(lambda: farm.client().version()["nodes_online"] == 0, 10, what="node offline")
        time.sleep(2)
        proxy.restore()
        shot = farm.wait_shot(shot["id"], 120)
        assert shot["status"] == "completed", farm.debug_dump(shot["id"])
        assert_each_frame_once(farm, shot)
        same = next(j for j in jobs(farm, shot["id"]) if j["id"] == job["id"])
        assert same["attempts"] == 1, "the lease was resumed, not requeued"
        assert "resuming its job" in farm.log("coordinator")
    finally:
        proxy.close()


def test_long_outage_fences_the_old_lease(farm_factory, slow_scene):
    farm = farm_factory(lease_timeout=3)
    proxy = CuttableProxy(farm.port)
    try:
        shot, job = start_behind_proxy(farm, proxy, slow_scene)
        proxy.cut()
        wait_for(lambda: next(j for j in jobs(farm, shot["id"]) if j["id"] == job["id"])
                 ["status"] != "running", 20, what="the lease to expire")
        farm.add_node("node2")
        time.sleep(3)
        proxy.restore()  # node1 comes back with frames for a lease it no longer holds
        shot = farm.wait_shot(shot["id"], 120)
        assert shot["status"] == "completed", farm.debug_dump(shot["id"])
        assert_each_frame_once(farm, shot)
        fenced = next(j for j in jobs(farm, shot["id"]) if j["id"] == job["id"])
        assert fenced["attempts"] >= 2
        wait_for(lambda: "lease was taken back" in farm.log("node1") or
                 "took our job back" in farm.log("node1"), 30, what="node1 to drop its job")
    finally:
        proxy.close()
