"""Benchmark 5 (issue 15): a fleet in four tag pools and shots with mixed requirements.

1,000 simulated nodes (benchmarks/simnodes.py) in four pools: two CPU pools, two GPU
pools (a simulated CUDA device in their hello), each with tags of its own. Shots ask
for a pool, a device or tags, or prefer tags, at different priorities; one asks for a
tag no node has (it waits, and must hold nobody up). Nodes "render" nodes ÷ pace
seconds per frame (±50 %), so the fleet offers `pace` frames/s.

Measured: frames/s, dispatch latency (`ready` sent -> `assign` received), and "idle
while servable": every 0.1 s each load-generator process counts, per pool, the nodes
idle for longer than 0.25 s (asked for work, hold none); the benchmark polls the shots'
queued jobs twice a second; a sample's idle nodes count when their pool can serve a
shot that had queued jobs at the last poll. A pool left idle while a shot it can serve
waits shows up there; the issue's target is ~0.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

from .common import (Coordinator, EventCounter, MemorySampler, cpu_seconds, fake_blend,
                     log, run_queue_wait)
from .fleet import Fleet, percentile

# The fleet: name, share of the nodes, tags, GPU.
POOLS = [
    {"name": "cpu-a", "share": 0.4, "tags": ["cpu", "pool-a"], "gpu": False},
    {"name": "cpu-b", "share": 0.3, "tags": ["cpu", "pool-b"], "gpu": False},
    {"name": "gpu-c", "share": 0.2, "tags": ["gpu", "pool-c"], "gpu": True},
    {"name": "gpu-d", "share": 0.1, "tags": ["gpu", "pool-d", "bigmem"], "gpu": True},
]
# The shots: what each asks (the API's fields) and its priority.
SHOTS = [
    {"name": "needs-missing-tag", "priority": 90, "requires_tags": ["pool-x"]},
    {"name": "gpu-hero", "priority": 80, "device": "gpu", "prefers_tags": ["bigmem"]},
    {"name": "bigmem-gpu", "priority": 50, "device": "gpu", "requires_tags": ["bigmem"]},
    {"name": "pool-a-only", "priority": 50, "requires_tags": ["pool-a"]},
    {"name": "any-cpu", "priority": 50, "requires_tags": ["cpu"], "prefers_tags": ["pool-b"]},
    {"name": "anything", "priority": 10},
]
IDLE_SAMPLE_S = 0.1
IDLE_THRESHOLD_S = 0.25
SHOT_POLL_S = 0.5


def pools_for(nodes: int) -> list[dict]:
    """POOLS with node counts adding up to `nodes`."""
    out = [dict(p, count=int(nodes * p["share"])) for p in POOLS]
    out[0]["count"] += nodes - sum(p["count"] for p in out)
    return out


def can_serve(pool: dict, shot: dict) -> bool:
    """Whether the pool's nodes meet the shot's requirements (written here, apart from
    coordinator/matching.py, so the benchmark checks the scheduler, not itself)."""
    if not set(shot.get("requires_tags") or ()) <= set(pool["tags"]):
        return False
    return shot.get("device") != "gpu" or bool(pool["gpu"])


def idle_while_servable(process_samples: list[list], shot_polls: list[tuple[float, dict]],
                        pools: list[dict], shots: dict[int, dict], start: float,
                        end: float, interval: float) -> list[int]:
    """Per `interval` slot from `start` to `end`: how many nodes were idle for long
    while a shot their pool can serve had queued jobs (at the last poll before).

    `process_samples`: per load-generator process, `[(t, {pool: [idle, idle_long]})]`;
    `shot_polls`: `[(t, {shot id: queued jobs})]` in time order; `shots`: id -> the
    shot's requirements. Processes sample on their own clocks' ticks: within a slot
    each process's last sample counts, and the processes' counts add up."""
    by_name = {p["name"]: p for p in pools}
    slots = max(0, int((end - start) / interval))
    totals = [0] * slots
    for samples in process_samples:
        per_slot: dict[int, int] = {}
        poll = 0
        for t, counts in sorted(samples, key=lambda s: s[0]):
            if not start <= t < end:
                continue
            while poll < len(shot_polls) and shot_polls[poll][0] <= t:
                poll += 1
            if poll == 0:
                continue   # no poll yet: nothing known to wait
            queued = shot_polls[poll - 1][1]
            waiting = [shots[s] for s, n in queued.items() if n > 0 and s in shots]
            idle = sum(pair[1] for name, pair in counts.items()
                       if name in by_name and any(can_serve(by_name[name], s) for s in waiting))
            slot = min(slots - 1, int((t - start) / interval))
            if slot >= 0:
                per_slot[slot] = idle
        for slot, idle in per_slot.items():
            totals[slot] += idle
    return totals


class ShotPoller(threading.Thread):
    """Polls `GET /api/shots`: each shot's queued jobs (and its `waiting` reason)."""

    def __init__(self, coord: Coordinator, interval: float = SHOT_POLL_S):
        super().__init__(daemon=True)
        self.coord, self.interval = coord, interval
        self.polls: list[tuple[float, dict[int, int]]] = []
        self.waiting: dict[int, str | None] = {}
        self._stop = threading.Event()

    def run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                listed = self.coord.api.get("/api/shots")["shots"]
            except (OSError, ValueError):
                continue
            now = time.monotonic()
            self.polls.append((now, {s["id"]: s["jobs_total"] - s["jobs_done"] - s["jobs_failed"]
                                     - s["nodes_rendering"] for s in listed}))
            self.waiting = {s["id"]: s.get("waiting") for s in listed}

    def stop(self) -> None:
        self._stop.set()


