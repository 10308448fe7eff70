"""Taking the work home, end to end with real Blender on a real node: the preview movie
(made by real ffmpeg, checked with ffprobe), the frames as one streamed zip (all, a
range, one pass; bytes equal to the farm's sha256s), `brender-submit --download`, and
the bad input the new routes refuse."""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.farm import BLENDER, REPO, Farm, make_scene, wait_for

pytestmark = pytest.mark.blender
FFPROBE = shutil.which("ffprobe") or "/usr/bin/ffprobe"
PASS = "Passes PNG/beauty_"
ADD_OUTPUTS = REPO / "tests" / "scenes" / "make_outputs_scene.py"


def add_outputs(base: Path, out: Path, **opts) -> Path:
    """`base` with compositor File Output nodes (tests/scenes/make_outputs_scene.py)."""
    subprocess.run([BLENDER, "-b", str(base), "--factory-startup", "--python-exit-code", "1",
                    "--python", str(ADD_OUTPUTS), "--", str(out), json.dumps(opts)],
                   check=True, capture_output=True, timeout=120)
    return out


@pytest.fixture(scope="module")
def delivered(tmp_path_factory):
    """One node; a 6-frame PNG shot at 12 fps, a 3-frame EXR shot at 25 fps and a
    2-frame shot with compositor passes, all completed. Movies are made in parts of
    two frames (joined once the shot completes), as a long shot's are of 48."""
    root = tmp_path_factory.mktemp("deliveries")
    farm = Farm(root / "farm", movie_segment_frames=2)
    try:
        farm.start_coordinator()
        farm.add_node("node1")
        scene = make_scene(root / "take.blend", frame_end=6, fps=12)
        passes = add_outputs(make_scene(root / "base.blend", frame_end=2),
                             root / "passes.blend", passes=True,
                             exr_base=f"{root / 'absolute'}/")
        farm.wait_nodes_online(1)
        farm.png = farm.submit(scene, name="take home", frame_end=6, fps=12, chunk_size=3)
        farm.exr = farm.submit(scene, name="exr", frame_end=3, fps=25, chunk_size=3,
                               output_format="OPEN_EXR")
        farm.passes = farm.submit(passes, name="passes", frame_end=2, chunk_size=2)
        farm.passes_blend = passes
        for shot in (farm.png, farm.exr, farm.passes):
            ended = farm.wait_shot(shot["id"], timeout=180)
            assert ended["status"] == "completed", farm.debug_dump(shot["id"])
        yield farm
    finally:
        farm.close()


