"""The add-on in real Blender 3.4 (Debian's binary) against a live farm.

Blender runs with `-b --factory-startup --python-exit-code 1`, its user config
and scripts in temp dirs; the add-on is installed from the built zip, enabled,
pointed at a real coordinator, and the submit operator sends a scene whose
material uses an external texture and which links an object from a second
.blend outside the project. A real node renders it; the frame must match a
local render of the same frame.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .conftest import colour_fractions, drive, make_project, mean_abs_diff, render_local
from .fake_coordinator import FakeCoordinator

pytestmark = pytest.mark.blender


def copy_project(project: dict[str, Path], dest: Path) -> dict[str, Path]:
    """A private copy of the project folder (the library stays where it is:
    the shot links it by absolute path)."""
    shutil.copytree(project["blend"].parent, dest)
    return dict(project, blend=dest / project["blend"].name)


def assert_thumbnail(path: Path) -> None:
    from PIL import Image
    with Image.open(path) as image:
        assert image.format in ("JPEG", "PNG")
        assert 0 < image.width <= 64 and 0 < image.height <= 36


def check_farm_render(farm, shot: dict, reference: Path, workdir: Path) -> None:
    """The farm's frame shows the texture and the linked cube, like the local render."""
    client = farm.client()
    frames = {f["number"]: f for f in client.frames(shot["id"])}
    assert set(frames) == {1, 2}
    assert all(f["status"] == "done" for f in frames.values())
    rendered = workdir / "farm_frame_1.png"
    rendered.write_bytes(client.download_url(frames[1]["image_url"]))
    colours = colour_fractions(rendered)
    assert colours["magenta"] < 0.01, f"a texture is missing on the node: {colours}"
    assert colours["red"] > 0.05, f"the linked cube is missing: {colours}"
    assert colours["green"] > 0.1 and colours["blue"] > 0.1, f"the checker texture is missing: {colours}"
    diff = mean_abs_diff(rendered, reference)
    assert diff < 2.0, f"the farm's frame differs from the local render by {diff:.2f}/255 on average"


def test_submit_from_blender_renders_on_the_farm(farm_factory, addon_zip, project, tmp_path):
    farm = farm_factory(nodes=1)
    mine = copy_project(project, tmp_path / "project")
    results = drive({
        "zip": str(addon_zip), "mode": "legacy", "url": farm.url, "token": farm.token,
        "steps": [
            {"do": "test_connection"},
            {"do": "open", "path": str(mine["blend"])},
            {"do": "exec", "code": "props.shot_name = 'addon-34'\n"
                                   "props.use_scene_range = False\n"
                                   "props.frame_start = 1\nprops.frame_end = 2\n"
                                   "props.use_fixed_chunks = True\n"
                                   "props.chunk_size = 2\nprops.priority = 70\n"
                                   "bpy.ops.ed.undo_push(message='Brender settings')"},
            {"do": "submit", "save_first": True},     # the settings dirtied the file: save, then submit
            {"do": "wait", "timeout": 150},
            {"do": "dashboard"},
            {"do": "draw"},
        ]}, tmp_path / "blender-home")
    steps = results["steps"]
    assert results["module"] == "brender_addon"
    assert "/vendor/" not in results["module_file"]
    connection, _, edit, submit, wait, dashboard, drawn = steps
    assert connection["result"] == ["FINISHED"]
    assert not connection["connection_error"]
    assert "1 node online" in connection["connection_text"]
    assert submit["result"] == ["FINISHED"], submit["last_error"]
    assert edit["dirty"] is True
    # It saved first (Blender -b keeps saying is_dirty after a save, so look at the file).
    assert mine["blend"].read_bytes() != project["blend"].read_bytes()
    shot = submit["shot"]
    assert shot["name"] == "addon-34" and shot["priority"] == 70
    assert (shot["frame_start"], shot["frame_end"], shot["chunk_size"]) == (1, 2, 2)
    assert wait["status"] == "completed", farm.debug_dump(shot["id"])
    # The panel's live status followed the shot to the end and fetched a thumbnail.
    assert wait["shot"]["status"] == "completed" and wait["shot"]["frames_done"] == 2
    assert wait["thumbnail_frame"] in (1, 2)
    # The artist is told, with a Blender report (issue 17): Blender printed it as one.
    message = f"Brender: shot 'addon-34' (#{shot['id']}) finished: 2 of 2 frames rendered"
    assert wait["reports"] == [["INFO", message]]
    assert f"Info: {message}" in results["stdout"], results["stdout"][-3000:]
    assert_thumbnail(Path(wait["thumbnail_copy"]))
    assert dashboard["url"] == f"{farm.url}/#/shots/{shot['id']}"
    # The panel shows the shot's end state.
    assert "exception" not in drawn, drawn.get("exception")
    panel = drawn["drawn"]
    assert ["label", f"addon-34 (#{shot['id']}): completed", "CHECKMARK"] in panel
    assert ["progress", 1.0, "2 of 2 frames"] in panel or ["label", "2 of 2 frames (100%)", "NONE"] in panel
    assert ["operator", "brender.submit", None] in panel
    assert ["operator", "brender.test_connection", None] in panel

    on_farm = farm.client().shot(shot["id"])
    assert on_farm["blend_path"] == "shot.blend"
    paths = sorted(f["path"] for f in on_farm["files"])
    assert "textures/checker.png" in paths
    assert [Path(p).name for p in paths if p.startswith("_outside_project/")] == ["library.blend", "red.png"]

    reference = render_local(project["blend"], 1, tmp_path / "local_frame_1.png", tmp_path / "render-home")
    check_farm_render(farm, shot, reference, tmp_path)


