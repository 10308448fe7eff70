"""The capacity benchmark on PostgreSQL: one coordinator, then two sharing the farm.

    python -m benchmarks.pg_capacity [--nodes 1000] [--window 12] [--paced-pairs N]

Starts a throw-away PostgreSQL cluster (tests/pg/cluster.py), a fresh database per
run. One coordinator: benchmarks/capacity.py's own run, as fast as possible and paced
at 500 frames/s, with `--database` pointing the coordinator at PostgreSQL. Two
coordinators: one data dir and one database, half the simulated nodes on each, the
shot submitted to the first; frames counted on the first's event stream (the second's
frames reach it through NOTIFY); CPU per frame is both coordinators' and their
workers' together.

`--paced-pairs N` interleaves, at the same offered load, one coordinator and two
sharing the farm, and a third run: one coordinator with half the nodes at half the
pace, the load each of the two carries. Two sharing the farm cost no more a frame than
that run when sharing adds no work; what one coordinator with the whole farm saves
beyond it is what this machine charges less for work done at a higher rate
(`benchmarks/rate_effect.py` measures that with no Brender code).
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from benchmarks import capacity
from benchmarks.common import (Coordinator, EventCounter, children_of, cpu_seconds,
                               fake_blend, log, raise_fd_limit, wait_for)
from benchmarks.fleet import Fleet, percentile
from tests.pg.cluster import Cluster, server_bin


def two_coordinators(root: Path, url: str, nodes: int, frames: int, window: float) -> dict:
    os.environ["BRENDER_DATABASE"] = url
    a = Coordinator(root / "a", "--lease-timeout", "300")
    b = Coordinator(root / "b", "--lease-timeout", "300")
    b.data_dir = a.data_dir
    a.start()
    b.start()
    fleets: list[Fleet] = []
    events = None
    try:
        events = EventCounter(a.url)
        events.start()
        events.hello.wait(10)
        for coord, prefix in ((a, "sa"), (b, "sb")):
            fleet = Fleet(coord.url, nodes // 2, capacity.processes_for(nodes // 2),
                          prefix=prefix)
            fleet.start(timeout=180)
            fleets.append(fleet)
        wait_for(lambda: a.api.get("/api/version")["nodes_online"]
                 + b.api.get("/api/version")["nodes_online"] >= nodes, 60, what="nodes")
        procs = [a.pid, b.pid]
        cpu0 = {p: cpu_seconds(p) for p in procs}
        kids0 = {k: cpu_seconds(k) for p in procs for k in children_of(p)}
        shot = a.api.create_shot("capacity.blend", fake_blend(), frame_start=1,
                                 frame_end=frames, chunk_size=1, name="capacity-two")
        t0 = time.monotonic()
        complete = events.wait_frames(shot["id"], frames, window)
        t_end = events.frames[shot["id"]][-1] if complete else time.monotonic()
        done = events.count(shot["id"])
        cpu = sum(cpu_seconds(p) - cpu0[p] for p in procs)
        kids = sum(cpu_seconds(k) - kids0.get(k, 0.0) for p in procs for k in children_of(p))
        lat: list[float] = []
        per_side = []
        for fleet in fleets:
            m = fleet.stop()
            lat += m["latencies_ms"]
            per_side.append(m["frames_uploaded"])
        fleets = []
        elapsed = max(1e-6, t_end - t0)
        row = {"nodes": nodes, "mode": "two coordinators, max", "frames_done": done,
               "seconds": round(elapsed, 2), "frames_per_s": round(done / elapsed, 1),
               "uploads_per_coordinator": per_side,
               "dispatch_p50_ms": round(percentile(lat, 0.5) or 0, 2),
               "dispatch_p99_ms": round(percentile(lat, 0.99) or 0, 2),
               "cpu_ms_per_frame": round(1000 * cpu / max(1, done), 2),
               "worker_cpu_ms_per_frame": round(1000 * kids / max(1, done), 2)}
        log(f"two coordinators: {json.dumps(row)}")
        return row
    finally:
        for fleet in fleets:
            fleet.kill()
        if events is not None:
            events.close()
        a.stop()
        b.stop()


def summary(rows: list[dict]) -> None:
    """The paced runs' CPU a frame (coordinators and their worker processes)."""
    for row in rows:
        if "part_of_farm" not in row:
            continue
        total = row["cpu_ms_per_frame"] + row["worker_cpu_ms_per_frame"]
        log(f"{row['coordinators']} coordinator(s), {row['nodes']} nodes, "
            f"{row['mode']}: {row['frames_per_s']} frames/s, dispatch p99 "
            f"{row['dispatch_p99_ms']} ms, CPU a frame {total:.2f} ms "
            f"({row['cpu_ms_per_frame']} + {row['worker_cpu_ms_per_frame']} in workers)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=1000)
    p.add_argument("--frames", type=int, default=12000)
    p.add_argument("--window", type=float, default=12.0)
    p.add_argument("--pace", type=float, default=500.0)
    p.add_argument("--only", choices=("one", "two", "paced"),
                   help="paced: only the --paced-pairs runs")
    p.add_argument("--paced-pairs", type=int, default=0,
                   help="then this many paced runs of one and of two coordinators, "
                        "and of one with half the nodes at half the pace, interleaved: "
                        "CPU per frame at the same offered load (a run as fast as "
                        "possible measures how each saturates this machine)")
    args = p.parse_args()
    raise_fd_limit()
    bin_dir = server_bin()
    if bin_dir is None:
        raise SystemExit("PostgreSQL's server is not installed")
    cluster = Cluster(bin_dir).start()
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="pgcap-") as scratch:
            root = Path(scratch)
            if args.only in (None, "one"):
                for pace in (None, args.pace):
                    window = max(args.window, 3.5 * args.nodes / pace + 2) if pace \
                        else args.window
                    rows.append(capacity.run_one(
                        root / f"one-{pace}", args.nodes, args.frames, 1, window, pace=pace,
                        database=cluster.url(cluster.new_database())))
            if args.only in (None, "two"):
                url = cluster.url(cluster.new_database())
                rows.append(two_coordinators(root / "two", url, args.nodes, args.frames,
                                             args.window))
            window = max(args.window, 3.5 * args.nodes / args.pace + 2)
            for i in range(args.paced_pairs):
                for coordinators, share in ((1, 1), (2, 1), (1, 2)):
                    row = capacity.run_one(
                        root / f"paced-{i}-{coordinators}-{share}", args.nodes // share,
                        args.frames, 1, window, pace=args.pace / share,
                        coordinators=coordinators,
                        database=cluster.url(cluster.new_database()))
                    row["part_of_farm"] = f"1/{share}"
                    rows.append(row)
            if args.paced_pairs:
                summary(rows)
    finally:
        cluster.stop()
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