def get(farm: Farm, path: str, headers: dict | None = None,
        token: bool = True) -> tuple[int, dict, bytes]:
    hdrs = {"Authorization": f"Bearer {farm.token}"} if token else {}
    req = urllib.request.Request(farm.url + path, headers={**hdrs, **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def ready_movie(farm: Farm, shot_id: int, frames: int | None = None) -> dict:
    def made():
        movie = farm.client().shot(shot_id)["movie"]
        assert movie is None or movie["status"] != "failed", movie
        return movie if movie and movie["status"] == "ready" and \
            (frames is None or movie["frames"] == frames) else None
    return wait_for(made, 60, what=f"shot {shot_id}'s movie")


def probe(data: bytes, tmp_path: Path) -> dict:
    path = tmp_path / "probe.mp4"
    path.write_bytes(data)
    out = subprocess.run([FFPROBE, "-v", "error", "-count_frames", "-select_streams", "v:0",
                          "-show_entries", "stream=codec_name,pix_fmt,r_frame_rate,"
                          "nb_read_frames,width,height", "-of", "json", str(path)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout)["streams"][0]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("which, fps, frames", [("png", "12/1", 6), ("exr", "25/1", 3)])
def test_a_completed_shot_gets_an_h264_preview_movie(delivered, tmp_path, which, fps, frames):
    shot = getattr(delivered, which)
    movie = ready_movie(delivered, shot["id"])
    assert movie["frames"] == frames and movie["url"] == f"/api/shots/{shot['id']}/movie"
    status, headers, data = get(delivered, movie["url"])
    assert status == 200 and headers["Content-Type"] == "video/mp4"
    stream = probe(data, tmp_path)
    assert stream == {"codec_name": "h264", "pix_fmt": "yuv420p", "r_frame_rate": fps,
                      "nb_read_frames": str(frames), "width": 64, "height": 36}
    # Made of parts, joined: none is left beside the movie.
    assert not (delivered.data_dir / "shots" / str(shot["id"]) / "movie" / "parts").exists()
    # Chromium seeks with Range requests.
    status, headers, part = get(delivered, movie["url"], {"Range": "bytes=100-199"})
    assert status == 206 and part == data[100:200]
    assert headers["Content-Range"] == f"bytes 100-199/{len(data)}"


def test_exr_movie_frames_are_the_tone_mapped_previews(delivered, tmp_path):
    movie = ready_movie(delivered, delivered.exr["id"])
    path = tmp_path / "m.mp4"
    path.write_bytes(get(delivered, movie["url"])[2])
    first = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-frames:v", "1",
                            "-f", "rawvideo", "-pix_fmt", "gray", "-"],
                           check=True, capture_output=True).stdout
    assert len(first) == 64 * 36 and max(first) > 40, "the movie shows the scene, not black"


def test_a_movie_is_made_on_request_from_the_frames_that_landed(delivered):
    client = delivered.client()
    shot = delivered.png
    before = ready_movie(delivered, shot["id"])
    answer = client._request("POST", f"/api/shots/{shot['id']}/movie", {})
    assert answer["movie"]["status"] in ("queued", "making")
    after = wait_for(lambda: (m := client.shot(shot["id"])["movie"])["status"] == "ready"
                     and m["made_at"] > before["made_at"] and m, 60, what="the new movie")
    assert after["frames"] == 6


def test_a_running_shot_gets_a_movie_of_what_landed(delivered, slow_scene, tmp_path):
    """A shot stopped halfway (cancelled: it never completes) still gets its movie on
    request, of the frames that landed."""
    client = delivered.client()
    shot = delivered.submit(slow_scene, name="half", frame_end=40, chunk_size=1, fps=24)
    # While it renders, runs of two landed frames are encoded ahead as parts.
    parts = delivered.data_dir / "shots" / str(shot["id"]) / "movie" / "parts"
    wait_for(lambda: parts.is_dir() and any(parts.glob("*.h264")), 120,
             what="a part of the movie made while the shot renders")
    client.shot_action(shot["id"], "cancel")
    landed = client.shot(shot["id"])["frames_done"]
    assert 2 <= landed < 40 and client.shot(shot["id"])["movie"] is None
    client._request("POST", f"/api/shots/{shot['id']}/movie", {})
    movie = ready_movie(delivered, shot["id"])
    assert movie["frames"] == landed
    stream = probe(get(delivered, movie["url"])[2], tmp_path)
    assert stream["nb_read_frames"] == str(landed) and stream["r_frame_rate"] == "24/1"


def unzip(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None
        return {info.filename: zf.read(info) for info in zf.infolist()}


def test_the_frames_come_home_as_one_zip(delivered):
    client = delivered.client()
    shot = delivered.png
    frames = {f["name"]: f["sha256"] for f in client.frames(shot["id"])}
    status, headers, data = get(delivered, f"/api/shots/{shot['id']}/frames.zip")
    assert status == 200 and headers["Content-Type"] == "application/zip"
    assert "take_home" in headers["Content-Disposition"]
    files = unzip(data)
    assert {name: sha(body) for name, body in files.items()} == frames
    assert len(frames) == 6

    status, _, data = get(delivered, f"/api/shots/{shot['id']}/frames.zip?frames=2-3,6")
    assert status == 200
    assert sorted(unzip(data)) == ["frame_000002.png", "frame_000003.png", "frame_000006.png"]


def test_one_pass_comes_home_as_one_zip(delivered):
    client = delivered.client()
    shot_id = delivered.passes["id"]
    expected = {}
    for n in (1, 2):
        outputs = client._request("GET", f"/api/shots/{shot_id}/frames/{n}/outputs")["outputs"]
        beauty = next(o for o in outputs if o["name"] == PASS)
        expected[f"Passes_PNG_beauty/frame_{n:06d}.png"] = beauty["sha256"]
    status, _, data = get(delivered, f"/api/shots/{shot_id}/frames.zip?pass="
                          + urllib.request.quote(PASS))
    assert status == 200
    assert {name: sha(body) for name, body in unzip(data).items()} == expected


@pytest.mark.parametrize("path, status, field", [
    ("/api/shots/{id}/frames.zip?frames=abc", 400, "frames"),
    ("/api/shots/{id}/frames.zip?frames=5-1", 400, "frames"),
    ("/api/shots/{id}/frames.zip?frames=", 400, "frames"),
    ("/api/shots/{id}/frames.zip?pass=nope", 404, None),
    ("/api/shots/{id}/frames.zip?pass=../../../etc/passwd", 404, None),
    ("/api/shots/{id}/frames.zip?pass=%2Fetc%2Fpasswd", 404, None),
    ("/api/shots/{id}/frames.zip?frames=500-600", 404, None),
    ("/api/shots/999999/frames.zip", 404, None),
    ("/api/shots/..%2F..%2Fetc/frames.zip", 400, "shot_id"),
    ("/api/shots/%2Fetc%2Fpasswd/movie", 400, "shot_id"),
    ("/api/shots/999999/movie", 404, None),
])
def test_bad_downloads_are_refused_with_json(delivered, path, status, field):
    got, headers, body = get(delivered, path.format(id=delivered.png["id"]))
    assert got == status, body
    answer = json.loads(body)
    assert answer["error"]
    assert answer.get("field") == field


def test_downloads_never_follow_a_symlink_out_of_the_data_dir(delivered, tmp_path):
    shot_id = delivered.png["id"]
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the farm")
    frame = delivered.data_dir / "shots" / str(shot_id) / "frames" / "frame_000006.png"
    kept = frame.read_bytes()
    frame.unlink()
    frame.symlink_to(secret)
    try:
        status, _, data = get(delivered, f"/api/shots/{shot_id}/frames.zip")
        assert status == 200
        files = unzip(data)
        assert "frame_000006.png" not in files and len(files) == 5
        status, _, _ = get(delivered, f"/files/shots/{shot_id}/frames/frame_000006.png")
        assert status == 404
    finally:
        frame.unlink()
        frame.write_bytes(kept)
    movie = delivered.data_dir / "shots" / str(shot_id) / "movie" / "preview.mp4"
    ready_movie(delivered, shot_id)
    real = movie.read_bytes()
    movie.unlink()
    movie.symlink_to(secret)
    try:
        assert get(delivered, f"/api/shots/{shot_id}/movie")[0] == 404
    finally:
        movie.unlink()
        movie.write_bytes(real)


def test_making_a_movie_needs_the_farm_token(delivered):
    req = urllib.request.Request(f"{delivered.url}/api/shots/{delivered.png['id']}/movie",
                                 data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=30)
    assert err.value.code == 401
    shot = delivered.client().shot(delivered.png["id"])
    assert get(delivered, f"/api/shots/{shot['id']}/frames.zip", token=False)[0] == 200


def test_submit_wait_download_writes_verified_frames(delivered, tmp_path):
    scene = make_scene(tmp_path / "cli.blend", frame_end=3)
    out = tmp_path / "home"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join((str(REPO / "addon"), str(REPO))))
    done = subprocess.run(
        [sys.executable, "-m", "brender_addon.submit_cli", str(scene), "--coordinator",
         delivered.url, "--token", delivered.token, "--chunk", "3", "--wait",
         "--download", str(out)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "3 files" in done.stderr and "verified" in done.stderr
    shot_id = int(done.stdout.split()[0])
    frames = delivered.client().frames(shot_id)
    assert sorted(p.name for p in out.iterdir()) == [f["name"] for f in frames]
    for frame in frames:
        assert sha((out / frame["name"]).read_bytes()) == frame["sha256"]


def test_submit_download_one_pass_of_some_frames(delivered, tmp_path):
    out = tmp_path / "home"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join((str(REPO / "addon"), str(REPO))))
    done = subprocess.run(
        [sys.executable, "-m", "brender_addon.submit_cli", str(delivered.passes_blend),
         "--coordinator", delivered.url, "--token", delivered.token, "--frames", "1-2",
         "--chunk", "2", "--download", str(out), "--download-frames", "2",
         "--download-pass", PASS], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    shot_id = int(done.stdout.split()[0])
    outputs = delivered.client()._request("GET", f"/api/shots/{shot_id}/frames/2/outputs")
    beauty = next(o for o in outputs["outputs"] if o["name"] == PASS)
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == ["Passes_PNG_beauty/frame_000002.png"]
    assert sha((out / files[0]).read_bytes()) == beauty["sha256"]


def test_metrics_in_prometheus_text_format(delivered):
    from prometheus_client.parser import text_string_to_metric_families

    status, headers, body = get(delivered, "/metrics", token=False)
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(body.decode())
               for s in family.samples}
    assert samples[("brender_frames_rendered_total", ())] >= 11
    assert samples[("brender_nodes", (("state", "idle"),))] == 1
    assert samples[("brender_upload_bytes_total", (("kind", "frame"),))] > 0
    assert samples[("brender_upload_bytes_total", (("kind", "output"),))] > 0
    shot = delivered.png
    labels = (("shot", "take home"), ("shot_id", str(shot["id"])))
    assert samples[("brender_shot_render_seconds", labels)] > 0
    assert samples[("brender_shot_frames_done", labels)] == 6
    assert ("brender_dispatch_latency_seconds", (("quantile", "0.5"),)) in samples
    assert ("brender_queue_frames", ()) in samples
    assert samples[("brender_movies_made_total", ())] >= 1


def test_without_ffmpeg_the_movie_says_so_and_the_farm_goes_on(tmp_path, scene, monkeypatch):
    """A coordinator whose PATH has no ffmpeg: the shot completes, its movie's state
    says how to fix it, nothing crashes."""
    farm = Farm(tmp_path / "farm")
    empty = tmp_path / "empty-path"
    empty.mkdir()
    try:
        with monkeypatch.context() as m:
            m.setenv("PATH", str(empty))
            farm.start_coordinator()
        farm.add_node("node1")
        farm.wait_nodes_online(1)
        shot = farm.wait_shot(farm.submit(scene, frame_end=2, chunk_size=2)["id"])
        assert shot["status"] == "completed", farm.debug_dump(shot["id"])
        movie = wait_for(lambda: (m := farm.client().shot(shot["id"])["movie"])
                         and m["status"] == "failed" and m, 30, what="the movie's state")
        assert "ffmpeg is not installed" in movie["error"] and "apt install ffmpeg" in \
            movie["error"]
        status, _, body = get(farm, f"/api/shots/{shot['id']}/movie")
        assert status == 404 and "ffmpeg is not installed" in json.loads(body)["error"]
        # Asking again says the same, and the farm still serves the frames.
        farm.client()._request("POST", f"/api/shots/{shot['id']}/movie", {})
        wait_for(lambda: farm.client().shot(shot["id"])["movie"]["status"] == "failed", 30)
        status, _, data = get(farm, f"/api/shots/{shot['id']}/frames.zip")
        assert status == 200 and len(unzip(data)) == 2
        assert farm.coordinator.poll() is None
    finally:
        farm.close()


def test_locked_reads_need_the_token_for_downloads_and_metrics(farm_factory):
    farm = farm_factory(lock_reads=True)
    for path in ("/metrics", "/api/shots/1/frames.zip", "/api/shots/1/movie"):
        status, _, body = get(farm, path, token=False)
        assert status == 401 and "token" in json.loads(body)["error"], path
    assert get(farm, "/metrics")[0] == 200
    # A token travels in the Authorization header only, never in a URL (issue 18).
    assert get(farm, "/metrics?token=" + farm.token, token=False)[0] == 401
    assert get(farm, "/api/shots/1/frames.zip")[0] == 404
