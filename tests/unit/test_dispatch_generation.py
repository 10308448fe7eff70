"""The farm's dispatch generation (PostgreSQL): a node's "done" and its next job go as
one statement while nothing a claim's choice reads has changed since the dispatchable
shots were read (`taking.finish_and_take_as_seen`), and change nothing once it has."""
from __future__ import annotations

from typing import Any, Awaitable, Callable

import pytest

from coordinator.matching import offer_of
from coordinator.pg_database import PostgresDatabase
from coordinator.states import ShotStatus
from coordinator.store import claims as claim_sql
from coordinator.store import delivery as delivery_sql
from coordinator.store import jobs as job_sql
from coordinator.store import shots as shot_sql
from coordinator.store import taking
from coordinator.store.connection import Connection
from coordinator.validation import ShotSpec
from tests.unit.test_job_finish import SETTINGS, box_and_shot, record

LEASE = SETTINGS[0]


@pytest.fixture
async def farm(pg_url):
    """A fixed-chunk shot of four one-frame jobs; its node has rendered the first and
    holds the second, taken the usual way, which read the dispatchable shots."""
    db = PostgresDatabase(pg_url)
    await db.open()
    node, shot_id = await box_and_shot(db, [[1], [2], [3], [4]], chunk_size=1,
                                       chunk_mode="fixed")
    nodes = [(node["id"], offer_of(node))]
    seen: list[tuple[Any, Any]] = []

    async def batch(finishing):
        [(outcome, [assignment])] = await db.write(
            claim_sql.claim_batch, [(nodes, finishing, None)], *SETTINGS,
            frozenset(), lambda generation, shots: seen.append((generation, shots)))
        return outcome, assignment

    _, first = await batch(None)
    await record(db, first.attempt_id, 1)
    (status, _), second = await batch((first.attempt_id, "log"))
    assert status == "done" and second.frames == [2]
    generation, [shot] = seen[-1]
    assert shot["status"] == "active"   # the shot became active: the generation moved
    assert generation > seen[0][0]
    yield db, node, shot_id, generation, shot, second
    await db.close()


async def take_as_seen(db, node, generation, shot, attempt_id) -> taking.TakenAsSeen:
    taken: taking.TakenAsSeen = await db.write(
        taking.finish_and_take_as_seen, (attempt_id, "log"), shot, generation,
        node["id"], LEASE, 1)
    return taken


async def job_states(db, shot_id: int) -> dict[int, str]:
    return {j["frames"][0]: j["status"] for j in await db.read(job_sql.for_shot, shot_id)}


async def generation_now(db) -> int:
    async def read(c: Connection) -> int:
        return int(await c.fetchval(f"SELECT {c.dialect.dispatch_generation}"))
    return await db.read(read)


async def test_unchanged_it_finishes_and_takes_the_next_job_in_one_statement(farm):
    db, node, shot_id, generation, shot, second = farm
    await record(db, second.attempt_id, 2)   # counting a frame moves nothing
    taken = await take_as_seen(db, node, generation, shot, second.attempt_id)
    assert taken.generation == generation
    assert taken.outcome is not None and taken.outcome[0] == "done"
    assert taken.outcome[1]["frames"] == [2]
    assert taken.assignment is not None and taken.assignment.frames == [3]
    assert taken.assignment.job["node_name"] == "box"
    assert await job_states(db, shot_id) == {1: "done", 2: "done", 3: "running", 4: "queued"}


async def test_a_job_with_a_frame_missing_is_left_as_it_was(farm):
    db, node, shot_id, generation, shot, second = farm
    taken = await take_as_seen(db, node, generation, shot, second.attempt_id)
    assert (taken.generation, taken.outcome, taken.assignment) == (generation, None, None)
    assert await job_states(db, shot_id) == {1: "done", 2: "running", 3: "queued", 4: "queued"}


