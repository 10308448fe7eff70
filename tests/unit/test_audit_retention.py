"""The audit log keeps `--audit-days` days: the store's prune (SQLite and PostgreSQL),
the duty that runs it on the coordinator holding the farm's duties, and the flag."""
from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest

from coordinator import app as app_module
from coordinator import cli, keys
from coordinator.app import create_app, prune_audit_log
from coordinator.config import Config
from coordinator.database import open_database
from coordinator.store import audit as audit_sql
from tests.unit.roles_kit import ADMIN, TOKEN

DAY = 86400.0


async def paths(db) -> list[str]:
    return sorted(e["path"] for e in await db.read(audit_sql.recent, 1000))


async def record(db, at: float, path: str) -> None:
    await db.write(audit_sql.record_many, [(at, "anna", "artist", "POST", path, 200, "10.0.0.1")])


@pytest.mark.usefixtures("backend")
async def test_rows_written_together_each_land_whole(tmp_path, backend):
    """The rows of calls answered together are one statement (on PostgreSQL, with no
    transaction around it): every row lands with its own fields, in order."""
    db = open_database(backend, tmp_path)
    await db.open()
    try:
        rows = [(1000.0 + i, f"who{i}", "artist", "POST", f"/api/x/{i}", 200 + i, "10.0.0.9")
                for i in range(3)]
        await db.write(audit_sql.record_many, rows)
        await db.write(audit_sql.record_many, rows[:1])
        entries = sorted(await db.read(audit_sql.recent, 10), key=lambda e: e["id"])
        assert [(e["at"], e["actor"], e["role"], e["method"], e["path"], e["status"],
                 e["address"]) for e in entries] == rows + rows[:1]
    finally:
        await db.close()


@pytest.mark.usefixtures("backend")
async def test_prune_removes_only_entries_older_than_the_cutoff_in_short_writes(
        tmp_path, backend, monkeypatch):
    db = open_database(backend, tmp_path)
    await db.open()
    try:
        now = time.time()
        for i in range(5):
            await record(db, now - 100 * DAY - i, f"/old/{i}")
        await record(db, now - 89 * DAY, "/recent")
        await record(db, now, "/now")
        assert await db.write(audit_sql.prune, now - 90 * DAY, 2) == 2   # the oldest two
        assert await paths(db) == ["/now", "/old/0", "/old/1", "/old/2", "/recent"]
        monkeypatch.setattr(audit_sql, "PRUNE_BATCH", 2)
        assert await prune_audit_log(db, now - 90 * DAY) == 3
        assert await paths(db) == ["/now", "/recent"]
        assert await prune_audit_log(db, now - 90 * DAY) == 0
    finally:
        await db.close()


async def test_the_duty_holder_prunes_the_log_and_the_api_shows_what_is_left(
        tmp_path, aiohttp_client):
    client = await aiohttp_client(create_app(
        Config(data_dir=tmp_path / "data", audit_days=30, audit_prune_seconds=0.05), TOKEN))
    db = client.server.app[keys.DB]
    await record(db, time.time() - 31 * DAY, "/api/shots/1/pause")
    await record(db, time.time() - 29 * DAY, "/api/shots/2/pause")

    async def pruned() -> None:
        while "/api/shots/1/pause" in await paths(db):
            await asyncio.sleep(0.05)
    await asyncio.wait_for(pruned(), 10)
    entries = (await (await client.get("/api/audit", headers=ADMIN)).json())["entries"]
    assert [e["path"] for e in entries] == ["/api/shots/2/pause"]


async def test_a_coordinator_without_the_duties_leaves_the_log_alone(tmp_path):
    db = open_database("", tmp_path)
    await db.open()
    link = SimpleNamespace(holds_duties=False)
    duty = asyncio.create_task(app_module._prune_audit_log(
        db, Config(data_dir=tmp_path, audit_days=1, audit_prune_seconds=0.02), link))
    try:
        await record(db, time.time() - 2 * DAY, "/old")
        await asyncio.sleep(0.3)            # many rounds: none of them this one's to do
        assert await paths(db) == ["/old"]
        link.holds_duties = True            # the duties passed to it

        async def pruned() -> None:
            while await paths(db):
                await asyncio.sleep(0.02)
        await asyncio.wait_for(pruned(), 10)
    finally:
        duty.cancel()
        await asyncio.gather(duty, return_exceptions=True)
        await db.close()


@pytest.mark.parametrize("days", ["-1", "36501", "ninety", "1.5"])
def test_audit_days_must_be_whole_days(days, capsys):
    with pytest.raises(SystemExit):
        cli.parse_args(["--audit-days", days])
    assert "--audit-days: must be a whole number of days" in capsys.readouterr().err


def test_audit_days_defaults_to_90_and_0_keeps_everything():
    assert cli.parse_args([]).audit_days == 90 == Config().audit_days
    assert cli.parse_args(["--audit-days", "0"]).audit_days == 0
