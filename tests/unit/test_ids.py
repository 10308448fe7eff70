"""Shot and job ids are never given twice, so what a URL or a node's cache names by id
never changes; a deleted shot's files are gone before the delete is answered."""
from __future__ import annotations

import asyncio
import hashlib
import io
import shutil
import sqlite3
import threading

import pytest
from PIL import Image

from coordinator import keys, storage
from coordinator.app import create_app
from coordinator.config import Config
from coordinator.database import Database
from coordinator.store.migrations import MIGRATIONS, _statements
from coordinator.storage import Storage
from tests.unit.test_api import AUTH, TOKEN, create_shot, node_hello

# Every test runs on SQLite and on PostgreSQL.
pytestmark = pytest.mark.usefixtures("backend")


@pytest.fixture
async def api(aiohttp_client, tmp_path):
    app = create_app(Config(data_dir=tmp_path / "data", lease_timeout=30), TOKEN)
    return await aiohttp_client(app)


def png(color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 18), color).save(buf, "PNG")
    return buf.getvalue()


async def jobs_of(api, shot_id: int) -> list[dict]:
    return (await (await api.get(f"/api/shots/{shot_id}/jobs")).json())["jobs"]


async def render_first_frame(api, shot: dict, image: bytes) -> dict:
    """A node takes the shot's job and uploads frame 1; returns the frame's record."""
    ws = await api.ws_connect("/api/node/ws", headers=AUTH)
    await node_hello(ws)
    await ws.send_json({"type": "ready"})
    job = (await ws.receive_json(timeout=5))["job"]
    assert job["shot_id"] == shot["id"]
    resp = await api.put(f"/api/attempts/{job['attempt_id']}/frames/1", data=image,
                         headers={**AUTH, "X-Sha256": hashlib.sha256(image).hexdigest()})
    assert resp.status == 201, await resp.text()
    await ws.close()
    frames = (await (await api.get(f"/api/shots/{shot['id']}/frames")).json())["frames"]
    return frames[0]


async def test_the_ids_of_a_deleted_shot_and_its_jobs_are_never_given_again(api):
    first = await create_shot(api)
    first_jobs = {j["id"] for j in await jobs_of(api, first["id"])}
    assert (await api.delete(f"/api/shots/{first['id']}", headers=AUTH)).status == 200
    second = await create_shot(api)
    assert second["id"] > first["id"]
    assert min(j["id"] for j in await jobs_of(api, second["id"])) > max(first_jobs)


async def test_a_new_shot_never_shows_a_deleted_shots_images(api):
    """Thumbnails are served as immutable: the bytes behind a URL must never change."""
    first = await create_shot(api, frame_end=1, chunk_size=1)
    old = await render_first_frame(api, first, png((200, 40, 40)))
    old_thumbnail = await (await api.get(old["thumbnail_url"])).read()
    await api.delete(f"/api/shots/{first['id']}", headers=AUTH)
    second = await create_shot(api, frame_end=1, chunk_size=1)
    new = await render_first_frame(api, second, png((40, 40, 200)))
    assert new["thumbnail_url"] != old["thumbnail_url"]
    assert new["image_url"] != old["image_url"]
    for url in (old["thumbnail_url"], old["image_url"]):
        assert (await api.get(url)).status == 404
    assert await (await api.get(new["thumbnail_url"])).read() != old_thumbnail


@pytest.fixture
def slow_rmtree(monkeypatch):
    """File removal that waits for the test's word: a delete caught in the middle."""
    entered, go = threading.Event(), threading.Event()
    real = shutil.rmtree

    def rmtree(path, *args, **kwargs):
        entered.set()
        go.wait(10)
        real(path, *args, **kwargs)

    monkeypatch.setattr(storage.shutil, "rmtree", rmtree)
    yield entered, go
    go.set()


async def test_a_delete_racing_a_submit_loses_no_acknowledged_frame(api, slow_rmtree):
    entered, go = slow_rmtree
    doomed = await create_shot(api, frame_end=1, chunk_size=1)
    await render_first_frame(api, doomed, png((200, 40, 40)))
    deleting = asyncio.ensure_future(api.delete(f"/api/shots/{doomed['id']}", headers=AUTH))
    assert await asyncio.to_thread(entered.wait, 5), "the delete removes files"
    # While the deleted shot's files are being removed, a new shot renders a frame.
    image = png((40, 200, 40))
    fresh = await create_shot(api, frame_end=1, chunk_size=1)
    frame = await render_first_frame(api, fresh, image)
    go.set()
    assert (await deleting).status == 200
    frame = (await (await api.get(f"/api/shots/{fresh['id']}/frames")).json())["frames"][0]
    assert frame["status"] == "done"
    resp = await api.get(frame["image_url"])
    assert resp.status == 200 and await resp.read() == image


