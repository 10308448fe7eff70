"""Render devices and Blender versions with real nodes and real Blender (issue 15).

This machine has no GPU: detection reports the CPU alone (the hello, GET /api/nodes),
a `gpu` shot waits saying why while a `cpu` one renders, and the device set-up runs in
real Blender for `cpu`, `any` and the file's own setting, on all three render paths,
pixel for pixel as plain `blender -b FILE -f N` with that setting. A samples override
changes the frame as Blender's own samples setting does. A node offering Blender 3.4 and
a bpy 5 venv renders each shot with the version its range asks for."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from node.blender import BlenderFailed, BlenderProcess, RenderSettings
from node.installs import NoBlender, probe_all
from node.runner import NodeOptions, Renderer
from tests.addon.conftest import BPY5_PYTHON, require_bpy5
from tests.e2e.test_file_settings import pixels, plain_render
from tests.e2e.test_render_paths import NODE_MODES, render_with
from tests.farm import BLENDER, make_scene

pytestmark = pytest.mark.blender


@pytest.fixture(scope="module")
def eight_samples(tmp_path_factory) -> Path:
    """64x36 at 8 samples: 1 sample is visibly noisier."""
    return make_scene(tmp_path_factory.mktemp("devices") / "eight.blend", width=64,
                      height=36, samples=8, frame_end=3)


def api_nodes(farm) -> dict[str, dict]:
    return {n["name"]: n for n in farm.client()._request("GET", "/api/nodes")["nodes"]}


async def test_detection_on_a_machine_without_a_gpu_finds_the_cpu_alone():
    (install,) = await probe_all([BLENDER], None)
    assert install.version == "3.4.1"
    assert [d["type"] for d in install.devices] == ["CPU"]
    # Asking for GPU 0 where there is none: still the CPU, and the node starts.
    (install,) = await probe_all([BLENDER], [0])
    assert [d["id"] for d in install.devices] == ["CPU"]


async def test_a_python_without_bpy_is_left_out_and_alone_stops_the_node():
    (install,) = await probe_all([sys.executable, BLENDER], None)
    assert install.path == BLENDER or install.version == "3.4.1"
    with pytest.raises(NoBlender, match="is a Python without bpy"):
        await probe_all([sys.executable], None)


def test_a_gpu_shot_waits_for_a_gpu_while_cpu_and_any_shots_render_as_plain_blender(
        farm_factory, eight_samples, tmp_path):
    farm = farm_factory()
    farm.add_node("cpu-box", "--gpus", "0,1")
    farm.wait_nodes_online(1)
    node = api_nodes(farm)["cpu-box"]
    assert [d["type"] for d in node["devices"]] == ["CPU"], node
    assert node["devices"][0]["name"], "the CPU's name, as Cycles lists it"
    assert node["blenders"] == ["3.4.1"]

    gpu = farm.submit(eight_samples, frame_start=1, frame_end=1, device="gpu")
    cpu = farm.submit(eight_samples, frame_start=2, frame_end=2, device="cpu")
    any_ = farm.submit(eight_samples, frame_start=2, frame_end=2, device="any")
    for shot in (cpu, any_):
        done = farm.wait_shot(shot["id"])
        assert done["status"] == "completed", farm.debug_dump(shot["id"])
        assert done["settings_used"]["device"] == "CPU"
        on_farm = farm.data_dir / "shots" / str(shot["id"]) / "frames" / "frame_000002.png"
        plain = plain_render(eight_samples, tmp_path / done["device"], 2,
                             "scene.cycles.device = 'CPU'")
        assert pixels(on_farm) == pixels(plain), done["device"]
    waiting = farm.client().shot(gpu["id"])
    assert (waiting["status"], waiting["waiting"]) == ("queued", "no node has a GPU")
    assert waiting["frames_done"] == 0


@pytest.fixture(scope="module")
def plain_frames(eight_samples, tmp_path_factory) -> dict[int, Path]:
    """Plain Blender's frame 1 of the file on the CPU, at 1 sample and at its own 8."""
    root = tmp_path_factory.mktemp("plain")
    return {1: plain_render(eight_samples, root / "one", 1,
                            "scene.cycles.samples = 1\nscene.cycles.device = 'CPU'"),
            8: plain_render(eight_samples, root / "eight", 1)}


@pytest.mark.parametrize("mode, device", zip(NODE_MODES, ["cpu", "any", None]))
async def test_each_render_path_sets_the_device_and_samples_as_plain_blender_would(
        mode, device, eight_samples, plain_frames, tmp_path):
    overrides = {"samples": 1} if device is None else {"samples": 1, "device": device}
    rendered = await render_with(mode, tmp_path, eight_samples, overrides)
    path, _ = rendered.frames[1]
    (settings,) = rendered.settings
    assert (settings["samples"], settings["device"]) == (1, "CPU")
    assert pixels(path) == pixels(plain_frames[1])
    assert pixels(path)[2] != pixels(plain_frames[8])[2], "1 sample is not the file's 8"