def disable_pool(coord: Coordinator, pool: dict) -> int:
    """Disable every node of the pool (`POST /api/nodes/{id}/disable`): a control run,
    whose pool must show as idle while servable. Returns how many."""
    mine = set(pool["tags"])
    listed = coord.api.get("/api/nodes")["nodes"]
    chosen = [n for n in listed if n.get("status") != "offline" and set(n["tags"]) == mine]
    for n in chosen:
        coord.api.call("POST", f"/api/nodes/{n['id']}/disable")
    return len(chosen)


def run(root: Path, quick: bool = False, nodes: int = 1000, pace: float = 500.0,
        processes: int = 2, disabled_pool: str | None = None) -> dict:
    """`disabled_pool`: a control; that pool's nodes are disabled once connected (they
    keep asking for work, the coordinator gives them none)."""
    render_seconds = nodes / pace
    window = max(10.0 if quick else 16.0, 4 * render_seconds)
    # Every shot keeps queued work through the window: the fleet's whole offer each.
    frames = int(pace * (window + 2 * render_seconds)) + nodes
    pools = pools_for(nodes)
    log(f"pools: {nodes} simulated nodes in {len(pools)} pools, {len(SHOTS)} shots of "
        f"{frames} frames, paced {pace:g} frames/s, window {window:.0f} s")
    coord = Coordinator(root / f"pools-{nodes}", "--lease-timeout", "300").start()
    events = fleet = sampler = poller = None
    try:
        events = EventCounter(coord.url)
        events.start()
        events.hello.wait(10)
        fleet = Fleet(coord.url, nodes, processes, prefix="pool", render_seconds=render_seconds,
                      pools=pools, idle_sample=IDLE_SAMPLE_S, idle_threshold=IDLE_THRESHOLD_S)
        connect_s = fleet.start(timeout=180)
        disabled = 0
        if disabled_pool:
            disabled = disable_pool(coord, next(p for p in pools if p["name"] == disabled_pool))
            log(f"pools: control run, {disabled} nodes of {disabled_pool} disabled")
        sampler = MemorySampler(coord.pid)
        sampler.start()
        cpu0 = cpu_seconds(coord.pid)
        wait0 = run_queue_wait(coord.pid)
        blend = fake_blend()
        shots: dict[int, dict] = {}
        t_submit = time.monotonic()
        for spec in SHOTS:
            body = {k: v for k, v in spec.items() if k != "name"}
            made = coord.api.create_shot(f"{spec['name']}.blend", blend, frame_start=1,
                                         frame_end=frames, chunk_size=1, name=spec["name"],
                                         **body)
            shots[made["id"]] = spec
        t0 = time.monotonic()
        poller = ShotPoller(coord)
        poller.start()
        warm = min(render_seconds * 1.5, window / 2)
        time.sleep(warm)
        counted_from = time.monotonic()
        before = {sid: events.count(sid) for sid in shots}
        time.sleep(max(0.0, t0 + window - time.monotonic()))
        t_end = time.monotonic()
        after = {sid: events.count(sid) for sid in shots}
        cpu1 = cpu_seconds(coord.pid)
        wait1 = run_queue_wait(coord.pid)
        poller.stop()
        waiting = dict(poller.waiting)
        listed = {s["id"]: s for s in coord.api.get("/api/shots")["shots"]}
        measured = fleet.stop()
        fleet = None
        settled = max([warm] + [t - t0 for t in measured["first_assign_at"]])
        farm = coord.api.get(f"/api/farm?window={max(0.5, time.monotonic() - t0 - settled):.2f}")
        sampler.stop()
        # From the ramp-up's end (one render time and a half) to the window's.
        idle = idle_while_servable(measured["idle_samples"], poller.polls, pools, shots,
                                   counted_from, t_end, IDLE_SAMPLE_S)
        # Per pool: a pool the scheduler leaves idle shows there alone; a coordinator
        # short of CPU (every node waits long for its next job) shows in every pool.
        idle_by_pool = {
            p["name"]: round(sum(idle_while_servable(measured["idle_samples"], poller.polls,
                                                     [p], shots, counted_from, t_end,
                                                     IDLE_SAMPLE_S)) / max(1, len(idle)), 2)
            for p in pools}
        lat = measured["latencies_ms"]
        # From the first shot's submit (nodes may start on it before the last is in).
        firsts = [(t - t_submit) * 1000 for t in measured["first_assign_at"]]
        steady = sum(after.values()) - sum(before.values())
        per_shot = [{"name": spec["name"], "priority": spec["priority"],
                     "asks": _asks(spec), "frames_per_s": round((after[sid] - before[sid])
                                                                / (t_end - counted_from), 1),
                     "nodes_rendering_at_end": listed.get(sid, {}).get("nodes_rendering"),
                     "waiting": waiting.get(sid)}
                    for sid, spec in shots.items()]
        row = {
            "nodes": nodes, "pace": pace, "render_seconds": render_seconds,
            "disabled_pool": disabled_pool, "disabled_nodes": disabled,
            "window_s": round(t_end - counted_from, 1), "shot_frames": frames,
            "connect_s": round(connect_s, 1), "submit_s": round(t0 - t_submit, 2),
            "pools": [{k: p[k] for k in ("name", "count", "tags", "gpu")} for p in pools],
            "frames_per_s": round(steady / (t_end - counted_from), 1),
            "dispatch_p50_ms": _r(percentile(lat, 0.50)),
            "dispatch_p99_ms": _r(percentile(lat, 0.99)),
            "dispatch_max_ms": _r(max(lat) if lat else None),
            "dispatch_samples": len(lat),
            "server_dispatch_p99_ms": (farm.get("dispatch_latency") or {}).get("p99_ms"),
            "loop_lag_p99_ms": (farm.get("loop_lag") or {}).get("p99_ms"),
            "nodes_busy": len(firsts),
            "all_busy_ms": _r(max(firsts)) if len(firsts) >= nodes else None,
            "idle_servable_mean": round(sum(idle) / max(1, len(idle)), 2),
            "idle_servable_max": max(idle, default=0),
            "idle_servable_zero_share": round(sum(1 for x in idle if x == 0)
                                              / max(1, len(idle)), 3),
            "idle_servable_node_s": round(sum(idle) * IDLE_SAMPLE_S, 1),
            "idle_slots": len(idle), "idle_servable_mean_by_pool": idle_by_pool,
            # Runnable but not running (the machine's other work), in cores.
            "coordinator_cpu_wait": round((wait1 - wait0)
                                          / max(1e-6, t_end - t0), 2),
            "rss_peak_mb": round(sampler.peak_main / 2**20, 1),
            "coordinator_cpu": round((cpu1 - cpu0) / max(1e-6, t_end - t0), 2),
            "shots": per_shot, "errors": measured["errors"], "stale": measured["stale"],
            "reconnects": measured["reconnects"],
        }
        log(f"pools: {row['frames_per_s']} frames/s, dispatch p50 {row['dispatch_p50_ms']} "
            f"p99 {row['dispatch_p99_ms']} ms, all busy {row['all_busy_ms']} ms, idle while "
            f"servable mean {row['idle_servable_mean']} max {row['idle_servable_max']} "
            f"({row['idle_slots']} slots; by pool {idle_by_pool}), coordinator waiting for a CPU "
            f"{row['coordinator_cpu_wait']}, loop lag p99 {row['loop_lag_p99_ms']} ms, "
            f"RSS {row['rss_peak_mb']} MB; per shot: "
            + ", ".join(f"{s['name']} {s['frames_per_s']}/s" for s in per_shot))
        return row
    finally:
        if poller is not None:
            poller.stop()
        if fleet is not None:
            fleet.kill()
        if sampler is not None:
            sampler.stop()
        if events is not None:
            events.close()
        coord.stop()


