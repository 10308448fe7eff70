"""Extra outputs end to end: compositor File Output nodes and stereo views rendered by
real Blender on a real node come back, listed and identical to plain `blender -b`."""
from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from tests.farm import BLENDER, make_scene

pytestmark = pytest.mark.blender
ADD_OUTPUTS = Path(__file__).resolve().parent.parent / "scenes" / "make_outputs_scene.py"


def add_outputs(base: Path, out: Path, **opts) -> Path:
    import json
    subprocess.run([BLENDER, "-b", str(base), "--factory-startup", "--python-exit-code", "1",
                    "--python", str(ADD_OUTPUTS), "--", str(out), json.dumps(opts)],
                   check=True, capture_output=True, timeout=120)
    return out


def plain_render(blend: Path, frame: int, workdir: Path) -> Path:
    """What `blender -b FILE -f N` writes, the file's own paths relative to its copy."""
    workdir.mkdir(parents=True)
    copy = workdir / blend.name
    shutil.copy(blend, copy)
    subprocess.run([BLENDER, "-b", str(copy), "-o", "//plain/frame_", "-f", str(frame)],
                   check=True, capture_output=True, timeout=120)
    return workdir


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("outputs")
    base = make_scene(folder / "base.blend", frame_end=3)
    absolute = folder / "absolute_exr"
    return {
        "passes": add_outputs(base, folder / "passes.blend", passes=True,
                              exr_base=f"{absolute}/"),
        "stereo": add_outputs(base, folder / "stereo.blend", stereo=True),
        "absolute": absolute,
    }


@pytest.mark.parametrize("node_args", [(), ("--no-warm",)], ids=["warm", "process-per-chunk"])
def test_every_file_output_comes_back_identical_to_plain_blender(farm_factory, scenes,
                                                                 tmp_path, node_args):
    farm = farm_factory(nodes=1, node_args=node_args)
    shot = farm.wait_shot(farm.submit(scenes["passes"], frame_end=2, chunk_size=2)["id"])
    assert shot["status"] == "completed", farm.debug_dump(shot["id"])
    # The node wrote the absolute path's files into its own folder, not there.
    assert not scenes["absolute"].exists()
    client = farm.client()
    frames = client.frames(shot["id"])
    assert [f["outputs"] for f in frames] == [3, 3]
    for frame in frames:
        n = frame["number"]
        listed = client._request("GET", f"/api/shots/{shot['id']}/frames/{n}/outputs")["outputs"]
        by_name = {o["name"]: o for o in listed}
        assert sorted(by_name) == ["Passes EXR/mist_", "Passes PNG/beauty_",
                                   "Passes PNG/sub/depth_###"]
        assert {o["kind"] for o in listed} == {"pass"}
        assert by_name["Passes EXR/mist_"]["format"] == "OPEN_EXR"
        assert by_name["Passes PNG/beauty_"]["format"] == "PNG"

        plain = plain_render(scenes["passes"], n, tmp_path / f"plain{n}")
        expected = {"Passes PNG/beauty_": plain / "passes_png" / f"beauty_{n:04d}.png",
                    "Passes PNG/sub/depth_###": plain / "passes_png" / "sub" / f"depth_{n:03d}.png",
                    "Passes EXR/mist_": scenes["absolute"] / f"mist_{n:04d}.exr"}
        for name, path in expected.items():
            output = by_name[name]
            data = client.download(output["url"])
            assert data == path.read_bytes(), f"{name} of frame {n} differs from plain Blender"
            assert output["size"] == len(data)
            assert output["sha256"] == hashlib.sha256(data).hexdigest()
            with Image.open(io.BytesIO(client.download(output["thumbnail_url"]))) as thumb:
                assert thumb.size == (64, 36)
        shutil.rmtree(scenes["absolute"])
        # The EXR pass gets a tone-mapped preview the browser can show.
        assert client.download(by_name["Passes EXR/mist_"]["preview_url"])[:2] == b"\xff\xd8"
    # The passes are kept under the shot's folder.
    stored = farm.data_dir / "shots" / str(shot["id"]) / "outputs"
    assert len([p for p in stored.rglob("*") if p.is_file() and "preview" not in p.name]) == 6


