"""`brender-submit` and what a shot asks of its nodes, against a real coordinator
(and a real node for the render): required and preferred tags, device, Blender
range, node cap, the samples and resolution overrides, and the Blender version
read from the .blend header. The shot the farm records is read back; why it waits
is printed as the farm says it; a bad range is one line and exit 2."""
from __future__ import annotations

import pytest

from brender_addon.client import sha256_file

from .test_submit_cli import made, submit  # noqa: F401  (made: a fixture)

pytestmark = pytest.mark.blender

NODE_FIELDS = ("requires_tags", "prefers_tags", "device", "blender", "blender_saved_with",
               "max_nodes")


def shots_on(farm) -> list[dict]:
    return farm.client()._request("GET", "/api/shots")["shots"]


def test_the_shot_records_what_it_asks_of_its_nodes(farm_factory, made):  # noqa: F811
    farm = farm_factory(nodes=0)
    project = made("plain")
    proc = submit(farm, project["blend"], "--requires-tags", "gpu, big-ram", "--prefers-tags",
                  "fast", "--device", "GPU", "--blender", " >=3.4 , <5", "--max-nodes", "2",
                  "--samples", "3", "--resolution-x", "48", "--resolution-y", "24",
                  "--resolution", "50", "--frames", "1-4", "--step", "2")
    assert proc.returncode == 0, proc.stderr
    shot = farm.client().shot(int(proc.stdout.split()[0]))
    assert {key: shot[key] for key in NODE_FIELDS} == {
        "requires_tags": ["gpu", "big-ram"], "prefers_tags": ["fast"], "device": "gpu",
        "blender": ">=3.4,<5", "blender_saved_with": "3.4", "max_nodes": 2}
    assert shot["render"] == {"samples": 3, "resolution_x": 48, "resolution_y": 24,
                              "resolution_percentage": 50}
    assert (shot["frame_step"], shot["frames_total"]) == (2, 2)
    assert ("48x24 at 50%, jobs sized adaptively, 3 samples; saved with Blender 3.4; nodes: "
            "tags gpu, big-ram, preferring fast, device gpu, Blender >=3.4,<5, at most 2 at "
            "once") in proc.stderr
    # The farm's own words: nothing can take it yet.
    assert "brender-submit: waiting: no node is connected" in proc.stderr.splitlines()


def test_the_version_comes_from_a_compressed_file_header_too(farm_factory, made):  # noqa: F811
    farm = farm_factory(nodes=0)
    project = made("zstd", compress=True)
    assert project["blend"].read_bytes()[:4] == b"\x28\xb5\x2f\xfd"
    proc = submit(farm, project["blend"], "--frames", "1")
    assert proc.returncode == 0, proc.stderr
    shot = farm.client().shot(int(proc.stdout.split()[0]))
    assert shot["blender_saved_with"] == "3.4"
    # Nothing else was asked: the file's device, any node.
    assert shot["requires_tags"] == [] and shot["device"] is None and shot["blender"] is None
    assert shot["max_nodes"] is None and not shot["render"]


@pytest.mark.parametrize("args, words", [
    (["--blender", ">=4.x"], "brender-submit: --blender: The Blender version range '>=4.x' is "
                             "not valid: '>=4.x' is not a clause such as >=4.2"),
    (["--blender", ">=4.2,,<5"], "--blender: The Blender version range '>=4.2,,<5' is not valid"),
    (["--max-nodes", "0"], "--max-nodes: The node limit must be between 1 and 100000"),
    (["--samples", "0"], "samples must be between 1 and 1000000"),
    (["--requires-tags", "gpu," + "x" * 60], "--requires-tags: The required tags are wrong: "
                                             "requires_tags[1] is longer than 50 characters"),
])
def test_a_bad_requirement_is_one_line_and_exit_2(farm_factory, made, args, words):  # noqa: F811
    farm = farm_factory(nodes=0)
    blend = made("plain")["blend"]
    proc = submit(farm, blend, *args)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()], proc.stderr
    assert words in proc.stderr
    # Refused before anything left: no shot, not even the .blend uploaded.
    assert shots_on(farm) == []
    assert farm.client().missing_blobs([sha256_file(blend)]) == [sha256_file(blend)]


def test_an_unknown_device_is_refused_by_the_options(farm_factory, made):  # noqa: F811
    farm = farm_factory(nodes=0)
    proc = submit(farm, made("plain")["blend"], "--device", "tpu")
    assert proc.returncode == 2
    assert "argument --device: invalid choice: 'tpu' (choose from 'cpu', 'gpu', 'any')" \
        in proc.stderr
    assert shots_on(farm) == []


def test_overrides_render_on_the_farm_and_waiting_shots_say_why(farm_factory, made,  # noqa: F811
                                                               tmp_path):
    """One real node without a GPU or tags: a shot needing either waits and says so;
    the samples and resolution overrides render, at the overridden size."""
    from PIL import Image

    farm = farm_factory(nodes=1)
    project = made("plain")
    gpu = submit(farm, project["blend"], "--device", "gpu", "--frames", "1")
    assert gpu.returncode == 0, gpu.stderr
    assert "brender-submit: waiting: no node has a GPU" in gpu.stderr.splitlines()
    tagged = submit(farm, project["blend"], "--requires-tags", "gpu", "--frames", "1")
    assert tagged.returncode == 0, tagged.stderr
    assert "brender-submit: waiting: no node has tag gpu" in tagged.stderr.splitlines()

    proc = submit(farm, project["blend"], "--samples", "2", "--resolution-x", "48",
                  "--resolution-y", "24", "--resolution", "50", "--frames", "1", "--wait",
                  timeout=240)
    shot_id = int(proc.stdout.split()[0])
    assert proc.returncode == 0, proc.stderr + farm.debug_dump(shot_id)
    assert "waiting:" not in proc.stderr
    client = farm.client()
    [frame] = client.frames(shot_id)
    assert (frame["width"], frame["height"]) == (24, 12)
    image = tmp_path / "frame.png"
    image.write_bytes(client.download_url(frame["image_url"]))
    with Image.open(image) as rendered:
        assert rendered.size == (24, 12)
    used = client.shot(shot_id)["settings_used"]
    assert (used["resolution_x"], used["resolution_y"], used["resolution_percentage"]) == \
        (48, 24, 50)
    assert used["blender_version"].startswith("3.4")
    # The two shots no node can take still wait, for the same reasons.
    assert [client.shot(int(p.stdout.split()[0]))["waiting"] for p in (gpu, tagged)] == \
        ["no node has a GPU", "no node has tag gpu"]
    # The node rendered with the shot's samples, not the file's 4.
    assert (used["engine"], used["samples"]) == ("CYCLES", 2), used
