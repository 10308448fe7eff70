"""A node connection speaking the real node protocol to a real coordinator, for what
this machine's real nodes cannot show: GPUs, several Blender versions, another time
zone. It says hello (with its devices and Blenders), answers the coordinator's
WebSocket pings, and never asks for work, so it holds no job. It runs its own event
loop in a thread, so the sync Playwright tests can use it."""
from __future__ import annotations

import asyncio
import threading

import aiohttp


class NodeConnection:
    def __init__(self, url: str, token: str, hello: dict):
        self.url = url.replace("http://", "ws://") + "/api/node/ws"
        self.token = token
        self.hello = {"type": "hello", "node_id": None, "hostname": hello["name"],
                      "platform": "Linux", "cpu_count": 16, "tags": [],
                      "running_attempt": None, **hello}
        self.node_id: str | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Future | None = None

    def _run(self, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def connect(self) -> str:
        """Connect (again, as the same node after the first time); returns its id."""
        self.node_id = self._run(self._connect())
        return self.node_id

    async def _connect(self) -> str:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        self._ws = await self._session.ws_connect(
            self.url, headers={"Authorization": f"Bearer {self.token}"}, autoping=True)
        await self._ws.send_json({**self.hello, "node_id": self.node_id})
        welcome = await self._ws.receive_json(timeout=10)
        if welcome.get("type") != "welcome":
            raise RuntimeError(f"the coordinator refused the node: {welcome}")
        self._reader = asyncio.ensure_future(self._drain(self._ws))
        return welcome["node_id"]

    @staticmethod
    async def _drain(ws: aiohttp.ClientWebSocketResponse) -> None:
        # Reading keeps pings answered; nothing sent to an idle node needs a reply.
        async for _ in ws:
            pass

    def disconnect(self) -> None:
        self._run(self._disconnect())

    async def _disconnect(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            await asyncio.wait([self._reader], timeout=5)

    def close(self) -> None:
        async def _close():
            await self._disconnect()
            if self._session is not None:
                await self._session.close()
        try:
            self._run(_close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
