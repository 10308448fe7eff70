"""A node channel's liveness (coordinator/liveness.py), in-process: a node that stops
answering is dropped and its job goes to another node; a quiet node that answers the
coordinator's pings, or sends its heartbeats, keeps its channel."""
from __future__ import annotations

import asyncio

import pytest
from aiohttp import WSCloseCode, WSMsgType

from coordinator.app import create_app
from coordinator.config import Config
from tests.unit.test_api import AUTH, TOKEN, create_shot, node_hello
from tests.unit.test_node_lifecycle import node_view, receive

pytestmark = pytest.mark.usefixtures("backend")

INTERVAL = 0.5   # heartbeat interval: a channel silent for 3 of them is dead


@pytest.fixture
async def api(aiohttp_client, tmp_path):
    app = create_app(Config(data_dir=tmp_path / "data", lease_timeout=2,
                            heartbeat_interval=INTERVAL), TOKEN)
    return await aiohttp_client(app)


async def test_a_hung_node_is_dropped_and_its_job_goes_to_a_quiet_live_node(api):
    await create_shot(api, frame_end=1, chunk_size=1)
    # A hung node: its socket stays open, but it neither reads (no pongs) nor writes.
    hung = await api.ws_connect("/api/node/ws", headers=AUTH, autoping=False)
    hung_id = (await node_hello(hung, "hung"))["node_id"]
    await hung.send_json({"type": "ready"})
    lost = (await receive(hung))["job"]
    # A live node that sends nothing either (no heartbeat messages): it only answers
    # pings, while it waits many intervals for work.
    live = await api.ws_connect("/api/node/ws", headers=AUTH, autoping=True)
    await node_hello(live, "live")
    await live.send_json({"type": "ready"})
    taken = (await receive(live, timeout=60))["job"]
    assert taken["job_id"] == lost["job_id"]
    assert taken["attempt_id"] != lost["attempt_id"]
    assert (await node_view(api, hung_id))["status"] == "offline"
    # What the hung node would have read: one ping, then the close.
    pings = 0
    while (msg := await hung.receive(timeout=30)).type == WSMsgType.PING:
        pings += 1
    assert pings == 1
    assert msg.type == WSMsgType.CLOSE and msg.data == WSCloseCode.GOING_AWAY
    await live.close()


async def test_a_node_that_sends_heartbeats_keeps_its_channel(api):
    """A node that never answers pings (some clients do not) but sends its heartbeat
    every interval, as brender-node does, is alive."""
    beating = await api.ws_connect("/api/node/ws", headers=AUTH, autoping=False)
    node_id = (await node_hello(beating, "beating"))["node_id"]
    for _ in range(12):   # 3 s: two times the silence that drops a node
        await beating.send_json({"type": "heartbeat"})
        await asyncio.sleep(INTERVAL / 2)
    assert (await node_view(api, node_id))["status"] != "offline"
    assert not beating.closed
    await beating.close()
