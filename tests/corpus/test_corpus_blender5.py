"""The dependency corpus made and rendered by Blender 5 (PyPI's bpy 5.0.1): a farm
whose node runs bpy 5 (node/bpy_blender.py), each frame held pixel for pixel (alpha
included) against a plain bpy 5 render of the artist's original file. Alembic and
USD caches are proven here: Debian's Blender 3.4 is built without both."""
from __future__ import annotations

import pytest

from tests.addon.conftest import require_bpy5

from .corpus import bpy5_wrapper, build_corpus, check_case, start_farm, submit_all

pytestmark = [pytest.mark.bpy5, pytest.mark.blender]

CASES = ["libraries", "texture paths é", "udim", "image_sequence", "movie_clip", "sequencer",
         "point_cache", "external_cache", "volume",
         "font", "eevee", "workbench", "bake_folder", "alembic", "usd"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, dict]:
    require_bpy5()
    return build_corpus(tmp_path_factory.mktemp("corpus5"), bpy5=True)


@pytest.fixture(scope="module")
def shots(corpus, tmp_path_factory):
    """One farm whose one node renders with bpy 5, for the whole corpus; every shot is
    submitted at once."""
    root = tmp_path_factory.mktemp("farm5")
    farm = start_farm(root, bpy5_wrapper(root))
    try:
        node = farm.client()._request("GET", "/api/nodes")["nodes"][0]
        assert node["blender_version"].startswith("5.0"), node
        yield farm, submit_all(farm, corpus)
    finally:
        farm.close()


@pytest.mark.parametrize("name", CASES)
def test_farm_frame_is_plain_blenders(name, corpus, shots, tmp_path):
    farm, ids = shots
    check_case(name, corpus[name], farm, ids[name], tmp_path, bpy5=True)
