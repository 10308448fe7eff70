"""The shot JSON the add-on sends: built from plain values, refused with clear messages."""
from __future__ import annotations

import dataclasses

import pytest

from brender_addon import shot_spec
from brender_addon.shot_spec import ShotSettings, SpecError

SHA = "a" * 64
FILES = [{"path": "sc010.blend", "sha256": SHA, "size": 10},
         {"path": "textures/wood.png", "sha256": "b" * 64, "size": 5}]


def settings(**changes) -> ShotSettings:
    base = ShotSettings(name="sc010", frame_start=1, frame_end=240, frame_step=1, chunk_size=10,
                        priority=50, fps=24.0, submitted_by="anna")
    return dataclasses.replace(base, **changes)


def test_builds_the_documented_body():
    body = shot_spec.build(settings(), FILES, "sc010.blend")
    assert body == {
        "name": "sc010", "blend_path": "sc010.blend", "files": FILES,
        "frame_start": 1, "frame_end": 240, "frame_step": 1, "chunk_size": 10,
        "priority": 50, "fps": 24.0, "submitted_by": "anna", "allow_scripts": False,
    }


def test_the_files_own_settings_are_the_default():
    """No format, resolution or chunk size is sent unless the artist asked."""
    body = shot_spec.build(settings(chunk_size=None), FILES, "sc010.blend")
    for key in ("output_format", "resolution_percentage", "render", "chunk_size", "frames",
                "missing"):
        assert key not in body


def test_overrides_frame_lists_and_missing_files_are_sent():
    render = {"scene": "Closeup", "camera": "CloseCam", "view_layers": ["BG", "BG", "FG"],
              "output_format": "exr", "color_depth": "16", "color_mode": "rgba",
              "exr_codec": "dwaa", "view_transform": "Standard", "look": "None",
              "exposure": 1, "film_transparent": True, "resolution_x": 640,
              "resolution_y": 360, "resolution_percentage": 50, "camera_shift": None}
    missing = [{"path": "/p/tex/gone.png", "used_by": "Image 'gone'"}]
    body = shot_spec.build(settings(frames="1-10, 20,30-40", frame_start=None, frame_end=None,
                                    render=render, missing=missing), FILES, "sc010.blend")
    assert body["frames"] == "1-10,20,30-40"
    assert "frame_start" not in body and "frame_end" not in body
    assert body["render"] == {
        "scene": "Closeup", "camera": "CloseCam", "view_layers": ["BG", "FG"],
        "output_format": "OPEN_EXR", "color_depth": "16", "color_mode": "RGBA",
        "exr_codec": "DWAA", "view_transform": "Standard", "look": "None", "exposure": 1.0,
        "film_transparent": True, "resolution_x": 640, "resolution_y": 360,
        "resolution_percentage": 50}
    assert body["missing"] == missing


def test_normalises_values():
    body = shot_spec.build(settings(name="  sc010 ", render={"output_format": "jpg"},
                                    frame_start=5.0), FILES, "sc010.blend")
    assert body["name"] == "sc010"
    assert body["render"]["output_format"] == "JPEG"
    assert body["frame_start"] == 5 and isinstance(body["frame_start"], int)


@pytest.mark.parametrize("text, ranges, count", [
    ("7", [(7, 7)], 1),
    ("1-10,20,30-40", [(1, 10), (20, 20), (30, 40)], 22),
    (" 1 - 3 , 2-5 ", [(1, 3), (2, 5)], 5),          # overlaps are de-duplicated
    ("-3", [(-3, -3)], 1),                           # negative frames, as the farm takes
    ("-5--2,0", [(-5, -2), (0, 0)], 5),
])
def test_frame_lists(text, ranges, count):
    assert shot_spec.parse_frames(text) == ranges
    assert len(shot_spec.frame_numbers(ranges)) == count


@pytest.mark.parametrize("text", ["", "1-", "a", "5-3", "1,,2", "--3", "1-10;20"])
def test_bad_frame_lists(text):
    with pytest.raises(SpecError) as err:
        shot_spec.parse_frames(text)
    assert err.value.field == "frames"


