"""`brender-coordinator token ...` and `brender-coordinator join-code ...` (issue 18):
make, list and revoke credentials and make join codes straight in a data dir's
database, while the coordinator runs or not. A running coordinator finds a new
credential on its first use and a revoked one within seconds (it looks for
revocations: credentials.watch_revocations), then closes what it still holds."""
from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

from brender_protocol import requirements

from .database import Database
from .store import credentials as credential_sql

COMMANDS = ("token", "join-code")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="brender-coordinator", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    token = sub.add_parser("token", help="artist and admin tokens")
    token_sub = token.add_subparsers(dest="action", required=True)
    create = token_sub.add_parser("create", help="make a token; it is printed once")
    create.add_argument("--role", choices=("artist", "admin"), required=True)
    create.add_argument("--name", required=True, help="who holds it, e.g. anna")
    create.add_argument("--priority-cap", type=int, choices=range(0, 101), metavar="0-100",
                        help="an artist's highest shot priority")
    create.add_argument("--data-dir", default="brender-data")
    listing = token_sub.add_parser("list", help="every credential (never the tokens)")
    listing.add_argument("--data-dir", default="brender-data")
    revoke = token_sub.add_parser(
        "revoke", help="revoke a credential: an artist's, an admin's or a node's")
    revoke.add_argument("who", help="the credential's id, a node's id, or a name (an "
                                    "artist's, a node's) that one live credential has")
    revoke.add_argument("--data-dir", default="brender-data")
    join = sub.add_parser("join-code", help="a one-time code a node joins the farm with")
    join.add_argument("--name", default="", help="the node's name (default: its own)")
    join.add_argument("--tags", default="", help="comma-separated tags the node gets")
    join.add_argument("--expires-in", type=float, default=86400.0,
                      help="seconds the code stays good (default one day)")
    join.add_argument("--data-dir", default="brender-data")
    return p.parse_args(argv)


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    print(asyncio.run(_run(args)))


async def _run(args: argparse.Namespace) -> str:
    db = Database(Path(args.data_dir).resolve() / "brender.db")
    await db.open()
    try:
        if args.command == "join-code":
            code = credential_sql.new_token(18)
            tags = requirements.parse_tags(args.tags, "tags")
            await db.write(credential_sql.create_join_code, code, args.name, tags, "cli",
                           time.time() + args.expires_in)
            return f"Join code (good once, for {args.expires_in:.0f} s):\n  {code}\n" \
                   f"On the node: brender-node --join {code} --coordinator URL"
        if args.action == "create":
            token = credential_sql.new_token()
            made = await db.write(credential_sql.create, args.role, args.name, token, "cli",
                                  None, args.priority_cap)
            return f"{args.role} token for {args.name} (id {made['id']}; shown once):\n  {token}"
        if args.action == "revoke":
            return await _revoke(db, args.who)
        return json.dumps(await db.read(credential_sql.list_all), indent=2)
    finally:
        await db.close()


async def _revoke(db: Database, who: str) -> str:
    found = await db.read(credential_sql.live_matching, who)
    if not found:
        raise SystemExit(f"brender-coordinator token revoke: no live credential is {who!r} "
                         "(see: brender-coordinator token list)")
    if len(found) > 1:
        ids = ", ".join(f"{c['id']} ({c['role']})" for c in found)
        raise SystemExit(f"brender-coordinator token revoke: {len(found)} live credentials "
                         f"are {who!r}; give one id: {ids}")
    revoked = await db.write(credential_sql.revoke, found[0]["id"])
    node = f", node {revoked['node_id']}" if revoked["node_id"] else ""
    return (f"Revoked the {revoked['role']} credential of {revoked['name']} "
            f"(id {revoked['id']}{node}). A running coordinator closes its channels and "
            "event streams within seconds.")
