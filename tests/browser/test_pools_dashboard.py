"""Pools, devices and availability in the dashboard (issue 15), in a real Chromium
against a real coordinator with a real Blender node ("cpu-box", --tags fast) and a
node connection speaking the node protocol for what this machine lacks ("gpu-box":
an OPTIX GPU, Blenders 4.2.3 and 3.6.5, its clock at UTC+01:00; it never asks for
work). Screenshots: test-artifacts/screenshots/nodes-pools.png, shot-waiting.png."""
from __future__ import annotations

import datetime

import pytest
from playwright.sync_api import expect

from tests.farm import Farm, make_scene, wait_for

from .node_connection import NodeConnection

pytestmark = [pytest.mark.browser, pytest.mark.blender]

GPU_BOX = {"name": "gpu-box", "blender_version": "4.2.3", "blenders": ["4.2.3", "3.6.5"],
           "tags": ["cuda"], "utc_offset": 3600,
           "devices": [{"type": "CPU", "name": "AMD Ryzen 9", "id": "CPU"},
                       {"type": "OPTIX", "name": "NVIDIA GeForce RTX 4090", "id": "OPTIX_0"}]}
CPU_BOX_ARGS = ("--tags", "fast", "--no-spare")
DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


@pytest.fixture(scope="module")
def pools(tmp_path_factory):
    root = tmp_path_factory.mktemp("pools")
    farm = Farm(root / "farm")
    gpu = None
    try:
        farm.start_coordinator()
        farm.add_node("cpu-box", *CPU_BOX_ARGS)
        gpu = NodeConnection(farm.url, farm.token, GPU_BOX)
        gpu.connect()
        farm.wait_nodes_online(2)
        farm.scene = make_scene(root / "tiny.blend", width=64, height=36, frame_end=2)
        yield farm
    finally:
        if gpu is not None:
            gpu.close()
        farm.close()


def api(farm: Farm, method: str, path: str, body=None):
    return farm.client()._request(method, path, body)


def node(farm: Farm, name: str) -> dict:
    return next(n for n in api(farm, "GET", "/api/nodes")["nodes"] if n["name"] == name)


@pytest.fixture
def cpu_box(pools):
    """cpu-box with its own tags and always available, before and after the test."""
    def reset():
        box = node(pools, "cpu-box")
        return api(pools, "PATCH", f"/api/nodes/{box['id']}", {"tags": None, "schedule": None})
    box = reset()
    wait_for(lambda: node(pools, "cpu-box")["status"] == "idle", 30, what="cpu-box idle")
    yield box
    reset()


def row(page, name: str):
    return page.locator("tr[data-node-id]", has=page.locator("td.name strong", has_text=name))


def open_editor(page, farm: Farm, name: str):
    page.goto(farm.url + "/#/nodes")
    r = row(page, name)
    r.get_by_role("button", name="Edit").click()
    return page.locator(f"form.node-editor[data-node-id='{node(farm, name)['id']}']")


def test_nodes_view_shows_devices_blenders_and_tags(pools, cpu_box, page):
    page.goto(pools.url + "/#/nodes")
    gpu = row(page, "gpu-box")
    expect(gpu.locator(".device")).to_have_text(["AMD Ryzen 9 ×16", "NVIDIA GeForce RTX 4090 (OPTIX)"])
    expect(gpu.locator("td.blenders")).to_have_text("4.2.3, 3.6.5")
    expect(gpu.locator(".tag")).to_have_text(["cuda"])
    expect(gpu.locator("td.schedule")).to_have_text("always")
    cpu = row(page, "cpu-box")
    expect(cpu.locator(".pill").first).to_have_text("idle")
    expect(cpu.locator(".device")).to_have_count(1)
    # The real node reports its CPU as its Blender names it (no GPU on this machine).
    [device] = node(pools, "cpu-box")["devices"]
    assert device["type"] == "CPU"
    expect(cpu.locator(".device")).to_have_attribute("data-type", "CPU")
    expect(cpu.locator(".device")).to_contain_text(device["name"])
    expect(cpu.locator("td.blenders")).to_have_text(node(pools, "cpu-box")["blender_version"])
    expect(cpu.locator(".tag")).to_have_text(["fast"])
    expect(cpu.locator(".edited")).to_have_count(0)
    page.screenshot("nodes-pools")


