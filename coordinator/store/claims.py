"""SQL for claims: which queued job a node that wants work gets (docs/scheduling.md).

One claim, the claims of a dispatch round, and a batch of them with the jobs the
asking nodes finished (claim_batch, on PostgreSQL: scheduler.py), each in one
transaction, so two nodes can never take the same job.
"""
from __future__ import annotations

from typing import Any, Callable

from .. import matching
from ..matching import Offer
from ..states import DISPATCHABLE_SHOTS
from .connection import Connection, Row
from .jobs import finish
from .taking import (NEXT_QUEUED, Assignment, assign, finish_and_take, keeps_its_frames,
                     take_next)

__all__ = ["Assignment", "claim", "claim_batch", "claim_many", "dispatch_seen",
           "dispatchable", "dispatchable_to_all", "finish_then_claim", "sole_choice"]


# Whether some node may not take some job, so that equal offers may differ: a
# blocklist, or a re-render that one node may not take (issue 17). `status || ''` keeps
# the planner off the status index (every queued job) and on the small jobs_avoiding;
# the scalar subquery in that index's order, not an EXISTS (PostgreSQL drops an
# EXISTS's ORDER BY), makes reading every job cost a sort too. Planned on an empty farm
# it still reads them all: see shots.create's ANALYZE.
ANY_BLOCKLIST = """SELECT EXISTS (SELECT 1 FROM blocklist) OR (
                     SELECT avoid_node FROM jobs
                     WHERE avoid_node IS NOT NULL AND status || '' = 'queued'
                     ORDER BY avoid_node LIMIT 1) IS NOT NULL"""

DISPATCHABLE = f"""SELECT s.*,
       CASE WHEN s.render_time_count > 0
            THEN s.render_time_sum / s.render_time_count END AS avg_time{{also}}
    FROM shots s
    WHERE s.status IN {DISPATCHABLE_SHOTS}
      AND EXISTS (SELECT 1 FROM jobs j WHERE j.status = 'queued' AND j.shot_id = s.id)
      AND NOT EXISTS (SELECT 1 FROM blocklist b WHERE b.shot_id = s.id
                      AND b.node_id = ? AND b.failures >= ?)
    ORDER BY s.priority DESC, s.created_at, s.id"""


async def dispatchable(c: Connection, node_id: str, blocklist_threshold: int) -> list[Row]:
    """Shots with queued work that `node_id` is not blocklisted from, best first."""
    return await c.fetchall(DISPATCHABLE.format(also=""), (node_id, blocklist_threshold))


async def dispatchable_to_all(c: Connection, blocklist_threshold: int) -> list[Row] | None:
    """`dispatchable` for every node alike; None when nodes differ (a blocklist, or a
    re-render some node must avoid: ANY_BLOCKLIST), so each reads its own."""
    return (await dispatch_seen(c, blocklist_threshold))[1]


async def dispatch_seen(c: Connection, blocklist_threshold: int,
                        ) -> tuple[int | None, list[Row] | None]:
    """`dispatchable_to_all`, and the farm's dispatch generation it was read at (None
    when no shot is dispatchable): one round trip for all three questions, which each
    claim transaction asks first."""
    rows = await c.fetchall(
        DISPATCHABLE.format(also=f""", ({ANY_BLOCKLIST}) AS sets_apart,
                                      {c.dialect.dispatch_generation} AS generation"""),
        ("", blocklist_threshold))
    generation = rows[0]["generation"] if rows else None
    if rows and rows[0]["sets_apart"]:
        return generation, None
    shots: list[Row] = []
    for row in rows:
        shot = dict(row)
        del shot["sets_apart"], shot["generation"]
        shots.append(shot)
    return generation, shots


