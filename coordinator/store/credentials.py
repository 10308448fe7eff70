"""SQL for credentials and join codes (issue 18).

A credential is a random token the coordinator shows once and keeps only as its
sha256: a token is 32 random bytes, so a plain hash cannot be reversed by guessing.
A node credential names the node it is; a join code (hashed the same way) is traded
once for a node credential.
"""
from __future__ import annotations

import hashlib
import json
import secrets
import time
import uuid
from typing import Any

from .connection import Connection

ROLES = ("node", "artist", "admin")
COLUMNS = "id, role, name, node_id, priority_cap, created_by, created_at, revoked_at"


def new_token(nbytes: int = 32) -> str:
    """A secret (token, join code) in URL-safe base64 that never starts with "-": it is
    pasted after an option on command lines (`--token`, `--join`), where a leading "-"
    reads as another option."""
    while (token := secrets.token_urlsafe(nbytes)).startswith("-"):
        pass
    return token


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def credential_dict(row: Any) -> dict:
    d = dict(row)
    d.pop("token_hash", None)
    return d


async def create(c: Connection, role: str, name: str, token: str, created_by: str,
                 node_id: str | None = None, priority_cap: int | None = None) -> dict:
    """Store a credential for `token` (its hash only); the credential without it."""
    assert role in ROLES
    credential_id = uuid.uuid4().hex
    await c.execute(
        """INSERT INTO credentials (id, token_hash, role, name, node_id, priority_cap,
           created_by, created_at) VALUES (?,?,?,?,?,?,?,?)""",
        (credential_id, token_hash(token), role, name, node_id, priority_cap, created_by,
         time.time()))
    found = await get(c, credential_id)
    assert found is not None
    return found


async def get(c: Connection, credential_id: str) -> dict | None:
    row = await c.fetchone(f"SELECT {COLUMNS} FROM credentials WHERE id = ?", (credential_id,))
    return credential_dict(row) if row else None


async def by_token_hash(c: Connection, digest: str) -> dict | None:
    """The live (not revoked) credential whose token hashes to `digest`."""
    row = await c.fetchone(f"SELECT {COLUMNS} FROM credentials WHERE token_hash = ? "
                           "AND revoked_at IS NULL", (digest,))
    return credential_dict(row) if row else None


async def list_all(c: Connection) -> list[dict]:
    rows = await c.fetchall(f"SELECT {COLUMNS} FROM credentials ORDER BY created_at")
    return [credential_dict(r) for r in rows]


