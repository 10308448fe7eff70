"""SQL for nodes: the handshake's upsert, enable/disable, listing."""
from __future__ import annotations

import json
import time
import uuid
from typing import Any

from .connection import Connection


def node_dict(row: Any) -> dict:
    d = dict(row)
    d["tags"] = json.loads(d["tags"])
    d["enabled"] = bool(d["enabled"])
    d["allow_scripts"] = bool(d["allow_scripts"])
    return d


async def upsert(c: Connection, hello: dict) -> dict:
    """Add the node, or update it when it comes back with the id we gave it."""
    now = time.time()
    node_id = hello.get("node_id")
    fields = (hello["name"], hello["hostname"], hello["platform"], hello["blender_version"],
              hello["cpu_count"], json.dumps(hello["tags"]), int(hello["allow_scripts"]))
    if node_id and await c.fetchone("SELECT 1 FROM nodes WHERE id = ?", (node_id,)):
        await c.execute("""UPDATE nodes SET name=?, hostname=?, platform=?, blender_version=?,
                     cpu_count=?, tags=?, allow_scripts=?, connected_at=?, last_seen=?
                     WHERE id=?""", fields + (now, now, node_id))
    else:
        node_id = uuid.uuid4().hex
        await c.execute("""INSERT INTO nodes (name, hostname, platform, blender_version, cpu_count,
                     tags, allow_scripts, connected_at, last_seen, id)
                     VALUES (?,?,?,?,?,?,?,?,?,?)""", fields + (now, now, node_id))
    node = await get(c, node_id)
    assert node is not None
    return node


async def touch(c: Connection, node_ids: list[str]) -> None:
    now = time.time()
    await c.executemany("UPDATE nodes SET last_seen = ? WHERE id = ?", [(now, n) for n in node_ids])


async def set_enabled(c: Connection, node_id: str, enabled: bool) -> dict | None:
    await c.execute("UPDATE nodes SET enabled = ? WHERE id = ?", (int(enabled), node_id))
    return await get(c, node_id)


async def get(c: Connection, node_id: str) -> dict | None:
    row = await c.fetchone("SELECT * FROM nodes WHERE id = ?", (node_id,))
    return node_dict(row) if row else None


async def list_all(c: Connection) -> list[dict]:
    return [node_dict(r) for r in await c.fetchall("SELECT * FROM nodes ORDER BY name, id")]