def _asks(spec: dict) -> str:
    parts = []
    if spec.get("requires_tags"):
        parts.append("tags " + "+".join(spec["requires_tags"]))
    if spec.get("device"):
        parts.append(f"device {spec['device']}")
    if spec.get("prefers_tags"):
        parts.append("prefers " + "+".join(spec["prefers_tags"]))
    return ", ".join(parts) or "anything"


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 1)


def table(g: dict, mark, target_ms: float) -> list[str]:
    """The README's section for a run's results (run.py's `render`)."""
    na = lambda v: "n/a" if v is None else v  # noqa: E731
    p99 = g["dispatch_p99_ms"]
    ok = p99 is not None and p99 < target_ms
    pools_text = "; ".join(f"{p['name']}: {p['count']} nodes, tags {'+'.join(p['tags'])}"
                           f"{', a GPU' if p['gpu'] else ''}" for p in g["pools"])
    out = [
        f"### 5. Pools ({g['nodes']:,} simulated nodes in {len(g['pools'])} tag pools, "
        f"{len(g['shots'])} shots with mixed requirements, paced {g['pace']:g} frames/s)",
        "",
        f"| frames/s | dispatch p50 (ms) | dispatch p99 (ms) | target p99 < {target_ms:g} ms | "
        "coordinator side p99 (ms) | loop lag p99 (ms) | coordinator waiting for a CPU (cores) | all nodes busy after submit (ms) | "
        "idle while servable: mean / max nodes | samples with none | RSS peak (MB) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {g['frames_per_s']} | {na(g['dispatch_p50_ms'])} | {na(p99)} | {mark(ok)} | "
        f"{na(g.get('server_dispatch_p99_ms'))} | {na(g.get('loop_lag_p99_ms'))} | "
        f"{na(g.get('coordinator_cpu_wait'))} | "
        f"{na(g.get('all_busy_ms'))} | {g['idle_servable_mean']} / {g['idle_servable_max']} | "
        f"{round(100 * g['idle_servable_zero_share'])} % of {g['idle_slots']} | "
        f"{g['rss_peak_mb']} |",
        "",
        "| shot | priority | asks | frames/s | nodes on it at the end | waiting (API) |",
        "|---|---|---|---|---|---|",
    ]
    for s in g["shots"]:
        out.append(f"| {s['name']} | {s['priority']} | {s['asks']} | {s['frames_per_s']} | "
                   f"{na(s.get('nodes_rendering_at_end'))} | {s.get('waiting') or '—'} |")
    out += ["", f"Pools: {pools_text}. Each shot has {g['shot_frames']:,} one-frame jobs (more "
            "than the whole fleet renders in the window, so every shot keeps queued work). "
            f"Counted over {g['window_s']} s after a ramp-up of 1.5 render times. **Idle "
            "while servable**: every 0.1 s each load-generator process counts its nodes "
            "idle (asked for work, holding none) for longer than 0.25 s, per pool; the "
            "benchmark polls `GET /api/shots` twice a second; a sample's idle nodes count "
            "when their pool meets the requirements of a shot that had queued jobs at the "
            "last poll (benchmarks/pools.py, apart from the coordinator's matching code). "
            "Target: ~0.", ""]
    return out