def test_clear_reports_before_anything_is_uploaded(farm_factory, addon_zip, project, project_missing,
                                                   tmp_path):
    farm = farm_factory(nodes=0)
    mine = copy_project(project, tmp_path / "project")
    missing = copy_project(project_missing, tmp_path / "project-missing")
    folder = mine["blend"].parent

    def variant(name: str, code: str) -> list[dict]:
        """Open the good file, change it, save it as `name`, submit that."""
        return [{"do": "open", "path": str(mine["blend"])},
                {"do": "exec", "code": code + f"\nbpy.ops.wm.save_as_mainfile(filepath={str(folder / name)!r})"},
                {"do": "submit"}]

    steps = [
        {"do": "new"}, {"do": "submit"},                                              # 1 never saved
        {"do": "open", "path": str(mine["blend"])},
        {"do": "exec", "code": "bpy.context.scene.render.resolution_x = 80\n"
                               "bpy.ops.ed.undo_push(message='edit')"},
        {"do": "submit"},                                                             # 4 unsaved changes
        *variant("nocam.blend", "bpy.context.scene.camera = None"),                   # 7 no camera
        {"do": "draw"},                                                               # 8
        *variant("movie.blend", "bpy.context.scene.render.image_settings.file_format = 'FFMPEG'"),  # 11
        {"do": "draw"},                                                               # 12
        *variant("empty.blend", "props.use_scene_range = False\nprops.frame_start = 10\n"
                                "props.frame_end = 5"),                               # 15 empty range
        {"do": "draw"},                                                               # 16
        {"do": "open", "path": str(mine["blend"])},
        {"do": "prefs", "url": "http://127.0.0.1:9"},
        {"do": "submit"},                                                             # 19 unreachable
        {"do": "test_connection"},                                                    # 20
        {"do": "prefs", "url": farm.url, "token": "not-the-token"},
        {"do": "submit"},                                                             # 22 wrong token
        {"do": "test_connection"},                                                    # 23
        {"do": "prefs", "token": farm.token},
        {"do": "open", "path": str(missing["blend"])},
        {"do": "submit"},                                                             # 26 missing files
        {"do": "draw"},                                                               # 27
    ]
    results = drive({"zip": str(addon_zip), "mode": "legacy", "url": farm.url, "token": farm.token,
                     "steps": steps}, tmp_path / "blender-home")
    got = results["steps"]
    expected = {
        1: "never saved",
        4: "unsaved changes",
        7: "has no active camera",
        11: "writes FFMPEG, a movie",
        15: "frame range 10-5 is empty",
        19: "Cannot reach the coordinator at http://127.0.0.1:9",
        22: "refused the farm token",
        26: "does_not_exist.png",
    }
    for index, words in expected.items():
        step = got[index]
        assert step["do"] == "submit"
        assert step["result"] == ["CANCELLED"], (index, step)
        assert words in step["last_error"], (index, step["last_error"])
        assert step["shot"] is None
    assert "missing" in got[26]["last_error"]
    assert got[20]["connection_error"] and "Cannot reach" in got[20]["connection_text"]
    assert got[23]["connection_error"] and "token" in got[23]["connection_text"]
    # The panel warns before Submit is pressed, and shows the last report.
    for index, warning in ((8, "The scene has no camera"),
                           (12, "Output format FFMPEG is not an image format for the farm"),
                           (16, "The frame range is empty")):
        assert "exception" not in got[index], got[index]["exception"]
        assert ["label", warning, "ERROR"] in got[index]["drawn"], (index, got[index]["drawn"])
    labels = [entry[1] for entry in got[27]["drawn"] if entry[0] == "label"]
    assert any("does_not_exist.png" in label for label in labels), labels
    # Nothing reached the coordinator: no shot, and not one of the files' blobs.
    client = farm.client()
    assert client._request("GET", "/api/shots")["shots"] == []
    from brender_addon.client import sha256_file
    digests = [sha256_file(p) for p in (mine["blend"], project["texture"], project["library"],
                                        project["library_texture"], missing["blend"])]
    assert sorted(client.missing_blobs(digests)) == sorted(set(digests))


