import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coordinator.validation import ValidationError, relative_path, shot_spec

SHA = "a" * 64


def spec(**over):
    body = {"name": "sc010", "files": [{"path": "sc010.blend", "sha256": SHA, "size": 3}],
            "frame_start": 1, "frame_end": 10}
    body.update(over)
    return body


def test_defaults():
    s = shot_spec(spec())
    assert (s.blend_path, s.frame_step, s.chunk_size, s.chunk_mode, s.render, s.missing) == \
        ("sc010.blend", 1, None, "auto", {}, [])
    assert s.frames == list(range(1, 11)) and s.frames_text is None


@pytest.mark.parametrize("over, field", [
    ({"frame_end": 0}, "frame_end"),
    ({"frame_start": "1"}, "frame_start"),
    ({"frame_step": 0}, "frame_step"),
    ({"chunk_size": True}, "chunk_size"),
    ({"output_format": "FFMPEG"}, "output_format"),
    ({"priority": 101}, "priority"),
    ({"name": ""}, "name"),
    ({"name": 5}, "name"),
    ({"files": []}, "files"),
    ({"files": [{"path": "../x.blend", "sha256": SHA}]}, "files[0].path"),
    ({"files": [{"path": "/etc/x.blend", "sha256": SHA}]}, "files[0].path"),
    ({"files": [{"path": "a.blend", "sha256": "zz"}]}, "files[0].sha256"),
    ({"blend_path": "other.blend"}, "blend_path"),
    ({"files": [{"path": "a.txt", "sha256": SHA}]}, "blend_path"),
    ({"frame_end": 10_000_000}, "frame_end"),
    ({"fps": -1}, "fps"),
])
def test_bad_specs_name_the_field(over, field):
    with pytest.raises(ValidationError) as err:
        shot_spec(spec(**over))
    assert err.value.field == field


@given(st.text(alphabet=string.printable + "é…", max_size=40))
def test_relative_path_never_escapes(raw):
    try:
        clean = relative_path(raw)
    except ValidationError:
        return
    parts = clean.split("/")
    assert ".." not in parts and not clean.startswith("/") and "\\" not in clean
    assert all(parts)


@given(st.dictionaries(st.sampled_from(["name", "files", "frame_start", "frame_end",
                                        "frame_step", "chunk_size", "priority", "fps",
                                        "output_format", "blend_path", "allow_scripts"]),
                       st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                                 st.text(max_size=10), st.lists(st.integers(), max_size=3))))
def test_any_json_is_either_a_spec_or_a_validation_error(body):
    try:
        s = shot_spec(body)
    except ValidationError:
        return
    assert s.frame_end >= s.frame_start
