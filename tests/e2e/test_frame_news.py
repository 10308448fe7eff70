"""Issue 17 end to end with real Blender: frames delivered to studio storage, frames
checked as they land (a black frame flagged, re-rendered once on another node)."""
from __future__ import annotations

import hashlib
import os
import subprocess

import pytest

from tests.farm import wait_for

pytestmark = pytest.mark.blender
TEMPLATE = "{project}/{shot}/{frame:04d}.{ext}"


@pytest.fixture(scope="module")
def blank_scene(tmp_path_factory):
    """Four 64x36 frames; on frame 3 the cube is hidden and the world is black."""
    from tests.farm import make_scene
    return make_scene(tmp_path_factory.mktemp("blank") / "blank.blend", frame_end=4,
                      blank_frames=[3])


def delivery_of(farm, shot_id: int) -> dict:
    return farm.client()._request("GET", f"/api/shots/{shot_id}/delivery")


def frames_of(farm, shot_id: int) -> dict[int, dict]:
    return {f["number"]: f for f in farm.client().frames(shot_id)}


def test_every_frame_is_delivered_under_its_template_byte_for_byte(farm_factory, scene,
                                                                    tmp_path):
    studio = tmp_path / "studio"
    studio.mkdir()
    farm = farm_factory(nodes=1, output_root=f"studio={studio}")
    shot = farm.submit(scene, name="Shot 010/a", frame_end=4, output_template=TEMPLATE,
                       output_root="studio")
    assert shot["output_template"] == TEMPLATE and shot["output_root"] == "studio"
    assert farm.wait_shot(shot["id"])["status"] == "completed"
    wait_for(lambda: delivery_of(farm, shot["id"])["delivered"] == 4, 30,
             what="four frames delivered")
    summary = delivery_of(farm, shot["id"])
    assert summary["failed"] == summary["pending"] == summary["failures"] == 0
    # The shot's name is made path-safe: its "/" never makes a folder.
    folder = studio / "scene" / "Shot 010_a"
    assert sorted(p.name for p in folder.iterdir()) == [f"{n:04d}.png" for n in range(1, 5)]
    for number, frame in frames_of(farm, shot["id"]).items():
        data = (folder / f"{number:04d}.png").read_bytes()
        assert hashlib.sha256(data).hexdigest() == frame["sha256"]
        assert data == (farm.data_dir / "shots" / str(shot["id"]) / "frames" /
                        frame["name"]).read_bytes()
        assert frame["delivery"] == "delivered" and frame["suspicious"] is None
    # Nothing but the frames: no temp file is left behind.
    assert not [p for p in studio.rglob("*") if p.is_file() and p.parent != folder]


@pytest.fixture
def read_only_root(tmp_path):
    """An output root that refuses writes until `make_writable()`: a read-only tmpfs
    (as root, permissions do not stop writes), else a folder without write permission."""
    root = tmp_path / "ro-root"
    root.mkdir()
    mounted = os.geteuid() == 0
    if mounted:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=8m", "tmpfs", str(root)],
                       check=True)
    else:
        root.chmod(0o555)

    def make_writable(writable: bool = True) -> None:
        if mounted:
            subprocess.run(["mount", "-o", f"remount,{'rw' if writable else 'ro'}", str(root)],
                           check=True)
        else:
            root.chmod(0o755 if writable else 0o555)

    yield root, make_writable
    if mounted:
        subprocess.run(["umount", "-l", str(root)])


