"""SQL for webhooks (issue 17): the URLs an admin registered, and each event's delivery
to each of them with its attempts and outcome."""
from __future__ import annotations

import json
import time
import uuid
from typing import Any

from .connection import Connection

PUBLIC = "id, url, events, created_at"
DELIVERY = """id, webhook_id, event, status, attempts, response_status, last_error,
              next_attempt_at, created_at, delivered_at"""


def _webhook(row: Any) -> dict:
    d = dict(row)
    d["events"] = json.loads(d["events"])
    return d


async def create(c: Connection, url: str, secret: str, events: list[str]) -> dict:
    rows = await c.fetchall(
        f"""INSERT INTO webhooks (id, url, secret, events, created_at) VALUES (?, ?, ?, ?, ?)
            RETURNING {PUBLIC}""",
        (uuid.uuid4().hex[:16], url, secret, json.dumps(events), time.time()))
    return _webhook(rows[0])


async def list_all(c: Connection) -> list[dict]:
    rows = await c.fetchall(f"SELECT {PUBLIC} FROM webhooks ORDER BY created_at, id")
    return [_webhook(r) for r in rows]


async def get(c: Connection, webhook_id: str) -> dict | None:
    row = await c.fetchone(f"SELECT {PUBLIC} FROM webhooks WHERE id = ?", (webhook_id,))
    return _webhook(row) if row else None


async def delete(c: Connection, webhook_id: str) -> bool:
    await c.execute("DELETE FROM webhook_deliveries WHERE webhook_id = ?", (webhook_id,))
    return await c.execute("DELETE FROM webhooks WHERE id = ?", (webhook_id,)) > 0


async def enqueue(c: Connection, event: str, event_key: str, body: str) -> int:
    """One pending delivery of the event to each webhook that wants it (once per event
    key: an event seen again after a restart is not sent twice); how many."""
    hooks = [r["id"] for r in await c.fetchall("SELECT id, events FROM webhooks")
             if event in json.loads(r["events"])]
    now = time.time()
    added = 0
    for hook in hooks:
        added += await c.execute(
            """INSERT INTO webhook_deliveries (id, webhook_id, event, event_key, body, status,
               attempts, next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, ?)
               ON CONFLICT (webhook_id, event_key) DO NOTHING""",
            (uuid.uuid4().hex, hook, event, event_key, body, now, now))
    return added


async def claim_due(c: Connection, now: float, lease_seconds: float,
                    limit: int) -> list[dict]:
    """Pending deliveries whose time has come, claimed: each is not due again until
    `lease_seconds` from now (its attempt records the real next time), so a delivery is
    posted once however often the sender looks, and one whose sender died is tried
    again when its lease ends. With their webhook's URL and secret."""
    # The outer conditions repeat the inner ones: on PostgreSQL a row claimed meanwhile
    # by another transaction is re-checked against them and skipped.
    claimed = await c.fetchall(
        """UPDATE webhook_deliveries SET next_attempt_at = ?
           WHERE id IN (SELECT id FROM webhook_deliveries
                        WHERE status = 'pending' AND next_attempt_at <= ?
                        ORDER BY next_attempt_at LIMIT ?)
             AND status = 'pending' AND next_attempt_at <= ?
           RETURNING id, webhook_id, event, body, attempts""",
        (now + lease_seconds, now, limit, now))
    if not claimed:
        return []
    hook_ids = sorted({r["webhook_id"] for r in claimed})
    hooks = {r["id"]: r for r in await c.fetchall(
        f"""SELECT id, url, secret FROM webhooks
            WHERE id IN ({", ".join("?" * len(hook_ids))})""", tuple(hook_ids))}
    return [{"id": r["id"], "event": r["event"], "body": r["body"],
             "attempts": r["attempts"], "url": hooks[r["webhook_id"]]["url"],
             "secret": hooks[r["webhook_id"]]["secret"]}
            for r in claimed if r["webhook_id"] in hooks]


async def next_due(c: Connection) -> float | None:
    when: float | None = await c.fetchval(
        "SELECT MIN(next_attempt_at) FROM webhook_deliveries WHERE status = 'pending'")
    return when


async def attempted(c: Connection, delivery_id: str, status: str, response_status: int | None,
                    error: str | None, next_attempt_at: float | None) -> None:
    """One attempt's outcome: `status` delivered, pending (tried again at
    `next_attempt_at`) or failed (no more attempts)."""
    delivered_at = time.time() if status == "delivered" else None
    await c.execute(
        """UPDATE webhook_deliveries SET status = ?, attempts = attempts + 1,
           response_status = ?, last_error = ?, next_attempt_at = ?, delivered_at = ?
           WHERE id = ?""",
        (status, response_status, error, next_attempt_at, delivered_at, delivery_id))


async def deliveries(c: Connection, webhook_id: str, limit: int = 100) -> list[dict]:
    rows = await c.fetchall(
        f"""SELECT {DELIVERY} FROM webhook_deliveries WHERE webhook_id = ?
            ORDER BY created_at DESC, id LIMIT ?""", (webhook_id, limit))
    return [dict(r) for r in rows]
