"""The shot page in a real browser: the render settings asked for beside those the node
used, the chunk mode, the files a shot was submitted without, and failed frames with
the reason their job failed (a real node, real Blender, a scene without a camera)."""
from __future__ import annotations

import re
import subprocess

import pytest
from playwright.sync_api import expect

from tests.farm import BLENDER, Farm, make_scene

pytestmark = [pytest.mark.browser, pytest.mark.blender]

MISSING = [{"path": "//textures/wood.png", "used_by": "image 'wood'"},
           {"path": "/mnt/lib/rig.blend", "used_by": "library 'rig.blend'"}]
# PNG at 100 %: what the shot asks for, whatever the file says.
ASKED = {"output_format": "PNG", "resolution_percentage": 100, "camera": "Camera"}


def without_camera(src, out):
    subprocess.run(
        [BLENDER, "-b", str(src), "--factory-startup", "--python-exit-code", "1",
         "--python-expr", "import bpy; bpy.data.objects.remove(bpy.data.objects['Camera']); "
         f"bpy.ops.wm.save_as_mainfile(filepath={str(out)!r})"],
        check=True, capture_output=True, timeout=120)
    return out


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    """One real node; a job fails at its first failed attempt."""
    root = tmp_path_factory.mktemp("settings")
    farm = Farm(root / "farm", max_attempts=1)
    try:
        farm.start_coordinator()
        farm.add_node("node1")
        farm.scene = make_scene(root / "set.blend", frame_end=4)
        farm.no_camera = without_camera(farm.scene, root / "nocam.blend")
        farm.wait_nodes_online(1)
        yield farm
    finally:
        farm.close()


@pytest.fixture(scope="module")
def rendered(farm):
    shot = farm.submit(farm.scene, name="asked", frames="1-2,4", chunk_size=2, render=ASKED,
                       missing=MISSING, frame_start=None, frame_end=None)
    shot = farm.wait_shot(shot["id"], timeout=120)
    assert shot["status"] == "completed", farm.debug_dump(shot["id"])
    return shot


def test_the_shot_page_shows_the_overrides_chunks_and_missing_files(farm, rendered, page):
    page.goto(f"{farm.url}/#/shots/{rendered['id']}")
    table = page.locator(".render-settings")
    expect(table.locator("tr[data-key=output_format] td.asked")).to_have_text("PNG")
    expect(table.locator("tr[data-key=resolution_percentage] td.asked")).to_have_text("100")
    expect(table.locator("tr[data-key=camera] td.asked")).to_have_text("Camera")
    expect(table.locator("tr[data-key=scene] td.asked")).to_have_text("file's own")
    expect(table.locator("tr[data-key=view_transform] td.asked")).to_have_text("file's own")
    expect(page.locator(".chunk-mode")).to_have_text("2 frames a job (fixed)")
    expect(page.locator(".shot-head .facts")).to_contain_text("1-2,4")
    missing = page.locator(".missing-files li")
    expect(missing).to_have_count(2)
    for row, entry in zip((missing.nth(0), missing.nth(1)), MISSING):
        expect(row.locator(".path")).to_have_text(entry["path"])
        expect(row.locator(".used-by")).to_have_text(f" used by {entry['used_by']}")
    expect(page.locator(".failed-frames")).to_be_hidden()
    expect(page.locator(".fcell[data-status=done]")).to_have_count(3)
    page.screenshot("shot-settings", full_page=True)


def test_the_shot_page_shows_the_settings_the_node_used(farm, rendered, page):
    """Needs the node to report `render_settings` (branch i13-node)."""
    used = farm.client().shot(rendered["id"])["settings_used"]
    assert used, "the node reported the settings it rendered with"
    assert (used["output_format"], used["resolution_percentage"]) == ("PNG", 100)
    page.goto(f"{farm.url}/#/shots/{rendered['id']}")
    table = page.locator(".render-settings")
    expect(table.locator("tr[data-key=engine] td.used")).to_have_text("CYCLES")
    expect(table.locator("tr[data-key=output_format] td.used")).to_have_text("PNG")
    expect(table.locator("tr[data-key=resolution_x] td.used")).to_have_text("64")
    expect(table.locator("tr[data-key=blender_version] td.used")).to_contain_text("3.4")
    expect(table.locator("tr.differs")).to_have_count(0)


def test_failed_frames_show_the_reason(farm, page):
    shot = farm.submit(farm.no_camera, name="nocam", frame_start=1, frame_end=3, chunk_size=3,
                       render=ASKED)
    page.goto(f"{farm.url}/#/shots/{shot['id']}")
    failed = farm.wait_shot(shot["id"], timeout=90)
    assert failed["status"] == "failed", farm.debug_dump(shot["id"])
    frames = farm.client().frames(shot["id"])
    assert [f["status"] for f in frames] == ["failed"] * 3
    reason = frames[0]["failure_reason"]
    assert reason and failed["failure_reason"].startswith(reason)
    # Live: the page was open while the job failed.
    card = page.locator(".failed-frames")
    expect(card).to_be_visible(timeout=30_000)
    expect(card.locator("li .failure")).to_have_text(reason)
    expect(card.locator("li .mono")).to_have_text("1–3")
    expect(page.locator(".fcell[data-status=failed]")).to_have_count(3)
    expect(page.locator(".fcell[data-status=failed]").first).to_have_attribute(
        "title", f"Frame 1 · failed: {reason}")
    expect(page.locator(".shot-head .failure")).to_contain_text(reason)
    expect(page.locator(".shot-progress .progress i.rendering")).to_have_attribute(
        "style", re.compile(r"width: 0%"))
    expect(page.locator(".viewer")).to_contain_text(f"Frame 1 failed: {reason}")
    page.screenshot("shot-failed-frames", full_page=True)
