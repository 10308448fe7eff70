"""Finishing an attempt: done, missing frames, or stale (the store functions)."""
from __future__ import annotations

from pathlib import Path

import pytest

from coordinator.matching import offer_of
from coordinator.database import Database, open_database
from coordinator.store import frames as frame_sql
from coordinator.store import claims as claim_sql
from coordinator.store import jobs as job_sql
from coordinator.store import nodes as node_sql
from coordinator.store import shots as shot_sql
from coordinator.validation import OUTPUT_FORMATS, ShotSpec

# Every test runs on SQLite and on PostgreSQL.
pytestmark = pytest.mark.usefixtures("backend")

SETTINGS = (300.0, 2, 60.0, 1)


async def box_and_shot(db: Database, jobs: list[list[int]], **spec: object) -> tuple[dict, int]:
    """The node "box", and a shot made of `jobs` (their frames)."""
    node = await db.write(node_sql.upsert, {
        "node_id": None, "name": "box", "hostname": "h", "platform": "p",
        "blender_version": "b", "cpu_count": 1, "tags": [], "allow_scripts": False})
    frames = [n for job in jobs for n in job]
    shot = ShotSpec(name="s", blend_path="a.blend",
                    files=[{"path": "a.blend", "sha256": "0" * 64, "size": 1}],
                    frame_start=min(frames), frame_end=max(frames), **spec)  # type: ignore[arg-type]
    return node, await db.write(shot_sql.create, shot, jobs)


@pytest.fixture
async def farm(tmp_path, backend):
    db = open_database(backend, tmp_path)
    await db.open()
    node, shot_id = await box_and_shot(db, [[1, 2]], chunk_size=2)
    [claim] = await db.write(claim_sql.claim_many, [(node["id"], offer_of(node))], *SETTINGS)
    yield db, claim, shot_id
    await db.close()


async def record(db: Database, attempt_id: str, number: int) -> None:
    up = frame_sql.Upload(attempt_id, number, Path("unused"), b"jpeg", "jpg", None,
                          "0" * 64, 10, 1.0, 4, 4)
    await db.write(frame_sql.record, up, OUTPUT_FORMATS,
                   lambda shot_id, name, u: (f"f/{name}", f"t/{name}", None))


async def test_a_job_with_a_frame_missing_is_not_done(farm):
    db, claim, _ = farm
    await record(db, claim.attempt_id, 1)
    outcome, job = await db.write(job_sql.finish, claim.attempt_id, "")
    assert outcome == "missing" and job["status"] == "running"


async def test_a_job_with_every_frame_is_done_and_completes_its_shot(farm):
    db, claim, shot_id = farm
    for n in (1, 2):
        await record(db, claim.attempt_id, n)
    outcome, job = await db.write(job_sql.finish, claim.attempt_id, "log")
    assert outcome == "done"
    assert job["status"] == "done" and job["node_name"] == "box" and job["frames"] == [1, 2]
    assert (await db.read(shot_sql.get, shot_id))["status"] == "completed"
    # The same report again, or from an attempt that lost the job: stale.
    assert await db.write(job_sql.finish, claim.attempt_id, "") == ("stale", None)
    assert await db.write(job_sql.finish, "f" * 32, "") == ("stale", None)


