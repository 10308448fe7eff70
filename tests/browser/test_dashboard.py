"""The dashboard in a real browser (Debian's Chromium) against live coordinators with
real Blender nodes: every view, live frames without a reload, the animated preview,
the actions and their refusal without the token, a 10,000-frame shot, a coordinator
restart and --lock-reads. Screenshots land in test-artifacts/screenshots/."""
from __future__ import annotations

import hashlib
import re
import signal
import time

import pytest
from playwright.sync_api import expect

from brender_addon.client import BrenderError
from tests.farm import Farm, wait_for

from .conftest import TOKEN_KEY

pytestmark = pytest.mark.browser
needs_blender = pytest.mark.blender   # the tests whose farm has a real node

LIVE_TIMEOUT = 90_000   # ms: a frame rendered by a real node on a busy CI machine


def api(farm: Farm, method: str, path: str, body=None, token: str | None = None):
    return farm.client(token)._request(method, path, body)


def refusal_message(farm: Farm) -> str:
    """The coordinator's own words when the token is missing."""
    try:
        api(farm, "POST", "/api/shots/1/pause", token="")
    except BrenderError as exc:
        return str(exc).split(": ", 1)[-1]
    raise AssertionError("a call without the token was accepted")


def thumbnails_ready(page, n: int) -> None:
    page.wait_for_function(
        """n => [...document.querySelectorAll('.fcell[data-status=done] img')]
                .filter(i => i.complete && i.naturalWidth > 0).length >= n""",
        arg=n, timeout=LIVE_TIMEOUT)


def set_node(farm: Farm, enabled: bool) -> None:
    api(farm, "POST", f"/api/nodes/{farm.node['id']}/{'enable' if enabled else 'disable'}")


# --- views ---------------------------------------------------------------------------

@needs_blender
def test_home_shows_the_last_frame(live, page, new_page):
    latest = live.client().latest_frame()
    page.goto(live.url + "/")
    hero = page.locator(".hero")
    expect(hero).to_have_attribute("data-frame", str(latest["number"]))
    expect(hero).to_have_attribute("data-shot-id", str(latest["shot_id"]))
    page.wait_for_function(
        "() => { const i = document.querySelector('.hero-img'); return i.complete && i.naturalWidth > 0 }")
    caption = page.locator(".hero-caption")
    expect(caption).to_contain_text("spin")
    expect(caption).to_contain_text(f"frame {latest['number']}")
    expect(caption).to_contain_text("node1")
    expect(caption).to_contain_text(" s")  # the render time
    expect(page.locator("[data-stat=idle] .n")).to_have_text("1")
    expect(page.locator("[data-stat=frames_queued] .n")).to_have_text("0")
    expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    expect(page.locator("#addon-link")).to_have_attribute("href", "/addon/brender_addon.zip")
    page.screenshot("home")
    # The same page on a wall screen.
    wall = new_page(viewport={"width": 2560, "height": 1440})
    wall.goto(live.url + "/")
    wall.wait_for_function(
        "() => { const i = document.querySelector('.hero-img'); return i.complete && i.naturalWidth > 0 }")
    wall.screenshot("home-wall")


@needs_blender
def test_shots_table(live, page):
    page.goto(live.url + "/#/shots")
    row = page.locator(f"tr[data-shot-id='{live.shot['id']}']")
    expect(row).to_contain_text("spin")
    expect(row.locator(".pill")).to_have_text("completed")
    expect(row).to_contain_text("12 / 12")
    expect(row).to_contain_text("by anna")
    expect(row.locator(".progress")).to_have_attribute("aria-valuenow", "100")
    page.screenshot("shots")
    row.click()
    # The shot page (which then names the frame in view: #/shots/ID/N).
    expect(page.page).to_have_url(re.compile(rf"#/shots/{live.shot['id']}(/\d+)?$"))


@needs_blender
def test_shot_page_thumbnails_chart_and_jobs(live, page):
    shot = live.shot
    page.goto(f"{live.url}/#/shots/{shot['id']}")
    thumbnails_ready(page, 12)
    expect(page.locator(".fcell")).to_have_count(12)
    expect(page.locator(".chart")).to_have_attribute("data-bars", "12")
    expect(page.locator(".shot-head .pill")).to_have_text("completed")
    # The viewer shows a full frame; a click in the grid picks another one.
    page.locator(".fcell[data-number='5']").click()
    player = page.locator(".player")
    expect(player).to_have_attribute("data-frame", "5")
    page.wait_for_function("() => document.querySelector('.stage-canvas').width === 256")
    expect(page.locator(".player-meta")).to_contain_text("256×144")
    assert page.evaluate("location.hash") == f"#/shots/{shot['id']}/5"
    # Jobs: node, attempts and the log.
    jobs = api(live, "GET", f"/api/shots/{shot['id']}/jobs")["jobs"]
    rows = page.locator("tr[data-job-id]")
    expect(rows).to_have_count(len(jobs))
    expect(rows.first).to_contain_text("node1")
    first = rows.first.get_attribute("data-job-id")
    log_tail = api(live, "GET", f"/api/jobs/{first}")["log_tail"] or "no log"
    rows.first.locator("button").click()
    expect(page.locator("pre.log")).to_contain_text(log_tail.strip().splitlines()[-1].strip())
    page.screenshot("shot", full_page=True)


