"""Open Movie's link works on a farm that locks reads (`--lock-reads`) as on an open
one: the add-on's bpy-free client fetches a read-only ticket with the artist's token
and the link carries it, never the token (a real coordinator process; no Blender).

The movie itself is made by the coordinator from rendered frames (test_movie_link.py,
with real Blender); here a small MP4 made by ffmpeg is put where the coordinator keeps
a shot's movie, so that what the link serves can be compared byte for byte."""
from __future__ import annotations

import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from brender_addon import jobs
from brender_addon.client import Client
from brender_addon.downloads import movie_link, movie_url

BLEND = b"BLENDER-v304" + b"\x00" * 100


def make_movie(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc=size=64x36:rate=24", "-frames:v", "2", "-c:v", "libx264",
                    "-pix_fmt", "yuv420p", str(path)], check=True, timeout=60)
    return path.read_bytes()


def artist_and_movie(farm, tmp_path: Path) -> tuple[Client, int, bytes]:
    """An artist's client, her shot, and the bytes of its preview movie."""
    made = farm.client()._request("POST", "/api/tokens", {"role": "artist", "name": "anna"})
    artist = farm.client(made["token"])
    blend = tmp_path / "shot.blend"
    blend.write_bytes(BLEND)
    shot = farm.submit(blend, token=made["token"])
    movie = make_movie(farm.data_dir / "shots" / str(shot["id"]) / "movie" / "preview.mp4")
    return artist, shot["id"], movie


def browser_get(url: str) -> bytes:
    """What a browser does with the link: a plain GET, no Authorization header."""
    with urllib.request.urlopen(url, timeout=30) as resp:
        return resp.read()


def test_the_movie_link_carries_a_ticket_on_a_farm_that_locks_reads(farm_factory, tmp_path):
    farm = farm_factory(lock_reads=True)
    artist, shot_id, movie = artist_and_movie(farm, tmp_path)
    with pytest.raises(urllib.error.HTTPError) as refused:
        browser_get(movie_url(farm.url, shot_id))     # the old link: no credential
    assert refused.value.code == 401

    job = jobs.MovieLink(artist, shot_id)             # what Open Movie runs
    job.run()
    assert job.error is None, job.error
    link = job.result
    assert link.startswith(f"{farm.url}/api/shots/{shot_id}/movie?ticket=")
    assert artist.token not in link and farm.token not in link
    assert browser_get(link) == movie
    # A wrong token is told as such, not turned into a link that fails in the browser.
    wrong = jobs.MovieLink(farm.client("not-a-token"), shot_id)
    wrong.run()
    assert wrong.result is None and "token" in (wrong.error or "").lower()


def test_the_movie_link_plays_on_an_open_farm_with_or_without_a_token(farm_factory, tmp_path):
    farm = farm_factory()
    artist, shot_id, movie = artist_and_movie(farm, tmp_path)
    assert browser_get(movie_link(artist, shot_id)) == movie
    anonymous = Client(farm.url, "")
    assert movie_link(anonymous, shot_id) == movie_url(farm.url, shot_id)
    assert browser_get(movie_link(anonymous, shot_id)) == movie
