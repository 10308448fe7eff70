"""The database facade on a real PostgreSQL: the same contract as SQLite's, the
schema both databases reach, and what the URL of `--database` chooses."""
from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from coordinator.database import Database, open_database
from coordinator.pg_database import PostgresDatabase
from coordinator.store.connection import Connection
from coordinator.store.dialect import numbered
from coordinator.store.pg_migrations import (PG_ONLY_TABLES, POSTGRESQL_MIGRATIONS, SHOTS_UNWATCHED,
                                             SHOTS_WATCHED, migrate_postgresql)


async def make_table(c: Connection) -> None:
    await c.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")


async def insert(c: Connection, k: int, v: str) -> int:
    await c.execute("INSERT INTO t VALUES (?, ?)", (k, v))
    return k


async def insert_then_fail(c: Connection, k: int) -> None:
    await c.execute("INSERT INTO t VALUES (?, 'doomed')", (k,))
    raise LookupError(f"write {k} refused")


async def rows(c: Connection) -> list[tuple]:
    return [(r["k"], r["v"]) for r in await c.fetchall("SELECT k, v FROM t ORDER BY k")]


@pytest.fixture
async def pg(pg_url):
    db = PostgresDatabase(pg_url)
    await db.open()
    await db.write(make_table)
    yield db
    await db.close()


async def test_batched_writes_share_a_transaction_and_a_failing_one_undoes_only_itself(pg):
    before = pg.batches
    outcomes = await asyncio.gather(
        *(pg.write(insert_then_fail if k == 3 else insert, *((k,) if k == 3 else (k, f"v{k}")),
                   batched=True) for k in range(50)), return_exceptions=True)
    assert isinstance(outcomes[3], LookupError)
    assert [o for i, o in enumerate(outcomes) if i != 3] == [k for k in range(50) if k != 3]
    assert await pg.read(rows) == [(k, f"v{k}") for k in range(50) if k != 3]
    assert pg.batches - before <= 3


async def test_a_failing_write_leaves_nothing_and_the_next_one_goes_on(pg):
    with pytest.raises(LookupError):
        await pg.write(insert_then_fail, 1)
    assert await pg.write(insert, 2, "b") == 2
    assert await pg.read(rows) == [(2, "b")]
    assert [tuple(r) for r in await pg.fetchall("SELECT k FROM t WHERE v = ?", ["b"])] == [(2,)]


async def test_plain_functions_of_sqlites_connection_are_refused(pg):
    with pytest.raises(TypeError, match="store functions"):
        await pg.read(lambda c: c.execute("SELECT 1"))


async def test_migrating_again_changes_nothing(pg):
    assert await pg.write(migrate_postgresql) == len(POSTGRESQL_MIGRATIONS)
    assert await pg.fetchone("SELECT MAX(version) AS v FROM schema_version") is not None