@needs_blender
def test_animated_preview_plays_in_order(live, page):
    page.goto(f"{live.url}/#/shots/{live.shot['id']}/1")
    thumbnails_ready(page, 12)
    player = page.locator(".player")
    expect(player).to_have_attribute("data-frame", "1")
    page.evaluate("""() => {
        window.__seen = [];
        const p = document.querySelector('.player');
        new MutationObserver(() => window.__seen.push([Number(p.dataset.index), performance.now()]))
          .observe(p, {attributes: true, attributeFilter: ['data-index']});
    }""")
    page.locator(".player .play").click()
    expect(player).to_have_attribute("data-playing", "true")
    page.wait_for_function("() => window.__seen.length >= 14", timeout=20_000)
    page.screenshot("shot-playing")
    page.locator(".player .play").click()
    expect(player).to_have_attribute("data-playing", "false")
    seen = page.evaluate("window.__seen")
    indices = [i for i, _ in seen]
    # Every frame in order (wrapping around), at about the shot's 12 fps.
    steps = {(b - a) % 12 for a, b in zip(indices, indices[1:])}
    assert steps <= {0, 1}, indices
    changes = [(a, b) for a, b in zip(seen, seen[1:]) if a[0] != b[0]]
    per_frame = (changes[-1][1][1] - changes[0][0][1]) / len(changes)
    assert 50 < per_frame < 400, f"{per_frame:.0f} ms per frame at 12 fps"
    # Paused: it stays.
    at = player.get_attribute("data-index")
    time.sleep(0.4)
    assert player.get_attribute("data-index") == at
    # The scrub bar.
    page.evaluate("""() => { const s = document.querySelector('.scrub');
        s.value = 7; s.dispatchEvent(new Event('input')); }""")
    expect(player).to_have_attribute("data-frame", "8")


@needs_blender
def test_a_frame_appears_without_a_reload(live, page, new_page):
    set_node(live, False)
    try:
        shot = live.submit(live.scene, name="landing", frame_start=1, frame_end=6, chunk_size=2,
                           fps=12)
        page.goto(f"{live.url}/#/shots/{shot['id']}")
        expect(page.locator(".fcell[data-status=queued]")).to_have_count(6)
        home = new_page()
        home.goto(live.url + "/")
        expect(home.locator(".active-shots")).to_contain_text("landing")
        for p in (page, home):
            p.evaluate("window.__sameDocument = true")
    finally:
        set_node(live, True)
    thumbnails_ready(page, 1)
    expect(home.locator(".hero")).to_have_attribute("data-shot-id", str(shot["id"]),
                                                     timeout=LIVE_TIMEOUT)
    thumbnails_ready(page, 6)
    expect(page.locator(".shot-head .pill")).to_have_text("completed", timeout=LIVE_TIMEOUT)
    expect(page.locator(".chart")).to_have_attribute("data-bars", "6")
    for p in (page, home):
        assert p.evaluate("window.__sameDocument") is True, "the page was reloaded"
    expect(home.locator(".strip-item")).not_to_have_count(0)
    home.screenshot("home-live")
    page.screenshot("shot-live")


@needs_blender
def test_nodes_view_and_enable_disable(live, new_page):
    page = new_page(token=live.token)
    page.goto(live.url + "/#/nodes")
    row = page.locator(f"tr[data-node-id='{live.node['id']}']")
    expect(row).to_contain_text("node1")
    expect(row).to_contain_text(live.node["blender_version"] or "—")
    expect(row).to_contain_text(str(live.node["cpu_count"]))
    expect(row.locator(".pill").first).to_have_text("idle")
    page.screenshot("nodes")
    try:
        row.get_by_role("button", name="Disable").click()
        wait_for(lambda: not api(live, "GET", "/api/nodes")["nodes"][0]["enabled"], 10,
                 what="the node to be disabled")
        expect(row.locator(".pill[data-status=disabled]")).to_be_visible()
        row.get_by_role("button", name="Enable").click()
        wait_for(lambda: api(live, "GET", "/api/nodes")["nodes"][0]["enabled"], 10,
                 what="the node to be enabled")
        expect(row.locator(".pill[data-status=disabled]")).to_have_count(0)
    finally:
        set_node(live, True)


# --- actions -------------------------------------------------------------------------