def test_overrides_panel_and_the_missing_files_choice(addon_zip, project_missing, tmp_path):
    """The Overrides sub-panel shows the file's values until one is ticked; only
    ticked overrides are sent. Missing files stop the submission with the list
    and their data-blocks; Cancel forgets them, Submit Anyway sends the shot
    with `missing` recorded."""
    mine = copy_project(project_missing, tmp_path / "project")
    gone = str(mine["blend"].parent / "textures" / "does_not_exist.png")
    with FakeCoordinator() as fake:
        results = drive({
            "zip": str(addon_zip), "mode": "legacy", "url": fake.url, "token": fake.token,
            "steps": [
                {"do": "open", "path": str(mine["blend"])},
                {"do": "draw"},                                                       # 1 all off
                {"do": "exec", "code": "props.override_output_format = True\n"
                                       "props.output_format = 'OPEN_EXR'\n"
                                       "props.override_resolution_percentage = True\n"
                                       "props.resolution_percentage = 50\n"
                                       "props.override_camera = True\n"
                                       "props.camera = bpy.data.objects['Camera']\n"
                                       "props.override_film_transparent = True\n"
                                       "props.override_view_layers = True\n"
                                       "props.view_layers = 'ViewLayer'"},
                {"do": "draw"},                                                       # 3 ticked
                {"do": "submit"},                                                     # 4 refused
                {"do": "draw"},                                                       # 5 the choice
                {"do": "dismiss_missing"},                                            # 6 Cancel
                {"do": "draw"},                                                       # 7
                {"do": "submit", "allow_missing": True},                              # 8 anyway
            ]}, tmp_path / "blender-home")
        steps = results["steps"]
        for step in steps:
            assert "exception" not in step, step["exception"]
        untouched, ticked = steps[1]["drawn"], steps[3]["drawn"]
        assert ["prop", "override_output_format", ""] in untouched
        # Off: the file's own value, greyed, next to the tick box.
        assert ["prop", "file_format", "File Format (file)"] in untouched
        assert ["prop", "resolution_percentage", "Resolution % (file)"] in untouched
        assert ["prop", "camera", "Camera (file)"] in untouched
        assert ["label", "View Layers: ViewLayer (file)", "NONE"] in untouched
        # On: the override's own field.
        assert ["prop", "output_format", None] in ticked
        assert ["prop", "file_format", "File Format (file)"] not in ticked
        assert ["prop", "color_depth", "Color Depth (file)"] in ticked

        refused = steps[4]
        assert refused["result"] == ["CANCELLED"]
        assert refused["missing"] == [{"path": gone, "used_by": "Image 'ghost'"}]
        assert "Image 'ghost'" in refused["last_error"]
        # Nothing was sent before the choice: the second submission's first call
        # (GET /api/version) comes before any upload.
        versions = [i for i, (m, path) in enumerate(fake.requests) if path == "/api/version"]
        assert len(versions) == 2
        assert [m for m, _ in fake.requests[:versions[1]]] == ["GET"] * versions[1]
        choice = steps[5]["drawn"]
        assert ["label", "1 external file(s) are missing; nothing was uploaded", "ERROR"] in choice
        assert ["label", f"{gone}  (Image 'ghost')", "NONE"] in choice
        assert ["operator", "brender.dismiss_missing", None] in choice
        assert ["operator", "brender.submit", "Submit Anyway", {"allow_missing": True}] in choice
        assert steps[6]["missing"] == [] and steps[6]["last_error"] == ""
        assert not any(e[0] == "operator" and e[2] == "Submit Anyway" for e in steps[7]["drawn"])

        anyway = steps[8]
        assert anyway["result"] == ["FINISHED"], anyway["last_error"]
        assert "1 missing file(s) allowed" in anyway["last_info"]
        shot = fake.shots[1]
    assert shot["missing"] == [{"path": gone, "used_by": "Image 'ghost'"}]
    assert shot["render"] == {"output_format": "OPEN_EXR", "resolution_percentage": 50,
                              "camera": "Camera", "film_transparent": True,
                              "view_layers": ["ViewLayer"]}
    # The file's frame range; jobs sized by the coordinator.
    assert (shot["frame_start"], shot["frame_end"]) == (1, 3) and "chunk_size" not in shot
    assert "output_format" not in shot and "resolution_percentage" not in shot


