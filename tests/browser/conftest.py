"""Browser fixtures: Debian's Chromium driven by PyPI's playwright (never a downloaded
browser), and real farms (tests/farm.py) to point it at.

The sync Playwright API is used from plain (non-async) tests, so it never meets
pytest-asyncio's event loop.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.farm import REPO, Farm, make_scene, wait_for

CHROMIUM = os.environ.get("BRENDER_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
IN_CI = bool(os.environ.get("CI"))
VIEWPORT = {"width": 1440, "height": 900}
TOKEN_KEY = "brender.token"   # where the dashboard keeps the token (localStorage)


def _unavailable(reason: str):
    if IN_CI:
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("PyPI's playwright is not installed")
    if not os.path.exists(CHROMIUM):
        _unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Page:
    """A Playwright page plus what the tests need around it."""

    def __init__(self, context, page):
        self.context = context
        self.page = page
        self.errors: list[str] = []
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.set_default_timeout(15_000)

    def __getattr__(self, name):
        return getattr(self.page, name)

    def screenshot(self, name: str, full_page: bool = False) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        if full_page:
            self.page.evaluate("window.scrollTo(0, 0)")   # the header is sticky
        self.page.screenshot(path=str(path), full_page=full_page)
        return path

    def count(self, js: str) -> int:
        return self.page.evaluate(js)


def _new_page(browser, token: str | None, viewport=VIEWPORT) -> Page:
    context = browser.new_context(viewport=viewport)
    if token:
        context.add_init_script(f"localStorage.setItem({TOKEN_KEY!r}, {token!r})")
    return Page(context, context.new_page())


@pytest.fixture
def page(browser):
    """A fresh browser profile: no farm token kept."""
    p = _new_page(browser, None)
    yield p
    p.context.close()
    assert not p.errors, f"uncaught errors in the page: {p.errors}"


@pytest.fixture
def new_page(browser):
    """Open more pages: new_page(token=None, viewport=...)."""
    pages: list[Page] = []

    def open_(token: str | None = None, viewport=VIEWPORT) -> Page:
        p = _new_page(browser, token, viewport)
        pages.append(p)
        return p

    yield open_
    errors = []
    for p in pages:
        errors += p.errors
        p.context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """A farm with one real node and a shot of 12 rendered frames ("spin", 12 fps).
    A job fails at its first failed attempt (so a broken shot fails fast)."""
    root = tmp_path_factory.mktemp("live")
    farm = Farm(root / "farm", max_attempts=1)
    try:
        farm.start_coordinator()
        farm.add_node("node1")
        farm.scene = make_scene(root / "spin.blend", width=256, height=144, frame_end=12, fps=12)
        farm.wait_nodes_online(1)
        # Submitted by artist anna: a shot's submitter is its credential's name.
        farm.anna = farm.client()._request("POST", "/api/tokens",
                                           {"role": "artist", "name": "anna"})["token"]
        shot = farm.submit(farm.scene, token=farm.anna, name="spin", frame_start=1,
                           frame_end=12, chunk_size=3, fps=12)
        farm.shot = farm.wait_shot(shot["id"], timeout=120)
        assert farm.shot["status"] == "completed", farm.debug_dump(shot["id"])
        farm.node = farm.client()._request("GET", "/api/nodes")["nodes"][0]
        yield farm
    finally:
        farm.close()


@pytest.fixture(scope="module")
def bare(tmp_path_factory):
    """A coordinator without nodes (shots stay queued)."""
    farm = Farm(tmp_path_factory.mktemp("bare") / "farm")
    try:
        farm.start_coordinator()
        yield farm
    finally:
        farm.close()


__all__ = ["wait_for"]
