"""The schema's history: SQLite's migration scripts, in order, and how they run.

`PRAGMA user_version` is the number of scripts a database has had; opening it runs
the rest, each in the opening write's transaction. Append only: a script that has
shipped is never changed, so every database upgrades through the same steps. These
are SQLite's scripts (`writable_schema` and other SQLite-only steps are among them);
a PostgreSQL backend keeps its own list, from today's schema on (dialect.py).
"""
from __future__ import annotations

from .connection import Connection

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
    # Issue 15: what a shot asks of its nodes (requirements, JSON: tags, device,
    # Blender range, the version the file was saved with) and how many may render it
    # at once; what a node offers (devices, Blender versions, its clock), the tags an
    # admin gave it (null: its own --tags) and when it may render.
    """
    ALTER TABLE shots ADD COLUMN requirements TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE shots ADD COLUMN max_nodes INTEGER;
    ALTER TABLE nodes ADD COLUMN devices TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE nodes ADD COLUMN blenders TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE nodes ADD COLUMN utc_offset INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE nodes ADD COLUMN tags_edited TEXT;
    ALTER TABLE nodes ADD COLUMN schedule TEXT;
    """,
    # Issue 18: roles. Credentials (node, artist, admin) kept as sha256 hashes of random
    # tokens; a node's credential names the node it is (`node_id`). One-time join
    # codes (hashed too) trade for a node credential. The audit log: who changed what,
    # when, from where.
    """
    CREATE TABLE credentials (
        id TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL,
        name TEXT NOT NULL,
        node_id TEXT,
        priority_cap INTEGER,
        created_by TEXT NOT NULL DEFAULT '',
        created_at DOUBLE PRECISION NOT NULL,
        revoked_at DOUBLE PRECISION
    );
    CREATE INDEX credentials_node ON credentials(node_id);
    CREATE TABLE join_codes (
        code_hash TEXT PRIMARY KEY,
        name TEXT NOT NULL DEFAULT '',
        tags TEXT NOT NULL DEFAULT '[]',
        created_by TEXT NOT NULL DEFAULT '',
        created_at DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL,
        used_at DOUBLE PRECISION,
        credential_id TEXT
    );
    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY,
        at DOUBLE PRECISION NOT NULL,
        actor TEXT NOT NULL,
        role TEXT NOT NULL,
        method TEXT NOT NULL,
        path TEXT NOT NULL,
        status INTEGER NOT NULL,
        address TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX audit_log_at ON audit_log(at);
    """,
    # Issue 17: frame checks (`suspicious`: why a frame looks wrong, null when it looks
    # fine; `rerendered_from`: the node whose suspicious frame was rendered again),
    # delivery to studio storage (a shot's output template under a named output root;
    # each frame's delivery state: null when none is asked, pending, delivered,
    # failed; the shot's failures and last reason), the node a re-render job must not
    # go to, and webhooks with their deliveries (text ids: portable, never reused).
    """
    ALTER TABLE frames ADD COLUMN suspicious TEXT;
    ALTER TABLE frames ADD COLUMN rerendered_from TEXT;
    ALTER TABLE frames ADD COLUMN delivery TEXT;
    ALTER TABLE frames ADD COLUMN delivery_error TEXT;
    ALTER TABLE shots ADD COLUMN output_template TEXT;
    ALTER TABLE shots ADD COLUMN output_root TEXT;
    ALTER TABLE shots ADD COLUMN rerender_suspicious INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE shots ADD COLUMN delivery_failures INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE shots ADD COLUMN delivery_error TEXT;
    ALTER TABLE jobs ADD COLUMN avoid_node TEXT;
    CREATE TABLE webhooks (
        id TEXT PRIMARY KEY,
        url TEXT NOT NULL,
        secret TEXT NOT NULL,
        events TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE webhook_deliveries (
        id TEXT PRIMARY KEY,
        webhook_id TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
        event TEXT NOT NULL,
        event_key TEXT NOT NULL,
        body TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        response_status INTEGER,
        last_error TEXT,
        next_attempt_at DOUBLE PRECISION,
        created_at DOUBLE PRECISION NOT NULL,
        delivered_at DOUBLE PRECISION
    );
    CREATE INDEX frames_undelivered ON frames (delivery)
        WHERE delivery = 'pending' OR delivery = 'failed';
    CREATE INDEX jobs_avoiding ON jobs (avoid_node) WHERE avoid_node IS NOT NULL;
    CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
    CREATE INDEX webhook_deliveries_of ON webhook_deliveries (webhook_id, created_at);
    CREATE UNIQUE INDEX webhook_deliveries_once ON webhook_deliveries (webhook_id, event_key);
    """,
    # A shot's next queued job, in (ordinal, id) order, straight from the index: SQLite's
    # indexes end in the rowid already; PostgreSQL sorted every queued job of the shot.
    """
    DROP INDEX jobs_queue;
    CREATE INDEX jobs_queue ON jobs (status, shot_id, ordinal, id);
    """,
    # A frame's neighbours for its size check (issue 17), straight from an index: the
    # primary key walked every frame not rendered yet after it (most of a shot).
    """
    CREATE INDEX frames_judged ON frames (shot_id, number)
        WHERE status = 'done' AND suspicious IS NULL;
    """,
    # The farm's dispatch generation (PostgreSQL only: pg_migrations.DISPATCH_GENERATION).
    # SQLite's claims read their shots in every transaction; nothing to do here.
    "",
]


async def migrate(c: Connection, scripts: list[str] = MIGRATIONS) -> int:
    """Run the scripts this database has not had; its schema version afterwards."""
    version = int(await c.fetchval(c.dialect.schema_version) or 0)
    for number, script in enumerate(scripts[version:], start=version + 1):
        for statement in _statements(script):
            await c.execute(statement)
        await c.execute(c.dialect.set_schema_version.format(version=number))
    return max(version, len(scripts))


def _statements(script: str) -> list[str]:
    """The script's statements; a `$$`-quoted body (a PostgreSQL function's) is one
    piece of its statement, whatever semicolons it holds."""
    pieces = script.split("$$")
    statements, current = [], ""
    for place, piece in enumerate(pieces):
        if place % 2:   # inside $$ ... $$
            current += "$$" + piece + "$$"
            continue
        first, *more = piece.split(";")
        if more:
            statements.append(current + first)
            *ended, current = more
            statements += ended
        else:
            current += first
    statements.append(current)
    return [s.strip() for s in statements if s.strip()]
