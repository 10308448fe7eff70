"""The one facade around SQLite: migrations, reads, and a single write path."""
from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

import aiosqlite

T = TypeVar("T")

MIGRATIONS: list[str] = [
    # 1: the frame model from the architecture document, plus jobs and nodes.
    """
    CREATE TABLE shots (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        status TEXT NOT NULL,
        priority INTEGER NOT NULL,
        blend_path TEXT NOT NULL,
        files TEXT NOT NULL,
        frame_start INTEGER NOT NULL,
        frame_end INTEGER NOT NULL,
        frame_step INTEGER NOT NULL,
        chunk_size INTEGER NOT NULL,
        output_format TEXT NOT NULL,
        resolution_percentage INTEGER NOT NULL,
        fps REAL NOT NULL,
        submitted_by TEXT NOT NULL DEFAULT '',
        allow_scripts INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL,
        failure_reason TEXT
    );
    CREATE TABLE nodes (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        hostname TEXT NOT NULL DEFAULT '',
        platform TEXT NOT NULL DEFAULT '',
        blender_version TEXT NOT NULL DEFAULT '',
        cpu_count INTEGER NOT NULL DEFAULT 0,
        tags TEXT NOT NULL DEFAULT '[]',
        allow_scripts INTEGER NOT NULL DEFAULT 0,
        enabled INTEGER NOT NULL DEFAULT 1,
        connected_at REAL,
        last_seen REAL
    );
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY,
        shot_id INTEGER NOT NULL REFERENCES shots(id) ON DELETE CASCADE,
        ordinal INTEGER NOT NULL,
        status TEXT NOT NULL,
        frames TEXT NOT NULL,
        node_id TEXT REFERENCES nodes(id) ON DELETE SET NULL,
        attempt_id TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        failures INTEGER NOT NULL DEFAULT 0,
        lease_expires REAL,
        started_at REAL,
        finished_at REAL,
        failure_reason TEXT,
        log_tail TEXT
    );
    CREATE INDEX jobs_queue ON jobs(status, shot_id, ordinal);
    CREATE INDEX jobs_shot ON jobs(shot_id, ordinal);
    CREATE UNIQUE INDEX jobs_attempt ON jobs(attempt_id);
    CREATE TABLE frames (
        shot_id INTEGER NOT NULL REFERENCES shots(id) ON DELETE CASCADE,
        number INTEGER NOT NULL,
        job_id INTEGER REFERENCES jobs(id) ON DELETE SET NULL,
        status TEXT NOT NULL,
        name TEXT,
        path TEXT,
        preview_path TEXT,
        thumbnail_path TEXT,
        node_id TEXT,
        attempt_id TEXT,
        rendered_at REAL,
        render_time REAL,
        size INTEGER,
        sha256 TEXT,
        width INTEGER,
        height INTEGER,
        PRIMARY KEY (shot_id, number)
    ) WITHOUT ROWID;
    CREATE INDEX frames_latest ON frames(rendered_at) WHERE rendered_at IS NOT NULL;
    CREATE TABLE blocklist (
        shot_id INTEGER NOT NULL REFERENCES shots(id) ON DELETE CASCADE,
        node_id TEXT NOT NULL,
        failures INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (shot_id, node_id)
    ) WITHOUT ROWID;
    """,
    # 2: progress counters kept on the shot, so listings and the scheduler never
    # count a 10,000-frame shot's rows; indexes for the per-status counts.
    """
    ALTER TABLE shots ADD COLUMN frames_total INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE shots ADD COLUMN frames_done INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE shots ADD COLUMN render_time_sum REAL NOT NULL DEFAULT 0;
    ALTER TABLE shots ADD COLUMN render_time_count INTEGER NOT NULL DEFAULT 0;
    UPDATE shots SET
        frames_total = (SELECT COUNT(*) FROM frames f WHERE f.shot_id = shots.id),
        frames_done = (SELECT COUNT(*) FROM frames f WHERE f.shot_id = shots.id
                       AND f.status = 'done'),
        render_time_sum = COALESCE((SELECT SUM(render_time) FROM frames f
                                    WHERE f.shot_id = shots.id AND f.status = 'done'), 0),
        render_time_count = (SELECT COUNT(render_time) FROM frames f
                             WHERE f.shot_id = shots.id AND f.status = 'done');
    CREATE INDEX frames_status ON frames(shot_id, status);
    CREATE INDEX jobs_shot_status ON jobs(shot_id, status);
    CREATE INDEX jobs_node ON jobs(node_id) WHERE status = 'running';
    CREATE INDEX shots_status ON shots(status, priority);
    """,
    # 3: a job's frames are looked up on every claim, upload and report. jobs_queue
    # (status, shot_id, ordinal) already serves per-shot status counts and keeps the
    # queue in order; a second index made the planner sort the whole queue.
    """
    CREATE INDEX frames_job ON frames(job_id, status);
    DROP INDEX jobs_shot_status;
    """,
    # 4: thumbnails are kept with the frame's record, not as files: written in the
    # same transaction, and a frame costs one new file (an inode) instead of two.
    # Thumbnails made before this stay files and are still served from disk.
    """
    CREATE TABLE thumbnails (
        shot_id INTEGER NOT NULL REFERENCES shots(id) ON DELETE CASCADE,
        number INTEGER NOT NULL,
        media_type TEXT NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (shot_id, number)
    );
    """,
    # Extra outputs of a frame (File Output nodes' files, multiview views), one row
    # each; its thumbnail kept in the row like a frame's.
    """
    CREATE TABLE frame_outputs (
        id INTEGER PRIMARY KEY,
        shot_id INTEGER NOT NULL REFERENCES shots(id) ON DELETE CASCADE,
        number INTEGER NOT NULL,
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        format TEXT NOT NULL,
        path TEXT NOT NULL,
        size INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        width INTEGER,
        height INTEGER,
        thumbnail BLOB,
        thumbnail_type TEXT,
        preview_path TEXT,
        attempt_id TEXT NOT NULL,
        created_at REAL NOT NULL,
        UNIQUE (shot_id, number, kind, name)
    );
    """,
    # Shot, job and output ids are never reused: a deleted shot's id given to the next shot
    # served that shot's frames under the deleted one's cacheable URLs, and nodes cache
    # by shot id. Not a table rebuild (dropping `shots` cascades to every table that
    # references it, and a rebuild would drop columns that other migrations add): the id
    # columns' declarations gain AUTOINCREMENT (the tables' b-trees stay as they are;
    # RESET makes this connection read the schema again) and each sequence starts at
    # the largest id in use. The CREATE makes `sqlite_sequence` if it does not exist yet.
    """
    PRAGMA writable_schema = ON;
    UPDATE sqlite_master
        SET sql = replace(sql, 'id INTEGER PRIMARY KEY,', 'id INTEGER PRIMARY KEY AUTOINCREMENT,')
        WHERE type = 'table' AND name IN ('shots', 'jobs', 'frame_outputs');
    PRAGMA writable_schema = RESET;
    CREATE TABLE ids_never_reused (id INTEGER PRIMARY KEY AUTOINCREMENT);
    DROP TABLE ids_never_reused;
    INSERT INTO sqlite_sequence (name, seq)
        SELECT 'shots', (SELECT COALESCE(MAX(id), 0) FROM shots)
        WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'shots');
    INSERT INTO sqlite_sequence (name, seq)
        SELECT 'jobs', (SELECT COALESCE(MAX(id), 0) FROM jobs)
        WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'jobs');
    INSERT INTO sqlite_sequence (name, seq)
        SELECT 'frame_outputs', (SELECT COALESCE(MAX(id), 0) FROM frame_outputs)
        WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'frame_outputs');
    """,
    # Issue 13: the file's own settings are the default. A shot keeps the overrides
    # asked for (`render`, JSON) instead of a format and resolution that every shot
    # had; shots from before keep theirs as overrides, which is what they rendered
    # with. chunk_size is null for adaptive shots (all shots before were adaptive);
    # frames of a job that failed for good say why.
    """
    ALTER TABLE shots ADD COLUMN render TEXT NOT NULL DEFAULT '{}';
    UPDATE shots SET render = json_object('output_format', output_format,
                                          'resolution_percentage', resolution_percentage);
    ALTER TABLE shots DROP COLUMN output_format;
    ALTER TABLE shots DROP COLUMN resolution_percentage;
    ALTER TABLE shots DROP COLUMN chunk_size;
    ALTER TABLE shots ADD COLUMN chunk_size INTEGER;
    ALTER TABLE shots ADD COLUMN chunk_mode TEXT NOT NULL DEFAULT 'auto';
    ALTER TABLE shots ADD COLUMN frames_text TEXT;
    ALTER TABLE shots ADD COLUMN missing TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE shots ADD COLUMN settings_used TEXT;
    ALTER TABLE frames ADD COLUMN failure_reason TEXT;
    UPDATE frames SET status = 'failed',
        failure_reason = (SELECT j.failure_reason FROM jobs j WHERE j.id = frames.job_id)
        WHERE status IN ('queued', 'rendering')
          AND job_id IN (SELECT id FROM jobs WHERE status = 'failed');
    """,
]


