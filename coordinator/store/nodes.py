"""SQL for nodes: the handshake's upsert, enable/disable, listing."""
from __future__ import annotations

import json
import time
import uuid
from typing import Any

from ..database import Database


def node_dict(row: Any) -> dict:
    d = dict(row)
    d["tags"] = json.loads(d["tags"])
    d["enabled"] = bool(d["enabled"])
    d["allow_scripts"] = bool(d["allow_scripts"])
    return d


async def upsert(db: Database, hello: dict) -> dict:
    """Add the node, or update it when it comes back with the id we gave it."""
    now = time.time()
    node_id = hello.get("node_id")
    fields = (hello["name"], hello["hostname"], hello["platform"], hello["blender_version"],
              hello["cpu_count"], json.dumps(hello["tags"]), int(hello["allow_scripts"]))
    async with db.transaction() as tx:
        existing = None
        if node_id:
            existing = await (await tx.execute(
                "SELECT id FROM nodes WHERE id = ?", (node_id,))).fetchone()
        if existing:
            await tx.execute(
                """UPDATE nodes SET name=?, hostname=?, platform=?, blender_version=?,
                   cpu_count=?, tags=?, allow_scripts=?, connected_at=?, last_seen=?
                   WHERE id=?""", fields + (now, now, node_id))
        else:
            node_id = uuid.uuid4().hex
            await tx.execute(
                """INSERT INTO nodes (name, hostname, platform, blender_version, cpu_count,
                   tags, allow_scripts, connected_at, last_seen, id)
                   VALUES (?,?,?,?,?,?,?,?,?,?)""", fields + (now, now, node_id))
        row = await (await tx.execute("SELECT * FROM nodes WHERE id = ?", (node_id,))).fetchone()
    return node_dict(row)


async def touch(db: Database, node_ids: list[str]) -> None:
    if not node_ids:
        return
    async with db.transaction() as tx:
        now = time.time()
        await tx.executemany("UPDATE nodes SET last_seen = ? WHERE id = ?",
                             [(now, n) for n in node_ids])


async def set_enabled(db: Database, node_id: str, enabled: bool) -> dict | None:
    async with db.transaction() as tx:
        await tx.execute("UPDATE nodes SET enabled = ? WHERE id = ?", (int(enabled), node_id))
        row = await (await tx.execute("SELECT * FROM nodes WHERE id = ?", (node_id,))).fetchone()
    return node_dict(row) if row else None


async def get(db: Database, node_id: str) -> dict | None:
    row = await db.fetchone("SELECT * FROM nodes WHERE id = ?", (node_id,))
    return node_dict(row) if row else None


async def list_all(db: Database) -> list[dict]:
    return [node_dict(r) for r in await db.fetchall("SELECT * FROM nodes ORDER BY name, id")]
