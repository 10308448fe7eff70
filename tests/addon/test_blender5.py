"""The add-on in Blender 5: PyPI's bpy 5.0.1 in its own venv (.ci/setup_addon.sh).

The same zip is installed as a 4.2+ *extension* (module
`bl_ext.user_default.brender_addon`), the scene is made and saved by Blender 5,
and the farm's node renders with Blender 5 too (Debian's 3.4 cannot open 5.x
files): `node/bpy_blender.py` gives the node a `blender` command made of bpy.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from brender_addon import packing

from .conftest import (BPY5_PYTHON, BPY_BLENDER, colour_fractions, drive, make_project, mean_abs_diff,
                       render_local, require_bpy5)
from .fake_coordinator import FakeCoordinator
from .test_blender34 import assert_thumbnail, copy_project
from . import test_submit_cli as submit_cli
from .test_submit_cli import submit

pytestmark = [pytest.mark.bpy5, pytest.mark.blender]


@pytest.fixture(scope="module")
def project5(tmp_path_factory) -> dict[str, Path]:
    require_bpy5()
    root = tmp_path_factory.mktemp("project5")
    return make_project(root / "p", root / "home", bpy5=True)


@pytest.fixture
def bpy5_blender(tmp_path) -> str:
    """An executable `blender` for the node agent, running bpy 5."""
    wrapper = tmp_path / "blender5"
    wrapper.write_text(f'#!/bin/sh\nexec "{BPY5_PYTHON}" "{BPY_BLENDER}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(wrapper)


def test_blender5_files_pack_with_library_textures(project5, tmp_path):
    """Blender 5.0 files (new file header, longer ID names) pack completely,
    including the image a linked library's material uses."""
    assert project5["blend"].read_bytes()[:17] == b"BLENDER17-01v0500"
    result = packing.pack_blend(project5["blend"], tmp_path / "pack")
    names = sorted(Path(f["path"]).name for f in result.files)
    assert names == ["checker.png", "library.blend", "red.png", "shot.blend"]
    assert result.missing == []


def test_submit_from_blender5_renders_on_the_farm(farm_factory, addon_zip, project5, bpy5_blender,
                                                  tmp_path, project):
    project34 = project
    farm = farm_factory(nodes=0)
    farm.add_node("blender5", blender=bpy5_blender)
    farm.wait_nodes_online(1, timeout=90)
    node = farm.client()._request("GET", "/api/nodes")["nodes"][0]
    assert node["blender_version"].startswith("5.0")

    mine = copy_project(project5, tmp_path / "project")
    results = drive({
        "zip": str(addon_zip), "mode": "extension", "url": farm.url, "token": farm.token,
        "steps": [
            {"do": "test_connection"},
            {"do": "prefs", "token": "wrong"},
            {"do": "open", "path": str(mine["blend"])},
            {"do": "submit", "save_first": True},          # refused: wrong token
            {"do": "prefs", "token": farm.token},
            {"do": "exec", "code": "props.shot_name = 'addon-5'\nprops.use_scene_range = False\n"
                                   "props.frame_start = 1\nprops.frame_end = 2\nprops.chunk_size = 1"},
            # bpy as a module always reports unsaved changes: save, then submit.
            {"do": "submit", "save_first": True},
            {"do": "wait", "timeout": 180},
            {"do": "draw"},
        ]}, tmp_path / "blender-home", bpy5=True, timeout=400)
    assert results["blender"].startswith("5.0")
    assert results["module"] == "bl_ext.user_default.brender_addon"
    assert os.sep + "extensions" + os.sep in results["module_file"]
    connection, _, _, refused, _, _, submit, wait, drawn = results["steps"]
    assert "1 node online" in connection["connection_text"], connection
    assert refused["result"] == ["CANCELLED"] and "token" in refused["last_error"]
    assert submit["result"] == ["FINISHED"], submit["last_error"]
    shot = submit["shot"]
    assert shot["name"] == "addon-5"
    assert wait["status"] == "completed", farm.debug_dump(shot["id"])
    assert_thumbnail(Path(wait["thumbnail_copy"]))
    # Blender 5's UI API takes the panel as it is (props, operators, icons, progress bar).
    assert "exception" not in drawn, drawn.get("exception")
    assert ["progress", 1.0, "2 of 2 frames"] in drawn["drawn"]
    assert ["label", f"addon-5 (#{shot['id']}): completed", "CHECKMARK"] in drawn["drawn"]

    client = farm.client()
    names = sorted(Path(f["path"]).name for f in client.shot(shot["id"])["files"])
    assert names == ["checker.png", "library.blend", "red.png", "shot.blend"]
    frames = {f["number"]: f for f in client.frames(shot["id"])}
    rendered = tmp_path / "farm_frame_1.png"
    rendered.write_bytes(client.download_url(frames[1]["image_url"]))
    colours = colour_fractions(rendered)
    assert colours["magenta"] < 0.01, f"a texture is missing on the node: {colours}"
    assert colours["red"] > 0.05 and colours["green"] > 0.1 and colours["blue"] > 0.1, colours
    reference = render_local(project5["blend"], 1, tmp_path / "local_frame_1.png",
                             tmp_path / "render-home", bpy5=True)
    diff = mean_abs_diff(rendered, reference)
    assert diff < 2.0, f"the farm's frame differs from the local render by {diff:.2f}/255"
    assert client.shot(shot["id"])["blender_saved_with"] == "5.0"

    # A file saved by Blender 3.4, on a farm whose only node has 5.0: the farm says
    # which Blender stands in for the file's, and brender-submit prints it.
    proc = submit_cli.submit(farm, project34["blend"], "--frames", "1")
    assert proc.returncode == 0, proc.stderr
    assert "brender-submit: notice: no node has Blender 3.4 (the file's version); rendering " \
           "with 5.0" in proc.stderr.splitlines()
    assert client.shot(int(proc.stdout.split()[0]))["blender_saved_with"] == "3.4"


