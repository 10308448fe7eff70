"""What coordinators serving one farm (one PostgreSQL database, one data dir) tell
each other, and which of them does what must run once per farm.

Each coordinator keeps one connection of its own to the database (not pooled): on it
it LISTENs for its peers' events, and the one that holds the farm's advisory lock
does the once-per-farm duties (the reaper's requeues). A coordinator that dies
loses its connection, so its lock passes to another within a second or two. Events
a coordinator publishes (frames, jobs, nodes; a shot as its id, which each reads
afresh) go out with NOTIFY, those of one turn of the event loop together, so a dashboard on
any coordinator sees the whole farm; so does a kick (new work: claim now). Each
also says it is alive every second and keeps its peers' latest node views, so any
coordinator lists every node of the farm with its live state (a node connects to
one coordinator at a time); a peer not heard from for a few seconds is gone, and so
are the states it told. A coordinator that starts asks its peers to tell their nodes
again. On SQLite there is one coordinator: it holds the duties and relays nothing.
"""
from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any, Callable

import orjson

from .database import Database
from .events import EventBroker

log = logging.getLogger("brender.link")

CHANNEL = "brender_farm"
DUTY_LOCK = 0x62726D02      # pg_advisory_lock's key for the once-per-farm duties
PAYLOAD_LIMIT = 7900        # NOTIFY's payload is at most 8000 bytes
CHECK_SECONDS = 1.0
PEER_GONE_SECONDS = 5.0     # a peer silent this long is dead: its nodes are not its


class PeerNodes:
    """The latest view of each node connected to another coordinator.

    Every claim asks how many nodes the farm has (`online`), so each peer's count is
    kept as views come and go: counting the views there cost a claim 0.1-0.2 ms with
    500 nodes on a peer."""

    def __init__(self) -> None:
        self._views: dict[str, tuple[str, dict]] = {}   # node id -> (peer, view)
        self._counts: dict[str, int] = {}               # peer -> its views here
        self._heard: dict[str, float] = {}              # peer -> when last heard
        self._listening: set[str] = set()               # peers with event streams open

    def heard(self, peer: str, now: float | None = None) -> bool:
        """A word from `peer`; True when it is new or back from silence (whatever it
        told before is dropped: it must tell its nodes again)."""
        now = time.monotonic() if now is None else now
        back = not self._alive(peer, now)
        if back and self._counts.pop(peer, 0):
            self._views = {k: v for k, v in self._views.items() if v[0] != peer}
        self._heard[peer] = now
        return back

    def node(self, peer: str, view: dict) -> None:
        self.heard(peer)
        node_id = view["id"]
        if view.get("status") == "offline":
            if self._views.get(node_id, (peer,))[0] == peer:
                self._drop(node_id)
        else:
            self._drop(node_id)   # it may have been told by another peer before
            self._views[node_id] = (peer, view)
            self._counts[peer] = self._counts.get(peer, 0) + 1

    def _drop(self, node_id: str) -> None:
        entry = self._views.pop(node_id, None)
        if entry is not None:
            self._counts[entry[0]] -= 1

    def _alive(self, peer: str, now: float) -> bool:
        return now - self._heard.get(peer, float("-inf")) < PEER_GONE_SECONDS

    def view(self, node_id: str, now: float | None = None) -> dict | None:
        """The node's state on the peer it is connected to, while that peer lives."""
        entry = self._views.get(node_id)
        if entry is None:
            return None
        if not self._alive(entry[0], time.monotonic() if now is None else now):
            self._drop(node_id)
            return None
        return entry[1]

    def listening(self, peer: str, streams: bool) -> None:
        (self._listening.add if streams else self._listening.discard)(peer)

    def any_alive(self) -> bool:
        now = time.monotonic()
        return any(now - heard < PEER_GONE_SECONDS for heard in self._heard.values())

    def any_listening(self) -> bool:
        """Whether a live peer has dashboards that hear the farm's events."""
        now = time.monotonic()
        return any(self._alive(peer, now) for peer in self._listening)

    def online(self, now: float | None = None) -> int:
        """Nodes connected to live peers."""
        now = time.monotonic() if now is None else now
        return sum(n for peer, n in self._counts.items() if self._alive(peer, now))