def test_the_right_view_of_a_stereo_render_comes_back(farm_factory, scenes, tmp_path):
    farm = farm_factory(nodes=1)
    shot = farm.wait_shot(farm.submit(scenes["stereo"], frame_start=2, frame_end=2,
                                      chunk_size=1)["id"])
    assert shot["status"] == "completed", farm.debug_dump(shot["id"])
    client = farm.client()
    frame = client.frames(shot["id"])[0]
    assert frame["outputs"] == 1
    listed = client._request("GET", f"/api/shots/{shot['id']}/frames/2/outputs")["outputs"]
    assert [(o["kind"], o["name"], o["format"]) for o in listed] == [("view", "R", "PNG")]
    plain = plain_render(scenes["stereo"], 2, tmp_path / "plain") / "plain"

    def pixels(data: bytes) -> bytes:
        with Image.open(io.BytesIO(data)) as img:
            return img.convert("RGBA").tobytes()

    right = client.download(listed[0]["url"])
    assert hashlib.sha256(right).hexdigest() == listed[0]["sha256"]
    assert pixels(right) == pixels((plain / "frame_0002_R.png").read_bytes())
    left = client.download(frame["image_url"])
    assert pixels(left) == pixels((plain / "frame_0002_L.png").read_bytes())
    assert pixels(left) != pixels(right), "the two eyes see the cube from different places"


def exr_channels(data: bytes, tmp_path: Path) -> dict:
    import OpenEXR
    path = tmp_path / "read.exr"
    path.write_bytes(data)
    with OpenEXR.File(str(path), separate_channels=True) as exr:
        return {name: channel.pixels.tobytes() for name, channel in exr.channels().items()}


def test_multilayer_exr_grouped_and_per_slot_format_nodes_come_back(farm_factory, scenes,
                                                              tmp_path):
    blend = add_outputs(scenes["passes"].with_name("base.blend"), tmp_path / "ml.blend",
                        multilayer=True, group=True, slot_format=True)
    farm = farm_factory(nodes=1)
    shot = farm.wait_shot(farm.submit(blend, frame_start=3, frame_end=3, chunk_size=1)["id"])
    assert shot["status"] == "completed", farm.debug_dump(shot["id"])
    client = farm.client()
    listed = client._request("GET", f"/api/shots/{shot['id']}/frames/3/outputs")["outputs"]
    by_name = {o["name"]: o for o in listed}
    assert sorted(by_name) == ["Comp Group/Inner/inner_", "Passes Multi/layers_",
                               "Per Slot/as_jpeg_"]
    assert by_name["Per Slot/as_jpeg_"]["format"] == "JPEG"
    multi = by_name["Passes Multi/layers_"]
    assert multi["format"] == "OPEN_EXR_MULTILAYER"
    plain = plain_render(blend, 3, tmp_path / "plain")
    got = exr_channels(client.download(multi["url"]), tmp_path)
    # The EXR's header names the file and the date; every layer's pixels are the same.
    assert sorted(got) == ["Image.A", "Image.B", "Image.G", "Image.R", "Mist.V"]
    assert got == exr_channels((plain / "multi" / "layers_0003.exr").read_bytes(), tmp_path)
    inner = client.download(by_name["Comp Group/Inner/inner_"]["url"])
    assert inner == (plain / "grouped" / "inner_0003.png").read_bytes()
    as_jpeg = client.download(by_name["Per Slot/as_jpeg_"]["url"])
    assert as_jpeg == (plain / "perslot" / "as_jpeg_0003.jpg").read_bytes()



