"""The spare Blender: started while a node is idle, it opens the next shot's file."""
from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from benchmarks.common import children_of
from node.blender import BlenderFailed, RenderSettings
from node.runner import NodeOptions, Renderer
from tests.farm import BLENDER, wait_for

pytestmark = pytest.mark.blender

WRITE_MARK = """
import os
open(os.environ["BRENDER_TEST_MARK"], "a").write("script ran\\n")
"""


@pytest.fixture
def renderer(tmp_path):
    return Renderer(NodeOptions(blender=BLENDER, work_dir=tmp_path / "node"))


@pytest.fixture
def scripted_scene(make_test_scene, tmp_path, monkeypatch) -> tuple[Path, Path]:
    """An 80×40 scene whose script, if it runs, writes to the returned mark file."""
    mark = tmp_path / "mark.txt"
    monkeypatch.setenv("BRENDER_TEST_MARK", str(mark))
    return make_test_scene("spare_scripted.blend", width=80, height=40, script=WRITE_MARK), mark


async def render(renderer: Renderer, settings: RenderSettings, frames: list[int]) -> dict:
    written: dict[int, Path] = {}

    async def on_frame(number: int, path: Path, seconds: float, fmt: str) -> None:
        written[number] = path

    await renderer._render(settings, frames, on_frame, lambda *progress: None)
    return written


async def test_the_spare_renders_the_next_shot_with_its_settings_and_no_scripts(
        renderer, scripted_scene, tmp_path):
    blend, mark = scripted_scene
    try:
        renderer.prepare_spare()
        spare = await renderer.spare
        assert spare.alive
        settings = RenderSettings(blend, tmp_path / "out",
                                  {"output_format": "JPEG", "resolution_percentage": 50})
        written = await render(renderer, settings, [2, 3])
        assert renderer.session is spare, "the shot's session is the spare, not a new Blender"
        assert sorted(written) == [2, 3]
        with Image.open(written[3]) as image:
            assert (image.format, image.size) == ("JPEG", (40, 20))
        assert not mark.exists(), "a spare opens a file with its scripts off"
        assert renderer.spare is None, "a spare serves one shot"
    finally:
        await renderer.shutdown()
    assert not spare.alive


async def test_a_shot_that_allows_scripts_leaves_the_spare_alone(renderer, scripted_scene,
                                                                 tmp_path):
    blend, mark = scripted_scene
    try:
        renderer.prepare_spare()
        spare = await renderer.spare
        settings = RenderSettings(blend, tmp_path / "out", allow_scripts=True)
        written = await render(renderer, settings, [1])
        assert renderer.session is not spare and spare.alive
        assert "script ran" in mark.read_text(), "a shot that allows scripts gets them"
        with Image.open(written[1]) as image:
            assert image.size == (80, 40)
        assert await renderer.spare is spare, "the spare waits for a shot it can serve"
    finally:
        await renderer.shutdown()


async def test_a_file_the_spare_cannot_open_fails_with_blenders_reason(renderer, tmp_path):
    broken = tmp_path / "broken.blend"
    broken.write_bytes(b"BLENDER-v304 but not really a blend file")
    settings = RenderSettings(broken, tmp_path / "out")
    try:
        renderer.prepare_spare()
        spare = await renderer.spare
        with pytest.raises(BlenderFailed) as failed:
            await render(renderer, settings, [1])
        assert "broken.blend" in failed.value.log_tail
        assert not spare.alive, "a spare that failed to open the file is not kept"
    finally:
        await renderer.shutdown()


def blender_children(pid: int) -> list[int]:
    """The node's Blender processes (its warm session and spare), from /proc."""
    def is_driver(child: int) -> bool:
        try:
            return b"blender_driver.py" in Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            return False
    return [child for child in children_of(pid) if is_driver(child)]


def test_an_idle_node_keeps_a_spare_blender_and_renders_from_it(farm_factory, scene):
    farm = farm_factory(nodes=1)
    node = farm.nodes["node1"]
    spare = wait_for(lambda: blender_children(node.pid), 60, what="the node's spare Blender")
    assert len(spare) == 1
    shot = farm.wait_shot(farm.submit(scene, frame_end=3, chunk_size=3)["id"])
    assert shot["status"] == "completed", farm.debug_dump(shot["id"])
    assert shot["frames_done"] == 3
    # The shot's warm session is the former spare; once idle, the node starts another.
    def session_and_new_spare() -> list[int] | None:
        found = blender_children(node.pid)
        return found if len(found) == 2 else None

    both = wait_for(session_and_new_spare, 60, what="a new spare beside the shot's warm session")
    assert spare[0] in both
    farm.stop_node("node1")
    wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in both), 10,
             what="the node's Blender processes to end with it")
