"""Blender hangs, crashes or runs scripts it should not: named, retried, contained."""
from __future__ import annotations

import stat
import time

import pytest

from tests.farm import BLENDER

pytestmark = pytest.mark.blender

HANG_ON_FRAME_3 = """
import bpy, time
def brender_test_hang(scene, *args):
    if scene.frame_current == 3:
        time.sleep(3600)
bpy.app.handlers.frame_change_pre.append(brender_test_hang)
"""

MARK_FILE = """
import os
open(os.environ["BRENDER_TEST_MARK"], "a").write("script ran\\n")
"""


def test_hung_blender_is_killed_and_the_shot_fails_with_the_reason(farm_factory,
                                                                    make_test_scene):
    blend = make_test_scene("hang.blend", script=HANG_ON_FRAME_3)
    farm = farm_factory(nodes=1, node_args=("--allow-scripts", "--hang-timeout", "3"))
    shot = farm.submit(blend, frame_end=4, chunk_size=4, allow_scripts=True)
    shot = farm.wait_shot(shot["id"], 90)
    assert shot["status"] == "failed"
    assert "hung" in shot["failure_reason"]
    frames = {f["number"]: f["status"] for f in farm.client().frames(shot["id"])}
    assert frames[1] == frames[2] == "done" and frames[3] != "done"
    job = farm.client()._request("GET", "/api/jobs/1")
    assert job["failures"] >= 2 and "no output for 3 s" in job["failure_reason"]


def test_scene_scripts_do_not_run_unless_shot_and_node_allow_them(farm_factory,
                                                                  make_test_scene, tmp_path,
                                                                  monkeypatch):
    mark = tmp_path / "mark.txt"
    monkeypatch.setenv("BRENDER_TEST_MARK", str(mark))
    blend = make_test_scene("script.blend", script=MARK_FILE)
    farm = farm_factory(nodes=1)  # a node that does not allow scripts
    plain = farm.wait_shot(farm.submit(blend, frame_end=2)["id"])
    assert plain["status"] == "completed"
    assert not mark.exists(), "--disable-autoexec kept the scene's script from running"

    wants = farm.submit(blend, frame_end=2, allow_scripts=True)
    time.sleep(3)
    assert farm.client().shot(wants["id"])["status"] == "queued", \
        "a node that does not allow scripts never takes a shot that wants them"
    assert not mark.exists()
    farm.add_node("trusted", "--allow-scripts")
    assert farm.wait_shot(wants["id"])["status"] == "completed"
    assert "script ran" in mark.read_text()


def test_a_failing_node_is_blocklisted_and_another_renders_the_shot(farm_factory, scene,
                                                                    tmp_path):
    broken = tmp_path / "broken-blender"
    broken.write_text(f"""#!/bin/sh
# A machine whose Blender crashes on every render (a bad driver, say).
# Its start-up probe (version, devices) still answers: the node joins the farm.
case "$*" in *blender_probe.py*) exec {BLENDER} "$@";; esac
echo "Writing: /tmp/crash.txt"
echo "Segmentation fault (core dumped)" >&2
kill -SEGV $$
""")
    broken.chmod(broken.stat().st_mode | stat.S_IEXEC)
    farm = farm_factory()
    farm.add_node("bad", blender=str(broken))
    farm.wait_nodes_online(1)
    farm.add_node("good")
    farm.wait_nodes_online(2)
    shot = farm.submit(scene, frame_end=6, chunk_size=1)
    shot = farm.wait_shot(shot["id"], 120)
    assert shot["status"] == "completed", farm.debug_dump(shot["id"])
    nodes = {n["id"]: n["name"] for n in farm.client()._request("GET", "/api/nodes")["nodes"]}
    frames = farm.client().frames(shot["id"])
    assert {nodes[f["node_id"]] for f in frames} == {"good"}
    jobs = farm.client()._request("GET", f"/api/shots/{shot['id']}/jobs")["jobs"]
    failed = [j for j in jobs if j["failures"]]
    assert 1 <= len(failed) <= 2, "after two failures the bad node got no more of this shot"
    assert all("crashed" in j["failure_reason"] for j in failed)
