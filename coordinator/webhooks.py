"""Webhooks: the farm's news (a shot done or failed, a node lost) POSTed as JSON to the
URLs an admin registered (`routes/webhooks.py`).

Each event becomes one pending delivery per webhook that wants it, in the store
(so retries outlive a restart). A sender task claims the due ones (each posted once,
however often it looks) and posts them with one aiohttp session, a few at a time, each
signed: `X-Brender-Signature: sha256=<hex>`, the HMAC-SHA256 of
the raw body under the webhook's secret (and `X-Brender-Event`, `X-Brender-Delivery`).
A 2xx answer delivers it; anything else (an error status, a refused connection, no
answer within 10 s) is tried again after a backoff that doubles from
`--webhook-retry-seconds`, MAX_ATTEMPTS times in all, then listed as failed. Nothing
here is awaited by the farm: events are handed over with `notify`, which only queues.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from typing import Any, Callable

import aiohttp
import orjson

from .database import Database
from .store import webhooks as webhook_sql

log = logging.getLogger("brender.webhooks")
EVENTS = ("shot.done", "shot.failed", "node.lost")
MAX_ATTEMPTS = 5
SENDERS = 4
TIMEOUT = 10.0
# A claimed delivery is not due again for this long: its answer's time and then some to
# record it. One whose coordinator died while posting is tried again after it.
CLAIM_SECONDS = 3 * TIMEOUT
DUTY_CHECK_SECONDS = 1.0   # how soon a coordinator that took over the duties sends
SHOT_EVENTS = {"completed": "shot.done", "failed": "shot.failed"}
SHOT_FIELDS = ("id", "name", "status", "submitted_by", "frames_total", "frames_done",
               "failure_reason", "created_at", "finished_at")


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Webhooks:
    def __init__(self, db: Database, retry_seconds: float,
                 holds_duties: Callable[[], bool] = lambda: True):
        self.db = db
        self.retry_seconds = retry_seconds
        # Coordinators sharing a farm all record events; only the holder of the farm's
        # duties (farm_link.py) sends them, so a receiver hears each delivery once.
        self.holds_duties = holds_duties
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self._posting = 0   # claimed and not yet recorded; at most SENDERS

    # -- news from the farm -------------------------------------------------------------
    def farm_event(self, kind: str, data: dict) -> None:
        """An event the dashboards hear (`EventBroker` observer): shots that end."""
        if kind == "shot":
            event = SHOT_EVENTS.get(data.get("status", ""))
            if event:
                shot = {k: data.get(k) for k in SHOT_FIELDS}
                self.notify(event, f"{event}:{data['id']}:{data.get('finished_at')}",
                            {"shot": shot})

    def node_lost(self, node: dict) -> None:
        """A node's channel closed without its goodbye."""
        node_view = {k: node.get(k) for k in ("id", "name", "hostname")}
        self.notify("node.lost", f"node.lost:{node['id']}:{time.time()}", {"node": node_view})

    def notify(self, event: str, key: str, payload: dict[str, Any]) -> None:
        body = orjson.dumps({"event": event, "at": time.time(), **payload}).decode()
        self._spawn(self._enqueue(event, key, body))

    async def _enqueue(self, event: str, key: str, body: str) -> None:
        if await self.db.write(webhook_sql.enqueue, event, key, body):
            self._wake.set()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the sender ----------------------------------------------------------------------
    async def run(self) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as http:
            while True:
                self._wake.clear()
                now = time.time()
                if not self.holds_duties():
                    await asyncio.sleep(DUTY_CHECK_SECONDS)
                    continue
                # Only what can be posted now is claimed, so no claim ages in a queue.
                if self._posting < SENDERS:
                    for delivery in await self.db.write(webhook_sql.claim_due, now,
                                                        CLAIM_SECONDS, SENDERS - self._posting):
                        self._posting += 1
                        self._spawn(self._send(http, delivery))
                upcoming = await self.db.read(webhook_sql.next_due)
                if upcoming is None or self._posting >= SENDERS:
                    wait = 60.0   # a sender that finishes wakes the loop
                else:
                    wait = min(60.0, max(0.05, upcoming - now))
                try:
                    await asyncio.wait_for(self._wake.wait(), wait)
                except asyncio.TimeoutError:
                    pass

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _send(self, http: aiohttp.ClientSession, delivery: dict) -> None:
        try:
            status, error = await self._post(http, delivery)
            attempts = delivery["attempts"] + 1
            if status is not None and 200 <= status < 300:
                outcome, when = "delivered", None
            elif attempts >= MAX_ATTEMPTS:
                outcome, when = "failed", None
            else:
                outcome = "pending"
                when = time.time() + self.retry_seconds * 2 ** (attempts - 1)
            await self.db.write(webhook_sql.attempted, delivery["id"], outcome, status,
                                error, when)
            if outcome != "delivered":
                log.info("webhook delivery %s to %s: %s (%s)", delivery["id"],
                         delivery["url"], error or status, outcome)
        finally:
            self._posting -= 1
            self._wake.set()

    @staticmethod
    async def _post(http: aiohttp.ClientSession, delivery: dict) -> tuple[int | None, str | None]:
        body = delivery["body"].encode()
        headers = {"Content-Type": "application/json",
                   "User-Agent": "Brender-Webhooks",
                   "X-Brender-Event": delivery["event"],
                   "X-Brender-Delivery": delivery["id"],
                   "X-Brender-Signature": signature(delivery["secret"], body)}
        try:
            async with http.post(delivery["url"], data=body, headers=headers,
                                 allow_redirects=False) as response:
                await response.read()
                ok = 200 <= response.status < 300
                return response.status, None if ok else f"HTTP {response.status}"
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            return None, (f"{type(exc).__name__}: {exc}" if str(exc)
                          else type(exc).__name__)[:300]