async def columns(c: Connection, dialect: str) -> dict[str, list[str]]:
    if dialect == "sqlite":
        tables = [r["name"] for r in await c.fetchall(
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND name NOT LIKE 'sqlite_%'")]
        return {t: sorted(r["name"] for r in await c.fetchall(f"PRAGMA table_info({t})"))
                for t in tables}
    out: dict[str, list[str]] = {}
    for r in await c.fetchall("SELECT table_name, column_name FROM information_schema.columns "
                              "WHERE table_schema = 'public' AND table_name != 'schema_version'"):
        out.setdefault(r["table_name"], []).append(r["column_name"])
    return {t: sorted(cols) for t, cols in out.items()}


async def test_both_databases_have_the_same_tables_and_columns(pg_url, tmp_path):
    lite, post = Database(tmp_path / "s.db"), PostgresDatabase(pg_url)
    for db in (lite, post):
        await db.open()
    try:
        async def sqlite_columns(c: Connection) -> dict:
            return await columns(c, "sqlite")

        async def pg_columns(c: Connection) -> dict:
            return await columns(c, "postgresql")

        on_pg = await post.read(pg_columns)
        for table in PG_ONLY_TABLES:
            assert on_pg.pop(table), table
        assert on_pg == await lite.read(sqlite_columns)
        # Every column of shots either moves the dispatch generation or is named as
        # one that changes as frames land: a new column must choose.
        assert sorted(SHOTS_WATCHED + SHOTS_UNWATCHED) == on_pg["shots"]
    finally:
        await lite.close()
        await post.close()


def test_the_database_url_names_the_backend(tmp_path):
    assert isinstance(open_database("", tmp_path), Database)
    assert open_database("", tmp_path).path == tmp_path / "brender.db"
    assert open_database("sqlite:///rel/f.db", tmp_path).path == Path("rel/f.db")
    assert open_database("sqlite:////abs/f.db", tmp_path).path == Path("/abs/f.db")
    assert isinstance(open_database("postgresql://u@h/db", tmp_path), PostgresDatabase)
    with pytest.raises(ValueError, match="--database"):
        open_database("mysql://x", tmp_path)


@pytest.mark.parametrize("max_nodes", [None, 3])
async def test_two_coordinators_claiming_at_once_never_take_the_same_job(pg_url, max_nodes):
    """Nor more nodes than a capped shot allows: each counts after the other commits."""
    from coordinator.matching import offer_of
    from coordinator.store import claims as claim_sql
    from coordinator.store import nodes as node_sql
    from coordinator.store import shots as shot_sql
    from coordinator.validation import ShotSpec

    a, b = PostgresDatabase(pg_url), PostgresDatabase(pg_url)
    await a.open()
    await b.open()
    try:
        spec = ShotSpec(name="s", blend_path="a.blend",
                        files=[{"path": "a.blend", "sha256": "0" * 64, "size": 1}],
                        frame_start=1, frame_end=60, chunk_size=1)
        shot_id = await a.write(shot_sql.create, spec, [[n] for n in range(1, 61)])
        if max_nodes:
            await a.fetchall("UPDATE shots SET max_nodes = $1 WHERE id = $2 RETURNING id",
                             (max_nodes, shot_id))
        nodes = []
        for i in range(40):
            node = await a.write(node_sql.upsert, {
                "node_id": None, "name": f"n{i}", "hostname": "h", "platform": "p",
                "blender_version": "3.4.1", "cpu_count": 1, "tags": [],
                "allow_scripts": False})
            nodes.append((node["id"], offer_of(node)))

        async def claims(db: PostgresDatabase, mine: list) -> list:
            out = []
            for node in mine:   # one claim a transaction, both coordinators at once
                out += await db.write(claim_sql.claim_many, [node], 300.0, 2, 60.0, 40)
            return out

        # Four claimers on each coordinator's pool, all at once.
        got = await asyncio.gather(*(claims(db, nodes[i::8])
                                     for i, db in enumerate([a, b] * 4)))
        taken = [x for side in got for x in side if x is not None]
        claimed = max_nodes or 40
        assert len(taken) == claimed
        assert len({x.job["id"] for x in taken}) == claimed
        assert sorted(f for x in taken for f in x.frames) == list(range(1, claimed + 1))
    finally:
        await a.close()
        await b.close()


async def test_batches_of_records_side_by_side_count_each_frame_once(pg_url):
    """Frame records commit in batches, several batches at once; a shot's counters are
    added, and its NOTIFYs to peers sent, as each batch ends; a record that fails in
    its batch adds and tells nothing."""
    from coordinator.matching import offer_of
    from coordinator.store import claims as claim_sql
    from coordinator.store import frames as frame_sql
    from coordinator.store import nodes as node_sql
    from coordinator.store import shots as shot_sql
    from coordinator.validation import ShotSpec

    db = PostgresDatabase(pg_url)
    await db.open()
    try:
        spec = ShotSpec(name="s", blend_path="a.blend",
                        files=[{"path": "a.blend", "sha256": "0" * 64, "size": 1}],
                        frame_start=1, frame_end=40, chunk_size=40, chunk_mode="fixed")
        shot_id = await db.write(shot_sql.create, spec, [list(range(1, 41))])
        node = await db.write(node_sql.upsert, {
            "node_id": None, "name": "n", "hostname": "h", "platform": "p",
            "blender_version": "3.4.1", "cpu_count": 1, "tags": [], "allow_scripts": False})
        [claim] = await db.write(claim_sql.claim_many, [(node["id"], offer_of(node))],
                                 300.0, 2, 60.0, 1)

        def upload(number: int, attempt: str) -> frame_sql.Upload:
            return frame_sql.Upload(attempt, number, Path("x"), b"t", "jpg", None,
                                    "0" * 64, 10, 2.0, 64, 36)

        def place(shot: int, name: str, up: frame_sql.Upload) -> tuple[str, str, None]:
            return f"shots/{shot}/frames/{name}", f"shots/{shot}/thumbnails/{name}", None

        def news(frame: dict) -> tuple[str, str]:
            return "test_batch_news", str(frame["number"])

        async def told_then_undone(c, up, *args):
            await frame_sql.record_told(c, up, *args)
            raise LookupError("undone after its record")

        heard: list[str] = []
        listener = await asyncpg.connect(pg_url)
        await listener.add_listener("test_batch_news", lambda *a: heard.append(a[-1]))
        formats = {"PNG": "png"}
        records = [db.write(frame_sql.record_told, upload(n, claim.attempt_id), formats,
                            place, news, batched=True) for n in range(1, 40)]
        stale = [db.write(frame_sql.record_told, upload(n, "f" * 32), formats, place, news,
                          batched=True) for n in range(1, 5)]
        undone = db.write(told_then_undone, upload(40, claim.attempt_id), formats, place,
                          news, batched=True)
        done = await asyncio.gather(*records, *stale, undone, return_exceptions=True)
        assert all(isinstance(d, dict) for d in done[:39])
        assert all(isinstance(d, frame_sql.StaleAttempt) for d in done[39:43])
        assert isinstance(done[43], LookupError)
        assert db.batches < 44          # they were batched
        # Peers hear of each frame recorded, once; of the undone one and the stale
        # ones, nothing.
        for _ in range(100):
            if len(heard) >= 39:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)
        await listener.close()
        assert sorted(heard, key=int) == [str(n) for n in range(1, 40)]
        await db.write(frame_sql.record, upload(40, claim.attempt_id), formats, place)
        [shot] = await db.fetchall("SELECT frames_done, render_time_count, render_time_sum "
                                   "FROM shots WHERE id = $1", (shot_id,))
        assert (shot["frames_done"], shot["render_time_count"]) == (40, 40)
        assert shot["render_time_sum"] == pytest.approx(80.0)
    finally:
        await db.close()


async def test_a_new_big_shot_does_not_make_each_claim_batch_read_every_job(pg_url):
    """The check each claim batch makes (a re-render some node must avoid?) is planned
    once, when the farm is empty. A big shot renders at once, before autovacuum counts
    its rows: the check must still read the small partial index, not every job."""
    from coordinator.store import claims as claim_sql
    from coordinator.store import shots as shot_sql
    from coordinator.validation import ShotSpec

    db = PostgresDatabase(pg_url)
    await db.open()
    conn = await asyncpg.connect(pg_url)
    try:
        # As a coordinator's pool does: one plan, made on the farm still empty.
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        await conn.execute("PREPARE shots_to_all AS " + numbered(
            claim_sql.DISPATCHABLE.format(also=f", ({claim_sql.ANY_BLOCKLIST}) AS x")))
        assert await conn.fetch("EXECUTE shots_to_all('', 2)") == []
        jobs = shot_sql.ANALYZE_AFTER_JOBS
        spec = ShotSpec(name="big", blend_path="a.blend",
                        files=[{"path": "a.blend", "sha256": "0" * 64, "size": 1}],
                        frame_start=1, frame_end=jobs, chunk_size=1)
        await db.write(shot_sql.create, spec, [[n] for n in range(1, jobs + 1)])
        plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN EXECUTE shots_to_all('', 2)"))
        assert "jobs_avoiding" in plan and "Seq Scan on jobs" not in plan
        [shot] = await db.read(claim_sql.dispatchable_to_all, 2)
        assert shot["name"] == "big" and "x" not in shot and "sets_apart" not in shot
    finally:
        await conn.close()
        await db.close()