class FarmLink:
    def __init__(self, db: Database, broker: EventBroker, kick: Callable[[], None]):
        from .pg_database import PostgresDatabase
        self.url = db.url if isinstance(db, PostgresDatabase) else None
        self.broker = broker
        self._kick = kick
        self.origin = uuid.uuid4().hex[:12]
        # SQLite: the only coordinator, so it does everything.
        self.holds_duties = self.url is None
        self._out: list[str] = []
        self._sender: asyncio.Handle | None = None
        self._conn: Any = None
        self._using = asyncio.Lock()   # one statement at a time on the connection
        self.peer_nodes = PeerNodes()
        self._told: set[tuple] = set()   # frames NOTIFYed with their record
        # Asked by a peer that started: tell it every node connected here.
        self.tell_nodes: Callable[[], None] = lambda: None
        if self.url is not None:
            broker.relay = self._relay
            broker.first_stream = self._say_alive

    @property
    def shared(self) -> bool:
        return self.url is not None

    def kick_peers(self) -> None:
        if self.shared:
            self._queue("kick", "")

    # -- out ----------------------------------------------------------------------
    def frame_news(self, frame: dict) -> tuple[str, str] | None:
        """The NOTIFY of a frame's event, for its record's transaction (None: too big,
        relayed after the commit like any event)."""
        if not self.peer_nodes.any_listening():
            return None   # nobody to tell (a dashboard opening now reads the listings)
        line = f"{self.origin}\tframe\t{orjson.dumps(frame).decode()}"
        if len(line.encode()) > PAYLOAD_LIMIT:
            return None
        if len(self._told) > 4096:   # records rolled back after their news was made
            self._told.clear()
        self._told.add(_frame_key(frame))
        return CHANNEL, line

    def told(self, frame: dict) -> bool:
        """Whether the frame's event went out with its record (then not again)."""
        key = _frame_key(frame)
        if key in self._told:
            self._told.discard(key)
            return True
        return False

    def _relay(self, kind: str, data: bytes) -> None:
        # Node views: every peer keeps them. The rest: peers with dashboards hear it.
        if self.peer_nodes.any_listening() or (kind == "node" and self.peer_nodes.any_alive()):
            self._queue(kind, data.decode())

    def _say_alive(self) -> None:
        """Alive, and whether this coordinator's dashboards listen (at once when the
        first opens: peers relay events to it from now on)."""
        self._queue("alive", "1" if self.broker.streams else "")

    def _queue(self, kind: str, data: str) -> None:
        self._out.append(f"{self.origin}\t{kind}\t{data}")
        if self._sender is None:
            # Sent at the end of this turn of the loop, with whatever else it published:
            # a coordinator killed right after a commit loses as little as can be.
            self._sender = asyncio.get_running_loop().call_soon(self._send_soon)

    def _send_soon(self) -> None:
        self._sender = None
        out, self._out = self._out, []
        if self._conn is None or self._conn.is_closed():
            return   # reconnecting: what happens meanwhile is seen in listings
        asyncio.get_running_loop().create_task(self._send(out))

    async def _send(self, lines: list[str]) -> None:
        payloads: list[str] = []
        part: list[str] = []
        size = 0
        for line in lines:
            n = len(line.encode()) + 1
            if n > PAYLOAD_LIMIT:
                log.debug("event too large to relay (%d bytes)", n)
                continue
            if size + n > PAYLOAD_LIMIT:
                payloads.append("\n".join(part))
                part, size = [], 0
            part.append(line)
            size += n
        if part:
            payloads.append("\n".join(part))
        try:
            async with self._using:
                for payload in payloads:
                    await self._conn.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)
        except Exception as exc:  # the connection is being replaced
            log.info("could not relay events: %s", exc)

    # -- in -------------------------------------------------------------------------
    def _heard(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        for line in payload.split("\n"):
            origin, kind, data = line.split("\t", 2)
            if origin == self.origin:
                continue
            if self.peer_nodes.heard(origin) and kind != "hello":
                self._queue("hello", "")   # tell us your nodes (we dropped them, or never had)
            if kind == "alive":
                self.peer_nodes.listening(origin, data == "1")
                continue
            if kind == "kick":
                self._kick()
            elif kind == "hello":
                self.tell_nodes()
            elif kind == "node":
                self.peer_nodes.node(origin, orjson.loads(data))
                self.broker.publish_encoded(kind, data.encode())
            elif kind == "shot":
                self.broker.shot_changed(int(data), here=False)
            else:
                self.broker.publish_encoded(kind, data.encode())

    # -- the connection and the lock -------------------------------------------------
    async def run(self) -> None:
        if self.url is None:
            return
        import asyncpg
        while True:
            try:
                self._conn = await asyncpg.connect(self.url)
                await self._conn.add_listener(CHANNEL, self._heard)
                # Whatever happened while we were not listening: claim for our nodes,
                # and hear the peers' nodes again.
                self._kick()
                self._queue("hello", "")
                while True:
                    self._say_alive()
                    async with self._using:
                        if not self.holds_duties:
                            self.holds_duties = bool(await self._conn.fetchval(
                                "SELECT pg_try_advisory_lock($1)", DUTY_LOCK))
                            if self.holds_duties:
                                log.info("this coordinator does the farm's duties (reaper)")
                        else:
                            await self._conn.fetchval("SELECT 1")
                    await asyncio.sleep(CHECK_SECONDS)
            except asyncio.CancelledError:
                await self._close()
                raise
            except Exception as exc:
                if self.holds_duties:
                    log.warning("lost the database link (%s): duties pass on", exc)
                self.holds_duties = False
                await self._close()
                await asyncio.sleep(CHECK_SECONDS)

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await asyncio.wait_for(conn.close(), 2)
            except Exception:
                conn.terminate()


def _frame_key(frame: dict) -> tuple:
    return frame["shot_id"], frame["number"], frame.get("sha256")