@pytest.mark.parametrize("changes, field, words", [
    ({"name": "  "}, "name", "needs a name"),
    ({"name": "a\x07b"}, "name", "control characters"),
    ({"name": "x" * 201}, "name", "too long"),
    ({"frame_start": 10, "frame_end": 9}, "frame_end", "empty"),
    ({"frame_start": -1_000_001}, "frame_start", "out of range"),
    ({"frame_step": 0}, "frame_step", "at least 1"),
    ({"frame_start": 1.5}, "frame_start", "whole number"),
    ({"frame_end": "ten"}, "frame_end", "whole number"),
    ({"frame_end": True}, "frame_end", "whole number"),
    ({"chunk_size": 0}, "chunk_size", "between 1 and 1000"),
    ({"priority": 101}, "priority", "between 0 and 100"),
    ({"render": {"resolution_percentage": 0}}, "render.resolution_percentage", "between 1 and 1000"),
    ({"render": {"resolution_x": 2}}, "render.resolution_x", "between 4 and 65536"),
    ({"render": {"output_format": "FFMPEG"}}, "render.output_format", "movie"),
    ({"render": {"output_format": "AVI_JPEG"}}, "render.output_format", "image sequences"),
    ({"render": {"output_format": "HDR"}}, "render.output_format", "cannot write HDR"),
    ({"render": {"color_depth": "12"}}, "render.color_depth", "one of 8, 16, 32"),
    ({"render": {"exposure": "bright"}}, "render.exposure", "number"),
    ({"render": {"view_layers": "BG"}}, "render.view_layers", "list"),
    ({"render": {"denoise": True}}, "render.denoise", "no render setting"),
    ({"render": {"samples": 0}}, "render.samples", "between 1 and 1000000"),
    ({"render": {"samples": 2.5}}, "render.samples", "whole number"),
    ({"blender": ">=4.x"}, "blender", "'>=4.x' is not a clause such as >=4.2"),
    ({"blender": "4.2,,<5"}, "blender", "is not valid"),
    ({"blender": "9" * 201}, "blender", "longer than 200 characters"),
    ({"blender_saved_with": "four"}, "blender_saved_with", "not a Blender version"),
    ({"device": "tpu"}, "device", "one of cpu, gpu, any"),
    ({"requires_tags": ["gpu", ""]}, "requires_tags", "requires_tags[1] must be a non-empty"),
    ({"prefers_tags": ["x" * 51]}, "prefers_tags", "longer than 50"),
    ({"max_nodes": 0}, "max_nodes", "between 1 and 100000"),
    ({"frames": "9-1"}, "frames", "ends before it starts"),
    ({"frames": "0-2000000"}, "frames", "Too many frames"),
    ({"fps": 0}, "fps", "frame rate"),
])
def test_refuses_bad_settings_with_the_field(changes, field, words):
    with pytest.raises(SpecError) as err:
        shot_spec.build(settings(**changes), FILES, "sc010.blend")
    assert err.value.field == field
    assert words in str(err.value)


@pytest.mark.parametrize("files, blend, words", [
    ([], "sc010.blend", "no files"),
    ([{"path": "../x.blend", "sha256": SHA, "size": 1}], "../x.blend", "relative"),
    ([{"path": "/abs/x.blend", "sha256": SHA, "size": 1}], "/abs/x.blend", "relative"),
    ([{"path": "C:/x.blend", "sha256": SHA, "size": 1}], "C:/x.blend", "relative"),
    ([{"path": "a\\x.blend", "sha256": SHA, "size": 1}], "a\\x.blend", "relative"),
    ([{"path": "x.blend", "sha256": "nothex", "size": 1}], "x.blend", "sha256"),
    ([{"path": "x.blend", "sha256": SHA, "size": -1}], "x.blend", "size"),
    (FILES + [FILES[0]], "sc010.blend", "twice"),
    (FILES, "other.blend", "not among"),
    (FILES, "textures/wood.png", "not a .blend"),
])
def test_refuses_bad_manifests(files, blend, words):
    with pytest.raises(SpecError) as err:
        shot_spec.build(settings(), files, blend)
    assert words in str(err.value)


def test_frame_count():
    assert shot_spec.frame_count(1, 10) == 10
    assert shot_spec.frame_count(1, 10, 3) == 4      # 1 4 7 10
    assert shot_spec.frame_count(5, 4) == 0
    assert shot_spec.frame_count(1, 10, 0) == 0


def test_every_farm_format_passes_and_movies_do_not():
    for fmt in shot_spec.OUTPUT_FORMATS:
        assert shot_spec.check_output_format(fmt) == fmt
    for fmt in ("FFMPEG", "AVI_RAW", "AVI_JPEG"):
        with pytest.raises(SpecError, match="movie"):
            shot_spec.check_output_format(fmt)


def test_what_the_shot_asks_of_its_nodes_is_sent_checked():
    body = shot_spec.build(settings(
        requires_tags=" gpu, big-ram ,gpu", prefers_tags=["fast"], device="GPU",
        blender=" >= 4.2 , < 5 ", blender_saved_with="4.2", max_nodes=3,
        render={"samples": 16}), FILES, "sc010.blend")
    assert {k: body[k] for k in ("requires_tags", "prefers_tags", "device", "blender",
                                 "blender_saved_with", "max_nodes")} == {
        "requires_tags": ["gpu", "big-ram"], "prefers_tags": ["fast"], "device": "gpu",
        "blender": ">=4.2,<5", "blender_saved_with": "4.2", "max_nodes": 3}
    assert body["render"] == {"samples": 16}


def test_nothing_asked_of_the_nodes_sends_nothing():
    body = shot_spec.build(settings(requires_tags="", device="", blender="  "), FILES,
                           "sc010.blend")
    for key in ("requires_tags", "prefers_tags", "device", "blender", "blender_saved_with",
                "max_nodes"):
        assert key not in body


def test_a_blender_series_from_a_version():
    assert shot_spec.series((3, 4, 1)) == "3.4"
    assert shot_spec.series((5, 0, 1)) == "5.0"
