"""`brender-submit` with real .blend files made by Blender 3.4, run as a user runs
it (a subprocess), against the stand-in coordinator that records each request:
compressed files pack, the file's own settings are the default, bad files and
bad options end in one clear message and exit code 2 with nothing uploaded."""
from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from brender_addon import blend_info

from .conftest import make_project
from .fake_coordinator import FakeCoordinator

pytestmark = pytest.mark.blender

REPO = Path(__file__).resolve().parents[2]
# This checkout's add-on and the brender_protocol package beside it.
PYTHONPATH = os.pathsep.join((str(REPO / "addon"), str(REPO)))


def submit(fake: FakeCoordinator, blend: Path, *args: str, env: dict | None = None,
           timeout: float = 120) -> subprocess.CompletedProcess:
    environ = dict(os.environ, PYTHONPATH=PYTHONPATH, BRENDER_COORDINATOR=fake.url,
                   BRENDER_TOKEN=fake.token, **(env or {}))
    return subprocess.run([sys.executable, "-m", "brender_addon.submit_cli", str(blend), *args],
                          cwd=blend.parent, env=environ, capture_output=True, text=True,
                          timeout=timeout)


def sent(fake: FakeCoordinator) -> dict:
    """The body of the one shot created."""
    assert len(fake.shots) == 1, fake.requests
    return fake.shots[1]


