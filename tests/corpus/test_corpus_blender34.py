"""Every kind of dependency, rendered on a farm by Debian's Blender 3.4 and held
pixel for pixel (alpha included) against plain `blender -b FILE -o OUT -f N` of the
artist's original project (make_corpus.py builds it; docs/dependencies.md lists
the kinds)."""
from __future__ import annotations

from pathlib import Path

import pytest

from .corpus import (assert_identical, build_corpus, check_case, packed_paths, render_plain,
                     start_farm, submit, submit_all)
from tests.farm import BLENDER

pytestmark = pytest.mark.blender

CASES = ["libraries", "texture paths é", "udim", "image_sequence", "movie_clip", "sequencer",
         "point_cache", "external_cache", "volume", "font", "eevee", "workbench"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, dict]:
    return build_corpus(tmp_path_factory.mktemp("corpus34"), bpy5=False)


@pytest.fixture(scope="module")
def shots(corpus, tmp_path_factory):
    """One farm (one Blender 3.4 node) for the whole corpus: every shot is submitted
    at once, so the node renders while the tests render their references."""
    farm = start_farm(tmp_path_factory.mktemp("farm34"), BLENDER)
    try:
        yield farm, submit_all(farm, corpus)
    finally:
        farm.close()


@pytest.mark.parametrize("name", CASES)
def test_farm_frame_is_plain_blenders(name, corpus, shots, tmp_path):
    if name == "volume" and name not in corpus:
        pytest.skip("the .vdb is made by bpy 5's openvdb module: no bpy 5 venv here")
    farm, ids = shots
    check_case(name, corpus[name], farm, ids[name], tmp_path, bpy5=False)


def test_library_in_parent_folder_is_packed_outside_the_project(corpus, shots):
    """lib_a.blend sits in ../library: it travels under _outside_project/, lib_b.blend
    (linked by lib_a) and lib_b's texture beside it, as on the artist's disk."""
    farm, ids = shots
    paths = packed_paths(farm, ids["libraries"])
    lib_a = next(p for p in paths if p.endswith("/library/lib_a.blend"))
    assert lib_a.startswith("_outside_project/")
    folder = lib_a.rsplit("/", 1)[0]
    assert f"{folder}/lib_b/lib_b.blend" in paths and f"{folder}/lib_b/tex/blue.png" in paths


def test_without_its_files_the_farm_does_not_render_plain_blenders_frame(corpus, shots, tmp_path):
    """The comparison can fail: sent with --no-pack (the .blend alone), the libraries
    shot either fails on the node or renders without its textures and linked props."""
    farm, _ = shots
    case = corpus["libraries"]
    shot_id = submit(farm, Path(case["blend"]), case["frame"], "--no-pack")
    shot = farm.wait_shot(shot_id, timeout=240)
    assert [f["path"] for f in farm.client().shot(shot_id)["files"]] == ["libraries.blend"]
    if shot["status"] != "completed":
        assert shot["status"] == "failed", shot
        return
    frame = farm.client().frames(shot_id)[0]
    rendered = tmp_path / "farm.png"
    rendered.write_bytes(farm.client().download_url(frame["image_url"]))
    plain = render_plain(Path(case["blend"]), case["frame"], tmp_path / "plain", bpy5=False)
    with pytest.raises(AssertionError, match="pixels differ"):
        assert_identical(rendered, plain)
