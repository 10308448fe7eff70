"""Webhooks end to end: a real farm posts its news (shot done, node lost) to test HTTP
servers on loopback, signed; a failing receiver is retried, then listed as failed."""
from __future__ import annotations

import hashlib
import hmac
import json
import signal

import pytest

from tests.farm import wait_for
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.blender


@pytest.fixture
def receivers():
    made: list[Receiver] = []

    def make(status: int = 200) -> Receiver:
        made.append(Receiver(status))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


def register(farm, url: str, **extra) -> dict:
    return farm.client()._request("POST", "/api/webhooks", {"url": url, **extra})


def deliveries(farm, hook_id: str) -> list[dict]:
    return farm.client()._request("GET", f"/api/webhooks/{hook_id}/deliveries")["deliveries"]


def test_news_is_posted_signed_and_a_failing_receiver_is_retried_then_failed(
        farm_factory, scene, receivers):
    farm = farm_factory(nodes=2, webhook_retry_seconds=0.2)
    good, failing = receivers(200), receivers(500)
    good_hook = register(farm, good.url)
    failing_hook = register(farm, failing.url, events=["shot.done"],
                            secret="a-secret-of-my-own-choosing")
    assert failing_hook["secret"] == "a-secret-of-my-own-choosing"

    shot = farm.submit(scene, name="Hooked", frame_end=2)
    assert farm.wait_shot(shot["id"])["status"] == "completed"
    headers, body = wait_for(lambda: good.events("shot.done"), 30, what="shot.done")[0]
    expected = hmac.new(good_hook["secret"].encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Brender-Signature"] == f"sha256={expected}"
    news = json.loads(body)
    assert news["event"] == "shot.done"
    assert news["shot"]["id"] == shot["id"] and news["shot"]["name"] == "Hooked"
    assert news["shot"]["status"] == "completed" and news["shot"]["frames_done"] == 2
    listed = wait_for(lambda: [d for d in deliveries(farm, good_hook["id"])
                               if d["status"] == "delivered"], 10, what="listed delivered")
    assert listed[0]["event"] == "shot.done" and listed[0]["response_status"] == 200
    assert listed[0]["id"] == headers["X-Brender-Delivery"]

    # The failing receiver is tried five times in all (backoff 0.2, 0.4, 0.8, 1.6 s),
    # each signed with its own secret, then its delivery is listed as failed.
    failed = wait_for(lambda: [d for d in deliveries(farm, failing_hook["id"])
                               if d["status"] == "failed"], 30, what="a failed delivery")
    assert failed[0]["attempts"] == 5 and failed[0]["response_status"] == 500
    assert failed[0]["last_error"] == "HTTP 500"
    assert len(failing.requests) == 5
    for headers, body in failing.requests:
        assert headers["X-Brender-Signature"] == "sha256=" + hmac.new(
            b"a-secret-of-my-own-choosing", body, hashlib.sha256).hexdigest()
    # Only what it asked for.
    assert {h["X-Brender-Event"] for h, _ in failing.requests} == {"shot.done"}

    # A node killed (no goodbye) is news; one stopped cleanly is not.
    farm.stop_node("node1", signal.SIGTERM)
    farm.stop_node("node2", signal.SIGKILL)
    headers, body = wait_for(lambda: good.events("node.lost"), 30, what="node.lost")[0]
    assert json.loads(body)["node"]["name"] == "node2"
    # node1's goodbye was handled before node2's channel broke: had it been news, it
    # would be listed by now.
    listed = deliveries(farm, good_hook["id"])
    assert sorted(d["event"] for d in listed) == ["node.lost", "shot.done"]
    assert len(good.events("shot.done")) == 1   # once, however often the shot is shown
