"""Why a shot's queued work is not being taken, told in the API and to dashboards.

The reason depends on the nodes connected now (their tags, devices, Blenders, whether
they are enabled and awake), so it is worked out when a shot is shown, and shots are
looked at again when the nodes change: a shot whose reason changed is sent anew.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Callable

from . import matching
from .database import Database
from .sessions import ConnectedNodes
from .store import shots as shot_sql

log = logging.getLogger("brender.waiting")


class WaitingReasons:
    def __init__(self, db: Database, sessions: ConnectedNodes,
                 shot_changed: Callable[[int], None]):
        self.db = db
        self.sessions = sessions
        self.shot_changed = shot_changed
        self._told: dict[int, tuple[str | None, tuple[str, ...]]] = {}
        self._pending: asyncio.TimerHandle | None = None
        self._kinds: tuple[int, list[matching.NodeState]] | None = None

    def _nodes(self) -> list[matching.NodeState]:
        """One state per distinct (offer, enabled, awake) among the connected nodes: a
        reason depends on what nodes offer, not on how many offer it, and a farm of
        thousands has a handful of kinds (each shot's summary asks, several times a
        second): counted again only when a node came, went or changed its kind."""
        generation = self.sessions.kinds_generation
        if self._kinds is None or self._kinds[0] != generation:
            self._kinds = (generation, self._count_kinds())
        return self._kinds[1]

    def _count_kinds(self) -> list[matching.NodeState]:
        kinds: dict[tuple[int, bool, bool], matching.Offer] = {}
        for s in self.sessions:
            if not s.ws.closed:   # offers are shared (matching.offer_of): keyed by identity
                kinds[(id(s.offer), bool(s.node["enabled"]), not s.asleep)] = s.offer
        return [matching.NodeState(offer, enabled, awake)
                for (_, enabled, awake), offer in kinds.items()]

    def _reason(self, needs: matching.Needs, max_nodes: int | None,
                rendering: int) -> tuple[str | None, list[str]]:
        return matching.explain(needs, self._nodes(), self.sessions.farm_series(),
                                max_nodes, rendering)

    def annotate(self, shot: dict) -> dict:
        """The shot with `waiting` (a reason, or None) and `notices`."""
        queued = shot["jobs_total"] - shot["jobs_done"] - shot["jobs_failed"] \
            - shot["nodes_rendering"]
        waiting: str | None = None
        notices: list[str] = []
        if shot["status"] in ("queued", "active"):
            waiting, notices = self._reason(matching.needs_of_view(shot), shot.get("max_nodes"),
                                            shot["nodes_rendering"])
        shot["waiting"], shot["notices"] = waiting if queued > 0 else None, notices
        return shot

    def nodes_changed(self, delay: float = 0.2) -> None:
        """Nodes came, went or changed: look at the waiting shots again soon (once for
        a burst of changes, such as a farm's nodes reconnecting)."""
        if self._pending is None:
            loop = asyncio.get_running_loop()
            self._pending = loop.call_later(delay, lambda: asyncio.ensure_future(self._recheck()))

    async def _recheck(self) -> None:
        self._pending = None
        try:
            await self.recheck()
        except Exception as exc:  # a reason shown late is better than a broken loop
            log.warning("could not recheck waiting shots: %s", exc)

    async def recheck(self) -> None:
        rows = await self.db.read(shot_sql.waiting_candidates)
        seen = {}
        for row in rows:
            waiting, notices = self._reason(matching.needs_of(row), row["max_nodes"],
                                            row["rendering"])
            seen[row["id"]] = (waiting, tuple(notices))
        for shot_id, told in seen.items():
            if self._told.get(shot_id, (None, ())) != told:
                self.shot_changed(shot_id)
        for shot_id in set(self._told) - set(seen):
            if self._told[shot_id] != (None, ()):
                self.shot_changed(shot_id)
        self._told = seen
