"""Issue 18 in a real Chromium: stored XSS in every field a user or a node controls is
shown as text, the Content-Security-Policy forbids inline script (and the dashboard
breaks none of it), and the dashboard shows each role only what it may do."""
from __future__ import annotations

import asyncio
import hashlib
from urllib.parse import quote

import aiohttp
import pytest
from playwright.sync_api import expect

from brender_addon.client import BrenderError
from tests.browser.conftest import TOKEN_KEY
from tests.farm import Farm, wait_for

# Each payload sets window.__xss if it ever runs.
PAYLOADS = ['<img src=x onerror="window.__xss=1">',
            '<script>window.__xss=1</script>',
            '"><svg onload="window.__xss=1">']
EVIL = " ".join(PAYLOADS)
BLEND = b"BLENDER-v304" + b"\x00" * 100
WATCH = """
window.__csp = [];
document.addEventListener('securitypolicyviolation',
  (e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));
"""


def make_token(farm: Farm, role: str, name: str) -> str:
    return farm.client()._request("POST", "/api/tokens", {"role": role, "name": name})["token"]


def submit(farm: Farm, token: str, name: str, **more) -> dict:
    client = farm.client(token)
    sha = hashlib.sha256(BLEND).hexdigest()
    client._request("PUT", f"/api/blobs/{sha}", data=BLEND)
    return client.create_shot({"name": name, "files": [{"path": "s.blend", "sha256": sha,
                                                        "size": len(BLEND)}],
                               "frame_start": 1, "frame_end": 1, "submitted_by": EVIL, **more})


async def evil_node(farm: Farm, token: str) -> None:
    """A node whose hostname, failure reason and log are payloads: it takes the
    waiting job and fails it."""
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(f"{farm.url.replace('http', 'ws')}/api/node/ws",
                                   headers={"Authorization": f"Bearer {token}"}) as ws:
            await ws.send_json({"type": "hello", "name": "x", "node_id": None, "hostname": EVIL,
                                "platform": EVIL, "blender_version": "3.4.1", "cpu_count": 1,
                                "tags": [PAYLOADS[1]], "running_attempt": None})
            assert (await ws.receive_json())["type"] == "welcome"
            await ws.send_json({"type": "ready"})
            job = (await ws.receive_json())["job"]
            await ws.send_json({"type": "job_failed", "attempt_id": job["attempt_id"],
                                "reason": EVIL, "log_tail": EVIL})
            await ws.send_json({"type": "goodbye"})


@pytest.fixture(scope="module")
def evil_farm(tmp_path_factory):
    farm = Farm(tmp_path_factory.mktemp("xss") / "farm", max_attempts=1)
    try:
        farm.start_coordinator()
        farm.artist = make_token(farm, "artist", EVIL)
        farm.shot = submit(farm, farm.artist, EVIL,
                           render={"camera": PAYLOADS[0], "scene": PAYLOADS[2]})
        code = farm.client()._request("POST", "/api/join-codes",
                                      {"name": EVIL, "tags": [PAYLOADS[0]]})["code"]
        with pytest.raises(BrenderError):  # a path that lands in the audit log
            farm.client()._request("POST", "/api/" + quote(PAYLOADS[0]))
        joined = farm.client("")._request("POST", "/api/join", {"code": code, "name": "n"})
        asyncio.run(evil_node(farm, joined["token"]))
        wait_for(lambda: farm.client().shot(farm.shot["id"])["status"] == "failed", 30,
                 what="the shot to fail")
        yield farm
    finally:
        farm.close()


def open_signed_in(new_page, farm: Farm, token: str):
    page = new_page(token=token)
    page.context.add_init_script(WATCH)
    return page


def assert_inert(page) -> None:
    assert page.evaluate("window.__xss") is None, "a payload ran"
    assert page.locator('img[src="x"]').count() == 0
    assert page.locator("svg[onload]").count() == 0
    assert page.evaluate("window.__csp") == [], "the dashboard broke its own policy"