def slow(fn: Callable[..., T]) -> Callable[..., T]:
    """Marks a store function that may touch a whole shot's rows (create, delete,
    cancel): `Database.write` runs it on a worker thread instead of the event loop."""
    fn.slow = True  # type: ignore[attr-defined]
    return fn


class Database:
    """The one facade around SQLite. Store functions are plain synchronous functions of
    a `sqlite3.Connection`; `write` runs one as a transaction, `read` runs one on a
    reading connection's thread (aiosqlite), which never blocks the writer in WAL mode.

    Writes run on the event loop itself, one connection, one at a time. A write on
    the per-frame path takes 0.1-0.3 ms of SQLite; handing it to a database thread
    cost more than that, mostly waiting for the GIL and a CPU. When the connection is
    free a write runs at once, in the caller's turn of the loop: a node asking for a
    job gets it without waiting for a batch (docs/performance.md). Writes that ask to
    be batched (frame records), and any asked while the connection is lent to a
    worker thread (a `@slow` whole-shot write), queue for the writer task and go
    together: one BEGIN IMMEDIATE ... COMMIT with a savepoint each, so one failing
    write rolls back only itself. The writing connection never checkpoints by
    itself (a checkpoint syncs the disk): a second connection copies the WAL into the
    database file from a worker thread, at most once a second, while writes go on.
    """

    MAX_BATCH = 64          # the longest the loop is held by one batch: ~10-20 ms
    CHECKPOINT_SECONDS = 1.0

    def __init__(self, path: Path):
        self.path = path
        self._conn: aiosqlite.Connection | None = None
        self._bulk: aiosqlite.Connection | None = None
        self._writer_conn: sqlite3.Connection | None = None
        self._queue: deque[tuple[Callable[..., Any], tuple, asyncio.Future]] = deque()
        self._writer: asyncio.Task | None = None
        self._last_checkpoint = 0.0
        self._lent = False  # a worker thread has the writing connection
        self._checkpointer: asyncio.Task | None = None
        self._checkpoint_conn: sqlite3.Connection | None = None
        self._checkpoint_timer: asyncio.TimerHandle | None = None
        # Batches committed and writes in them, for benchmarks and tests.
        self.batches = 0
        self.batched_writes = 0

    async def open(self) -> None:
        # check_same_thread=False: a slow write borrows it on a worker thread while
        # every other write waits, so one thread at a time uses it.
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        for pragma in ("journal_mode=WAL", "foreign_keys=ON", "synchronous=NORMAL",
                       "busy_timeout=5000", "temp_store=MEMORY", "cache_size=-32000",
                       "wal_autocheckpoint=0"):
            conn.execute(f"PRAGMA {pragma}")
        self._writer_conn = conn
        await self.write(_migrate)
        self._checkpoint_conn = sqlite3.connect(self.path, isolation_level=None,
                                                check_same_thread=False)
        self._conn = await self._reader()
        # Big listings (a 100,000-frame shot's frames, page after page) read on a
        # connection and thread of their own: the quick reads never queue behind them.
        self._bulk = await self._reader()
        await self.read_bulk(_background_thread)

    async def _reader(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        conn.row_factory = sqlite3.Row
        for pragma in ("query_only=ON", "busy_timeout=5000", "temp_store=MEMORY",
                       "cache_size=-32000"):
            await conn.execute(f"PRAGMA {pragma}")
        return conn

    async def close(self) -> None:
        if self._checkpoint_timer is not None:
            self._checkpoint_timer.cancel()
            self._checkpoint_timer = None
        await asyncio.gather(*(t for t in (self._writer, self._checkpointer) if t),
                             return_exceptions=True)
        if self._checkpoint_conn is not None:
            self._checkpoint_conn.close()
            self._checkpoint_conn = None
        for reader in (self._conn, self._bulk):
            if reader is not None:
                await reader.close()
        self._conn = self._bulk = None
        if self._writer_conn is not None:
            conn, self._writer_conn = self._writer_conn, None
            await asyncio.to_thread(_close_writer, conn)

    @property
    def conn(self) -> aiosqlite.Connection:
        assert self._conn is not None, "database is not open"
        return self._conn

    async def write(self, fn: Callable[..., T], *args: Any, batched: bool = False) -> T:
        """Run `fn(connection, *args)` as one transaction (or savepoint of a group).

        `batched=True`: wait for the writer task, which commits every write queued
        meanwhile in one transaction. A commit writes each changed page to the WAL
        (~11 pages for a frame's record, ~90 us); records of frames arriving together
        share theirs. Writes that someone is waiting on (a node's next job) are not
        batched: they run at once, ahead of the queued ones, which are independent."""
        if not batched and not self._lent and not _is_slow(fn):
            # The connection is free: write now, on the caller's turn of the loop.
            ok, value = _run_batch(self._connection(), [(fn, args)])[0]
            self.batches += 1
            self.batched_writes += 1
            self._maybe_checkpoint()
            if ok:
                return value
            raise value
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._queue.append((fn, args, future))
        self._start_writer()
        return await future

    def _connection(self) -> sqlite3.Connection:
        assert self._writer_conn is not None, "database is not open"
        return self._writer_conn

    def _start_writer(self) -> None:
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="db-writer")

    def _maybe_checkpoint(self) -> None:
        """Copy the WAL into the database file at most once a second, on a worker
        thread with a connection of its own: writers go on meanwhile. The last writes
        of a burst are copied a second later: until a WAL is copied whole, every read
        looks its pages up in the WAL's index first."""
        if self._checkpoint_conn is None:
            return
        wait = self._last_checkpoint + self.CHECKPOINT_SECONDS - time.monotonic()
        busy = self._checkpointer is not None and not self._checkpointer.done()
        if wait > 0 or busy:
            if self._checkpoint_timer is None:
                self._checkpoint_timer = asyncio.get_running_loop().call_later(
                    max(wait, 0.1), self._checkpoint_later)
            return
        self._last_checkpoint = time.monotonic()
        self._checkpointer = asyncio.create_task(
            asyncio.to_thread(_checkpoint, self._checkpoint_conn), name="db-checkpoint")

    def _checkpoint_later(self) -> None:
        self._checkpoint_timer = None
        self._maybe_checkpoint()

    async def _drain(self) -> None:
        conn = self._connection()
        while self._queue:
            await self._run_queued(conn)
            self._maybe_checkpoint()
            await asyncio.sleep(0)  # let the loop serve others between batches

    async def _lend(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn` on a worker thread with the writing connection; writes asked for
        meanwhile queue up and go together afterwards."""
        self._lent = True
        try:
            return await asyncio.to_thread(fn, *args)
        finally:
            self._lent = False

    async def _run_queued(self, conn: sqlite3.Connection) -> None:
        # A slow write goes alone; quick ones go together, up to MAX_BATCH.
        slow = _is_slow(self._queue[0][0])
        batch = [self._queue.popleft()]
        while not slow and self._queue and len(batch) < self.MAX_BATCH \
                and not _is_slow(self._queue[0][0]):
            batch.append(self._queue.popleft())
        calls = [(fn, args) for fn, args, _ in batch]
        try:
            if slow:
                outcomes = await self._lend(_run_batch, conn, calls)
            else:
                outcomes = _run_batch(conn, calls)
        except BaseException as exc:  # the connection itself failed or was closed
            outcomes = [(False, exc)] * len(batch)
        self.batches += 1
        self.batched_writes += len(batch)
        for (_, _, future), (ok, value) in zip(batch, outcomes):
            if future.done():  # its caller gave up; the write happened anyway
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        # aiosqlite runs every call on its own thread, in order; `_execute` hands it a
        # whole function rather than one statement (aiosqlite is pinned in pyproject).
        return await self.conn._execute(fn, self.conn._conn, *args)

    async def read_bulk(self, fn: Callable[..., T], *args: Any) -> T:
        """`read` on the big listings' own connection."""
        assert self._bulk is not None, "database is not open"
        return await self._bulk._execute(fn, self._bulk._conn, *args)

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        return list(await self.conn.execute_fetchall(sql, tuple(params)))

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        async with self.conn.execute(sql, tuple(params)) as cur:
            return await cur.fetchone()


def _background_thread(conn: sqlite3.Connection) -> None:
    """The big listings' thread yields the CPU to the event loop (Linux: per thread)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 5)
    except (AttributeError, OSError):
        pass


def _is_slow(fn: Callable[..., Any]) -> bool:
    return getattr(fn, "slow", False)


def _checkpoint(conn: sqlite3.Connection) -> None:
    """Copy committed pages from the WAL into the database file (never waits for
    readers; what they still use is copied next time)."""
    try:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    except sqlite3.Error:
        pass  # disk full or busy: the WAL keeps the data; the next one tries again


def _close_writer(conn: sqlite3.Connection) -> None:
    _checkpoint(conn)
    conn.close()


def _run_batch(conn: sqlite3.Connection,
               calls: list[tuple[Callable[..., Any], tuple]]) -> list[tuple[bool, Any]]:
    """Run each call in a savepoint of one transaction; (ok, result or exception) each."""
    outcomes: list[tuple[bool, Any]] = []
    first = 0  # the first call of the transaction now open
    try:
        for i, (fn, args) in enumerate(calls):
            if not conn.in_transaction:
                conn.execute("BEGIN IMMEDIATE")
                first = i
            # A write alone in its transaction needs no savepoint: ROLLBACK undoes it.
            alone = len(calls) == 1
            if not alone:
                conn.execute("SAVEPOINT call")
            try:
                value = fn(conn, *args)
                if not alone:
                    conn.execute("RELEASE call")
                outcomes.append((True, value))
            except Exception as exc:
                if conn.in_transaction and alone:
                    conn.execute("ROLLBACK")
                elif conn.in_transaction:
                    conn.execute("ROLLBACK TO call")
                    conn.execute("RELEASE call")
                else:
                    # SQLite rolled the whole transaction back (disk full, I/O error):
                    # the calls before this one in it are undone too.
                    _undo(outcomes, first, exc)
                outcomes.append((False, exc))
        if conn.in_transaction:
            try:
                conn.execute("COMMIT")
            except Exception as exc:
                # A failed COMMIT (disk full) leaves the transaction open.
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                _undo(outcomes, first, exc)
    except BaseException:
        # Not a store error: leave no transaction open behind us.
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return outcomes


def _undo(outcomes: list[tuple[bool, Any]], first: int, exc: Exception) -> None:
    for j in range(first, len(outcomes)):
        if outcomes[j][0]:
            outcomes[j] = (False, exc)


def _migrate(conn: sqlite3.Connection) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        for statement in _statements(script):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version={number}")


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]
