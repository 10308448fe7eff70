"""One render path: a spare, a warm session and a process per chunk render the file the
shot sent, with its own settings unless the shot overrides them, pixel for pixel as
plain `blender -b FILE -o ... -f N` does."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from PIL import Image

from node.blender import BlenderFailed, RenderSettings
from node.runner import NodeOptions, Renderer
from tests.farm import BLENDER, wait_for

pytestmark = pytest.mark.blender

# How a node is started for each path: with its spare (the shot arrives while the spare
# starts), --no-spare (a warm session started for the shot), --no-warm (a process per chunk).
NODE_MODES = {"spare": (), "warm session": ("--no-spare",), "process per chunk": ("--no-warm",)}


def plain_blender(blend: Path, frame: int, out_dir: Path) -> Path:
    """The reference: Blender's own command-line render of the file."""
    subprocess.run([BLENDER, "-b", str(blend), "-o", str(out_dir / "frame_######"),
                    "-f", str(frame)], check=True, capture_output=True, timeout=120)
    (written,) = out_dir.glob(f"frame_{frame:06d}.*")
    return written


def pixels(path: Path) -> tuple[str, tuple[int, int], bytes]:
    with Image.open(path) as image:
        return image.mode, image.size, image.tobytes()


@pytest.fixture(scope="module")
def transparent_scene(tmp_path_factory) -> Path:
    from tests.farm import make_scene
    return make_scene(tmp_path_factory.mktemp("paths") / "transparent.blend", width=80,
                      height=40, frame_end=3, transparent=True, color=[0.1, 0.3, 0.9],
                      image={"file_format": "PNG", "color_mode": "RGBA"})


def test_every_render_path_matches_plain_blender_alpha_included(farm_factory,
                                                               transparent_scene, tmp_path):
    reference = {n: pixels(plain_blender(transparent_scene, n, tmp_path / "plain"))
                 for n in (1, 3)}
    assert reference[1][0] == "RGBA"
    farm = farm_factory()
    for mode, flags in NODE_MODES.items():
        name = mode.replace(" ", "-")
        farm.add_node(name, *flags)
        farm.wait_nodes_online(1)
        # At once: the default node's spare is still starting.
        shot = farm.wait_shot(farm.submit(transparent_scene, frame_start=1, frame_end=3,
                                          chunk_size=3)["id"])
        assert shot["status"] == "completed", farm.debug_dump(shot["id"])
        frames_dir = farm.data_dir / "shots" / str(shot["id"]) / "frames"
        for number, expected in reference.items():
            got = pixels(frames_dir / f"frame_{number:06d}.png")
            assert got[:2] == expected[:2], f"{mode}: mode and size of frame {number}"
            assert got[2] == expected[2], f"{mode}: frame {number} differs from plain Blender"
        frames = farm.client().frames(shot["id"])
        nodes = {n["id"]: n["name"] for n in farm.client()._request("GET", "/api/nodes")["nodes"]}
        assert {nodes[f["node_id"]] for f in frames} == {name}
        assert frames[0]["thumbnail_url"].endswith(".png"), f"{mode}: the thumbnail keeps alpha"
        farm.stop_node(name)
        wait_for(lambda: farm.client().version()["nodes_online"] == 0, 30, what="no node")


def test_a_shot_that_fails_for_no_camera_says_so(farm_factory, make_test_scene):
    blend = make_test_scene("no_camera.blend", no_camera=True)
    farm = farm_factory(nodes=1)
    shot = farm.wait_shot(farm.submit(blend, frame_end=1, chunk_size=1)["id"])
    assert shot["status"] == "failed"
    jobs = farm.client()._request("GET", f"/api/shots/{shot['id']}/jobs")["jobs"]
    assert jobs[0]["failure_reason"] == "no camera in scene 'Scene'", farm.debug_dump(shot["id"])


# -- the node's Renderer, with real Blender, in each of its three ways ----------------------

class Rendered:
    def __init__(self) -> None:
        self.frames: dict[int, tuple[Path, str]] = {}
        self.settings: list[dict] = []

    async def on_frame(self, number: int, path: Path, seconds: float, fmt: str) -> None:
        self.frames[number] = (path, fmt)


async def render_with(mode: str, work: Path, blend: Path, overrides: dict,
                      frames: tuple[int, ...] = (1,)) -> Rendered:
    renderer = Renderer(NodeOptions(blender=BLENDER, work_dir=work / "node",
                                    spare=mode == "spare",
                                    warm_sessions=mode != "process per chunk"))
    rendered = Rendered()
    try:
        if mode == "spare":
            renderer.prepare_spare()
            await renderer.spare
        settings = RenderSettings(blend, work / "out", overrides)
        await renderer._render(settings, list(frames), rendered.on_frame, lambda *a: None,
                               rendered.settings.append)
    finally:
        await renderer.shutdown()
    return rendered


@pytest.fixture(scope="module")
def graded_scene(tmp_path_factory) -> Path:
    """A file whose own settings are far from Blender's defaults."""
    from tests.farm import make_scene
    return make_scene(tmp_path_factory.mktemp("graded") / "graded.blend", width=64, height=36,
                      frame_end=2, transparent=True, color=[0.9, 0.2, 0.1],
                      image={"file_format": "TIFF", "color_mode": "RGBA", "color_depth": "16"},
                      view={"look": "Medium High Contrast", "exposure": 0.5},
                      camera2="Side", view_layers=["Extra"], scene2="Wide")


