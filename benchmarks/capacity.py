"""Benchmark 2: coordinator capacity with simulated nodes (no Blender).

For each fleet size: a fresh coordinator (`brender-coordinator`, its own data dir),
one SSE client on /api/events counting `frame` events (each is sent after the frame
is stored, recorded in the database and thumbnailed), and N simulated nodes in
separate load-generator processes (benchmarks/simnodes.py). Once every node is
connected and idle, a shot is submitted (blob upload + POST /api/shots); from the
moment the POST returns, frames are counted until the shot is done or the time
window closes. The shot and the window are sized to the fleet (`shot_size`), so every
node gets more than one job in the window.

`database` (a URL) is passed to the coordinator as `--database`; `coordinators` > 1
starts that many on the one database (each load-generator process dials one in turn)
and counts frames through the API, since each coordinator's event stream tells its own
nodes' frames only.
"""
from __future__ import annotations

import math
import signal
import subprocess
import time
from pathlib import Path

from .common import (Coordinator, EventCounter, MemorySampler, children_of, cpu_seconds,
                     fake_blend, log, run_queue_wait, wait_for)
from .fleet import Fleet, percentile


def processes_for(nodes: int) -> int:
    return 1 if nodes <= 100 else 2 if nodes <= 2000 else 3


def shot_size(nodes: int, base_frames: int, base_window: float,
              pace: float | None) -> tuple[int, float]:
    """(frames, window seconds) for a run: enough frames that no node runs dry and
    every node gets several jobs in the window. Paced: the window holds 3.5 render
    times after the ramp-up, and the shot what the fleet offers in it plus one frame
    per node. As fast as possible: four frames per node, in a window long enough for
    them at ~500 frames/s (1,000 nodes: the old 6/12 s)."""
    if pace:
        window = max(base_window, 3.5 * nodes / pace + 2)
        return max(base_frames, math.ceil(pace * window * 1.2) + nodes), window
    window = max(base_window, nodes / 250 + 2)
    return max(base_frames, 4 * nodes), window


def start_coordinators(root: Path, count: int, database: str | None,
                       extra_args: tuple[str, ...] = ()) -> list[Coordinator]:
    """`count` coordinators; several share `database` and one data dir."""
    if count > 1 and not database:
        raise ValueError("several coordinators need a shared database (--database URL)")
    extra = [*(["--database", database] if database else []), *extra_args]
    coords: list[Coordinator] = []
    try:
        for i in range(count):
            coords.append(Coordinator(root, "--lease-timeout", "300", *extra,
                                      log_name=f"coordinator-{i}.log" if i else None).start())
    except Exception:
        for c in coords:
            c.stop()
        raise
    return coords