def test_stored_xss_in_every_field_is_inert(evil_farm, new_page):
    farm, shot_id = evil_farm, evil_farm.shot["id"]
    page = open_signed_in(new_page, farm, farm.token)
    page.goto(f"{farm.url}/#/shots")
    expect(page.locator("body")).to_contain_text(PAYLOADS[0])       # the shot's name, as text
    assert_inert(page)
    page.goto(f"{farm.url}/#/shots/{shot_id}")
    head = page.locator(".shot-head")
    expect(head).to_contain_text(PAYLOADS[1])                      # name, submitter, reason
    expect(page.locator(".shot-head .failure")).to_contain_text(PAYLOADS[2])
    log_button = page.locator(".jobs").get_by_role("button", name="Log").first
    log_button.click()
    expect(page.locator(".jobs")).to_contain_text(PAYLOADS[0])      # the job's log tail
    assert_inert(page)
    expect(page.locator("body")).to_contain_text("Camera")          # render overrides
    page.goto(f"{farm.url}/#/nodes")
    expect(page.locator("body")).to_contain_text(PAYLOADS[2])       # node name and hostname
    expect(page.locator("td.tags")).to_contain_text(PAYLOADS[0])    # the admin's tags
    assert_inert(page)
    page.goto(f"{farm.url}/#/admin")
    expect(page.locator("[aria-label='Tokens']")).to_contain_text(PAYLOADS[1])  # token names
    expect(page.locator("[aria-label='Join codes']")).to_contain_text(PAYLOADS[0])
    expect(page.locator("[aria-label='Audit log']")).to_contain_text(PAYLOADS[0])  # a path
    assert_inert(page)
    page.screenshot("xss-inert-admin")


def test_the_policy_forbids_inline_script(evil_farm, new_page):
    page = open_signed_in(new_page, evil_farm, evil_farm.token)
    response = page.goto(evil_farm.url + "/")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    # Markup that slipped in anyway: its inline script is refused.
    page.evaluate("""() => {
        const s = document.createElement('script');
        s.textContent = 'window.__inline = 1';
        document.body.append(s);
        const d = document.createElement('div');
        d.innerHTML = '<img src="data:," onerror="window.__inline = 2">';
        document.body.append(d);
    }""")
    page.wait_for_function("() => window.__csp.length >= 2")
    assert page.evaluate("window.__inline") is None
    assert all("script-src" in v for v in page.evaluate("window.__csp"))


def test_each_role_sees_what_it_may_do(evil_farm, new_page):
    farm = evil_farm
    anna = make_token(farm, "artist", "anna")
    own = submit(farm, anna, "annas")
    bob = make_token(farm, "artist", "bob")
    # Bob sees anna's shot but no action on it, and no Admin tab.
    page = open_signed_in(new_page, farm, bob)
    page.goto(f"{farm.url}/#/shots/{own['id']}")
    expect(page.locator("#token-btn")).to_have_text("bob (artist)")
    expect(page.locator(".shot-head")).to_contain_text("annas")
    for label in ("Pause", "Cancel", "Delete"):
        expect(page.get_by_role("button", name=label)).to_have_count(0)
    expect(page.locator("a[data-route=admin]")).to_be_hidden()
    assert_inert(page)
    # Anna pauses her own shot; she cannot delete it (an admin's).
    page = open_signed_in(new_page, farm, anna)
    page.goto(f"{farm.url}/#/shots/{own['id']}")
    expect(page.locator("#token-btn")).to_have_text("anna (artist)")
    page.get_by_role("button", name="Pause").click()
    expect(page.locator(".shot-head .pill")).to_have_text("paused")
    expect(page.get_by_role("button", name="Delete")).to_have_count(0)
    with pytest.raises(BrenderError) as refused:
        farm.client(bob).shot_action(own["id"], "resume")
    assert refused.value.status == 403
    # The admin makes a join code and revokes bob from the Admin view.
    page = open_signed_in(new_page, farm, farm.token)
    page.goto(f"{farm.url}/#/admin")
    expect(page.locator("a[data-route=admin]")).to_be_visible()
    page.locator("[data-form=join-code] input[name=name]").fill("render-07")
    page.get_by_role("button", name="Make join code").click()
    expect(page.locator(".secret")).to_contain_text("brender-node --coordinator")
    row = page.locator("[aria-label='Tokens'] tbody tr", has_text="bob")
    row.get_by_role("button", name="Revoke").click()
    page.locator("#confirm-dialog").get_by_role("button", name="Revoke").click()
    expect(page.locator("[aria-label='Tokens'] tbody tr", has_text="bob")).to_contain_text(
        "revoked")
    with pytest.raises(BrenderError) as gone:
        farm.client(bob).check_token()
    assert gone.value.status == 401
    assert page.evaluate(f"localStorage.getItem({TOKEN_KEY!r})") == farm.token
    assert_inert(page)
    # Bob's browser still keeps his revoked token: it is dropped and he is asked again.
    page = open_signed_in(new_page, farm, bob)
    page.goto(f"{farm.url}/#/shots")
    expect(page.locator("#token-dialog")).to_contain_text("refused")
    assert page.evaluate(f"localStorage.getItem({TOKEN_KEY!r})") is None
    expect(page.locator("#token-btn")).to_have_text("Sign in")
