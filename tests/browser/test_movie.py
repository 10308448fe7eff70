"""The shot page in a real Chromium: the preview movie the coordinator made with ffmpeg
plays (decoded frames, time advancing), and the frames come home as a zip from the
"Download frames" menu."""
from __future__ import annotations

import io
import zipfile

import pytest
from playwright.sync_api import expect

from tests.farm import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.blender]

PLAYS = """async () => {
  const v = document.querySelector('video.movie-video');
  if (v.readyState < 2) await new Promise((r) => v.addEventListener('loadeddata', r, { once: true }));
  const start = v.currentTime;
  await v.play();
  await new Promise((r) => setTimeout(r, 400));
  const c = document.createElement('canvas');
  c.width = v.videoWidth; c.height = v.videoHeight;
  const g = c.getContext('2d');
  g.drawImage(v, 0, 0);
  const px = g.getImageData(0, 0, c.width, c.height).data;
  let bright = 0;
  for (let i = 0; i < px.length; i += 4) bright = Math.max(bright, px[i], px[i + 1], px[i + 2]);
  return { readyState: v.readyState, advanced: v.currentTime > start, width: v.videoWidth,
           height: v.videoHeight, duration: v.duration, bright, error: v.error && v.error.code };
}"""


def test_the_preview_movie_plays_on_the_shot_page(live, page):
    sid = live.shot["id"]
    wait_for(lambda: (m := live.client().shot(sid)["movie"]) and m["status"] == "ready", 60,
             what="the movie")
    page.goto(f"{live.url}/#/shots/{sid}")
    video = page.locator("video.movie-video")
    expect(video).to_be_visible()
    expect(page.locator(".movie-state")).to_contain_text("12 frames at 12")
    played = page.evaluate(PLAYS)
    assert played["error"] is None
    assert played["readyState"] >= 2 and played["advanced"], played
    assert (played["width"], played["height"]) == (256, 144)
    assert played["duration"] == pytest.approx(1.0, abs=0.1)   # 12 frames at 12 fps
    assert played["bright"] > 40, "a decoded frame shows the scene"
    page.locator(".zip-menu summary").click()
    page.locator("section.movie").scroll_into_view_if_needed()
    page.screenshot("shot-movie")


def test_download_frames_menu_gives_the_zip(live, page):
    sid = live.shot["id"]
    page.goto(f"{live.url}/#/shots/{sid}")
    page.locator(".zip-menu summary").click()
    with page.expect_download() as got:
        page.get_by_role("link", name="All frames").click()
    data = open(got.value.path(), "rb").read()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
    assert names == [f"frame_{n:06d}.png" for n in range(1, 13)]
    page.locator(".zip-range").fill("3-4")
    with page.expect_download() as got:
        page.get_by_role("link", name="These frames").click()
    with zipfile.ZipFile(got.value.path()) as zf:
        assert zf.namelist() == ["frame_000003.png", "frame_000004.png"]
