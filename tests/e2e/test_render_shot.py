"""A shot rendered end to end by real Blender on two real nodes."""
from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
from collections import Counter

import pytest
from PIL import Image

from tests.farm import REPO

pytestmark = pytest.mark.blender


@pytest.fixture(scope="module")
def wide_scene(tmp_path_factory):
    from tests.farm import make_scene
    return make_scene(tmp_path_factory.mktemp("wide") / "wide.blend", width=320, height=180,
                      frame_end=12)


def test_submit_wait_renders_every_frame_once_with_thumbnails(farm, wide_scene):
    result = subprocess.run(
        [sys.executable, "-m", "brender_addon.submit_cli", str(wide_scene),
         "--coordinator", farm.url, "--token", farm.token, "--frames", "1-12", "--chunk", "4",
         "--wait", "--json", "--no-pack"],
        cwd=REPO, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr + farm.log("coordinator")
    shot = json.loads(result.stdout)
    assert shot["status"] == "completed"
    assert shot["frames_done"] == shot["frames_total"] == 12

    frames = shot["frames"]
    assert [f["number"] for f in frames] == list(range(1, 13))
    assert all(f["status"] == "done" for f in frames)
    # Both nodes took part, and each frame was recorded exactly once.
    assert len({f["node_id"] for f in frames}) == 2
    frames_dir = farm.data_dir / "shots" / str(shot["id"]) / "frames"
    on_disk = sorted(p.name for p in frames_dir.iterdir())
    assert on_disk == [f"frame_{n:06d}.png" for n in range(1, 13)]

    client = farm.client()
    for frame in frames:
        path = frames_dir / frame["name"]
        data = path.read_bytes()
        assert hashlib.sha256(data).hexdigest() == frame["sha256"]
        assert frame["size"] == len(data) and frame["render_time"] > 0
        with Image.open(path) as img:
            assert img.size == (320, 180)
        # Through the API: the frame byte for byte, and its thumbnail.
        assert client.download(frame["image_url"]) == data
        assert frame["thumbnail_url"].endswith(f"/frame_{frame['number']:06d}_thumbnail.jpg")
        with Image.open(io.BytesIO(client.download(frame["thumbnail_url"]))) as img:
            assert img.format == "JPEG" and img.size == (240, 135)

    latest = client.latest_frame()
    assert latest["shot_id"] == shot["id"] and latest["shot_name"] == "wide"
    # The cube moves: the first and last frames differ.
    first = Image.open(frames_dir / "frame_000001.png").convert("L")
    last = Image.open(frames_dir / "frame_000012.png").convert("L")
    assert first.tobytes() != last.tobytes()


@pytest.mark.parametrize("fmt", ["OPEN_EXR", "OPEN_EXR_MULTILAYER"])
def test_exr_frames_get_tone_mapped_thumbnails(farm, scene, fmt):
    shot = farm.submit(scene, frame_start=1, frame_end=2, output_format=fmt, chunk_size=2)
    shot = farm.wait_shot(shot["id"])
    assert shot["status"] == "completed", farm.debug_dump(shot["id"])
    client = farm.client()
    for frame in client.frames(shot["id"]):
        assert frame["name"].endswith(".exr")
        assert client.download(frame["image_url"])[:4] == b"\x76\x2f\x31\x01"  # EXR magic
        with Image.open(io.BytesIO(client.download(frame["thumbnail_url"]))) as img:
            assert img.size == (64, 36)
            lo, hi = img.convert("L").getextrema()
            assert hi > 40 and hi > lo, "the tone-mapped thumbnail shows the scene"
        assert frame["preview_url"].endswith("_preview.jpg")
        assert client.download(frame["preview_url"])[:2] == b"\xff\xd8"


def test_transparent_frames_get_png_thumbnails(farm, make_test_scene):
    blend = make_test_scene("alpha.blend", transparent=True)
    shot = farm.wait_shot(farm.submit(blend, frame_end=1, chunk_size=1)["id"])
    assert shot["status"] == "completed", farm.debug_dump(shot["id"])
    frame = farm.client().frames(shot["id"])[0]
    assert frame["thumbnail_url"].endswith("_thumbnail.png")
    with Image.open(io.BytesIO(farm.client().download(frame["thumbnail_url"]))) as img:
        assert img.mode == "RGBA" and img.getchannel("A").getextrema()[0] == 0


def test_unreadable_blend_is_retried_then_fails_the_shot_with_the_reason(farm, tmp_path):
    broken = tmp_path / "broken.blend"
    broken.write_bytes(b"BLENDER-v304" + b"\x00garbage" * 100)
    shot = farm.wait_shot(farm.submit(broken, frame_end=2, chunk_size=2)["id"])
    assert shot["status"] == "failed"
    assert "failed 3 times" in shot["failure_reason"] or "every online node" in \
        shot["failure_reason"]
    jobs = farm.client()._request("GET", f"/api/shots/{shot['id']}/jobs")["jobs"]
    job = farm.client()._request("GET", f"/api/jobs/{jobs[0]['id']}")
    assert job["failures"] >= 2
    assert job["log_tail"], "the log's tail is kept for the artist"
    assert Counter(j["status"] for j in jobs)["done"] == 0
