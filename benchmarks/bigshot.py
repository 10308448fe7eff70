"""Benchmark 3: a shot of 10,000 frames — its API listing and its dashboard page.

A fresh coordinator without nodes gets a 10,000-frame shot (a tiny blob that starts
with b"BLENDER"); simulated nodes then render frames into it (all of them, or the
first part in --quick mode: the dashboard shows the top of the grid first) so done
frames have thumbnails. Then, with no node left connected:

- `GET /api/shots/{id}/frames` (the full listing): best and median of a few calls;
- the dashboard Shot page (`/#/shots/<id>`) in headless Chromium (Debian's, driven
  by PyPI's playwright), from navigation in a fresh browser profile until the grid
  shows thumbnails: every grid cell in view is laid out with its frame's status
  (none still "loading") and every done cell's thumbnail <img> has loaded (the grid
  adds the class `ready` on the image's load event).
"""
from __future__ import annotations

import os
import statistics
import time
import urllib.request
from pathlib import Path

from .common import CHROMIUM, Coordinator, fake_blend, log, wait_for
from .fleet import Fleet

FRAMES = 10_000
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
VIEWPORT = {"width": 1440, "height": 900}

# True once the grid shows thumbnails for what is in view.
GRID_READY = """() => {
  const cells = [...document.querySelectorAll('.fgrid .fcell')].filter((c) => !c.hidden);
  if (!cells.length) return false;
  if (cells.some((c) => c.dataset.status === 'loading')) return false;
  const view = document.querySelector('.fgrid').getBoundingClientRect();
  const visible = cells.filter((c) => {
    const r = c.getBoundingClientRect();
    return r.bottom > view.top && r.top < view.bottom;
  });
  const done = visible.filter((c) => c.dataset.status === 'done');
  if (!done.length) return false;
  return done.every((c) => {
    const img = c.querySelector('img');
    return img.classList.contains('ready') && img.naturalWidth > 0;
  }) ? {cells: visible.length, thumbnails: done.length} : false;
}"""


def fill(coord: Coordinator, shot_id: int, target: int, nodes: int, timeout: float) -> dict:
    """Let simulated nodes render until `target` frames of the shot are done."""
    fleet = Fleet(coord.url, nodes, processes=1, prefix="big")
    started = time.monotonic()
    try:
        fleet.start(timeout=60)
        wait_for(lambda: coord.api.get(f"/api/shots/{shot_id}")["frames_done"] >= target,
                 timeout, interval=0.5, what=f"{target} frames done")
    finally:
        fleet.stop()
    shot = coord.api.get(f"/api/shots/{shot_id}")
    return {"frames_done": shot["frames_done"], "fill_s": round(time.monotonic() - started, 1)}


def time_listing(url: str, shot_id: int, runs: int = 5) -> dict:
    times, size = [], 0
    for _ in range(runs):
        started = time.monotonic()
        with urllib.request.urlopen(f"{url}/api/shots/{shot_id}/frames", timeout=60) as resp:
            body = resp.read()
        times.append(time.monotonic() - started)
        size = len(body)
    page = []
    for _ in range(runs):
        started = time.monotonic()
        with urllib.request.urlopen(f"{url}/api/shots/{shot_id}/frames?offset=0&limit=500",
                                    timeout=60) as resp:
            resp.read()
        page.append(time.monotonic() - started)
    return {"listing_best_s": round(min(times), 3),
            "listing_median_s": round(statistics.median(times), 3),
            "listing_mb": round(size / 2**20, 2),
            "page500_median_s": round(statistics.median(page), 3)}


# Where the time went, from the page's own resource timing (ms since navigation start).
BREAKDOWN = """(shotId) => {
  const res = performance.getEntriesByType('resource');
  const end = (pred) => Math.max(0, ...res.filter(pred).map((r) => r.responseEnd));
  const path = (r) => new URL(r.name).pathname + new URL(r.name).search;
  return {
    html: performance.getEntriesByType('navigation')[0].responseEnd,
    modules: end((r) => path(r).endsWith('.js')),
    shot: end((r) => path(r) === `/api/shots/${shotId}`),
    first_page: end((r) => path(r).startsWith(`/api/shots/${shotId}/frames?offset=0&`)),
    thumbnails: end((r) => path(r).includes('/thumbnails/')),
    requests_before_ready: res.length,
  };
}"""


def time_dashboard(url: str, shot_id: int, runs: int = 3) -> dict:
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        return {"dashboard_error": f"no Chromium at {CHROMIUM}"}
    times, shown, breakdowns = [], None, []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=CHROMIUM_ARGS)
        try:
            for _ in range(runs):
                context = browser.new_context(viewport=VIEWPORT)
                page = context.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                started = time.monotonic()
                page.goto(f"{url}/#/shots/{shot_id}", wait_until="commit")
                handle = page.wait_for_function(GRID_READY, timeout=60_000, polling="raf")
                times.append(time.monotonic() - started)
                shown = handle.json_value()
                breakdowns.append(page.evaluate(BREAKDOWN, shot_id))
                if errors:
                    log(f"bigshot: page errors: {errors[:3]}")
                context.close()
        finally:
            browser.close()
    return {"dashboard_best_s": round(min(times), 3),
            "dashboard_median_s": round(statistics.median(times), 3),
            "dashboard_all_s": [round(t, 3) for t in times], "grid_in_view": shown,
            # Median over the runs of each milestone (ms after navigation start).
            "dashboard_breakdown_ms": {
                k: round(statistics.median(b[k] for b in breakdowns))
                for k in breakdowns[0]} if breakdowns else None}


def run(root: Path, quick: bool = False) -> dict:
    coord = Coordinator(root / "bigshot", "--lease-timeout", "300").start()
    try:
        started = time.monotonic()
        # Chunks of 100: 100 jobs keep the fill quick; every frame still gets its thumbnail.
        shot = coord.api.create_shot("bigshot.blend", fake_blend(), frame_start=1,
                                     frame_end=FRAMES, chunk_size=100, name="bigshot")
        create_s = time.monotonic() - started
        target = 1_500 if quick else FRAMES
        log(f"bigshot: shot of {FRAMES} frames created in {create_s:.2f} s; "
            f"rendering {target} with simulated nodes")
        filled = fill(coord, shot["id"], target, nodes=20, timeout=120 if quick else 480)
        log(f"bigshot: {filled['frames_done']} frames done in {filled['fill_s']} s")
        result = {"frames": FRAMES, "create_s": round(create_s, 3), **filled}
        result.update(time_listing(coord.url, shot["id"]))
        log(f"bigshot: listing {result['listing_median_s']} s ({result['listing_mb']} MB)")
        result.update(time_dashboard(coord.url, shot["id"], runs=3 if quick else 5))
        log(f"bigshot: dashboard {result.get('dashboard_median_s')} s")
        return result
    finally:
        coord.stop()
