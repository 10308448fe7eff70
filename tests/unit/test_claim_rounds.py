"""A dispatch round claims for many nodes in one transaction: the shares and caps hold
within it (the counts of nodes per shot follow the round's own claims), and the job's
node name comes back with each claim and each finish."""
from __future__ import annotations

from coordinator.chunking import fixed_chunks
from coordinator.database import Database
from coordinator.matching import offer_of
from coordinator.store import claims as claim_sql
from coordinator.store import jobs as job_sql
from coordinator.store import nodes as node_sql
from coordinator.store import shots as shot_sql
from coordinator.validation import ShotSpec

CPU = [{"type": "CPU", "name": "CPU", "id": "CPU"}]


async def open_db(tmp_path) -> Database:
    db = Database(tmp_path / "brender.db")
    await db.open()
    return db


async def add_nodes(db: Database, count: int) -> list[tuple[str, object]]:
    out = []
    for i in range(count):
        node = await db.write(node_sql.upsert, {
            "node_id": None, "name": f"box-{i}", "hostname": "h", "platform": "p",
            "blender_version": "3.4.1", "cpu_count": 1, "tags": [], "allow_scripts": False,
            "devices": CPU, "blenders": ["3.4.1"]})
        out.append((node["id"], offer_of(node)))
    return out


async def add_shot(db: Database, name: str, frames: int, **extra) -> int:
    numbers = list(range(1, frames + 1))
    spec = ShotSpec(name=name, blend_path="a.blend", files=[], frame_start=1,
                    frame_end=frames, chunk_size=1, frames=numbers, chunk_mode="fixed",
                    **extra)
    return await db.write(shot_sql.create, spec, fixed_chunks(numbers, 1))


async def round_of(db: Database, nodes) -> list:
    return await db.write(claim_sql.claim_many, nodes, 300, 2, 60.0, len(nodes))


async def test_one_transaction_shares_the_nodes_between_shots_of_one_priority(tmp_path):
    db = await open_db(tmp_path)
    try:
        first = await add_shot(db, "first", 10)
        second = await add_shot(db, "second", 10)
        nodes = await add_nodes(db, 6)
        claims = await round_of(db, nodes)
        shots = [a.shot["id"] for a in claims]
        assert shots.count(first) == 3 and shots.count(second) == 3
        # The next round goes on from the shares the database holds.
        more = await round_of(db, await add_nodes(db, 2))
        assert sorted(a.shot["id"] for a in more) == [first, second]
    finally:
        await db.close()


async def test_one_transaction_never_puts_a_capped_shot_on_more_nodes(tmp_path):
    db = await open_db(tmp_path)
    try:
        capped = await add_shot(db, "capped", 10, priority=90, max_nodes=2)
        rest = await add_shot(db, "rest", 10)
        claims = await round_of(db, await add_nodes(db, 5))
        shots = [a.shot["id"] for a in claims]
        assert shots.count(capped) == 2 and shots.count(rest) == 3
    finally:
        await db.close()


async def test_the_claim_and_the_finish_name_the_node(tmp_path):
    db = await open_db(tmp_path)
    try:
        await add_shot(db, "one", 1)
        nodes = await add_nodes(db, 3)
        [claim, *_] = await round_of(db, nodes[:1])
        assert claim.job["node_name"] == "box-0"
        await db.write(lambda c: c.execute(
            "UPDATE frames SET status = 'done' WHERE job_id = ?", (claim.job["id"],)))
        outcome, job = await db.write(job_sql.finish, claim.attempt_id, "")
        assert outcome == "done" and job["node_name"] == "box-0"
    finally:
        await db.close()


def test_the_farms_blender_series_follow_nodes_coming_and_going():
    from coordinator.sessions import ConnectedNodes

    nodes = ConnectedNodes(lambda session: None)

    def node(node_id: str, *blenders: str) -> dict:
        return {"id": node_id, "name": node_id, "enabled": True, "tags": [],
                "devices": CPU, "blenders": list(blenders), "allow_scripts": False}

    old, _ = nodes.connect(node("a", "3.4.1"), object())
    nodes.connect(node("b", "3.4.1", "4.2.0"), object())
    assert nodes.farm_series() == {(3, 4), (4, 2)}
    # A newer channel of "b" offering 4.5 only replaces what "b" offered.
    newer, replaced = nodes.connect(node("b", "4.5.0"), object())
    assert nodes.farm_series() == {(3, 4), (4, 5)}
    nodes.disconnect(replaced)          # the old channel closing changes nothing
    assert nodes.farm_series() == {(3, 4), (4, 5)}
    nodes.disconnect(old)
    assert nodes.farm_series() == {(4, 5)}
    nodes.disconnect(newer)
    assert nodes.farm_series() == frozenset()