async def test_the_last_job_comes_back_to_be_settled(farm):
    """No queued job left: the job is done, nothing taken, and settling it (in a
    transaction, as the scheduler does) completes the shot."""
    db, node, shot_id, generation, shot, second = farm
    attempt = second.attempt_id
    for number in (2, 3):
        await record(db, attempt, number)
        taken = await take_as_seen(db, node, generation, shot, attempt)
        assert taken.assignment is not None
        attempt = taken.assignment.attempt_id
    await record(db, attempt, 4)
    taken = await take_as_seen(db, node, generation, shot, attempt)
    assert (taken.outcome, taken.assignment) == (None, None)
    assert taken.finished is not None and taken.finished["status"] == "done"
    assert (await db.read(shot_sql.get, shot_id))["status"] == "active"
    status, job = await db.write(job_sql.settle_done, taken.finished)
    assert status == "done" and job["frames"] == [4]
    assert (await db.read(shot_sql.get, shot_id))["status"] == "completed"


def _sql(text: str, *params: Any) -> Callable[[Connection, int], Awaitable[Any]]:
    async def run(c: Connection, shot_id: int) -> None:
        await c.execute(text, tuple(shot_id if p is SHOT else p for p in params))
    return run


SHOT = object()   # the farm's shot id, in `_sql`'s parameters


def _store(fn: Callable[..., Awaitable[Any]], *args: Any,
           ) -> Callable[[Connection, int], Awaitable[Any]]:
    async def run(c: Connection, shot_id: int) -> None:
        await fn(c, shot_id, *args)
    return run


async def _another_shot(c: Connection, shot_id: int) -> None:
    spec = ShotSpec(name="urgent", blend_path="a.blend", priority=90, frame_start=1,
                    frame_end=1, files=[{"path": "a.blend", "sha256": "0" * 64, "size": 1}])
    await shot_sql.create(c, spec, [[1]])


# What a claim's choice reads, changed by the store's own functions where it has one.
CHANGES: dict[str, Callable[[Connection, int], Awaitable[Any]]] = {
    "another shot is submitted": _another_shot,
    "its priority changes": _store(shot_sql.set_priority, 70),
    "it gets a cap on nodes": _store(shot_sql.change, {"max_nodes": 1}),
    "it is paused": _store(shot_sql.set_status, ShotStatus.PAUSED),
    "a done job is queued again": _sql(
        "UPDATE jobs SET status = 'queued' WHERE shot_id = ? AND status = 'done'", SHOT),
    "its measured frame times go (adaptive chunks follow them)": _sql(
        "UPDATE shots SET render_time_count = 0, render_time_sum = 0 WHERE id = ?", SHOT),
    "a node is blocklisted": _sql(
        "INSERT INTO blocklist (shot_id, node_id, failures) VALUES (?, 'elsewhere', 1)", SHOT),
    "a frame is to be rendered away from its node": _sql(
        """INSERT INTO jobs (shot_id, ordinal, status, frames, avoid_node)
           VALUES (?, 9, 'queued', '[1]', 'elsewhere')""", SHOT),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
async def test_after_a_change_a_claim_reads_again_and_nothing_is_changed(farm, change):
    db, node, shot_id, generation, shot, second = farm
    await db.write(CHANGES[change], shot_id)
    await record(db, second.attempt_id, 2)
    taken = await take_as_seen(db, node, generation, shot, second.attempt_id)
    assert taken.generation > generation
    assert (taken.outcome, taken.assignment, taken.finished) == (None, None, None)
    states = await job_states(db, shot_id)
    assert (states[2], states[3]) == ("running", "queued")


async def test_what_changes_as_frames_land_leaves_it_alone(farm):
    db, node, shot_id, generation, shot, second = farm
    await record(db, second.attempt_id, 2)
    await db.write(shot_sql.set_settings_used, shot_id, {"samples": 4})
    await db.write(delivery_sql.failed, shot_id, 2, "the NAS is full")
    assert await generation_now(db) == generation
