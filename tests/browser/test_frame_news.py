"""Issue 17 in real Chromium: a black frame rendered by real Blender shows under the
grid's "Suspicious" filter; the shot page shows its delivery; the webhooks panel adds a
webhook, lists its deliveries (received by a test server on loopback) and removes it."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.farm import Farm, make_scene, wait_for
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.blender


@pytest.fixture(scope="module")
def news_farm(tmp_path_factory):
    root = tmp_path_factory.mktemp("news")
    studio = root / "studio"
    studio.mkdir()
    farm = Farm(root / "farm", output_root=f"studio={studio}")
    receiver = Receiver(200)
    try:
        farm.start_coordinator()
        farm.add_node("node1")
        farm.scene = make_scene(root / "blank.blend", frame_end=4, blank_frames=[3])
        farm.studio, farm.receiver = studio, receiver
        farm.wait_nodes_online(1)
        yield farm
    finally:
        farm.close()
        receiver.close()


def test_suspicious_filter_delivery_and_webhooks_panel(news_farm, new_page):
    farm = news_farm
    page = new_page(token=farm.token)
    # An admin adds a webhook in the panel before the shot is submitted.
    page.goto(f"{farm.url}/#/webhooks")
    expect(page.locator(".webhooks .empty")).to_be_visible()
    page.locator(".webhook-url").fill(farm.receiver.url)
    page.locator("label.check", has_text="node.lost").locator("input").uncheck()
    page.get_by_role("button", name="Add webhook").click()
    row = page.locator("tr[data-webhook-id]")
    expect(row).to_have_count(1)
    expect(row).to_contain_text(farm.receiver.url)
    expect(row).to_contain_text("shot.done, shot.failed")
    expect(page.locator(".webhook-secret code")).not_to_be_empty()

    shot = farm.submit(farm.scene, name="blank", frame_end=4, chunk_size=2,
                       output_template="{shot}/{frame:04d}.{ext}")
    assert farm.wait_shot(shot["id"])["status"] == "completed"
    wait_for(lambda: farm.receiver.events("shot.done"), 30, what="the webhook")
    row.get_by_role("button", name="Deliveries").click()
    delivered = page.locator(".deliveries tr[data-status='delivered']")
    expect(delivered).to_have_count(1)
    expect(delivered).to_contain_text("shot.done")
    page.screenshot("webhooks")

    # The shot page: frame 3 is flagged; the filter shows it alone, with its reason.
    page.goto(f"{farm.url}/#/shots/{shot['id']}")
    expect(page.locator(".fcell")).to_have_count(4)
    expect(page.locator(".suspicious-count")).to_have_text("1 suspicious")
    page.locator("select.frame-filter").select_option("suspicious")
    cells = page.locator(".fcell:not([hidden])")
    expect(cells).to_have_count(1)
    expect(cells.first).to_have_attribute("data-number", "3")
    expect(cells.first).to_have_class("fcell suspicious")
    assert "one colour (black)" in cells.first.get_attribute("title")
    cells.first.click()
    expect(page.locator(".player")).to_have_attribute("data-frame", "3")
    page.locator("select.frame-filter").select_option("all")
    expect(page.locator(".fcell:not([hidden])")).to_have_count(4)

    # Delivery: every frame copied to the studio root.
    delivery = page.locator("section.delivery")
    expect(delivery).to_be_visible()
    expect(delivery.locator(".delivery-where")).to_have_text(
        "studio: {shot}/{frame:04d}.{ext}")
    expect(delivery.locator("[data-key='delivered'] .v")).to_have_text("4")
    expect(delivery).to_have_attribute("data-state", "delivered")
    assert sorted(p.name for p in (farm.studio / "blank").iterdir()) == \
        [f"{n:04d}.png" for n in range(1, 5)]
    page.screenshot("suspicious-and-delivery", full_page=True)

    # Removing the webhook.
    page.goto(f"{farm.url}/#/webhooks")
    page.locator("tr[data-webhook-id]").get_by_role("button", name="Remove").click()
    page.locator("dialog[open]").get_by_role("button", name="Remove").click()
    expect(page.locator("tr[data-webhook-id]")).to_have_count(0)
    assert farm.client()._request("GET", "/api/webhooks")["webhooks"] == []
