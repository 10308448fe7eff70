"""Event streams are capped per client address and in all; a stream that stops
reading is skipped by publishing and cut loose once too far behind (issue 12, item 5)."""
from __future__ import annotations

import asyncio

import pytest

from coordinator import events as events_module
from coordinator import keys
from coordinator.app import create_app
from coordinator.config import Config
from coordinator.events import EventBroker


async def open_stream(client):
    resp = await client.get("/api/events")
    if resp.status == 200:
        assert b"event: hello" in await resp.content.readuntil(b"\n\n")
    return resp


@pytest.mark.parametrize("per_address, total, words", [(2, 10, "per client address"),
                                                       (10, 2, "event streams at most")])
async def test_event_streams_over_the_cap_get_a_clear_503(aiohttp_client, tmp_path,
                                                          per_address, total, words):
    config = Config(data_dir=tmp_path / "d", max_event_streams=total,
                    max_event_streams_per_address=per_address)
    client = await aiohttp_client(create_app(config, "t"))
    streams = [await open_stream(client) for _ in range(2)]
    assert [s.status for s in streams] == [200, 200]
    refused = await open_stream(client)
    assert refused.status == 503 and refused.headers["Retry-After"]
    assert words in (await refused.json())["error"]
    streams[0].close()
    broker = client.server.app[keys.EVENTS]
    for _ in range(100):        # the server notices the closed stream
        if broker.streams < 2:
            break
        await asyncio.sleep(0.02)
    again = await open_stream(client)
    assert again.status == 200
    again.close()
    streams[1].close()


async def test_streams_get_every_event_in_order_and_a_slow_one_is_cut_loose(monkeypatch):
    monkeypatch.setattr(events_module, "LOG_LIMIT", 100)
    broker = EventBroker()
    reader = broker.subscribe("a")
    stuck = asyncio.get_running_loop().create_future()   # a write waiting on a full socket

    async def stalled_stream():
        broker.subscribe("b")
        await stuck

    stalled = asyncio.create_task(stalled_stream())
    await asyncio.sleep(0)
    got = []
    for i in range(500):
        broker.publish("frame", {"n": i})
        if i % 10 == 9:
            got += broker.take(reader)
    assert [m.split(b'"n":')[1].split(b"}")[0] for m in got] == [str(i).encode()
                                                              for i in range(500)]
    await asyncio.sleep(0)
    assert stalled.cancelled()          # too far behind: its stream was ended
    assert broker.streams == 1 and broker.streams_from("b") == 0
    assert len(broker._log) <= 100
    waiting = asyncio.create_task(broker.next_batch(reader))
    await asyncio.sleep(0)
    broker.publish("node", {"id": "x"})
    assert b"event: node" in await asyncio.wait_for(waiting, 1)
    pinged = asyncio.create_task(broker.next_batch(reader))
    await asyncio.sleep(0)
    broker.ping()
    assert await asyncio.wait_for(pinged, 1) == b""
    broker.close()
    assert await broker.next_batch(reader) is None
