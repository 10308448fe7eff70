"""Simulated render nodes: light clients of the node protocol (docs/api.md), no Blender.

Run as its own process (the load generator must not share the coordinator's event
loop): `python benchmarks/simnodes.py --url http://127.0.0.1:PORT --count 500`.
Each simulated node dials `/api/node/ws`, says hello, waits for welcome, sends
`ready`; on `assign` it PUTs every frame of the job at once (a pre-encoded tiny PNG
with its `X-Sha256`), sends `job_done` and `ready` again (one `job_done` with
`"ready": true` when the coordinator offers "ready_in_report", as the real agent does). It prints `CONNECTED n`
on stdout once every node has its welcome, and on `stop` (a line on stdin) or EOF
prints one JSON line with what it measured:

- `first_assign_at`: when (time.monotonic(), system-wide) each node got its first job.
- `latencies_ms`: dispatch latency, `ready` (or a ready `job_done`) sent -> `assign`
  received, client side.
  The first assignment of each node is left out (its `ready` was sent before any
  shot existed, so it measures the wait for the submit, not the dispatcher).
- `frames_uploaded`, `jobs_done`, `assigns`, `stale` (409), `errors`.
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import TOKEN, raise_fd_limit, tiny_png  # noqa: E402
from brender_protocol import messages  # noqa: E402

CPU = {"type": "CPU", "name": "CPU", "id": "CPU"}
GPU = {"type": "CUDA", "name": "Simulated GPU", "id": "CUDA_0"}


def pool_of_each(pools: list[dict], count: int) -> list[dict]:
    """The pool of each of `count` nodes: the pools' counts in order (the last pool
    takes what the counts leave)."""
    out: list[dict] = []
    for pool in pools:
        out += [pool] * min(int(pool["count"]), count - len(out))
    return out + [pools[-1]] * (count - len(out))


class Stats:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.first_latencies: list[float] = []
        self.first_assign_at: list[float] = []   # time.monotonic(), comparable across processes
        self.frames_uploaded = 0
        self.jobs_done = 0
        self.assigns = 0
        self.stale = 0
        self.errors: dict[str, int] = {}
        self.connected = 0
        self.reconnects = 0
        self.loop_lag: list[tuple[float, float]] = []   # (time.monotonic(), ms late)
        # Each node's pool and since when it has been idle (None: it holds a job).
        self.idle_since: dict[int, float | None] = {}
        self.pool: dict[int, str] = {}
        self.idle_samples: list[tuple[float, dict[str, list[int]]]] = []

    def sample_idle(self, threshold: float) -> None:
        now = time.monotonic()
        counts: dict[str, list[int]] = {}
        for index, since in self.idle_since.items():
            entry = counts.setdefault(self.pool[index], [0, 0])
            if since is not None:
                entry[0] += 1
                if now - since > threshold:
                    entry[1] += 1
        self.idle_samples.append((round(now, 4), counts))

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


class Uploader:
    """PUTs frames over one keep-alive HTTP/1.1 connection with a prebuilt request.

    The load generator shares the machine with the coordinator: a general-purpose
    client spent ~0.5 ms of CPU per upload, CPU the coordinator then waited for. The
    requests are the same bytes a node's client sends."""

    def __init__(self, url: str, headers: dict[str, str], body: bytes):
        host_port = url.split("//", 1)[1].rstrip("/")
        self.host, port = host_port.rsplit(":", 1)
        self.port = int(port)
        lines = [f"Host: {host_port}", f"Content-Length: {len(body)}"] + \
            [f"{k}: {v}" for k, v in headers.items()]
        self.tail = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def put(self, path: str) -> int:
        """The response's status; one reconnect if the connection was closed."""
        for attempt in (0, 1):
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            try:
                self.writer.write(f"PUT {path} HTTP/1.1\r\n".encode() + self.tail)
                head = await self.reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"connection" and value.strip().lower() == b"close":
                        self.close()
                if length and self.reader is not None:
                    await self.reader.readexactly(length)
                return status
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                self.close()
                if attempt:
                    raise ConnectionError(str(exc)) from None
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def render_time(mean: float, rendering: bool) -> float:
    """A paced node's time for one frame: ±50 % around `mean`, so nodes drift apart as
    real ones do. A node's first frame takes what is left of a frame already under way
    (the residual of that spread), as on a farm that was rendering before: nodes that
    all start at the submit with whole frames finish their first two frames in waves
    that overlap 10-15 s in, offering up to 1.5 times the pace, where this way the
    fleet offers the pace from the start."""
    if rendering:
        return mean * random.uniform(0.5, 1.5)
    # The residual's density is P(frame > x) / mean: flat up to 0.5 mean (half the
    # mass), then falling linearly to 0 at 1.5 mean.
    if random.random() < 0.5:
        return mean * random.uniform(0.0, 0.5)
    return mean * (1.5 - random.random() ** 0.5)