def test_a_zstd_file_in_a_blender_without_zstandard_is_one_clear_report(addon_zip, tmp_path):
    """Blender 3.x writes Zstandard when Compress is on. Blender's own builds read it
    with their bundled `zstandard` module; Debian's Blender has none unless
    python3-zstandard is installed: then the submission says so, nothing else."""
    project = make_project(tmp_path / "p", tmp_path / "make-home", compress=True)
    assert project["blend"].read_bytes()[:4] == b"\x28\xb5\x2f\xfd"
    with FakeCoordinator() as fake:
        results = drive({
            "zip": str(addon_zip), "mode": "legacy", "url": fake.url, "token": fake.token,
            "steps": [{"do": "exec", "code": "import importlib.util, json\n"
                                             "print('HAS-ZSTD', json.dumps(importlib.util."
                                             "find_spec('zstandard') is not None))"},
                      {"do": "open", "path": str(project["blend"])},
                      {"do": "submit"}]}, tmp_path / "blender-home")
        submitted = results["steps"][2]
        has_zstd = "HAS-ZSTD true" in results["stdout"]
        if has_zstd:
            assert submitted["result"] == ["FINISHED"], submitted["last_error"]
            assert len(fake.shots) == 1
        else:
            assert submitted["result"] == ["CANCELLED"]
            assert "shot.blend is compressed with Zstandard" in submitted["last_error"]
            assert "python3-zstandard" in submitted["last_error"]
            assert "Traceback" not in results["stdout"]
            assert fake.blobs == {} and fake.shots == {}


