"""A fleet of simulated nodes spread over a few load-generator processes."""
from __future__ import annotations

import json
import select
import subprocess
import sys
import time
from pathlib import Path

from .common import REPO, cpu_seconds, stop_process

SIMNODES = Path(__file__).with_name("simnodes.py")


def split_pools(pools: list[dict], processes: int) -> list[list[dict]]:
    """Each process's share of every pool (counts as even as they go; a process's list
    leaves out pools it has no node of)."""
    shares: list[list[dict]] = [[] for _ in range(processes)]
    for pool in pools:
        per, extra = divmod(int(pool["count"]), processes)
        for i in range(processes):
            n = per + (1 if i < extra else 0)
            if n:
                shares[i].append(dict(pool, count=n))
    return shares


class Fleet:
    """`urls`: one coordinator, or several sharing a database (each process dials one,
    in turn). `pools`: the nodes' pools (simnodes.py --pools); their counts add up to
    `count`. `idle_sample`: seconds between idle-node counts (0: none)."""

    def __init__(self, url: str | list[str], count: int, processes: int = 1,
                 prefix: str = "sim", render_time: float | None = None,
                 render_seconds: float = 0.0, pools: list[dict] | None = None,
                 idle_sample: float = 0.0, idle_threshold: float = 0.25):
        self.urls = [url] if isinstance(url, str) else list(url)
        self.url, self.count = self.urls[0], count
        self.processes = max(1, min(processes, count))
        self.prefix, self.render_time = prefix, render_time
        self.render_seconds = render_seconds
        self.pools = pools or [{"name": "all", "count": count, "tags": [], "gpu": False}]
        if sum(int(p["count"]) for p in self.pools) != count:
            raise ValueError("the pools' counts must add up to the fleet's")
        self.idle_sample, self.idle_threshold = idle_sample, idle_threshold
        self.procs: list[subprocess.Popen] = []

    def start(self, timeout: float = 120) -> float:
        """Start every process; returns once all nodes have their welcome (seconds taken)."""
        started = time.monotonic()
        offset = 0
        for i, share in enumerate(split_pools(self.pools, self.processes)):
            n = sum(p["count"] for p in share)
            cmd = [sys.executable, str(SIMNODES), "--url", self.urls[i % len(self.urls)],
                   "--count", str(n), "--offset", str(offset), "--prefix", self.prefix,
                   "--render-seconds", str(self.render_seconds),
                   "--pools", json.dumps(share), "--idle-sample", str(self.idle_sample),
                   "--idle-threshold", str(self.idle_threshold)]
            if self.render_time is not None:
                cmd += ["--render-time", str(self.render_time)]
            offset += n
            self.procs.append(subprocess.Popen(cmd, cwd=REPO, stdin=subprocess.PIPE,
                                               stdout=subprocess.PIPE, text=True))
        waiting = set(range(len(self.procs)))
        deadline = started + timeout
        while waiting:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"simulated nodes did not all connect in {timeout:.0f} s")
            ready, _, _ = select.select([self.procs[i].stdout for i in waiting], [], [], left)
            for i in list(waiting):
                if self.procs[i].stdout in ready:
                    line = self.procs[i].stdout.readline()
                    if not line:
                        raise RuntimeError("a simulated-node process exited early")
                    if line.startswith("CONNECTED"):
                        waiting.discard(i)
        return time.monotonic() - started

    def stop(self, timeout: float | None = None) -> dict:
        """Stop every process and merge what they measured (a loaded machine takes a
        while to close thousands of connections: 60 s, plus 30 s per 1,000 nodes)."""
        timeout = timeout if timeout is not None else 60 + 30 * self.count / 1000
        merged: dict = {"latencies_ms": [], "first_latencies_ms": [], "first_assign_at": [],
                        "loop_lag": [], "idle_samples": [], "frames_uploaded": 0,
                        "jobs_done": 0, "assigns": 0, "stale": 0, "errors": {},
                        "connected": 0, "reconnects": 0}
        merged["load_cpu_s"] = round(sum(cpu_seconds(p.pid) for p in self.procs), 2)
        for proc in self.procs:
            try:
                proc.stdin.write("stop\n")
                proc.stdin.flush()
            except (BrokenPipeError, OSError):
                pass
        for proc in self.procs:
            try:
                out, _ = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                stop_process(proc)
                continue
            for line in out.splitlines():
                if line.startswith("RESULT "):
                    r = json.loads(line[7:])
                    for key in ("latencies_ms", "first_latencies_ms", "first_assign_at"):
                        merged[key] += r[key]
                    merged["loop_lag"] += r.get("loop_lag", [])
                    merged["idle_samples"].append(r.get("idle_samples", []))
                    for key in ("frames_uploaded", "jobs_done", "assigns", "stale",
                                "connected", "reconnects"):
                        merged[key] += r.get(key, 0)
                    for k, v in r["errors"].items():
                        merged["errors"][k] = merged["errors"].get(k, 0) + v
        self.procs = []
        return merged

    def kill(self) -> None:
        for proc in self.procs:
            stop_process(proc, grace=5)
        self.procs = []


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)