@needs_blender
def test_actions_are_refused_without_the_token(live, page):
    shot = live.shot
    message = refusal_message(live)
    page.goto(f"{live.url}/#/shots/{shot['id']}")
    prio = page.locator("input.prio")
    expect(prio).to_have_value(str(shot["priority"]))
    prio.fill("77")
    prio.press("Enter")
    dialog = page.locator("#token-dialog")
    expect(dialog).to_be_visible()           # asked once...
    dialog.get_by_role("button", name="Cancel").click()
    toast = page.locator(".toast.error")     # ...and refused, in the coordinator's words
    expect(toast).to_contain_text("refused")
    expect(toast).to_contain_text(message)
    expect(prio).to_have_value(str(shot["priority"]))
    time.sleep(0.3)  # let the toast finish sliding in
    page.screenshot("refused")
    assert live.client().shot(shot["id"])["priority"] == shot["priority"]
    # A wrong token is refused too, and the shot survives a refused delete.
    page.evaluate(f"localStorage.setItem({TOKEN_KEY!r}, 'not-the-token')")
    page.locator(".toast .btn.ghost").first.click()
    page.get_by_role("button", name="Delete").click()
    page.locator("#confirm-dialog").get_by_role("button", name="Delete").click()
    expect(page.locator(".toast.error").last).to_contain_text(message)
    assert live.client().shot(shot["id"])["status"] == "completed"


@needs_blender
def test_actions_take_effect(live, new_page):
    page = new_page()
    set_node(live, False)   # keep the shot queued while we act on it
    try:
        shot = live.submit(live.scene, name="acted", frame_start=1, frame_end=4, chunk_size=2)
        sid = shot["id"]
        page.goto(f"{live.url}/#/shots/{sid}")
        pill = page.locator(".shot-head .pill")
        expect(pill).to_have_text("queued")
        # The token is asked once and kept.
        page.locator("#token-btn").click()
        page.locator("#token-dialog input[name=token]").fill(live.token)
        page.locator("#token-dialog").get_by_role("button", name="Save").click()
        expect(page.locator(".toast.ok")).to_contain_text("Signed in as admin (admin)")
        assert page.evaluate(f"localStorage.getItem({TOKEN_KEY!r})") == live.token

        page.get_by_role("button", name="Pause").click()
        expect(pill).to_have_text("paused")
        assert live.client().shot(sid)["status"] == "paused"
        page.get_by_role("button", name="Resume").click()
        expect(pill).not_to_have_text("paused")
        assert live.client().shot(sid)["status"] != "paused"

        prio = page.locator("input.prio")
        prio.fill("90")
        prio.press("Enter")
        wait_for(lambda: live.client().shot(sid)["priority"] == 90, 10, what="priority 90")
        expect(page.locator(".toast.ok").last).to_contain_text("priority 90")

        page.get_by_role("button", name="Cancel").click()
        page.locator("#confirm-dialog").get_by_role("button", name="Cancel shot").click()
        expect(pill).to_have_text("cancelled")
        assert live.client().shot(sid)["status"] == "cancelled"

        # Delete asks first; saying no keeps the shot.
        page.get_by_role("button", name="Delete").click()
        expect(page.locator("#confirm-dialog")).to_contain_text("cannot be undone")
        page.locator("#confirm-dialog").get_by_role("button", name="Cancel").click()
        assert live.client().shot(sid)["id"] == sid
        page.get_by_role("button", name="Delete").click()
        page.locator("#confirm-dialog").get_by_role("button", name="Delete").click()
        expect(page.page).to_have_url(f"{live.url}/#/shots")
        with pytest.raises(BrenderError):
            live.client().shot(sid)
        expect(page.locator(f"tr[data-shot-id='{sid}']")).to_have_count(0)
    finally:
        set_node(live, True)


@needs_blender
def test_requeue_failed_jobs(live, new_page):
    client = live.client()
    blend = b"BLENDER-v304" + bytes(256)   # Blender cannot open it
    sha = hashlib.sha256(blend).hexdigest()
    client._request("PUT", f"/api/blobs/{sha}", data=blend,
                    headers={"Content-Type": "application/octet-stream"})
    shot = client.create_shot({"name": "broken", "blend_path": "broken.blend",
                               "files": [{"path": "broken.blend", "sha256": sha,
                                          "size": len(blend)}],
                               "frame_start": 1, "frame_end": 1})
    failed = live.wait_shot(shot["id"], timeout=60)
    assert failed["status"] == "failed"
    page = new_page(token=live.token)
    page.goto(f"{live.url}/#/shots/{shot['id']}")
    expect(page.locator(".shot-head .pill")).to_have_text("failed")
    expect(page.locator(".shot-head .failure")).to_contain_text(failed["failure_reason"][:40])
    job = page.locator("tr[data-job-id]").first
    job.get_by_role("button", name="Log").click()
    expect(page.locator(".logbox")).to_contain_text("Blender")
    page.screenshot("shot-failed", full_page=True)
    page.get_by_role("button", name="Requeue failed").click()
    expect(page.locator(".toast.ok")).to_contain_text("Requeue broken")
    # Requeued: the node takes the job again (and fails again).
    jobs = lambda: api(live, "GET", f"/api/shots/{shot['id']}/jobs")["jobs"]  # noqa: E731
    wait_for(lambda: jobs()[0]["attempts"] >= 2, 30, what="the job to be tried again")
    expect(job.locator("td.num").first).to_contain_text("2")   # the attempts column