def test_the_nodes_panel_and_render_overrides_reach_the_shot(farm_factory, addon_zip, project,
                                                            tmp_path):
    """Required and preferred tags, device, Blender range, node cap, samples and
    resolution overrides and the frame step set in the panel are what the farm's shot
    records, with this Blender's version as the file's. A bad range is reported before
    anything is uploaded, and shown in the panel beforehand."""
    farm = farm_factory(nodes=0)
    mine = copy_project(project, tmp_path / "project")
    results = drive({
        "zip": str(addon_zip), "mode": "legacy", "url": farm.url, "token": farm.token,
        "steps": [
            {"do": "open", "path": str(mine["blend"])},
            {"do": "draw"},                                                   # 1 defaults
            {"do": "exec", "code": "props.requires_tags = 'gpu, big-ram'\n"
                                   "props.prefers_tags = 'fast'\nprops.device = 'GPU'\n"
                                   "props.blender_range = '>=4.x'\n"
                                   "props.use_max_nodes = True\nprops.max_nodes = 2\n"
                                   "props.override_samples = True\nprops.samples = 3\n"
                                   "props.override_resolution = True\n"
                                   "props.resolution = (48, 24)\n"
                                   "props.override_resolution_percentage = True\n"
                                   "props.resolution_percentage = 50\n"
                                   "props.use_scene_range = False\n"
                                   "props.frame_start = 1\nprops.frame_end = 4\n"
                                   "props.frame_step = 2\n"
                                   "bpy.ops.ed.undo_push(message='Brender settings')"},
            {"do": "draw"},                                                   # 3 bad range
            {"do": "submit", "save_first": True},                             # 4 refused
            {"do": "exec", "code": "props.blender_range = ' >=3.4 , <5'\n"
                                   "bpy.ops.ed.undo_push(message='range')"},
            {"do": "submit", "save_first": True},                             # 6
            {"do": "draw"},                                                   # 7
        ]}, tmp_path / "blender-home")
    steps = results["steps"]
    for step in steps:
        assert "exception" not in step, step["exception"]
    defaults, bad, refused, submitted, drawn = (steps[i] for i in (1, 3, 4, 6, 7))
    nodes_panel = defaults["drawn"][defaults["drawn"].index(["--- nodes"]):]
    for name in ("requires_tags", "prefers_tags", "device", "blender_range", "max_nodes"):
        assert ["prop", name, None] in nodes_panel, name
    assert ["label", "Blender 3.4 if a node has it, else the newest", "INFO"] in nodes_panel
    # The file's own samples (Cycles, 4) show greyed until the override is ticked.
    assert ["prop", "samples", "Samples (file)"] in defaults["drawn"]
    assert ["prop", "samples", None] in bad["drawn"]
    assert ["label", "The Blender version range is not valid", "ERROR"] in bad["drawn"]

    assert refused["result"] == ["CANCELLED"]
    assert "The Blender version range '>=4.x' is not valid" in refused["last_error"]
    assert "'>=4.x' is not a clause such as >=4.2" in refused["report"]
    assert refused["shot"] is None

    assert submitted["result"] == ["FINISHED"], submitted["last_error"]
    assert "waiting: no node is connected" in submitted["last_info"]
    shot = farm.client().shot(submitted["shot"]["id"])
    assert {key: shot[key] for key in ("requires_tags", "prefers_tags", "device", "blender",
                                       "blender_saved_with", "max_nodes")} == {
        "requires_tags": ["gpu", "big-ram"], "prefers_tags": ["fast"], "device": "gpu",
        "blender": ">=3.4,<5", "blender_saved_with": "3.4", "max_nodes": 2}
    assert shot["render"] == {"samples": 3, "resolution_x": 48, "resolution_y": 24,
                              "resolution_percentage": 50}
    # Frames 1-4 by 2: 1 and 3 (the farm reports the last frame it renders).
    assert (shot["frame_start"], shot["frame_end"], shot["frame_step"], shot["frames_total"]) \
        == (1, 3, 2, 2)
    # Only the second submission reached the farm.
    assert [s["id"] for s in farm.client()._request("GET", "/api/shots")["shots"]] == [shot["id"]]
    # The panel follows the shot and says why it waits.
    assert ["label", "Waiting: no node is connected", "SORTTIME"] in drawn["drawn"]