def test_outputs_that_fill_the_disk_fail_the_job_clearly_then_land(small_disk, tmp_path):
    import os

    from tests.farm import Farm, wait_for
    base = make_scene(tmp_path / "noisy.blend", width=960, height=540, samples=1,
                      frame_end=1, noise_world=True)
    blend = add_outputs(base, tmp_path / "noisy_passes.blend", passes=True)
    farm = Farm(tmp_path / "farm")
    farm.data_dir = small_disk / "data"
    try:
        farm.start_coordinator()
        shot = farm.submit(blend, frame_end=1, chunk_size=1)
        filler = small_disk / "filler"
        free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
        with open(filler, "wb") as f:
            f.write(b"\0" * max(0, free - 512 * 1024))  # not room for a 1.5 MB noisy pass
        farm.add_node("node1", "--upload-tries", "2")
        client = farm.client()

        def failed_job():
            jobs = client._request("GET", f"/api/shots/{shot['id']}/jobs")["jobs"]
            return jobs[0] if jobs[0]["failures"] else None
        job = client._request("GET", f"/api/jobs/{wait_for(failed_job, 90)['id']}")
        assert "output" in job["failure_reason"] and "507" in job["failure_reason"], job
        assert list((farm.data_dir / "tmp").iterdir()) == [], "no partial file remains"
        outputs_dir = farm.data_dir / "shots" / str(shot["id"]) / "outputs"
        assert not outputs_dir.exists() or not [p for p in outputs_dir.rglob("*") if p.is_file()]
        assert client.frames(shot["id"])[0]["status"] != "done"
        filler.unlink()  # space again: the retried job lands with every output
        done = farm.wait_shot(shot["id"], 120)
        assert done["status"] == "completed", farm.debug_dump(shot["id"])
        assert client.frames(shot["id"])[0]["outputs"] == 3
    finally:
        farm.close()


PLAIN_BPY5 = """import sys, bpy
bpy.ops.wm.open_mainfile(filepath=sys.argv[1])
bpy.context.scene.frame_set(int(sys.argv[2]))
bpy.ops.render.render()
"""


@pytest.mark.bpy5
def test_blender5_file_output_nodes_come_back(farm_factory, scenes, tmp_path):
    from tests.addon.conftest import BPY5_PYTHON, BPY_BLENDER, require_bpy5
    require_bpy5()
    wrapper = tmp_path / "blender5"
    wrapper.write_text(f'#!/bin/sh\nexec "{BPY5_PYTHON}" "{BPY_BLENDER}" "$@"\n')
    wrapper.chmod(0o755)
    farm = farm_factory()
    farm.add_node("blender5", blender=str(wrapper))
    farm.wait_nodes_online(1)
    shot = farm.wait_shot(farm.submit(scenes["passes"], frame_start=2, frame_end=2,
                                      chunk_size=1)["id"], timeout=300)
    assert shot["status"] == "completed", farm.debug_dump(shot["id"])
    client = farm.client()
    listed = client._request("GET", f"/api/shots/{shot['id']}/frames/2/outputs")["outputs"]
    # Blender 5 names a slot's file itself (no frame number without #): the names follow.
    by_name = {o["name"]: o for o in listed}
    assert sorted(by_name) == ["Passes EXR/mist_", "Passes PNG/beauty_", "Passes PNG/sub/depth_"]
    workdir = tmp_path / "plain"
    workdir.mkdir()
    copy = workdir / "passes.blend"
    shutil.copy(scenes["passes"], copy)
    subprocess.run([str(BPY5_PYTHON), "-c", PLAIN_BPY5, str(copy), "2"], check=True,
                   capture_output=True, timeout=300)
    # Blender 5 stamps the file's path and the date into them: the pixels are the same.
    for name, path in [("Passes PNG/sub/depth_", workdir / "passes_png" / "sub" / "depth_002.png"),
                       ("Passes PNG/beauty_", workdir / "passes_png" / "beauty_.png")]:
        with Image.open(io.BytesIO(client.download(by_name[name]["url"]))) as got, \
                Image.open(path) as want:
            assert got.mode == want.mode and got.tobytes() == want.tobytes(), name
    assert exr_channels(client.download(by_name["Passes EXR/mist_"]["url"]), tmp_path) == \
        exr_channels((scenes["absolute"] / "mist_.exr").read_bytes(), tmp_path)
    shutil.rmtree(scenes["absolute"])