@pytest.mark.parametrize("mode", list(NODE_MODES))
async def test_without_overrides_the_files_own_settings_render(mode, graded_scene, tmp_path):
    rendered = await render_with(mode, tmp_path, graded_scene, {}, frames=(2,))
    path, fmt = rendered.frames[2]
    assert (path.suffix, fmt) == (".tif", "TIFF")
    assert pixels(path) == pixels(plain_blender(graded_scene, 2, tmp_path / "plain"))
    (settings,) = rendered.settings
    assert {k: settings[k] for k in ("scene", "camera", "view_layers", "output_format",
                                     "color_depth", "color_mode", "look", "exposure",
                                     "film_transparent", "resolution_x", "engine")} == {
        "scene": "Scene", "camera": "Camera", "view_layers": ["ViewLayer", "Extra"],
        "output_format": "TIFF", "color_depth": "16", "color_mode": "RGBA",
        "look": "Medium High Contrast", "exposure": 0.5, "film_transparent": True,
        "resolution_x": 64, "engine": "CYCLES"}


@pytest.mark.parametrize("mode", list(NODE_MODES))
async def test_the_files_active_scene_is_the_one_its_window_shows(mode, make_test_scene,
                                                                  tmp_path):
    blend = make_test_scene("active_wide.blend", scene2="Wide", active_scene2=True)
    rendered = await render_with(mode, tmp_path, blend, {})
    assert rendered.settings[0]["scene"] == "Wide"
    path, _ = rendered.frames[1]
    assert pixels(path) == pixels(plain_blender(blend, 1, tmp_path / "plain"))


@pytest.mark.parametrize("mode", list(NODE_MODES))
async def test_overrides_change_only_the_keys_they_set(mode, graded_scene, tmp_path):
    overrides = {"scene": "Wide", "camera": "Side", "view_layers": ["Extra"],
                 "output_format": "PNG", "color_mode": "RGB", "resolution_percentage": 50}
    rendered = await render_with(mode, tmp_path, graded_scene, overrides)
    path, fmt = rendered.frames[1]
    assert (path.suffix, fmt) == (".png", "PNG")
    with Image.open(path) as image:
        assert (image.mode, image.size) == ("RGB", (64, 18)), "Wide is 128 wide, at 50 %"
    settings = rendered.settings[0]
    assert (settings["scene"], settings["camera"], settings["view_layers"]) == \
        ("Wide", "Side", ["Extra"])
    assert (settings["resolution_x"], settings["resolution_percentage"]) == (128, 50), \
        "what the shot did not set is the chosen scene's own"


@pytest.mark.parametrize("mode", list(NODE_MODES))
@pytest.mark.parametrize("overrides, reason", [
    ({"scene": "Nope"}, "render.scene: no scene 'Nope' in the file (it has 'Scene', 'Wide')"),
    ({"camera": "Cube"}, "render.camera: no camera object 'Cube' in scene 'Scene' "
                         "(it has 'Camera', 'Side')"),
    ({"view_layers": ["Extra", "Nope"]}, "render.view_layers: no view layer 'Nope' in scene "
                                         "'Scene' (it has 'Extra', 'ViewLayer')"),
    ({"output_format": "JPEG", "color_mode": "RGBA"},
     "render.color_mode: JPEG cannot be written with color_mode RGBA"),
])
async def test_a_bad_override_fails_naming_it(mode, overrides, reason, graded_scene, tmp_path):
    with pytest.raises(BlenderFailed) as failed:
        await render_with(mode, tmp_path, graded_scene, overrides)
    assert failed.value.reason == reason
    assert failed.value.final, "no other way of running Blender is tried for it"


@pytest.mark.parametrize("mode", list(NODE_MODES))
async def test_a_movie_output_format_fails_unless_a_still_format_is_asked_for(
        mode, make_test_scene, tmp_path):
    blend = make_test_scene("movie.blend", image={"file_format": "FFMPEG"})
    with pytest.raises(BlenderFailed) as failed:
        await render_with(mode, tmp_path, blend, {})
    assert failed.value.reason == "movie output format FFMPEG cannot be rendered frame by frame"
    assert failed.value.final
    rendered = await render_with(mode, tmp_path, blend, {"output_format": "PNG"})
    path, fmt = rendered.frames[1]
    assert (path.suffix, fmt) == (".png", "PNG")


@pytest.mark.parametrize("fmt, suffix", [("JPEG", ".jpg"), ("OPEN_EXR", ".exr"),
                                         ("OPEN_EXR_MULTILAYER", ".exr"), ("TIFF", ".tif"),
                                         ("BMP", ".bmp"), ("TARGA", ".tga"), ("WEBP", ".webp")])
async def test_the_frames_extension_and_reported_format_follow_what_was_written(
        fmt, suffix, scene, tmp_path):
    rendered = await render_with("warm session", tmp_path, scene, {"output_format": fmt})
    path, written = rendered.frames[1]
    assert (path.suffix, written) == (suffix, fmt)
    assert rendered.settings[0]["output_format"] == fmt