def test_an_unwritable_root_shows_on_the_shot_and_is_retried_until_delivered(
        farm_factory, scene, read_only_root):
    root, make_writable = read_only_root
    farm = farm_factory(nodes=1, output_root=str(root))
    shot = farm.submit(scene, frame_end=2, output_template="{shot_id}/{frame}.{ext}")
    assert shot["output_root"] == root.name   # the farm's one root, by default
    assert farm.wait_shot(shot["id"])["status"] == "completed"
    failing = wait_for(lambda: (s := delivery_of(farm, shot["id"]))["failures"] >= 2 and s,
                       60, what="delivery failures")
    assert failing["delivered"] == 0 and failing["failed"] == 2
    assert "Read-only file system" in failing["last_error"] \
        or "Permission denied" in failing["last_error"]
    listed = farm.client().shot(shot["id"])
    assert listed["delivery_failures"] >= 2 and listed["delivery_error"]
    # The frames are safe in the data dir all along.
    frames = frames_of(farm, shot["id"])
    for frame in frames.values():
        assert frame["status"] == "done" and frame["delivery"] == "failed"
        assert (farm.data_dir / "shots" / str(shot["id"]) / "frames" / frame["name"]).is_file()
    make_writable()
    wait_for(lambda: delivery_of(farm, shot["id"])["delivered"] == 2, 60,
             what="delivered once writable")
    summary = delivery_of(farm, shot["id"])
    assert summary["failed"] == 0 and summary["last_error"] is None
    for number, frame in frames.items():
        data = (root / str(shot["id"]) / f"{number}.png").read_bytes()
        assert hashlib.sha256(data).hexdigest() == frame["sha256"]

    # Undelivered when the coordinator stops: delivered after its restart.
    make_writable(False)
    again = farm.submit(scene, frame_end=1, output_template="{shot_id}/{frame}.{ext}")
    assert farm.wait_shot(again["id"])["status"] == "completed"
    wait_for(lambda: delivery_of(farm, again["id"])["failures"] >= 1, 60, what="a failure")
    farm.stop_coordinator()
    make_writable()
    farm.start_coordinator()
    wait_for(lambda: delivery_of(farm, again["id"])["delivered"] == 1, 60,
             what="delivered after a restart")
    assert (root / str(again["id"]) / "1.png").is_file()


def test_a_black_frame_is_flagged_and_rendered_again_once_on_another_node(
        farm_factory, blank_scene, tmp_path):
    studio = tmp_path / "studio"
    studio.mkdir()
    farm = farm_factory(nodes=2, output_root=str(studio))
    shot = farm.submit(blank_scene, frame_end=4, chunk_size=2, rerender_suspicious=True,
                       output_template="{frame:04d}.{ext}")
    assert shot["rerender_suspicious"] is True
    assert farm.wait_shot(shot["id"])["status"] == "completed"
    frames = frames_of(farm, shot["id"])
    black = frames[3]
    assert black["status"] == "done"
    assert "one colour (black)" in black["suspicious"]
    # Rendered first by one node, then once more by the other: still black, so still
    # flagged, and not sent a third time.
    assert black["rerendered_from"] and black["node_id"]
    assert black["rerendered_from"] != black["node_id"]
    nodes = {n["id"] for n in farm.client()._request("GET", "/api/nodes")["nodes"]}
    assert {black["rerendered_from"], black["node_id"]} == nodes
    assert all(frames[n]["suspicious"] is None and frames[n]["rerendered_from"] is None
               for n in (1, 2, 4))
    listed = farm.client()._request("GET", f"/api/shots/{shot['id']}/suspicious")["frames"]
    assert [f["number"] for f in listed] == [3]
    jobs = farm.client()._request("GET", f"/api/shots/{shot['id']}/jobs")["jobs"]
    assert sorted(j["frames"] for j in jobs) == [[1, 2], [3], [3, 4]]
    assert all(j["status"] == "done" for j in jobs)
    # The studio's copy of frame 3 is the second render's: a frame sent back to the
    # queue is not delivered until it is done again.
    wait_for(lambda: delivery_of(farm, shot["id"])["delivered"] == 4, 30, what="delivery")
    assert hashlib.sha256((studio / "0003.png").read_bytes()).hexdigest() == \
        frames_of(farm, shot["id"])[3]["sha256"]


def test_a_farm_of_one_node_renders_a_suspicious_frame_again_itself(farm_factory, blank_scene):
    farm = farm_factory(nodes=1)
    shot = farm.submit(blank_scene, frame_start=3, frame_end=3, chunk_size=1,
                       rerender_suspicious=True)
    assert farm.wait_shot(shot["id"])["status"] == "completed"
    frame = frames_of(farm, shot["id"])[3]
    assert frame["rerendered_from"] == frame["node_id"] and "black" in frame["suspicious"]