def test_tags_edited_in_the_dashboard_are_kept_when_the_node_reconnects(pools, cpu_box, new_page):
    page = new_page(token=pools.token)
    form = open_editor(page, pools, "cpu-box")
    expect(form.locator("input[name=tags]")).to_have_value("fast")
    form.locator("input[name=tags]").fill("fast, night  big-ram")
    form.get_by_role("button", name="Save").click()
    cpu = row(page, "cpu-box")
    expect(cpu.locator(".tag")).to_have_text(["fast", "night", "big-ram"])
    expect(cpu.locator(".edited")).to_be_visible()
    saved = node(pools, "cpu-box")
    assert (saved["tags"], saved["own_tags"], saved["tags_edited"]) == \
        (["fast", "night", "big-ram"], ["fast"], True)
    # The node restarts with its own --tags fast: the admin's tags win.
    pools.stop_node("cpu-box")
    expect(cpu.locator(".pill").first).to_have_text("offline", timeout=30_000)
    pools.add_node("cpu-box", *CPU_BOX_ARGS)
    expect(cpu.locator(".pill").first).to_have_text("idle", timeout=60_000)
    back = node(pools, "cpu-box")
    assert back["id"] == saved["id"]
    assert (back["tags"], back["tags_edited"]) == (["fast", "night", "big-ram"], True)
    expect(cpu.locator(".tag")).to_have_text(["fast", "night", "big-ram"])
    expect(form.locator("input[name=tags]")).to_have_value("fast, night, big-ram")
    expect(form.locator(".own-tags")).to_contain_text("The node’s own: fast")
    # Back to the node's own.
    form.get_by_role("button", name="Reset to the node’s own").click()
    expect(cpu.locator(".tag")).to_have_text(["fast"])
    expect(cpu.locator(".edited")).to_have_count(0)
    expect(form.locator("input[name=tags]")).to_have_value("fast")
    assert (node(pools, "cpu-box")["tags"], node(pools, "cpu-box")["tags_edited"]) == (["fast"], False)
    # Edited elsewhere (the API) while the form is open and untouched: it follows.
    api(pools, "PATCH", f"/api/nodes/{saved['id']}", {"tags": ["render"]})
    expect(form.locator("input[name=tags]")).to_have_value("render")
    expect(cpu.locator(".edited")).to_be_visible()


def test_a_schedule_excluding_now_puts_the_node_asleep_and_its_shot_waits(pools, cpu_box, new_page):
    page = new_page(token=pools.token)
    offset = node(pools, "cpu-box")["utc_offset"] or 0
    local_now = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=offset)
    # Three days from today: neither today nor a window running on from yesterday.
    day = DAYS[(local_now.weekday() + 3) % 7]
    form = open_editor(page, pools, "cpu-box")
    form.get_by_role("radio", name="Weekly schedule").click()
    window = form.locator(".window").first
    for box in window.locator("input[type=checkbox]").all():
        box.set_checked(box.get_attribute("value") == day)
    window.get_by_label("From").fill("10:00")
    window.get_by_label("To").fill("11:30")
    form.locator("select[name=on_sleep]").select_option("handback")
    form.get_by_role("button", name="Save").click()
    cpu = row(page, "cpu-box")
    expect(cpu.locator(".pill").first).to_have_text("asleep", timeout=30_000)
    expect(cpu.locator("td.schedule")).to_have_text(
        f"{day.capitalize()} 10:00–11:30 · hands back")
    assert node(pools, "cpu-box")["schedule"] == {
        "mode": "weekly", "on_sleep": "handback",
        "windows": [{"days": [day], "start": "10:00", "end": "11:30"}]}
    assert node(pools, "cpu-box")["tags_edited"] is False   # only what was changed is sent
    expect(page.locator(".card-head .muted")).to_contain_text("1 asleep")
    page.screenshot("nodes-asleep")

    shot = pools.submit(pools.scene, name="night-only", frame_start=1, frame_end=1,
                        requires_tags=["fast"])
    try:
        page.goto(f"{pools.url}/#/shots/{shot['id']}")
        expect(page.locator(".waiting-reason")).to_have_text(
            "waiting: every node that can take it is asleep")
        page.goto(pools.url + "/#/shots")
        expect(page.locator(f"tr[data-shot-id='{shot['id']}'] .sub.waiting")).to_have_text(
            "waiting: every node that can take it is asleep")
        page.goto(pools.url + "/#/")
        expect(page.locator(f".shotrow[data-shot-id='{shot['id']}'] .eta")).to_have_text(
            "waiting: every node that can take it is asleep")
        expect(page.locator("[data-stat=asleep] .n")).to_have_text("1")
        page.screenshot("home-waiting")
        assert pools.client().shot(shot["id"])["status"] == "queued"
    finally:
        api(pools, "POST", f"/api/shots/{shot['id']}/cancel")