def assert_refused(proc: subprocess.CompletedProcess, fake: FakeCoordinator, *words: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    for word in words:
        assert word in proc.stderr, proc.stderr
    assert fake.blobs == {} and fake.shots == {}, "something was uploaded"


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Projects made by Blender, by name (each made once for the module)."""
    cache: dict[str, dict[str, Path]] = {}

    def get(name: str, **opts) -> dict[str, Path]:
        if name not in cache:
            root = tmp_path_factory.mktemp(name)
            cache[name] = make_project(root / "p", root / "home", **opts)
        return cache[name]
    return get


def packed_names(shot: dict) -> list[str]:
    return sorted(Path(f["path"]).name for f in shot["files"])


def test_zstd_compressed_files_pack_from_the_shell(made):
    project = made("zstd", compress=True)
    for blend in (project["blend"], project["library"]):
        assert blend.read_bytes()[:4] == b"\x28\xb5\x2f\xfd", f"{blend} is not Zstandard"
    with FakeCoordinator() as fake:
        proc = submit(fake, project["blend"], "--frames", "1-2")
        assert proc.returncode == 0, proc.stderr
        shot = sent(fake)
    # The library (itself compressed) was read too: its texture came along.
    assert packed_names(shot) == ["checker.png", "library.blend", "red.png", "shot.blend"]
    assert int(proc.stdout.split()[0]) == shot["id"]


def test_gzip_compressed_files_pack_from_the_shell(made, tmp_path):
    """Blender before 3.0 wrote gzip when Compress was on; 3.x and later still read it."""
    project = made("plain")
    folder = tmp_path / "project"
    shutil.copytree(project["blend"].parent, folder)
    blend = folder / "shot.blend"
    blend.write_bytes(gzip.compress(blend.read_bytes()))
    assert blend_info.read(blend).compression == "gzip"
    with FakeCoordinator() as fake:
        proc = submit(fake, blend, "--frames", "1")
        assert proc.returncode == 0, proc.stderr
        assert packed_names(sent(fake)) == ["checker.png", "library.blend", "red.png", "shot.blend"]


def test_a_missing_texture_is_listed_with_its_data_block_and_refused(made):
    project = made("missing", missing=True)
    gone = str(project["blend"].parent / "textures" / "does_not_exist.png")
    with FakeCoordinator() as fake:
        proc = submit(fake, project["blend"])
        assert_refused(proc, fake, "1 external file(s) are missing", gone, "Image 'ghost'",
                       "--allow-missing")


def test_allow_missing_submits_and_the_shot_records_what_was_missing(made):
    project = made("missing", missing=True)
    gone = str(project["blend"].parent / "textures" / "does_not_exist.png")
    with FakeCoordinator() as fake:
        proc = submit(fake, project["blend"], "--allow-missing")
        assert proc.returncode == 0, proc.stderr
        assert "submitting without 1 missing file(s)" in proc.stderr
        assert sent(fake)["missing"] == [{"path": gone, "used_by": "Image 'ghost'"}]


@pytest.mark.parametrize("content, words", [
    (b"BLENDER-v300" + b"\0" * 5, "is not a readable .blend file"),
    (b"not a blend file at all", "is not a readable .blend file"),
    (gzip.compress(b"BLENDER-v300 truncated", mtime=0), "is not a readable .blend file"),
])
def test_a_corrupt_blend_is_one_clear_line(tmp_path, content, words):
    blend = tmp_path / "broken.blend"
    blend.write_bytes(content)
    with FakeCoordinator() as fake:
        proc = submit(fake, blend, "--frames", "1")
        assert_refused(proc, fake, words, "broken.blend")
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_a_scene_without_camera_is_refused(made):
    project = made("nocam", no_camera=True)
    with FakeCoordinator() as fake:
        assert_refused(submit(fake, project["blend"]), fake, "Scene 'Scene' has no active camera")


def test_a_movie_output_is_refused_unless_a_still_format_is_asked_for(made):
    project = made("movie", movie=True)
    with FakeCoordinator() as fake:
        assert_refused(submit(fake, project["blend"]), fake, "writes FFMPEG, a movie", "PNG")
        proc = submit(fake, project["blend"], "--format", "png")
        assert proc.returncode == 0, proc.stderr
        assert sent(fake)["render"] == {"output_format": "PNG"}


def test_frame_range_step_and_format_come_from_the_file(made):
    project = made("ranged", frames=[2, 9], step=2)
    with FakeCoordinator() as fake:
        proc = submit(fake, project["blend"])
        assert proc.returncode == 0, proc.stderr
        shot = sent(fake)
    assert (shot["frame_start"], shot["frame_end"], shot["frame_step"]) == (2, 9, 2)
    assert shot["frames_total"] == 4
    # The file's own output settings: nothing about them is sent.
    for key in ("render", "output_format", "resolution_percentage", "chunk_size", "frames"):
        assert key not in shot
    assert "frames 2-9 step 2 (the scene's, 4 frames), PNG (the file's) 64x36 at 100%" in proc.stderr
    assert "jobs sized adaptively" in proc.stderr


def test_several_scenes_render_the_active_one_or_the_one_asked_for(made):
    project = made("scenes", second_scene=True, view_layer=True)
    info = blend_info.read(project["blend"])
    assert info.active_scene == "Scene" and set(info.scenes) == {"Scene", "Closeup"}
    with FakeCoordinator() as fake:
        proc = submit(fake, project["blend"])
        assert proc.returncode == 0, proc.stderr
        shot = fake.shots[1]
        assert (shot["frame_start"], shot["frame_end"]) == (1, 3) and "render" not in shot

        proc = submit(fake, project["blend"], "--scene", "Closeup")
        assert proc.returncode == 0, proc.stderr
        shot = fake.shots[2]
        assert (shot["frame_start"], shot["frame_end"]) == (5, 8)
        assert shot["render"] == {"scene": "Closeup"}
        assert "scene 'Closeup'" in proc.stderr and "JPEG (the file's)" in proc.stderr

        for args, words in ((["--scene", "Wide"], "has no scene 'Wide' (its scenes: Closeup, Scene)"),
                            (["--view-layer", "Nope"], "has no view layer 'Nope'"),
                            (["--camera", "Floor"], "no camera object 'Floor'")):
            proc = submit(fake, project["blend"], *args)
            assert proc.returncode == 2 and words in proc.stderr, proc.stderr
        assert len(fake.shots) == 2


def test_every_override_is_sent_in_render(made):
    project = made("scenes", second_scene=True, view_layer=True)
    with FakeCoordinator() as fake:
        proc = submit(fake, project["blend"], "--scene", "Scene", "--camera", "Camera",
                      "--view-layer", "ViewLayer", "--view-layer", "Background",
                      "--format", "OPEN_EXR", "--color-depth", "32", "--color-mode", "rgb",
                      "--exr-codec", "dwaa", "--view-transform", "Standard", "--look", "None",
                      "--exposure", "0.5", "--no-transparent", "--resolution-x", "128",
                      "--resolution-y", "72", "--resolution", "50")
        assert proc.returncode == 0, proc.stderr
        assert sent(fake)["render"] == {
            "scene": "Scene", "camera": "Camera", "view_layers": ["ViewLayer", "Background"],
            "output_format": "OPEN_EXR", "color_depth": "32", "color_mode": "RGB",
            "exr_codec": "DWAA", "view_transform": "Standard", "look": "None", "exposure": 0.5,
            "film_transparent": False, "resolution_x": 128, "resolution_y": 72,
            "resolution_percentage": 50}


@pytest.mark.parametrize("args, expected", [
    (["--frames", "1-10,20,30-40"], {"frames": "1-10,20,30-40", "frames_total": 22}),
    (["--frames", "4-6", "--step", "2"], {"frame_start": 4, "frame_end": 6, "frame_step": 2,
                                          "frames_total": 2}),
    (["--frames", "7"], {"frame_start": 7, "frame_end": 7, "frames_total": 1}),
    (["--chunk", "6"], {"chunk_size": 6}),
])
def test_frame_lists_and_fixed_chunks(made, args, expected):
    project = made("plain")
    with FakeCoordinator() as fake:
        proc = submit(fake, project["blend"], *args)
        assert proc.returncode == 0, proc.stderr
        shot = sent(fake)
    assert {key: shot.get(key) for key in expected} == expected
    if "--chunk" in args:
        assert "jobs of 6 frames" in proc.stderr


def test_chunk_auto_is_adaptive_and_says_so(made):
    project = made("plain")
    with FakeCoordinator() as fake:
        proc = submit(fake, project["blend"], "--chunk", "auto")
        assert proc.returncode == 0, proc.stderr
        assert "chunk_size" not in sent(fake)
    assert "jobs sized adaptively" in proc.stderr
    help_text = subprocess.run([sys.executable, "-m", "brender_addon.submit_cli", "--help"],
                               env=dict(os.environ, PYTHONPATH=PYTHONPATH),
                               capture_output=True, text=True).stdout
    assert "auto (the default): the coordinator sizes jobs" in " ".join(help_text.split())


@pytest.mark.parametrize("args, words", [
    (["--frames", "10-5"], "ends before it starts"),
    (["--frames", "1-x"], "Frames must look like 1-10,20,30-40"),
    (["--chunk", "lots"], "--chunk takes a number of frames or auto"),
    (["--chunk", "0"], "chunk size must be between 1 and 1000"),
    (["--resolution-x", "2"], "between 4 and 65536"),
    (["--format", "FFMPEG"], "invalid choice"),
])
def test_bad_options_are_one_message_and_exit_2(made, args, words):
    project = made("plain")
    with FakeCoordinator() as fake:
        assert_refused(submit(fake, project["blend"], *args), fake, words)


def test_wait_prints_the_failure_reason_of_a_failed_shot(made):
    project = made("plain")
    with FakeCoordinator() as fake:
        def fail_the_shot() -> None:
            while not fake.shots:
                time.sleep(0.05)
            fake.shots[1].update(status="failed", failure_reason="no camera in scene 'Scene'")
        threading.Thread(target=fail_the_shot, daemon=True).start()
        proc = submit(fake, project["blend"], "--wait")
    assert proc.returncode == 1, proc.stderr
    assert "shot 1 failed: no camera in scene 'Scene'" in proc.stderr


def test_json_prints_the_shot(made):
    project = made("plain")
    with FakeCoordinator() as fake:
        proc = submit(fake, project["blend"], "--json", "--name", "from-json")
        assert proc.returncode == 0, proc.stderr
    shot = json.loads(proc.stdout)
    assert shot["name"] == "from-json" and shot["frames"] == []