@pytest.fixture(scope="module")
def project5_compressed(tmp_path_factory) -> dict[str, Path]:
    require_bpy5()
    root = tmp_path_factory.mktemp("project5z")
    return make_project(root / "p", root / "home", bpy5=True, compress=True, frames=[2, 4])


def test_compressed_blender5_files_pack_from_blender_and_the_shell(project5_compressed, addon_zip,
                                                                   tmp_path):
    """Blender 5 saves Compressed files with Zstandard: the add-on inside Blender 5
    and brender-submit both read them (and the compressed library they link)."""
    mine = copy_project(project5_compressed, tmp_path / "project")
    for blend in (mine["blend"], mine["library"]):
        assert blend.read_bytes()[:4] == b"\x28\xb5\x2f\xfd", f"{blend} is not Zstandard"
    expected = ["checker.png", "library.blend", "red.png", "shot.blend"]
    with FakeCoordinator() as fake:
        results = drive({
            "zip": str(addon_zip), "mode": "extension", "url": fake.url, "token": fake.token,
            "steps": [{"do": "open", "path": str(mine["blend"])},
                      {"do": "submit", "save_first": True}]},
            tmp_path / "blender-home", bpy5=True, timeout=300)
        submitted = results["steps"][1]
        assert submitted["result"] == ["FINISHED"], submitted["last_error"]
        assert mine["blend"].read_bytes()[:4] == b"\x28\xb5\x2f\xfd", "saving kept Compress on"
        from_blender = fake.shots[1]
        assert sorted(Path(f["path"]).name for f in from_blender["files"]) == expected
        assert (from_blender["frame_start"], from_blender["frame_end"]) == (2, 4)

        proc = submit(fake, mine["blend"])
        assert proc.returncode == 0, proc.stderr
        from_shell = fake.shots[2]
    assert sorted(Path(f["path"]).name for f in from_shell["files"]) == expected
    # Both say the file is Blender 5.0's: the add-on its own version, the shell the
    # compressed file's header.
    assert from_blender["blender_saved_with"] == from_shell["blender_saved_with"] == "5.0"
    # The shell read the frame range from the Blender 5 file itself.
    assert (from_shell["frame_start"], from_shell["frame_end"]) == (2, 4)
    assert "render" not in from_shell and "render" not in from_blender


def test_the_nodes_panel_and_the_header_of_blender5_files(farm_factory, addon_zip, project5,
                                                          tmp_path):
    """In Blender 5 the Nodes panel draws and its settings, the samples and resolution
    overrides reach the farm's shot with 5.0 as the file's version; a bad range is
    reported before uploading. brender-submit reads 5.0 from Blender 5's new header."""
    farm = farm_factory(nodes=0)
    mine = copy_project(project5, tmp_path / "project")
    results = drive({
        "zip": str(addon_zip), "mode": "extension", "url": farm.url, "token": farm.token,
        "steps": [
            {"do": "open", "path": str(mine["blend"])},
            {"do": "exec", "code": "props.requires_tags = 'bpy5'\nprops.device = 'CPU'\n"
                                   "props.blender_range = '5.x'\n"
                                   "props.use_max_nodes = True\nprops.max_nodes = 1\n"
                                   "props.override_samples = True\nprops.samples = 2\n"
                                   "props.override_resolution = True\n"
                                   "props.resolution = (40, 20)\n"
                                   "props.use_scene_range = False\n"
                                   "props.frame_start = 1\nprops.frame_end = 2"},
            {"do": "submit", "save_first": True},                             # 2 refused
            {"do": "exec", "code": "props.blender_range = '>=5'"},
            {"do": "draw"},                                                   # 4
            {"do": "submit", "save_first": True},                             # 5
        ]}, tmp_path / "blender-home", bpy5=True, timeout=300)
    steps = results["steps"]
    for step in steps:
        assert "exception" not in step, step["exception"]
    refused, drawn, submitted = steps[2], steps[4], steps[5]
    assert refused["result"] == ["CANCELLED"]
    assert "The Blender version range '5.x' is not valid" in refused["last_error"]
    panel = drawn["drawn"]
    for name in ("requires_tags", "prefers_tags", "device", "blender_range", "max_nodes"):
        assert ["prop", name, None] in panel, name
    assert not any(e[:2] == ["label", "The Blender version range is not valid"] for e in panel)
    assert submitted["result"] == ["FINISHED"], submitted["last_error"]
    client = farm.client()
    shot = client.shot(submitted["shot"]["id"])
    assert {key: shot[key] for key in ("requires_tags", "device", "blender", "blender_saved_with",
                                       "max_nodes")} == {
        "requires_tags": ["bpy5"], "device": "cpu", "blender": ">=5",
        "blender_saved_with": "5.0", "max_nodes": 1}
    assert shot["render"] == {"samples": 2, "resolution_x": 40, "resolution_y": 20}
    assert shot["waiting"] == "no node is connected"

    assert project5["blend"].read_bytes()[:17] == b"BLENDER17-01v0500"
    proc = submit(farm, project5["blend"], "--frames", "1")
    assert proc.returncode == 0, proc.stderr
    assert "saved with Blender 5.0" in proc.stderr
    assert client.shot(int(proc.stdout.split()[0]))["blender_saved_with"] == "5.0"
