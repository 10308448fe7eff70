"""Pools with real nodes and real Blender: a shot needing a tag renders only on the
node that has it, with samples, resolution and frame step overridden, pixel-identical
to plain `blender -b FILE -f N` of those settings; a capped shot never runs on two
nodes at once; a node whose window ends hands its job back and the other finishes."""
from __future__ import annotations

import pytest

from tests.e2e.test_file_settings import pixels, plain_render
from tests.farm import make_scene, wait_for

pytestmark = pytest.mark.blender


def frames_by_node(client, shot_id: int) -> dict[int, str]:
    return {f["number"]: f["node_name"] for f in client.frames(shot_id)}


def test_a_tagged_shot_renders_only_on_its_pool_with_its_overrides(farm_factory, tmp_path):
    farm = farm_factory()
    farm.add_node("fast-box", "--tags", "fast,ssd")
    farm.add_node("slow-box")
    farm.wait_nodes_online(2)
    client = farm.client()
    blend = make_scene(tmp_path / "eight.blend", width=64, height=36, samples=8, frame_end=7)
    waiting = farm.submit(blend, frame_start=1, frame_end=1, requires_tags=["quantum"])
    assert client.shot(waiting["id"])["waiting"] == "no node has tag quantum"
    overrides = {"samples": 2, "resolution_x": 48, "resolution_y": 30,
                 "resolution_percentage": 50}
    shot = farm.submit(blend, frame_start=1, frame_end=7, frame_step=3, chunk_size=1,
                       requires_tags=["fast"], render=overrides)
    done = farm.wait_shot(shot["id"])
    assert done["status"] == "completed", farm.debug_dump(shot["id"])
    assert frames_by_node(client, shot["id"]) == {1: "fast-box", 4: "fast-box",
                                                  7: "fast-box"}
    used = done["settings_used"]
    assert (used["samples"], used["resolution_x"], used["resolution_y"],
            used["resolution_percentage"]) == (2, 48, 30, 50)
    expected = plain_render(blend, tmp_path / "plain", 4,
                            "scene.cycles.samples = 2\nscene.render.resolution_x = 48\n"
                            "scene.render.resolution_y = 30\n"
                            "scene.render.resolution_percentage = 50")
    on_farm = farm.data_dir / "shots" / str(shot["id"]) / "frames" / "frame_000004.png"
    assert pixels(on_farm)[1:] == pixels(expected)[1:]
    assert pixels(on_farm)[1][0] == 24  # 48 at 50 %
    assert client.shot(waiting["id"])["status"] == "queued"


def test_a_capped_shot_renders_on_one_node_at_a_time(farm_factory, slow_scene):
    farm = farm_factory(nodes=2)
    client = farm.client()
    shot = farm.submit(slow_scene, frame_start=1, frame_end=6, chunk_size=1, max_nodes=1)
    done = farm.wait_shot(shot["id"], timeout=180)
    assert done["status"] == "completed", farm.debug_dump(shot["id"])
    jobs = sorted(client._request("GET", f"/api/shots/{shot['id']}/jobs")["jobs"],
                  key=lambda j: j["started_at"])
    for before, after in zip(jobs, jobs[1:]):
        assert after["started_at"] >= before["finished_at"] - 0.05, (before, after)


def test_a_node_whose_window_ends_hands_its_job_back(farm_factory, slow_scene):
    farm = farm_factory()
    farm.add_node("night-box")
    farm.wait_nodes_online(1)
    client = farm.client()
    shot = farm.submit(slow_scene, frame_start=1, frame_end=12, chunk_size=12)
    wait_for(lambda: client.shot(shot["id"])["frames_done"] >= 1, 120, what="a first frame")
    [night] = client._request("GET", "/api/nodes")["nodes"]
    client._request("PATCH", f"/api/nodes/{night['id']}",
                    {"schedule": {"mode": "never", "on_sleep": "handback"}})
    wait_for(lambda: client._request("GET", "/api/nodes")["nodes"][0]["status"] == "asleep",
             30, what="the node asleep")
    assert client.shot(shot["id"])["waiting"] == "every node that can take it is asleep"
    done_then = client.shot(shot["id"])["frames_done"]
    farm.add_node("day-box")
    done = farm.wait_shot(shot["id"], timeout=180)
    assert done["status"] == "completed", farm.debug_dump(shot["id"])
    by_node = frames_by_node(client, shot["id"])
    assert sum(1 for n in by_node.values() if n == "day-box") >= 12 - done_then - 1
