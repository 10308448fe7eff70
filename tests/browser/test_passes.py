"""The pass picker in a real browser: a shot whose compositor writes passes, rendered
by a real node; the frame view lists the frame's image and each pass with its
thumbnail, and choosing one shows it (the EXR pass through its tone-mapped preview)."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.test_extra_outputs import add_outputs
from tests.farm import Farm, make_scene

pytestmark = [pytest.mark.browser, pytest.mark.blender]

CANVAS = "() => document.querySelector('.stage-canvas').toDataURL()"
# An image drawn the way the viewer draws it, to compare with what the viewer shows.
DRAWN = """async url => {
  const img = new Image();
  img.src = url;
  await img.decode();
  const c = document.createElement('canvas');
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  c.getContext('2d').drawImage(img, 0, 0);
  return c.toDataURL();
}"""


@pytest.fixture(scope="module")
def passes_farm(tmp_path_factory):
    root = tmp_path_factory.mktemp("passes")
    farm = Farm(root / "farm")
    try:
        farm.start_coordinator()
        farm.add_node("node1")
        base = make_scene(root / "base.blend", width=128, height=72, frame_end=2)
        blend = add_outputs(base, root / "passes.blend", passes=True)
        farm.wait_nodes_online(1)
        shot = farm.submit(blend, name="passes", frame_start=1, frame_end=2, chunk_size=2)
        farm.shot = farm.wait_shot(shot["id"], timeout=120)
        assert farm.shot["status"] == "completed", farm.debug_dump(shot["id"])
        yield farm
    finally:
        farm.close()


def shows(page, url: str) -> None:
    """Wait until the viewer shows the image at `url`."""
    expected = page.evaluate(DRAWN, url)
    page.wait_for_function(f"e => ({CANVAS})() === e", arg=expected)


def outputs_of(farm, number: int) -> dict:
    listed = farm.client()._request(
        "GET", f"/api/shots/{farm.shot['id']}/frames/{number}/outputs")["outputs"]
    return {o["name"]: o for o in listed}


def test_the_pass_picker_shows_thumbnails_and_switches_images(passes_farm, page):
    sid = passes_farm.shot["id"]
    page.goto(f"{passes_farm.url}/#/shots/{sid}/1")
    expect(page.locator(".player")).to_have_attribute("data-frame", "1")
    buttons = page.locator(".passes .pass")
    expect(buttons).to_have_count(4)
    expect(page.locator(".passes .pass-name")).to_have_text(
        ["Image", "Passes EXR/mist_", "Passes PNG/beauty_", "Passes PNG/sub/depth_###"])
    page.wait_for_function(
        """() => [...document.querySelectorAll('.passes .pass img')]
                 .filter(i => i.complete && i.naturalWidth > 0).length === 4""")
    expect(buttons.nth(0)).to_have_attribute("aria-pressed", "true")
    frames = passes_farm.client().frames(sid)
    shows(page, frames[0]["image_url"])
    first, second = outputs_of(passes_farm, 1), outputs_of(passes_farm, 2)

    depth = page.locator(".passes .pass[data-key='pass:Passes PNG/sub/depth_###']")
    depth.click()
    expect(depth).to_have_attribute("aria-pressed", "true")
    shows(page, first["Passes PNG/sub/depth_###"]["url"])
    expect(page.locator(".passes a", has_text="Download pass")).to_have_attribute(
        "href", first["Passes PNG/sub/depth_###"]["url"])

    # The EXR pass is shown through its tone-mapped preview.
    page.locator(".passes .pass[data-key='pass:Passes EXR/mist_']").click()
    assert first["Passes EXR/mist_"]["preview_url"].endswith("/preview")
    shows(page, first["Passes EXR/mist_"]["preview_url"])
    page.screenshot("pass-picker-exr")

    # The choice holds on the next frame, which shows its own pass.
    depth.click()
    page.keyboard.press("ArrowRight")
    expect(page.locator(".player")).to_have_attribute("data-frame", "2")
    expect(depth).to_have_attribute("aria-pressed", "true")
    shows(page, second["Passes PNG/sub/depth_###"]["url"])

    page.locator(".passes .pass[data-key='main']").click()
    shows(page, frames[1]["image_url"])
    expect(page.locator(".passes a", has_text="Download pass")).to_be_hidden()
