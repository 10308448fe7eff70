"""The add-on links to the farm's preview movie: after the shot completes, the panel
offers Open Movie, which opens the movie the coordinator made (real Blender 3.4,
a real farm and node)."""
from __future__ import annotations

import subprocess
import urllib.request

import pytest

from tests.farm import wait_for

from .conftest import drive

pytestmark = pytest.mark.blender


def test_open_movie_links_to_the_shots_preview_movie(farm_factory, addon_zip, project, tmp_path):
    farm = farm_factory(nodes=1)
    results = drive({
        "zip": str(addon_zip), "mode": "legacy", "url": farm.url, "token": farm.token,
        "steps": [
            {"do": "open", "path": str(project["blend"])},
            {"do": "exec", "code": "props.use_scene_range = False\nprops.frame_start = 1\n"
                                   "props.frame_end = 2\nprops.use_fixed_chunks = True\n"
                                   "props.chunk_size = 2\n"},
            {"do": "submit", "save_first": False},
            {"do": "wait", "timeout": 150},
            {"do": "movie"},
            {"do": "draw"},
        ]}, tmp_path / "blender-home")
    _, _, submit, wait, movie, drawn = results["steps"]
    assert submit["result"] == ["FINISHED"], submit["last_error"]
    shot = submit["shot"]
    assert wait["status"] == "completed", farm.debug_dump(shot["id"])
    assert movie["result"] == ["FINISHED"], movie
    # With a read-only ticket (a farm with --lock-reads wants one), never the token.
    assert movie["url"].startswith(f"{farm.url}/api/shots/{shot['id']}/movie?ticket=")
    assert farm.token not in movie["url"]
    assert ["operator", "brender.open_movie", None] in drawn["drawn"]
    # The link plays: the coordinator made the movie of the shot's two frames.
    wait_for(lambda: farm.client().shot(shot["id"])["movie"]["status"] == "ready", 60,
             what="the movie")
    with urllib.request.urlopen(movie["url"], timeout=30) as resp:
        data = resp.read()
    path = tmp_path / "movie.mp4"
    path.write_bytes(data)
    frames = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
                             "-show_entries", "stream=codec_name,nb_read_frames", "-of", "csv=p=0",
                             str(path)], check=True, capture_output=True, text=True).stdout
    assert frames.strip() == "h264,2"
