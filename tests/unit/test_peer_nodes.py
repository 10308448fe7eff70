"""What a coordinator knows of the nodes connected to its peers (farm_link.PeerNodes)."""
from __future__ import annotations

import time

from coordinator.farm_link import PEER_GONE_SECONDS, PeerNodes


def view(node_id: str, status: str) -> dict:
    return {"id": node_id, "status": status, "current_job_id": 7 if status == "rendering"
            else None, "current_shot_id": None, "progress": None}


def test_a_peers_nodes_are_live_until_it_falls_silent():
    peers = PeerNodes()
    peers.node("a", view("n1", "rendering"))
    peers.node("a", view("n2", "idle"))
    now = time.monotonic()
    assert peers.view("n1", now)["current_job_id"] == 7
    assert peers.online(now) == 2
    later = now + PEER_GONE_SECONDS + 1
    assert peers.online(later) == 0
    assert peers.view("n1", later) is None
    peers.heard("a", later)     # a view once dropped stays dropped until told again
    assert peers.view("n1", later) is None and peers.view("n2", later) is None


def test_a_node_gone_offline_or_moved_to_another_peer():
    peers = PeerNodes()
    peers.node("a", view("n1", "idle"))
    peers.node("b", view("n1", "rendering"))      # it reconnected to b
    peers.node("a", view("n1", "offline"))        # a's late word of the old channel
    assert peers.view("n1")["status"] == "rendering"
    peers.node("b", view("n1", "offline"))
    assert peers.view("n1") is None and peers.online() == 0


def test_events_go_only_to_peers_whose_dashboards_listen():
    peers = PeerNodes()
    peers.heard("a")
    peers.listening("a", False)
    assert peers.any_alive() and not peers.any_listening()
    peers.listening("a", True)
    assert peers.any_listening()
    peers.listening("a", False)
    assert not peers.any_listening()


def test_the_count_follows_nodes_moving_between_peers_and_peers_coming_back():
    peers = PeerNodes()
    for i in range(3):
        peers.node("a", view(f"n{i}", "idle"))
    peers.node("b", view("n3", "rendering"))
    peers.node("a", view("n0", "rendering"))      # a new state: still one node
    assert peers.online() == 4
    peers.node("b", view("n1", "idle"))           # n1 moved from a to b
    assert peers.online() == 4
    peers.node("a", view("n1", "offline"))        # a's late word: n1 is b's now
    assert peers.online() == 4
    peers.node("b", view("n1", "offline"))
    assert peers.online() == 3
    # a falls silent (last heard long ago), then speaks again: what it told is gone
    peers.heard("a", time.monotonic() - PEER_GONE_SECONDS - 1)
    assert peers.online() == 1
    peers.node("a", view("n0", "idle"))
    assert peers.online() == 2
    assert peers.view("n2") is None and peers.view("n3")["status"] == "rendering"