async def sim_node(index: int, pool: dict, args, http: aiohttp.ClientSession, png: bytes,
                   sha: str, stats: Stats, connect_gate: asyncio.Semaphore,
                   all_connected) -> None:
    """One node: its channel, dialled again when it drops (as the real agent does: a
    coordinator that missed its pongs on a loaded machine closes it), under the id the
    first welcome gave."""
    state: dict = {"first": True, "sent_ready": time.perf_counter(), "node_id": None,
                   "rendering": False}
    stats.pool[index] = pool["name"]
    while True:
        if not await _channel(index, pool, args, http, png, sha, stats, connect_gate,
                              all_connected, state):
            return
        stats.reconnects += 1
        await asyncio.sleep(0.5 + random.random())


async def _channel(index: int, pool: dict, args, http: aiohttp.ClientSession, png: bytes,
                   sha: str, stats: Stats, connect_gate: asyncio.Semaphore,
                   all_connected, state: dict) -> bool:
    """One connection of the node; True when it dropped (dial again)."""
    hello = messages.hello(state["node_id"], f"{args.prefix}-{index:05d}", f"sim{index}",
                           "sim", "sim", 1, list(pool.get("tags") or []), False, None, "sim",
                           devices=[CPU, GPU] if pool.get("gpu") else [CPU])
    headers_base = {"X-Sha256": sha, "X-Filename": "frame.png", "Content-Type": "image/png"}
    if args.render_time is not None:
        # Left out by default: with measured frame times the coordinator's adaptive
        # chunks would merge jobs, and the benchmark wants one dispatch per frame.
        headers_base["X-Render-Time"] = f"{args.render_time:.4f}"
    for attempt in range(20):
        try:
            async with connect_gate:
                ws = await http.ws_connect(f"{args.url}/api/node/ws", autoping=True,
                                           heartbeat=None, max_msg_size=1 << 24)
                await ws.send_str(json.dumps(hello))
                welcome = json.loads((await ws.receive(timeout=60)).data)
            break
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError, TypeError) as exc:
            stats.error(f"connect: {type(exc).__name__}")
            await asyncio.sleep(0.2 * (attempt + 1))
    else:
        return False
    if welcome.get("type") != "welcome":
        stats.error(f"handshake: {welcome}")
        await ws.close()
        return False
    if state["node_id"] is None:
        state["node_id"] = welcome.get("node_id")
        stats.connected += 1
        if stats.connected == args.count:
            all_connected.set()
    uploader = Uploader(args.url, dict(headers_base, Authorization=f"Bearer {TOKEN}"), png)
    combined = "ready_in_report" in (welcome.get("features") or [])
    running: set[asyncio.Task] = set()

    def asking() -> None:
        state["sent_ready"] = time.perf_counter()
        stats.idle_since[index] = time.monotonic()

    async def ready() -> None:
        asking()
        await ws.send_str(json.dumps(messages.ready()))

    async def run_job(job: dict) -> None:
        """Like the real agent: the job runs in its own task, the channel keeps reading
        (and answering the coordinator's pings) meanwhile."""
        attempt_id = job["attempt_id"]
        lost = False
        for number in job["frames"]:
            if args.render_seconds > 0:   # paced mode: pretend to render
                await asyncio.sleep(render_time(args.render_seconds, state["rendering"]))
                state["rendering"] = True
            try:
                status = await uploader.put(f"/api/attempts/{attempt_id}/frames/{number}")
            except OSError as exc:
                stats.error(f"upload: {type(exc).__name__}")
                continue
            if status == 409:
                stats.stale += 1
                lost = True
                break
            if status not in (200, 201):
                stats.error(f"upload HTTP {status}")
                continue
            stats.frames_uploaded += 1
        try:
            if not lost and combined:
                # Like the real agent: the report asks for the next job too.
                asking()
                await ws.send_str(json.dumps(dict(messages.job_done(attempt_id, ""),
                                                  ready=True)))
                stats.jobs_done += 1
                return
            if not lost:
                await ws.send_str(json.dumps(messages.job_done(attempt_id, "")))
                stats.jobs_done += 1
            await ready()
        except (aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
            stats.error(f"report: {type(exc).__name__}")

    await ready()
    try:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(msg.data)
            kind = data.get("type")
            if kind == "assign":
                latency = (time.perf_counter() - state["sent_ready"]) * 1000
                stats.idle_since[index] = None
                first = state["first"]
                (stats.first_latencies if first else stats.latencies).append(latency)
                if first:
                    stats.first_assign_at.append(time.monotonic())
                state["first"] = False
                stats.assigns += 1
                task = asyncio.create_task(run_job(data["job"]))
                running.add(task)
                task.add_done_callback(running.discard)
            elif kind == "cancel":
                for task in list(running):
                    task.cancel()
                await ready()
            elif kind == "error":
                stats.error(f"coordinator: {data.get('error')}")
    except (aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
        stats.error(f"channel: {type(exc).__name__}")
    finally:
        stats.idle_since.pop(index, None)
        for task in list(running):
            task.cancel()
        uploader.close()
        if not ws.closed:
            await ws.close()
    return True


async def main_async(args) -> None:
    png = tiny_png(args.width, args.height)
    sha = hashlib.sha256(png).hexdigest()
    stats = Stats()
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
    all_connected = asyncio.Event()
    async with aiohttp.ClientSession(connector=connector, headers=headers,
                                     timeout=timeout) as http:
        gate = asyncio.Semaphore(args.connect_concurrency)
        pools = pool_of_each(json.loads(args.pools) if args.pools else
                             [{"name": "all", "count": args.count}], args.count)
        tasks = [asyncio.create_task(sim_node(i + args.offset, pools[i], args, http, png, sha,
                                              stats, gate, all_connected))
                 for i in range(args.count)]

        async def announce() -> None:
            await all_connected.wait()
            print(f"CONNECTED {stats.connected}", flush=True)

        announcer = asyncio.create_task(announce())

        async def watch_lag() -> None:
            """This process's own event-loop lag: it is part of every latency it measures."""
            while True:
                asked = time.monotonic()
                await asyncio.sleep(0.01)
                now = time.monotonic()
                stats.loop_lag.append((round(now, 4), round(1000 * (now - asked - 0.01), 2)))

        lag_watcher = asyncio.create_task(watch_lag())

        async def watch_idle() -> None:
            while True:
                await asyncio.sleep(args.idle_sample)
                stats.sample_idle(args.idle_threshold)

        idle_watcher = asyncio.create_task(watch_idle()) if args.idle_sample > 0 else None
        loop = asyncio.get_running_loop()
        # Wait for "stop" (or EOF) on stdin.
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line or line.strip() == "stop":
                break
        announcer.cancel()
        lag_watcher.cancel()
        if idle_watcher is not None:
            idle_watcher.cancel()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    result = {"latencies_ms": [round(x, 3) for x in stats.latencies],
              "loop_lag": stats.loop_lag,
              "first_latencies_ms": [round(x, 3) for x in stats.first_latencies],
              "first_assign_at": stats.first_assign_at,
              "frames_uploaded": stats.frames_uploaded, "jobs_done": stats.jobs_done,
              "assigns": stats.assigns, "stale": stats.stale, "errors": stats.errors,
              "connected": stats.connected, "reconnects": stats.reconnects,
              "idle_samples": stats.idle_samples}
    print("RESULT " + json.dumps(result), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True)
    p.add_argument("--count", type=int, default=10)
    p.add_argument("--offset", type=int, default=0, help="first node index (unique names)")
    p.add_argument("--prefix", default="sim")
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--height", type=int, default=36)
    p.add_argument("--render-time", type=float, default=None,
                   help="send this X-Render-Time with each frame (default: none, so "
                        "adaptive chunking stays off and every frame is one dispatch)")
    p.add_argument("--render-seconds", type=float, default=0.0,
                   help="sleep this long (±50 %%) before each frame: a paced, realistic load")
    p.add_argument("--connect-concurrency", type=int, default=64)
    p.add_argument("--pools", default=None,
                   help='JSON list of {"name", "count", "tags", "gpu"}: the nodes\' pools '
                        "(default: one pool, no tags, a CPU)")
    p.add_argument("--idle-sample", type=float, default=0.0,
                   help="every this many seconds, count idle nodes per pool (0: never)")
    p.add_argument("--idle-threshold", type=float, default=0.25,
                   help="idle longer than this counts as idle for long")
    args = p.parse_args()
    raise_fd_limit()
    # Simulated nodes stand for other machines: here they yield the shared CPUs to the
    # coordinator (their own lag, measured and reported, stays in the latency).
    os.nice(10)
    try:
        # The load generator's own delays count in the latency it measures: keep them
        # small (uvloop is a dependency of the coordinator, so it is here too).
        import uvloop
        uvloop.run(main_async(args))
    except ImportError:
        asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