async def revoke(c: Connection, credential_id: str) -> dict | None:
    await c.execute("UPDATE credentials SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                    (time.time(), credential_id))
    return await get(c, credential_id)


async def revoked_count(c: Connection) -> int:
    """How many credentials were ever revoked (a revocation is never undone: when
    this grows, one was revoked since)."""
    return int(await c.fetchval("SELECT COUNT(*) FROM credentials WHERE revoked_at IS NOT NULL"))


async def revoked(c: Connection) -> list[dict]:
    """Every revoked credential: id, role, name, node."""
    rows = await c.fetchall("SELECT id, role, name, node_id FROM credentials "
                            "WHERE revoked_at IS NOT NULL")
    return [dict(r) for r in rows]


async def live_matching(c: Connection, who: str) -> list[dict]:
    """The live credentials `who` names: a credential id, a node id, a credential's
    name, or an enrolled node's name (as it was renamed since). Several: the name is
    shared."""
    rows = await c.fetchall(
        f"""SELECT {COLUMNS} FROM credentials WHERE revoked_at IS NULL AND (id = ? OR
            node_id = ? OR name = ? OR node_id IN (SELECT id FROM nodes WHERE name = ?))
            ORDER BY created_at""", (who, who, who, who))
    return [credential_dict(r) for r in rows]


async def node_credential(c: Connection, node_id: str) -> dict | None:
    """The live credential of an enrolled node (None: a node that joined with the farm
    token before roles existed)."""
    row = await c.fetchone(f"SELECT {COLUMNS} FROM credentials WHERE node_id = ? "
                           "AND revoked_at IS NULL", (node_id,))
    return credential_dict(row) if row else None


async def node_is_enrolled(c: Connection, node_id: str) -> bool:
    """Whether a node was ever given a credential of its own (revoked or not): such a
    node's id answers to that credential only."""
    return await c.fetchval("SELECT 1 FROM credentials WHERE node_id = ? LIMIT 1",
                            (node_id,)) is not None


# -- join codes ------------------------------------------------------------------------
async def create_join_code(c: Connection, code: str, name: str, tags: list[str],
                           created_by: str, expires_at: float) -> dict:
    now = time.time()
    await c.execute(
        """INSERT INTO join_codes (code_hash, name, tags, created_by, created_at, expires_at)
           VALUES (?,?,?,?,?,?)""",
        (token_hash(code), name, json.dumps(tags), created_by, now, expires_at))
    return {"name": name, "tags": tags, "created_by": created_by, "created_at": now,
            "expires_at": expires_at}


async def list_join_codes(c: Connection) -> list[dict]:
    rows = await c.fetchall("""SELECT name, tags, created_by, created_at, expires_at, used_at,
                               credential_id FROM join_codes ORDER BY created_at""")
    return [dict(r, tags=json.loads(r["tags"])) for r in rows]


async def redeem_join_code(c: Connection, code: str, fallback_name: str) -> dict | None:
    """Trade a live join code for a new node credential, in one transaction: the code
    is spent whatever happens next. The node's row is made now, so its first hello
    finds the id it was given. Returns the credential with its `token` (shown once),
    or None for an unknown, spent or expired code."""
    now = time.time()
    row = await c.fetchone(
        """SELECT code_hash, name, tags FROM join_codes WHERE code_hash = ?
           AND used_at IS NULL AND expires_at > ?""", (token_hash(code), now))
    if row is None:
        return None
    spent = await c.execute("UPDATE join_codes SET used_at = ? WHERE code_hash = ? "
                            "AND used_at IS NULL", (now, row["code_hash"]))
    if spent != 1:
        return None
    node_id = uuid.uuid4().hex
    name = row["name"] or fallback_name
    tags = json.loads(row["tags"])
    await c.execute("INSERT INTO nodes (id, name, tags) VALUES (?, ?, ?)",
                    (node_id, name, json.dumps(tags)))
    if tags:
        await c.execute("UPDATE nodes SET tags_edited = ? WHERE id = ?",
                        (json.dumps(tags), node_id))
    token = new_token()
    credential = await create(c, "node", name, token, "join code", node_id=node_id)
    await c.execute("UPDATE join_codes SET credential_id = ? WHERE code_hash = ?",
                    (credential["id"], row["code_hash"]))
    return {**credential, "token": token}


# -- what a credential may touch ------------------------------------------------------
async def attempt_holder(c: Connection, attempt_id: str) -> tuple[bool, str | None]:
    """(whether a job has this attempt, the node holding it)."""
    row = await c.fetchone("SELECT node_id FROM jobs WHERE attempt_id = ?", (attempt_id,))
    return (row is not None, row["node_id"] if row else None)


async def node_leases_blob(c: Connection, node_id: str, sha256: str) -> bool:
    """Whether a job this node is rendering belongs to a shot that needs this file.
    `sha256` is 64 hex digits (checked by the caller), safe in a LIKE pattern."""
    return await c.fetchval(
        """SELECT 1 FROM jobs j JOIN shots s ON s.id = j.shot_id
           WHERE j.node_id = ? AND j.status = 'running' AND s.files LIKE ? LIMIT 1""",
        (node_id, f'%"{sha256}"%')) is not None


async def shot_owner(c: Connection, shot_id: int) -> str | None:
    """Who submitted the shot ('' for shots from before roles); None: no such shot."""
    row = await c.fetchone("SELECT submitted_by FROM shots WHERE id = ?", (shot_id,))
    return row["submitted_by"] if row else None