# --- scale, restarts, locked reads --------------------------------------------------------

def test_ten_thousand_frames_stay_light(bare, page):
    client = bare.client()
    blend = b"BLENDER-v304" + bytes(256)   # never rendered: this farm has no node
    sha = hashlib.sha256(blend).hexdigest()
    client._request("PUT", f"/api/blobs/{sha}", data=blend,
                    headers={"Content-Type": "application/octet-stream"})
    shot = client.create_shot({
        "name": "big", "blend_path": "big.blend",
        "files": [{"path": "big.blend", "sha256": sha, "size": len(blend)}],
        "frame_start": 1, "frame_end": 10_000, "chunk_size": 10, "fps": 24})
    frame_requests = []
    page.on("request", lambda r: frame_requests.append(r.url) if "/frames?" in r.url else None)
    started = time.monotonic()
    page.goto(f"{bare.url}/#/shots/{shot['id']}")
    expect(page.locator(".fcell[data-number='1']")).to_have_attribute("data-status", "queued")
    loaded_in = time.monotonic() - started
    grid_nodes = "document.querySelector('.fgrid').getElementsByTagName('*').length"
    assert page.count(grid_nodes) < 2000
    assert page.count("document.querySelectorAll('.fcell').length") < 400
    assert page.count("document.getElementsByTagName('*').length") < 5000
    # Scroll to the end: the last frame is there, the grid is still light.
    page.evaluate("document.querySelector('.fgrid').scrollTop = 1e9")
    expect(page.locator(".fcell[data-number='10000']")).to_have_attribute("data-status", "queued")
    assert page.count(grid_nodes) < 2000
    assert all("limit=500" in u for u in frame_requests), frame_requests
    assert loaded_in < 10, f"the grid took {loaded_in:.1f} s to show"
    page.screenshot("shot-10k")


def test_reconnects_after_a_coordinator_restart(bare, page):
    page.goto(bare.url + "/#/shots")
    conn = page.locator("#conn")
    expect(conn).to_have_attribute("data-state", "live")
    page.evaluate("window.__sameDocument = true")
    # Killed, as in a crash. (A SIGTERM also works but the coordinator waits for open
    # event streams until aiohttp's shutdown timeout.)
    bare.stop_coordinator(signal.SIGKILL)
    expect(conn).not_to_have_attribute("data-state", "live")
    bare.start_coordinator()
    expect(conn).to_have_attribute("data-state", "live", timeout=30_000)
    # Live again: a shot submitted now appears without a reload.
    blend = b"BLENDER-v304" + bytes(64)
    sha = hashlib.sha256(blend).hexdigest()
    client = bare.client()
    client._request("PUT", f"/api/blobs/{sha}", data=blend,
                    headers={"Content-Type": "application/octet-stream"})
    shot = client.create_shot({"name": "after-restart", "blend_path": "a.blend",
                               "files": [{"path": "a.blend", "sha256": sha, "size": len(blend)}],
                               "frame_start": 1, "frame_end": 2})
    expect(page.locator(f"tr[data-shot-id='{shot['id']}']")).to_contain_text("after-restart")
    assert page.evaluate("window.__sameDocument") is True


@needs_blender
def test_locked_reads_ask_for_the_token(farm_factory, page, make_test_scene):
    farm = farm_factory(nodes=1, lock_reads=True)
    shot = farm.submit(make_test_scene("locked.blend", frame_end=2), name="locked",
                       frame_start=1, frame_end=2, chunk_size=2)
    farm.wait_shot(shot["id"])
    page.goto(farm.url + "/")
    dialog = page.locator("#token-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("token")
    dialog.locator("input[name=token]").fill(farm.token)
    dialog.get_by_role("button", name="Save").click()
    expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    expect(page.locator(".hero")).to_have_attribute("data-shot-id", str(shot["id"]))
    page.wait_for_function(
        "() => { const i = document.querySelector('.hero-img'); return i.complete && i.naturalWidth > 0 }")
    src = page.locator(".hero-img").get_attribute("src")
    assert "ticket=" in src and farm.token not in src  # a read-only ticket, never the token
    page.goto(f"{farm.url}/#/shots/{shot['id']}")
    thumbnails_ready(page, 2)