def test_an_invalid_schedule_shows_the_coordinators_message_at_its_field(pools, cpu_box, new_page):
    page = new_page(token=pools.token)
    form = open_editor(page, pools, "cpu-box")
    form.get_by_role("radio", name="Weekly schedule").click()
    window = form.locator(".window").first
    for box in window.locator("input[type=checkbox]").all():
        box.set_checked(False)
    form.get_by_role("button", name="Save").click()
    days_error = form.locator(".field-error[data-field='schedule.windows[0].days']")
    expect(days_error).to_be_visible()
    expect(days_error).to_contain_text("must be a non-empty list")
    # A day again, but no start time: the message moves to the start field.
    window.locator("input[value=sat]").check()
    window.get_by_label("From").fill("")
    form.get_by_role("button", name="Save").click()
    start_error = form.locator(".field-error[data-field='schedule.windows[0].start']")
    expect(start_error).to_contain_text("must be a time")
    expect(days_error).to_be_hidden()
    expect(window.get_by_label("From")).to_have_class("invalid")
    page.screenshot("node-schedule-error")
    # Nothing was changed.
    assert node(pools, "cpu-box")["schedule"]["mode"] == "always"
    expect(row(page, "cpu-box").locator("td.schedule")).to_have_text("always")


def test_a_shot_needing_a_tag_no_node_has_says_why_it_waits(pools, cpu_box, new_page):
    page = new_page(token=pools.token)
    shot = pools.submit(pools.scene, name="needs-gpu", frame_start=1, frame_end=2,
                        requires_tags=["gpu"], prefers_tags=["fast"], blender_saved_with="2.93",
                        max_nodes=2)
    late = None
    try:
        page.goto(pools.url + "/#/shots")
        expect(page.locator(f"tr[data-shot-id='{shot['id']}'] .sub.waiting")).to_have_text(
            "waiting: no node has tag gpu")
        expect(page.locator(f"tr[data-shot-id='{shot['id']}'] .sub.muted")).to_contain_text(
            "needs gpu · ≤ 2 nodes")
        page.screenshot("shots-waiting")
        page.goto(f"{pools.url}/#/shots/{shot['id']}")
        expect(page.locator(".waiting-reason")).to_have_text("waiting: no node has tag gpu")
        expect(page.locator(".notice")).to_have_text(
            "no node has Blender 2.93 (the file's version); rendering with 4.2")
        facts = page.locator(".pool-facts")
        expect(facts.locator("[data-key='needs tags'] .tag")).to_have_text(["gpu"])
        expect(facts.locator("[data-key='prefers tags'] .tag")).to_have_text(["fast"])
        expect(facts.locator("[data-key='saved with'] .v")).to_have_text("2.93")
        expect(page.locator(".max-nodes")).to_have_value("2")
        page.screenshot("shot-waiting")
        # The admin lowers the cap from the dashboard.
        page.locator(".max-nodes").fill("1")
        page.locator(".max-nodes").press("Enter")
        wait_for(lambda: pools.client().shot(shot["id"])["max_nodes"] == 1, 10,
                 what="max_nodes 1")
        # A node with the tag connects (and asks for nothing): the reason goes, live.
        late = NodeConnection(pools.url, pools.token, {**GPU_BOX, "name": "gpu-late",
                                                       "tags": ["gpu"]})
        late.connect()
        expect(page.locator(".waiting-reason")).to_be_hidden()
        late.close()
        late = None
        # The coordinator hears the channel close, then rechecks: slow on a busy runner.
        expect(page.locator(".waiting-reason")).to_have_text("waiting: no node has tag gpu",
                                                            timeout=20_000)
    finally:
        if late is not None:
            late.close()
        api(pools, "POST", f"/api/shots/{shot['id']}/cancel")


def test_without_the_token_a_node_edit_is_refused_and_changes_nothing(pools, cpu_box, page):
    form = open_editor(page, pools, "cpu-box")
    form.locator("input[name=tags]").fill("stolen")
    form.get_by_role("button", name="Save").click()
    dialog = page.locator("#token-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Cancel").click()
    refusal = form.locator(".field-error[data-field='']")
    expect(refusal).to_be_visible()
    expect(refusal).to_contain_text("token")
    expect(page.locator(".toast.error")).to_contain_text("Edit cpu-box refused")
    expect(form.locator("input[name=tags]")).to_have_value("stolen")   # what was typed stays
    assert node(pools, "cpu-box")["tags"] == ["fast"]