@pytest.mark.parametrize("chunk_mode", ["fixed", "auto"])
async def test_a_job_claimed_again_renders_only_the_frames_its_last_attempt_left(
        tmp_path, backend, chunk_mode):
    """On PostgreSQL a job that keeps its frames (the artist's chunk size) is claimed in
    one statement, an adaptive one in two: either way the frames an earlier attempt
    delivered are neither sent again nor marked rendering."""
    db = open_database(backend, tmp_path)
    await db.open()
    try:
        node, shot_id = await box_and_shot(db, [[1, 2, 3]], chunk_size=3,
                                           chunk_mode=chunk_mode)
        offer = [(node["id"], offer_of(node))]
        [first] = await db.write(claim_sql.claim_many, offer, *SETTINGS)
        assert first.frames == [1, 2, 3]
        await record(db, first.attempt_id, 2)
        assert await db.write(job_sql.fail, first.attempt_id, "crashed", "", 3, 2)
        [again] = await db.write(claim_sql.claim_many, offer, *SETTINGS)
        assert again.frames == [1, 3] and again.job["frames"] == [1, 2, 3]
        assert again.job["attempts"] == 2 and again.attempt_id != first.attempt_id
        statuses = {r["number"]: r["status"] for r in await db.fetchall(
            "SELECT number, status FROM frames WHERE shot_id = ?", (shot_id,))}
        assert statuses == {1: "rendering", 2: "done", 3: "rendering"}
    finally:
        await db.close()


async def test_a_frame_recorded_alone_counts_once_on_its_shot(farm):
    """On PostgreSQL a record alone in its transaction counts its frame in the record's
    own statement; on either database a frame sent again counts nothing more."""
    db, claim, shot_id = farm
    await record(db, claim.attempt_id, 1)
    await record(db, claim.attempt_id, 1)
    [shot] = await db.fetchall("SELECT frames_done, render_time_sum, render_time_count "
                               "FROM shots WHERE id = ?", (shot_id,))
    assert (shot["frames_done"], shot["render_time_sum"], shot["render_time_count"]) == \
        (1, 1.0, 1)


async def test_a_node_done_with_its_job_gets_the_next_in_the_same_claim(
        tmp_path, backend, monkeypatch):
    """A claim batch closes the node's attempt, then claims its next job; on PostgreSQL
    both are one statement (`taking.finish_and_take`). A job with a frame missing is
    not done and the node gets nothing; an attempt the farm no longer knows (stale)
    still lets the node take the next job."""
    db = open_database(backend, tmp_path)
    await db.open()
    asked_apart: list[str] = []
    real_finish = claim_sql.finish

    async def finish_apart(c, attempt_id, log_tail=""):
        asked_apart.append(attempt_id)
        return await real_finish(c, attempt_id, log_tail)
    monkeypatch.setattr(claim_sql, "finish", finish_apart)
    try:
        node, shot_id = await box_and_shot(db, [[1], [2], [3]], chunk_size=1,
                                           chunk_mode="fixed")
        nodes = [(node["id"], offer_of(node))]
        [first] = await db.write(claim_sql.claim_many, nodes, *SETTINGS)

        async def done_then_next(attempt_id: str):
            [(outcome, [nxt])] = await db.write(
                claim_sql.claim_batch, [(nodes, (attempt_id, "log"), None)], *SETTINGS)
            return outcome, nxt

        await record(db, first.attempt_id, 1)
        (status, job), second = await done_then_next(first.attempt_id)
        assert status == "done" and job["frames"] == [1] and job["node_name"] == "box"
        assert second.frames == [2] and second.job["status"] == "running"
        assert second.job["node_name"] == "box" and second.shot["status"] == "active"
        assert asked_apart == ([] if backend.startswith("postgresql") else [first.attempt_id])

        (status, job), nothing = await done_then_next(second.attempt_id)   # frame 2 absent
        assert status == "missing" and nothing is None
        jobs = {j["frames"][0]: j["status"] for j in await db.read(job_sql.for_shot, shot_id)}
        assert jobs == {1: "done", 2: "running", 3: "queued"}

        (status, job), third = await done_then_next("no-such-attempt")
        assert (status, job) == ("stale", None) and third.frames == [3]
        await record(db, second.attempt_id, 2)
        await record(db, third.attempt_id, 3)
        for attempt in (second.attempt_id, third.attempt_id):
            (status, _), more = await done_then_next(attempt)
            assert status == "done" and more is None
        assert (await db.read(shot_sql.get, shot_id))["status"] == "completed"
    finally:
        await db.close()
