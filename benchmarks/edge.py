"""Benchmark 4: `/api/farm` stays quick while anyone stresses the open reads.

A fresh coordinator (no nodes) gets a 100,000-frame shot in chunks of 1 (100,000
jobs). Then, at once, for the measured window:

- 3,000 event streams (`/api/events`) that never read a byte, spread over loopback
  source addresses 127.0.0.2, .3, ... (20 each: the default per-address cap; the
  total cap is raised to 4,000 with `--max-event-streams`);
- three clients looping over the big reads: the shot's full frame list, its full
  job list, and `POST /api/blobs/missing` of 100,000 digests (10 calls of 10,000, the
  most one call takes: what the add-on sends);
- 300 blob uploads (64 kB each, 4 at a time), timed, and a PATCH of the shot's
  priority every second (a `shot` event for every stream);
- a probe: `GET /api/farm` every 20 ms on a keep-alive connection; its latencies
  give the p50 / p99 / max, next to the same probe on the idle coordinator first.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import multiprocessing
import os
import socket
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import common
from .common import TOKEN, Coordinator, fake_blend, log

FRAMES = 100_000
STREAMS = 3_000
PER_ADDRESS = 20
DIGESTS = 100_000
UPLOADS = 300


def _connection(url: str) -> http.client.HTTPConnection:
    host, port = url.rsplit("/", 1)[-1].split(":")
    return http.client.HTTPConnection(host, int(port), timeout=120)


def _call(conn: http.client.HTTPConnection, method: str, path: str,
          body: bytes | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    return resp.status, resp.read()


def probe(url: str, seconds: float, interval: float = 0.02) -> list[float]:
    """Latencies (ms) of GET /api/farm, one every `interval` seconds."""
    conn, out = _connection(url), []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.perf_counter()
        status, _ = _call(conn, "GET", "/api/farm")
        out.append((time.perf_counter() - started) * 1000)
        assert status == 200, status
        time.sleep(interval)
    conn.close()
    return out


def summary(ms: list[float]) -> dict:
    ms = sorted(ms)
    return {"samples": len(ms), "p50_ms": round(statistics.median(ms), 1),
            "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 1),
            "max_ms": round(ms[-1], 1)}


def open_idle_streams(port: int, count: int) -> list[socket.socket]:
    """Event streams whose reader never reads, from 127.0.0.2, .3, ..."""
    request = b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    socks = []
    for i in range(count):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.bind((f"127.0.0.{2 + i // PER_ADDRESS}", 0))
        s.connect(("127.0.0.1", port))
        s.sendall(request)
        socks.append(s)
    return socks


def accepted_streams(socks: list[socket.socket]) -> int:
    """How many streams the coordinator answered 200 (a peek: nothing is consumed
    beyond the status line the kernel already holds)."""
    ok = 0
    for s in socks:
        try:
            head = s.recv(12, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            continue
        ok += head.startswith(b"HTTP/1.1 200")
    return ok


def big_reads(url: str, shot_id: int, stop, which: str, until: float, results) -> None:
    """One load client (its own process: its parsing must not slow the probe): loop
    over one big read until `stop` is set; puts {which: [seconds], which_mb: [MB]}.
    Clients would be other machines: here they yield the shared CPUs to the coordinator."""
    os.nice(10)
    digests = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(DIGESTS)]
    # In batches of 10,000, the most the coordinator takes per call (the add-on's way).
    batches = [json.dumps({"sha256": digests[i:i + 10_000]}).encode()
               for i in range(0, DIGESTS, 10_000)]
    seconds: dict = {}
    conn = _connection(url)
    while not stop.is_set() and time.monotonic() < until:
        started = time.monotonic()
        if which == "frames":
            status, body = _call(conn, "GET", f"/api/shots/{shot_id}/frames")
        elif which == "jobs":
            status, body = _call(conn, "GET", f"/api/shots/{shot_id}/jobs")
        else:
            for batch in batches:
                status, body = _call(conn, "POST", "/api/blobs/missing", batch)
                assert status == 200, (which, status, body[:200])
        assert status == 200, (which, status, body[:200])
        seconds.setdefault(which, []).append(time.monotonic() - started)
        seconds.setdefault(which + "_mb", [len(body) / 2**20])
    conn.close()
    results.put(seconds)


def uploads_and_events(url: str, shot_id: int, stop, results) -> None:
    """Another load client: the timed uploads, and a priority change every second."""
    os.nice(10)
    def patch_priority() -> None:
        conn, p = _connection(url), 0
        while not stop.wait(1.0):
            p = (p + 1) % 100
            _call(conn, "PATCH", f"/api/shots/{shot_id}", json.dumps({"priority": p}).encode())
        conn.close()

    patcher = threading.Thread(target=patch_priority, daemon=True)
    patcher.start()
    results.put({"uploads_s": uploads(url, UPLOADS)})
    patcher.join()


def uploads(url: str, count: int) -> float:
    def one(i: int) -> None:
        data = os.urandom(64 * 1024)
        conn = _connection(url)
        conn.request("PUT", f"/api/blobs/{hashlib.sha256(data).hexdigest()}", body=data,
                     headers={"Authorization": f"Bearer {TOKEN}",
                              "Content-Type": "application/octet-stream"})
        assert conn.getresponse().status in (200, 201)
        conn.close()

    started = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(count)))
    return time.monotonic() - started


def run(root: Path, quick: bool = False) -> dict:
    window = 10.0 if quick else 20.0
    # A coordinator from before the caps (an A/B run with --repo) takes no such flag.
    capped = "--max-event-streams" in (common.TARGET / "coordinator" / "cli.py").read_text()
    flags = ["--max-event-streams", str(STREAMS + 1000)] if capped else []
    coord = Coordinator(root / "edge", *flags).start()
    socks: list[socket.socket] = []
    stop = None
    try:
        started = time.monotonic()
        shot = coord.api.create_shot("edge.blend", fake_blend(), frame_start=1,
                                     frame_end=FRAMES, chunk_size=1, name="edge")
        create_s = round(time.monotonic() - started, 2)
        log(f"edge: {FRAMES}-frame shot created in {create_s} s")
        idle = summary(probe(coord.url, 5.0))
        log(f"edge: /api/farm idle p99 {idle['p99_ms']} ms")
        socks = open_idle_streams(coord.port, STREAMS)
        time.sleep(2)
        streams_ok = accepted_streams(socks)
        log(f"edge: {streams_ok} of {STREAMS} idle event streams accepted")
        ctx = multiprocessing.get_context("spawn")
        results, stop = ctx.Queue(), ctx.Event()
        until = time.monotonic() + window + 120
        loaders = [ctx.Process(target=big_reads, daemon=True,
                               args=(coord.url, shot["id"], stop, w, until, results))
                   for w in ("frames", "jobs", "missing")]
        loaders.append(ctx.Process(target=uploads_and_events, daemon=True,
                                   args=(coord.url, shot["id"], stop, results)))
        for p in loaders:
            p.start()
        time.sleep(3)   # the loaders have started (spawned interpreters, 100,000 digests)
        loaded = summary(probe(coord.url, window))
        lag = json.loads(_call(_connection(coord.url), "GET",
                               f"/api/farm?window={window:g}")[1])["loop_lag"]
        stop.set()
        seconds: dict = {}
        for _ in loaders:
            seconds.update(results.get(timeout=180))
        for p in loaders:
            p.join(30)
        log(f"edge: /api/farm under load p99 {loaded['p99_ms']} ms")
        reads = {k: {"runs": len(v), "median_s": round(statistics.median(v), 2)}
                 for k, v in seconds.items() if k in ("frames", "jobs", "missing")}
        return {"frames": FRAMES, "create_s": create_s, "streams": STREAMS,
                "streams_accepted": streams_ok, "farm_idle": idle, "farm_loaded": loaded,
                "window_s": window, "reads": reads,
                "frames_mb": round(seconds.get("frames_mb", [0])[0], 1),
                "jobs_mb": round(seconds.get("jobs_mb", [0])[0], 1),
                "uploads_s": round(seconds.get("uploads_s", float("nan")), 2),
                "loop_lag": lag}
    finally:
        if stop is not None:
            stop.set()
        for s in socks:
            s.close()
        coord.stop()
