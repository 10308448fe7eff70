"""The file's own output settings are the default and the shot's overrides win: a real
node renders with real Blender a file saved as JPEG at 50 %, first as it is, then with
PNG at 100 % asked for; each time the frames match plain `blender -b FILE -f N` of
what was asked, and `settings_used` says what the node used.

Needs the node side of overrides and `render_settings` (branch i13-node)."""
from __future__ import annotations

import subprocess

import pytest
from PIL import Image

from tests.farm import BLENDER

pytestmark = pytest.mark.blender

WIDTH, HEIGHT = 96, 54


def blender_expr(src, expr: str, *args: str):
    return subprocess.run(
        [BLENDER, "-b", str(src), "--factory-startup", "--python-exit-code", "1",
         "--python-expr", f"import bpy\nscene = bpy.context.scene\n{expr}", *args],
        check=True, capture_output=True, timeout=180)


@pytest.fixture(scope="module")
def jpeg_half(tmp_path_factory):
    """The scene as an artist saved it: JPEG, 50 % of 96x54."""
    from tests.farm import make_scene
    root = tmp_path_factory.mktemp("file_settings")
    base = make_scene(root / "base.blend", width=WIDTH, height=HEIGHT, frame_end=3)
    out = root / "jpeg_half.blend"
    blender_expr(base, "scene.render.image_settings.file_format = 'JPEG'\n"
                       "scene.render.image_settings.quality = 90\n"
                       "scene.render.resolution_percentage = 50\n"
                       f"bpy.ops.wm.save_as_mainfile(filepath={str(out)!r})")
    return out


def plain_render(blend, out_dir, frame: int, expr: str = "pass"):
    """What `blender -b FILE -f N` makes of the file (after `expr`)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    blender_expr(blend, expr, "-o", str(out_dir / "frame_####"), "-f", str(frame))
    made = sorted(out_dir.glob(f"frame_{frame:04d}.*"))
    assert len(made) == 1, made
    return made[0]


def pixels(path):
    with Image.open(path) as img:
        return img.format, img.size, img.convert("RGBA").tobytes()


def test_the_files_settings_unless_the_shot_overrides_them(farm_factory, jpeg_half, tmp_path):
    farm = farm_factory(nodes=1)
    client = farm.client()

    own = farm.wait_shot(farm.submit(jpeg_half, frame_start=1, frame_end=2, chunk_size=2)["id"])
    assert own["status"] == "completed", farm.debug_dump(own["id"])
    assert own["render"] == {} and own["output_format"] is None
    used = own["settings_used"]
    assert used and (used["output_format"], used["resolution_percentage"]) == ("JPEG", 50)
    assert (used["resolution_x"], used["resolution_y"]) == (WIDTH, HEIGHT)
    frames = client.frames(own["id"])
    assert [f["name"] for f in frames] == ["frame_000001.jpg", "frame_000002.jpg"]
    assert all((f["width"], f["height"]) == (WIDTH // 2, HEIGHT // 2) for f in frames)
    on_farm = farm.data_dir / "shots" / str(own["id"]) / "frames" / "frame_000001.jpg"
    assert pixels(on_farm) == pixels(plain_render(jpeg_half, tmp_path / "own", 1))

    asked = {"output_format": "PNG", "resolution_percentage": 100}
    over = farm.wait_shot(farm.submit(jpeg_half, frame_start=1, frame_end=2, chunk_size=2,
                                      render=asked)["id"])
    assert over["status"] == "completed", farm.debug_dump(over["id"])
    assert over["render"] == asked
    used = over["settings_used"]
    assert used and (used["output_format"], used["resolution_percentage"]) == ("PNG", 100)
    frames = client.frames(over["id"])
    assert [f["name"] for f in frames] == ["frame_000001.png", "frame_000002.png"]
    assert all((f["width"], f["height"]) == (WIDTH, HEIGHT) for f in frames)
    on_farm = farm.data_dir / "shots" / str(over["id"]) / "frames" / "frame_000001.png"
    expected = plain_render(jpeg_half, tmp_path / "over", 1,
                            "scene.render.image_settings.file_format = 'PNG'\n"
                            "scene.render.resolution_percentage = 100")
    assert pixels(on_farm)[1:] == pixels(expected)[1:]