async def test_a_deleted_shots_folder_is_gone_when_the_delete_is_answered(api, slow_rmtree):
    shot = await create_shot(api, frame_end=1, chunk_size=1)
    await render_first_frame(api, shot, png((200, 40, 40)))
    data_dir = api.server.app[keys.CONFIG].data_dir
    assert (data_dir / "shots" / str(shot["id"])).is_dir()
    # The files are still being removed (rmtree is held), yet the folder is out of reach.
    assert (await api.delete(f"/api/shots/{shot['id']}", headers=AUTH)).status == 200
    assert not (data_dir / "shots" / str(shot["id"])).exists()


def test_the_trash_is_emptied_at_start(tmp_path):
    left = tmp_path / "data" / "trash" / "shot-7-abc" / "frames"
    left.mkdir(parents=True)
    (left / "frame_000001.png").write_bytes(b"x")
    Storage(tmp_path / "data").close()  # waits for its file work, the emptying included
    assert list((tmp_path / "data" / "trash").iterdir()) == []


# -- the migration ------------------------------------------------------------------
AUTOINCREMENT = next(i for i, script in enumerate(MIGRATIONS) if "AUTOINCREMENT" in script)


def old_database(path) -> None:
    """A database as the migrations before this one left it, with shots 1, 2 and 5
    (3 and 4 deleted), their jobs, frames, thumbnails and a blocklist entry."""
    conn = sqlite3.connect(path, isolation_level=None)
    for number, script in enumerate(MIGRATIONS[:AUTOINCREMENT], start=1):
        for statement in _statements(script):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version={number}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("INSERT INTO nodes (id, name) VALUES ('n', 'box')")
    for shot_id in (1, 2, 5):
        conn.execute(
            """INSERT INTO shots (id, name, status, priority, blend_path, files, frame_start,
               frame_end, frame_step, chunk_size, output_format, resolution_percentage, fps,
               created_at, frames_total, frames_done)
               VALUES (?, ?, 'active', 50, 'a.blend', '[]', 1, 1, 1, 1, 'PNG', 100, 24, 0, 1, 1)""",
            (shot_id, f"shot {shot_id}"))
        conn.execute("INSERT INTO jobs (id, shot_id, ordinal, status, frames) "
                     "VALUES (?, ?, 0, 'done', '[1]')", (shot_id * 10, shot_id))
        conn.execute("INSERT INTO frames (shot_id, number, job_id, status) "
                     "VALUES (?, 1, ?, 'done')", (shot_id, shot_id * 10))
        conn.execute("INSERT INTO thumbnails VALUES (?, 1, 'image/jpeg', x'ffd8')", (shot_id,))
    conn.execute("INSERT INTO blocklist VALUES (2, 'n', 1)")
    conn.close()


def counts(c: sqlite3.Connection) -> dict[str, int]:
    return {t: c.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
            for t in ("shots", "jobs", "frames", "thumbnails", "blocklist", "nodes")}


def add_shot(c: sqlite3.Connection) -> tuple[int, int]:
    shot = c.execute(
        """INSERT INTO shots (name, status, priority, blend_path, files, frame_start, frame_end,
           frame_step, fps, created_at)
           VALUES ('new', 'queued', 50, 'a.blend', '[]', 1, 1, 1, 24, 0)
           RETURNING id""").fetchone()[0]
    job = c.execute("INSERT INTO jobs (shot_id, ordinal, status, frames) "
                    "VALUES (?, 0, 'queued', '[1]') RETURNING id", (shot,)).fetchone()[0]
    return shot, job


@pytest.mark.sqlite_only
async def test_the_migration_keeps_every_row_and_starts_above_the_largest_ids(tmp_path):
    path = tmp_path / "old.db"
    old_database(path)
    before = sqlite3.connect(path)
    kept = counts(before)
    before.close()

    db = Database(path)
    await db.open()
    try:
        assert await db.read(counts) == kept
        assert await db.read(lambda c: c.execute("PRAGMA integrity_check").fetchone()[0]) \
            == "ok"
        assert await db.read(lambda c: c.execute("PRAGMA foreign_key_check").fetchall()) == []
        shot, job = await db.write(add_shot)
        assert (shot, job) == (6, 51)
        # The newest shot deleted: its ids are still never given again.
        await db.write(lambda c: c.execute("DELETE FROM shots WHERE id = ?", (shot,)))
        assert await db.write(add_shot) == (7, 52)
    finally:
        await db.close()
    # A connection that reads the schema afresh agrees.
    after = sqlite3.connect(path, isolation_level=None)
    try:
        after.execute("PRAGMA foreign_keys=ON")
        after.execute("DELETE FROM shots WHERE id = 7")
        assert add_shot(after) == (8, 53)
    finally:
        after.close()