async def test_a_gpu_render_on_a_node_without_one_fails_saying_so(eight_samples, tmp_path):
    with pytest.raises(BlenderFailed) as failed:
        await render_with("warm session", tmp_path, eight_samples, {"device": "gpu"})
    assert failed.value.reason.startswith("device gpu: this Blender sees no GPU"), \
        failed.value.reason
    assert not failed.value.final, "another node may have one"


@pytest.mark.bpy5
def test_a_node_offering_two_blenders_renders_each_shot_with_the_version_it_asks_for(
        farm_factory, tmp_path):
    require_bpy5()
    blend = make_scene(tmp_path / "both.blend", width=64, height=36, samples=2, frame_end=2)
    farm = farm_factory()
    farm.add_node("two-blenders", "--blender", str(BPY5_PYTHON))
    farm.wait_nodes_online(1, timeout=120)
    node = api_nodes(farm)["two-blenders"]
    assert node["blenders"] == ["3.4.1", "5.0.1"], node
    assert node["blender_version"] == "3.4.1", "the first --blender is the default"

    new = farm.submit(blend, frame_start=1, frame_end=2, blender=">=5", device="any",
                      render={"samples": 1})
    old = farm.submit(blend, frame_start=1, frame_end=2, blender="<4")
    for shot, version in ((new, "5.0.1"), (old, "3.4.1")):
        done = farm.wait_shot(shot["id"], timeout=240)
        assert done["status"] == "completed", farm.debug_dump(shot["id"])
        assert done["settings_used"]["blender_version"] == version
        assert done["settings_used"]["device"] == "CPU"
    log = farm.log("two-blenders")
    assert "Blender 5.0.1 at " in log and "Blender 3.4.1 at " in log
    # The bpy 5 frame is what bpy 5 itself renders of the file at 1 sample on the CPU.
    plain = tmp_path / "plain5"
    subprocess.run([str(BPY5_PYTHON), "-c", (
        "import bpy\n"
        f"bpy.ops.wm.open_mainfile(filepath={str(blend)!r})\n"
        f"bpy.context.scene.render.filepath = {str(plain / 'frame_')!r}\n"
        "bpy.context.scene.frame_set(1)\n"
        "bpy.context.scene.cycles.samples = 1\n"
        "bpy.context.scene.cycles.device = 'CPU'\n"
        "bpy.ops.render.render(write_still=True)\n")],
        check=True, capture_output=True, timeout=240)
    (expected,) = plain.glob("*.png")
    on_farm = farm.data_dir / "shots" / str(new["id"]) / "frames" / "frame_000001.png"
    assert pixels(on_farm) == pixels(expected)


@pytest.mark.parametrize("blender", ["3.4", pytest.param("5.0", marks=pytest.mark.bpy5)])
async def test_the_samples_override_reaches_eevee_in_both_blender_generations(
        blender, make_test_scene, tmp_path):
    """Eevee needs a display to render; its samples are set and read back all the same,
    in Blender 3.4 and in bpy 5 (whose Eevee Next is named BLENDER_EEVEE again)."""
    if blender == "5.0":
        require_bpy5()
    blend = make_test_scene("eevee.blend", engine="BLENDER_EEVEE")
    (install,) = await probe_all([BLENDER if blender == "3.4" else str(BPY5_PYTHON)], None)
    session = BlenderProcess(install, RenderSettings(blend, tmp_path / "out",
                                                     {"samples": 3, "device": "any"}),
                             serve=True, hang_timeout=120)
    try:
        await session.start()
    finally:
        await session.kill()
    used = session.settings_used
    assert used is not None and used["blender_version"].startswith(blender)
    assert (used["engine"], used["samples"], used["device"]) == ("BLENDER_EEVEE", 3, None)


@pytest.mark.bpy5
async def test_a_spare_of_another_blender_version_is_not_used(eight_samples, tmp_path):
    require_bpy5()
    installs = await probe_all([BLENDER, str(BPY5_PYTHON)], None)
    renderer = Renderer(NodeOptions(blender=BLENDER, work_dir=tmp_path / "node"))
    renderer.use_installs(installs)
    written: list[int] = []

    async def on_frame(number: int, path: Path, seconds: float, fmt: str) -> None:
        written.append(number)

    used: list[dict] = []
    try:
        renderer.prepare_spare()
        spare = await renderer.spare
        assert spare.blender.version == "3.4.1"
        await renderer._render(RenderSettings(eight_samples, tmp_path / "out", {}), [1],
                               on_frame, lambda *a: None, used.append, installs[1])
        assert renderer.session is not spare and not spare.alive
        assert used[-1]["blender_version"] == "5.0.1" and written == [1]
    finally:
        await renderer.shutdown()