def run_one(root: Path, nodes: int, frames: int, chunk: int, window: float,
            profile_dir: Path | None = None, pace: float | None = None,
            database: str | None = None, coordinators: int = 1,
            extra_args: tuple[str, ...] = (), shot_fields: dict | None = None) -> dict:
    """`pace=None`: nodes return frames at once (the most the coordinator can take).
    `pace=F`: each node "renders" nodes/F seconds per frame, offering F frames/s: the
    dispatch latency of a farm that is busy but not saturated."""
    render_seconds = nodes / pace if pace else 0.0
    mode = f"paced {pace:g}/s" if pace else "max"
    tag = f"capacity-{nodes}-{'paced%g' % pace if pace else 'max'}"
    coords = start_coordinators(root / tag, coordinators, database, extra_args)
    coord = coords[0]
    events = fleet = sampler = None
    spies: list[subprocess.Popen] = []
    samplers: list[MemorySampler] = []
    try:
        events = EventCounter(coord.url)
        events.start()
        events.hello.wait(10)
        if profile_dir is not None:   # from before the nodes connect: their hellos too
            profile_dir.mkdir(parents=True, exist_ok=True)
            spies = [subprocess.Popen(
                ["py-spy", "record", "-p", str(c.pid), "-r", "100", "--threads",
                 "-f", "raw", "-o", str(profile_dir / f"{tag}{f'-{i}' if i else ''}.txt"),
                 "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                for i, c in enumerate(coords)]
        fleet = Fleet([c.url for c in coords], nodes, processes_for(nodes),
                      render_seconds=render_seconds)
        hello_cpu0 = sum(cpu_seconds(c.pid) for c in coords)
        connect_s = fleet.start(timeout=600)
        wait_for(lambda: sum(c.api.get("/api/version")["nodes_online"] for c in coords)
                 >= nodes, 60, what=f"{nodes} nodes online")
        # The coordinator CPU the connection storm took (steadier than its seconds).
        hello_cpu = sum(cpu_seconds(c.pid) for c in coords) - hello_cpu0
        samplers = [MemorySampler(c.pid) for c in coords]
        for s in samplers:
            s.start()
        sampler = samplers[0]
        idle_rss = sampler.sample()[0]
        # What the connected fleet costs before any work (pings, the reaper, the
        # availability and dashboard loops): 3 s of the coordinator idle.
        idle0 = sum(cpu_seconds(c.pid) for c in coords)
        time.sleep(3)
        idle_cores = (sum(cpu_seconds(c.pid) for c in coords) - idle0) / 3
        cpu0 = sum(cpu_seconds(c.pid) for c in coords)
        # The event loop's thread apart: other threads' work (delivery, readers) costs
        # the loop too, in turns for the GIL, and shows there.
        loop0 = sum(cpu_seconds(c.pid, c.pid) for c in coords)
        wait0 = sum(run_queue_wait(c.pid) for c in coords)
        load0 = sum(cpu_seconds(p.pid) for p in fleet.procs)
        # Worker processes (frame workers, both pools); they start with the first frame.
        kids0 = {k: cpu_seconds(k) for c in coords for k in children_of(c.pid)}
        t_submit = time.monotonic()
        shot = coord.api.create_shot("capacity.blend", fake_blend(), frame_start=1,
                                     frame_end=frames, chunk_size=chunk,
                                     name=f"capacity-{nodes}", timeout=600,
                                     **(shot_fields or {}))
        t0 = time.monotonic()
        log(f"capacity {nodes} nodes: shot of {frames} frames created in {t0 - t_submit:.1f} s")
        sid = shot["id"]
        # Paced runs ramp up for one render time: count the steady part only.
        warm = min(render_seconds * 1.5, window / 2) if pace else 0.0

        def api_done() -> int:
            return coord.api.get(f"/api/shots/{sid}")["frames_done"]

        if len(coords) > 1:
            events.close()   # it hears one coordinator's frames only: count through the API
            time.sleep(warm)
        complete = events.wait_frames(sid, frames, warm) if warm else False
        api_warm = api_done() if warm else 0
        if not complete:
            complete = events.wait_frames(sid, frames, max(0.0, t0 + window - time.monotonic()))
        if events.closed and not complete:
            # The coordinator cut our event stream (its queue overflowed): finish the
            # window anyway and count frames through the API instead.
            time.sleep(max(0.0, t0 + window - time.monotonic()))
        t_end = events.frames[sid][-1] if complete else time.monotonic()
        api_end = api_done()
        cpu1 = sum(cpu_seconds(c.pid) for c in coords)
        loop1 = sum(cpu_seconds(c.pid, c.pid) for c in coords)
        wait1 = sum(run_queue_wait(c.pid) for c in coords)
        kids = [k for c in coords for k in children_of(c.pid)]
        kids1 = sum(cpu_seconds(k) - kids0.get(k, 0.0) for k in kids)
        # Of which the delivery process's (the copies to studio storage), apart.
        delivering = sum(cpu_seconds(k) - kids0.get(k, 0.0) for k in kids
                         if b"coordinator.delivery_process" in _command_line(k))
        measured = fleet.stop()
        # The coordinator's own view (ready received -> assign sent), after every node's
        # first job (left out client-side too) and the paced runs' ramp-up.
        settled = max([warm] + [t - t0 for t in measured["first_assign_at"]])
        window = max(0.5, time.monotonic() - t0 - settled)
        # Several coordinators: the worst one's figures.
        farms = [c.api.get(f"/api/farm?window={window:.2f}") for c in coords]
        server = _worst([f.get("dispatch_latency") or {} for f in farms])
        loop_lag = _worst([f.get("loop_lag") or {} for f in farms])
        fleet = None
        elapsed = max(1e-6, t_end - t0)
        by_api = events.closed and not complete
        dropped_at = events.closed_at - t0 if by_api and len(coords) == 1 else None
        if not by_api:
            done = sum(1 for t in events.frames.get(sid, []) if t <= t_end)
            steady = sum(1 for t in events.frames.get(sid, []) if t0 + warm <= t <= t_end)
        else:
            done, steady = api_end, api_end - api_warm
        for s in samplers:
            s.stop()
        lat = measured["latencies_ms"]
        # The load generator's own lag over the same seconds as the coordinator's.
        client_lag = [ms for when, ms in measured["loop_lag"] if when >= t0 + settled]
        # After the submit every idle node wants a job at once: how long until each has
        # one, from the moment the artist submits (the shot's creation counts; the first
        # nodes get jobs before the submit's answer reaches its client).
        firsts = [(t - t_submit) * 1000 for t in measured["first_assign_at"] if t <= t_end]
        row = {
            "nodes": nodes, "mode": mode, "render_seconds": round(render_seconds, 3),
            "chunk": chunk, "shot_frames": frames,
            "submit_s": round(t0 - t_submit, 3),
            "frames_done": done, "seconds": round(elapsed, 2),
            "frames_per_s": round(steady / max(1e-6, elapsed - warm), 1),
            "completed": complete,
            "dispatch_p50_ms": _r(percentile(lat, 0.50)),
            "dispatch_p99_ms": _r(percentile(lat, 0.99)),
            "dispatch_max_ms": _r(max(lat) if lat else None),
            "dispatch_samples": len(lat),
            "server_dispatch_p50_ms": server.get("p50_ms"),
            "server_dispatch_p99_ms": server.get("p99_ms"),
            "loop_lag_p50_ms": loop_lag.get("p50_ms"),
            "loop_lag_p99_ms": loop_lag.get("p99_ms"),
            "load_generator_lag_p50_ms": _r(percentile(client_lag, 0.50)),
            "load_generator_lag_p99_ms": _r(percentile(client_lag, 0.99)),
            "first_assign_p50_ms": _r(percentile(firsts, 0.50)),
            "nodes_busy": len(firsts),
            "all_busy_ms": _r(max(firsts)) if len(firsts) >= nodes else None,
            "rss_idle_mb": round(idle_rss / 2**20, 1),
            "rss_peak_mb": round(max(s.peak_main for s in samplers) / 2**20, 1),
            "rss_peak_with_workers_mb": round(max(s.peak_total for s in samplers) / 2**20, 1),
            "coordinators": len(coords), "database": "sqlite" if not database else
            database.split(":", 1)[0],
            "coordinator_cpu": round((cpu1 - cpu0) / elapsed, 2),
            # Runnable but not running (the machine's other work): cores-equivalent.
            "coordinator_cpu_wait": round((wait1 - wait0) / elapsed, 2),
            # The load generator's CPU (cores) over the window, from the fleet's final count.
            "load_generator_cpu": round((measured["load_cpu_s"] - load0) / elapsed, 2),
            # CPU per frame does not depend on what else the machine runs: 1000 / this is
            # the frames/s one dedicated core could sustain.
            "cpu_ms_per_frame": round(1000 * (cpu1 - cpu0) / max(1, done), 2),
            "worker_cpu_ms_per_frame": round(1000 * kids1 / max(1, done), 2),
            "delivery_process_cpu_ms_per_frame": round(1000 * delivering / max(1, done), 3),
            "loop_cpu_ms_per_frame": round(1000 * (loop1 - loop0) / max(1, done), 3),
            "idle_cpu": round(idle_cores, 3),
            # Per frame, less what the idle fleet costs anyway over the same seconds.
            "cpu_ms_per_frame_marginal": round(
                1000 * max(0.0, cpu1 - cpu0 - idle_cores * elapsed) / max(1, done), 2),
            "connect_s": round(connect_s, 1), "connect_cpu_s": round(hello_cpu, 2), "load_processes": processes_for(nodes),
            # The coordinator dropped the benchmark's SSE stream this long after the submit
            # (a subscriber queue overflow); frames were then counted through the API.
            "sse_dropped_at_s": None if dropped_at is None else round(dropped_at, 2),
            "uploads": measured["frames_uploaded"], "stale": measured["stale"],
            # Channels the coordinator closed (pongs missed on a loaded machine), redialled.
            "reconnects": measured["reconnects"],
            "errors": measured["errors"],
        }
        if dropped_at is not None:
            log(f"capacity {nodes} nodes, {mode}: the coordinator closed our event stream "
                f"{dropped_at:.1f} s after the submit; frames counted through the API")
        log(f"capacity {nodes} nodes, {mode}: {row['frames_per_s']} frames/s, "
            f"p50 {row['dispatch_p50_ms']} ms, p99 {row['dispatch_p99_ms']} ms "
            f"(coordinator side: {row['server_dispatch_p50_ms']} / {row['server_dispatch_p99_ms']}; "
            f"its loop lag {row['loop_lag_p50_ms']} / {row['loop_lag_p99_ms']}; "
            f"load generator's {row['load_generator_lag_p50_ms']} / "
            f"{row['load_generator_lag_p99_ms']}), "
            f"all busy {row['all_busy_ms']} ms after the submit ({row['nodes_busy']} nodes), "
            f"connected in {row['connect_s']} s ({row['connect_cpu_s']} s coordinator CPU), "
            f"RSS {row['rss_peak_mb']} MB, coordinator CPU {row['coordinator_cpu']} "
            f"(waiting for a CPU {row['coordinator_cpu_wait']}) "
            f"(load generator {row['load_generator_cpu']}), "
            f"{row['cpu_ms_per_frame']} ms CPU/frame (+{row['worker_cpu_ms_per_frame']} "
            f"in worker processes; {row['cpu_ms_per_frame_marginal']} beyond the idle fleet's "
            f"{row['idle_cpu']} cores)")
        return row
    finally:
        for spy in spies:   # SIGINT: py-spy writes what it has and exits
            spy.send_signal(signal.SIGINT)
        for spy in spies:
            try:
                spy.wait(60)
            except subprocess.TimeoutExpired:
                spy.kill()
        if fleet is not None:
            fleet.kill()
        for s in samplers:
            s.stop()
        if events is not None:
            events.close()
        for c in coords:
            c.stop()


def _worst(summaries: list[dict]) -> dict:
    """Of several coordinators' latency summaries, the highest of each figure."""
    out: dict = {}
    for summary in summaries:
        for key, value in summary.items():
            if isinstance(value, (int, float)) and (key not in out or value > out[key]):
                out[key] = value
    return out


def _command_line(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 1)


def run(root: Path, quick: bool = False, node_counts=(10, 100, 1000), chunk: int = 1,
        profile_dir: Path | None = None, pace: float = 500.0, database: str | None = None,
        coordinators: int = 1, modes: str = "both") -> list[dict]:
    """Per fleet size: as fast as possible, then paced at `pace` frames/s (the target
    rate); the largest fleet also at half that pace, to show the dispatch latency of a
    coordinator that is busy but below its limit. --quick: max for every fleet, paced
    at `pace` for the largest only. `modes`: "max" or "paced" runs only those."""
    base = 6.0 if quick else 12.0
    base_frames = 4000 if quick else 12000
    rows = []
    for nodes in node_counts:
        largest = nodes == max(node_counts)
        paces: list[float | None] = [None] if modes != "paced" else []
        if modes != "max" and (largest or not quick):   # --quick: paced: the largest only
            paces.append(pace)
        if modes != "max" and largest and not quick:
            paces.append(pace / 2)
        for p in paces:
            frames, window = shot_size(nodes, base_frames, base, p)
            log(f"capacity: {nodes} simulated nodes, chunk {chunk}, "
                f"{'paced %g frames/s' % p if p else 'as fast as possible'}, "
                f"{frames} frames, window {window:.0f} s")
            rows.append(run_one(root, nodes, frames, chunk, window, profile_dir, p,
                                database, coordinators))
    return rows
