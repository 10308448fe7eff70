"""SQL for nodes: the handshake's upsert, enable/disable, an admin's edits, listing.

A node's own tags come with each hello; tags an admin set (`tags_edited`) win over
them until the admin clears them."""
from __future__ import annotations

import json
import time
import uuid
from typing import Any

from .connection import Connection


DEFAULT_SCHEDULE = {"mode": "always", "windows": [], "on_sleep": "finish"}


def node_dict(row: Any) -> dict:
    d = dict(row)
    d["own_tags"] = json.loads(d["tags"])
    edited = d.pop("tags_edited")
    d["tags_edited"] = edited is not None
    d["tags"] = json.loads(edited) if edited is not None else d["own_tags"]
    d["devices"] = json.loads(d["devices"])
    d["blenders"] = json.loads(d["blenders"])
    d["schedule"] = json.loads(d["schedule"]) if d["schedule"] else dict(DEFAULT_SCHEDULE)
    d["enabled"] = bool(d["enabled"])
    d["allow_scripts"] = bool(d["allow_scripts"])
    return d


async def upsert(c: Connection, hello: dict) -> dict:
    """Add the node, or update it when it comes back with the id we gave it."""
    now = time.time()
    node_id = hello.get("node_id")
    fields = (hello["name"], hello["hostname"], hello["platform"], hello["blender_version"],
              hello["cpu_count"], json.dumps(hello["tags"]), int(hello["allow_scripts"]),
              json.dumps(hello.get("devices", [])), json.dumps(hello.get("blenders", [])),
              hello.get("utc_offset", 0))
    if node_id and await c.fetchone("SELECT 1 FROM nodes WHERE id = ?", (node_id,)):
        await c.execute("""UPDATE nodes SET name=?, hostname=?, platform=?, blender_version=?,
                     cpu_count=?, tags=?, allow_scripts=?, devices=?, blenders=?, utc_offset=?,
                     connected_at=?, last_seen=? WHERE id=?""", fields + (now, now, node_id))
    else:
        node_id = uuid.uuid4().hex
        await c.execute("""INSERT INTO nodes (name, hostname, platform, blender_version, cpu_count,
                     tags, allow_scripts, devices, blenders, utc_offset, connected_at, last_seen,
                     id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)""", fields + (now, now, node_id))
    node = await get(c, node_id)
    assert node is not None
    return node


async def touch(c: Connection, node_ids: list[str]) -> None:
    now = time.time()
    await c.executemany("UPDATE nodes SET last_seen = ? WHERE id = ?", [(now, n) for n in node_ids])


async def set_enabled(c: Connection, node_id: str, enabled: bool) -> dict | None:
    await c.execute("UPDATE nodes SET enabled = ? WHERE id = ?", (int(enabled), node_id))
    return await get(c, node_id)


async def edit(c: Connection, node_id: str, changes: dict) -> dict | None:
    """An admin's edits: `tags` (a list, or None for the node's own), `schedule`."""
    if "tags" in changes:
        tags = changes["tags"]
        await c.execute("UPDATE nodes SET tags_edited = ? WHERE id = ?",
                        (None if tags is None else json.dumps(tags), node_id))
    if "schedule" in changes:
        await c.execute("UPDATE nodes SET schedule = ? WHERE id = ?",
                        (json.dumps(changes["schedule"]), node_id))
    return await get(c, node_id)


async def get(c: Connection, node_id: str) -> dict | None:
    row = await c.fetchone("SELECT * FROM nodes WHERE id = ?", (node_id,))
    return node_dict(row) if row else None


async def list_all(c: Connection) -> list[dict]:
    return [node_dict(r) for r in await c.fetchall("SELECT * FROM nodes ORDER BY name, id")]