async def claim(c: Connection, node_id: str, offer: Offer, lease_seconds: float,
                blocklist_threshold: int, target_job_seconds: float, nodes_online: int = 1,
                farm: frozenset[tuple[int, ...]] = frozenset(),
                rendering: dict[int, int] | None = None,
                shots: list[Row] | None = None) -> Assignment | None:
    """Hand `node_id` the best queued job it can render (docs/scheduling.md).

    Of the shots whose needs the node's `offer` meets (matching.py; `farm`: the
    Blender series connected nodes have) and that are below their `max_nodes`: the
    highest priority; among equals, the one preferring most of its tags, then the one
    fewest nodes render now (so shots of one priority share the farm), then the oldest.
    One transaction, so two nodes can never claim the same job. Frames already
    rendered by an earlier attempt are left out. Adaptive chunks, once frame times
    are measured: a job that would run far longer than the target is cut and the
    rest queued; one far shorter takes in the contiguous jobs after it, up to the
    target and to a fair share of what is left.

    How many nodes render a shot is counted only when it decides (a cap, or a tie
    with another shot): counting walks the shot's running jobs, thousands on a big
    farm, and the claims of one transaction share the counts in `rendering`. `shots`:
    the dispatchable shots, read once for claims that no blocklist tells apart.
    """
    if shots is None:
        shots = await dispatchable(c, node_id, blocklist_threshold)
    counts = {} if rendering is None else rendering

    async def rendering_of(shot_id: int) -> int:
        if shot_id not in counts:
            if c.dialect.for_update:
                # Other transactions (claims side by side, other coordinators) count this
                # shot too: the first to lock it counts and claims; the next counts after
                # that one commits, so a cap and a fair share hold farm-wide.
                await c.execute("SELECT id FROM shots WHERE id = ?" + c.dialect.for_update,
                                (shot_id,))
            counts[shot_id] = await c.fetchval(
                "SELECT COUNT(*) FROM jobs WHERE status = 'running' AND shot_id = ?",
                (shot_id,))
        return counts[shot_id]

    groups = _groups(shots, offer, farm)
    for key in sorted(groups):
        open_to_it = [entry for entry in groups[key] if entry[1]["max_nodes"] is None
                      or await rendering_of(entry[1]["id"]) < entry[1]["max_nodes"]]
        if len(open_to_it) > 1:   # fair share: the fewest nodes first, then the oldest
            order = [(await rendering_of(e[1]["id"]), e[0], e) for e in open_to_it]
            open_to_it = [e for *_, e in sorted(order, key=lambda o: o[:2])]
        for _, shot, version, device in open_to_it:
            assignment = None
            if c.dialect.writes_in_with and keeps_its_frames(shot):
                assignment = await take_next(c, shot, node_id, lease_seconds, nodes_online)
            else:
                # Another coordinator's claim may hold a queued job: take the next one.
                job = await c.fetchone(
                    NEXT_QUEUED + c.dialect.skip_locked, (shot["id"], node_id, nodes_online))
                if job is not None:
                    assignment = await assign(c, job, shot, node_id, lease_seconds,
                                              target_job_seconds, nodes_online)
            if assignment is not None:
                assignment.blender_version, assignment.device = version or None, device
                if shot["id"] in counts:
                    counts[shot["id"]] += 1
                return assignment
    return None


async def claim_many(c: Connection, nodes: list[tuple[str, Offer]], lease_seconds: float,
                     blocklist_threshold: int, target_job_seconds: float,
                     nodes_online: int, farm: frozenset[tuple[int, ...]] = frozenset(),
                     exhausted: set[Offer] | None = None,
                     rendering: dict[int, int] | None = None,
                     blocklists: bool | None = None,
                     shots: list[Row] | None = None) -> list[Assignment | None]:
    """`claim` for each idle node of a dispatch round, in one transaction.

    `exhausted` collects the offers that found nothing: while no node is blocklisted
    from any shot, another node offering the same finds nothing either (claims only
    take work away), so it is not asked again (the caller keeps the set for a round).
    `rendering`, `blocklists` and `shots`: what `claim_batch` shares between its claims."""
    exhausted = set() if exhausted is None else exhausted
    if blocklists is None:
        shots = await dispatchable_to_all(c, blocklist_threshold)
        blocklists = shots is None
    # shot -> nodes rendering it, as this transaction claims
    rendering = {} if rendering is None else rendering
    out: list[Assignment | None] = []
    for node_id, offer in nodes:
        if offer in exhausted and not blocklists:
            out.append(None)
            continue
        assignment = await claim(c, node_id, offer, lease_seconds, blocklist_threshold,
                                 target_job_seconds, nodes_online, farm, rendering, shots)
        if assignment is None:
            exhausted.add(offer)
        out.append(assignment)
    return out


ClaimRequest = tuple[list[tuple[str, Offer]], "tuple[str, str] | None", "set[Offer] | None"]
Finished = tuple[str, "dict | None"]
Claimed = tuple["Finished | None", "list[Assignment | None]"]   # one request's outcome


Seen = Callable[[int | None, "list[Row] | None"], None]


