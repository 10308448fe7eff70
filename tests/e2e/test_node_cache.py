"""A node renders exactly the files of the shot it leased, whatever it rendered before:
another farm's shot 1, or the shot 1 of a farm whose data dir started afresh."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from PIL import Image

from tests.farm import BLENDER, Farm, make_scene, wait_for

pytestmark = pytest.mark.blender


@pytest.fixture(scope="module")
def cubes(tmp_path_factory) -> dict[str, Path]:
    """Two files of the same name: a red cube and a blue one."""
    root = tmp_path_factory.mktemp("cubes")
    return {colour: make_scene(root / colour / "shot.blend", color=rgb, frame_end=2)
            for colour, rgb in (("red", [1, 0, 0]), ("blue", [0, 0, 1]))}


def frame_pixels(farm: Farm, shot: dict, number: int = 1) -> bytes:
    path = farm.data_dir / "shots" / str(shot["id"]) / "frames" / f"frame_{number:06d}.png"
    with Image.open(path) as image:
        return image.convert("RGB").tobytes()


def plain_pixels(blend: Path, out: Path) -> bytes:
    subprocess.run([BLENDER, "-b", str(blend), "-o", str(out / "frame_######"), "-f", "1"],
                   check=True, capture_output=True, timeout=120)
    with Image.open(out / "frame_000001.png") as image:
        return image.convert("RGB").tobytes()


def cube_colour(pixels: bytes) -> str:
    """Which of red and blue the frame holds more of."""
    red, blue = sum(pixels[0::3]), sum(pixels[2::3])
    return "red" if red > blue else "blue"


def render_first_shot(farm: Farm, blend: Path) -> dict:
    shot = farm.wait_shot(farm.submit(blend, frame_start=1, frame_end=1, chunk_size=1)["id"])
    assert shot["status"] == "completed", farm.debug_dump(shot["id"])
    assert shot["id"] == 1
    return shot


def test_a_second_farms_shot_1_renders_its_own_file(farm_factory, cubes, tmp_path):
    work = str(tmp_path / "node-work")
    farm_a = farm_factory()
    farm_a.add_node("node", "--work-dir", work)
    farm_a.wait_nodes_online(1)
    assert cube_colour(frame_pixels(farm_a, render_first_shot(farm_a, cubes["red"]))) == "red"
    farm_a.stop_node("node")

    farm_b = farm_factory()  # its own data dir and port: its shots count from 1 again
    farm_b.add_node("node", "--work-dir", work)
    farm_b.wait_nodes_online(1)
    shot = render_first_shot(farm_b, cubes["blue"])
    assert frame_pixels(farm_b, shot) == plain_pixels(cubes["blue"], tmp_path / "plain")
    assert cube_colour(frame_pixels(farm_b, shot)) == "blue"


def test_a_farm_started_afresh_at_the_same_address_gets_its_shot_1_right(farm_factory,
                                                                         cubes, tmp_path):
    """The node stays up and keeps its warm session across the coordinator's restart."""
    farm_a = farm_factory(nodes=1)
    assert cube_colour(frame_pixels(farm_a, render_first_shot(farm_a, cubes["red"]))) == "red"
    farm_a.stop_coordinator()

    farm_b = Farm(tmp_path / "fresh")
    farm_b.port, farm_b.url = farm_a.port, farm_a.url
    farm_b.start_coordinator()
    try:
        wait_for(lambda: farm_b.client().version()["nodes_online"] == 1, 60,
                 what="the node to reconnect")
        shot = render_first_shot(farm_b, cubes["blue"])
        assert frame_pixels(farm_b, shot) == plain_pixels(cubes["blue"], tmp_path / "plain")
    finally:
        farm_b.close()
