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
                        priority=50, output_format="PNG", resolution_percentage=100,
                        fps=24.0, submitted_by="anna")
    return dataclasses.replace(base, **changes)


def test_builds_the_documented_body():
    body = shot_spec.build(settings(), FILES, "sc010.blend")
    assert body == {
        "name": "sc010", "blend_path": "sc010.blend", "files": FILES,
        "frame_start": 1, "frame_end": 240, "frame_step": 1, "chunk_size": 10,
        "priority": 50, "output_format": "PNG", "resolution_percentage": 100,
        "fps": 24.0, "submitted_by": "anna", "allow_scripts": False,
    }


def test_normalises_values():
    body = shot_spec.build(settings(name="  sc010 ", output_format="jpg", frame_start=5.0), FILES,
                           "sc010.blend")
    assert body["name"] == "sc010"
    assert body["output_format"] == "JPEG"
    assert body["frame_start"] == 5 and isinstance(body["frame_start"], int)


@pytest.mark.parametrize("changes, field, words", [
    ({"name": "  "}, "name", "needs a name"),
    ({"name": "a/b"}, "name", "slashes"),
    ({"name": "x" * 121}, "name", "too long"),
    ({"frame_start": 10, "frame_end": 9}, "frame_end", "empty"),
    ({"frame_start": -1}, "frame_start", "negative"),
    ({"frame_step": 0}, "frame_step", "at least 1"),
    ({"frame_start": 1.5}, "frame_start", "whole number"),
    ({"frame_end": "ten"}, "frame_end", "whole number"),
    ({"frame_end": True}, "frame_end", "whole number"),
    ({"chunk_size": 0}, "chunk_size", "between 1 and 1000"),
    ({"priority": 101}, "priority", "between 0 and 100"),
    ({"resolution_percentage": 0}, "resolution_percentage", "between 1 and 1000"),
    ({"output_format": "FFMPEG"}, "output_format", "movie"),
    ({"output_format": "AVI_JPEG"}, "output_format", "image sequences"),
    ({"output_format": "TIFF"}, "output_format", "cannot write TIFF"),
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