async def claim_batch(c: Connection, requests: list[ClaimRequest], lease_seconds: float,
                      blocklist_threshold: int, target_job_seconds: float,
                      nodes_online: int, farm: frozenset[tuple[int, ...]] = frozenset(),
                      seen: Seen | None = None) -> list[Claimed]:
    """Several claims in one transaction, each `(nodes, finishing, exhausted)`: the
    attempt `finishing` (attempt id, log tail) is closed first, then `claim_many` for
    `nodes`. The counts of nodes per shot are shared, so caps and fair share hold
    across the batch; a job finished here is one node fewer on its shot. `seen`
    hears the dispatchable shots read, with their dispatch generation."""
    rendering: dict[int, int] = {}
    generation, shots = await dispatch_seen(c, blocklist_threshold)
    if seen is not None:
        seen(generation, shots)
    blocklists = shots is None
    out: list[Claimed] = []
    for nodes, finishing, exhausted in requests:
        outcome: Finished | None = None
        if finishing is not None:
            # A node's "done" and its next job in one statement, where nothing needs
            # counting; else (or when it did not finish) the usual two steps.
            choice = sole_choice(nodes, shots, farm, exhausted) \
                if c.dialect.writes_in_with else None
            taken = None if choice is None else await finish_and_take(
                c, finishing, choice[0], nodes[0][0], lease_seconds, nodes_online)
            outcome = await finish(c, *finishing) if taken is None else taken[0]
            if outcome[0] == "missing":
                out.append((outcome, [None] * len(nodes)))
                continue
            if outcome[1] is not None and outcome[1]["shot_id"] in rendering:
                rendering[outcome[1]["shot_id"]] -= 1
            if taken is not None and taken[1] is not None and choice is not None:
                assignment = taken[1]
                assignment.blender_version, assignment.device = choice[1] or None, choice[2]
                if assignment.shot["id"] in rendering:
                    rendering[assignment.shot["id"]] += 1
                out.append((outcome, [assignment]))
                continue
        out.append((outcome, await claim_many(
            c, nodes, lease_seconds, blocklist_threshold, target_job_seconds, nodes_online,
            farm, exhausted, rendering, blocklists, shots)))
    return out


def sole_choice(nodes: list[tuple[str, Offer]], shots: list[Row] | None,
                farm: frozenset[tuple[int, ...]], exhausted: set[Offer] | None,
                ) -> tuple[Row, str, str | None] | None:
    """The shot `claim` would try first for a lone node, when nothing needs counting:
    its best group is one shot without a cap, whose jobs keep their frames (PostgreSQL
    only: `finish_and_take`). (shot, Blender version, device), or None."""
    if shots is None or len(nodes) != 1:
        return None
    offer = nodes[0][1]
    if exhausted is not None and offer in exhausted:
        return None
    groups = _groups(shots, offer, farm)
    if not groups:
        return None
    best = groups[min(groups)]
    if len(best) != 1 or best[0][1]["max_nodes"] is not None or \
            not keeps_its_frames(best[0][1]):
        return None
    _, shot, version, device = best[0]
    return shot, version, device


Choice = tuple[int, Row, str, "str | None"]   # (place in `shots`, shot, Blender, device)


def _groups(shots: list[Row], offer: Offer, farm: frozenset[tuple[int, ...]],
            ) -> dict[tuple[int, int], list[Choice]]:
    """The shots `offer` can render, grouped by (priority, preference): the smallest
    key is the best group."""
    groups: dict[tuple[int, int], list[Choice]] = {}
    for place, shot in enumerate(shots):
        needs = matching.needs_of(shot)
        version = matching.blender_for(needs, offer, farm)
        if version is not None:
            groups.setdefault((-shot["priority"], -needs.preference(offer)), []).append(
                (place, shot, version, needs.device))
    return groups


async def finish_then_claim(c: Connection, attempt_id: str, log_tail: str,
                            nodes: list[tuple[str, Offer]], *claim_settings: Any,
                      ) -> tuple[tuple[str, dict | None], list[Assignment | None]]:
    """`finish`, then (when the job is done) `claim_many` for the node that did it."""
    outcome = await finish(c, attempt_id, log_tail)
    claims: list[Assignment | None] = [None] * len(nodes)
    if outcome[0] != "missing":
        claims = await claim_many(c, nodes, *claim_settings)
    return outcome, claims
