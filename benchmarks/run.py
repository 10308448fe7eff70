"""Run Brender's benchmarks and write the results table into benchmarks/README.md.

    python benchmarks/run.py                      # everything (about 10 minutes)
    python benchmarks/run.py --quick              # shorter windows, fewer repeats (< 3 min)
    python benchmarks/run.py --only capacity      # overhead | capacity | bigshot | edge | pools | movie | zip
    python benchmarks/run.py --nodes 10,100       # capacity fleet sizes
    python benchmarks/run.py --only capacity --nodes 5000 --database URL --coordinators 2
    python benchmarks/run.py --no-write           # print, leave the README alone

Every process listens on 127.0.0.1 only. Results also land in
benchmarks/results/latest.json (and --json PATH).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import bigshot, capacity, common, deliveries, edge, overhead, pools  # noqa: E402
from benchmarks.common import log, machine, raise_fd_limit  # noqa: E402

HERE = Path(__file__).resolve().parent
README = HERE / "README.md"
RESULTS = HERE / "results" / "latest.json"
TARGETS = {
    "overhead_ratio": 1.10,
    "frames_per_s": 500,
    "dispatch_p99_ms": 50,
    "rss_mb": 300,
    "listing_s": 1.0,
    "dashboard_s": 1.0,
    "farm_p99_ms": 50,
    "pools_dispatch_p99_ms": 20,
    # Issue 16 with 5,000 nodes.
    "big_fleet_busy_ms": 2000,
    "big_fleet_dispatch_p99_ms": 20,
    "loop_lag_p99_ms": 50,
}
ALL = ["overhead", "capacity", "bigshot", "edge", "pools", "movie", "zip"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", action="append", choices=ALL,
                   help="run only these benchmarks (repeat the option for several)")
    p.add_argument("--quick", action="store_true", help="shorter runs (under 3 minutes)")
    p.add_argument("--nodes", default="10,100,1000", help="capacity fleet sizes")
    p.add_argument("--chunk", type=int, default=1, help="capacity: frames per job")
    p.add_argument("--database", metavar="URL",
                   help="capacity: passed to each coordinator as --database (default: its "
                        "SQLite in the data dir)")
    p.add_argument("--coordinators", type=int, default=1,
                   help="capacity: start this many coordinators on the one --database")
    p.add_argument("--modes", choices=("both", "max", "paced"), default="both",
                   help="capacity: as fast as possible, paced, or both")
    p.add_argument("--pool-nodes", type=int, default=1000, help="pools: fleet size")
    p.add_argument("--disable-pool", metavar="NAME",
                   help="pools: a control run; this pool's nodes are disabled (they must "
                        "show as idle while servable); never written to the table")
    p.add_argument("--profile", type=Path,
                   help="capacity: py-spy record the coordinator into this folder")
    p.add_argument("--no-write", action="store_true", help="do not update README.md")
    p.add_argument("--json", type=Path, help="also write the raw results here")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder")
    p.add_argument("--commit", metavar="REV",
                   help="measure this commit (git archive into the scratch dir) instead of "
                        "the working tree: reproducible while others edit the tree")
    p.add_argument("--repo", type=Path,
                   help="measure the coordinator and node of another checkout (A/B a change)")
    args = p.parse_args(argv)
    if args.disable_pool:
        args.no_write = True
    if args.repo:   # an experiment: never mixed into the published figures
        os.environ["BRENDER_BENCH_REPO"] = str(args.repo.resolve())
        common.TARGET = args.repo.resolve()
        args.no_write = True

    limit = raise_fd_limit()
    chosen = args.only or ALL
    scratch = Path(tempfile.mkdtemp(prefix="brender-bench-"))
    commit = None
    if args.commit:
        commit = _export(args.commit, scratch / "tree")
        common.TARGET = scratch / "tree"
        os.environ["BRENDER_BENCH_REPO"] = str(common.TARGET)
    started = time.monotonic()
    results: dict = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "quick": args.quick, "machine": machine(),
        "load_before": round(os.getloadavg()[0], 2), "fd_limit": limit,
        "commit": commit or _commit(common.TARGET),
    }
    nodes = tuple(int(n) for n in args.nodes.split(",") if n.strip())
    runs = {
        "overhead": lambda: overhead.run(scratch / "overhead", quick=args.quick),
        "capacity": lambda: capacity.run(scratch / "capacity", quick=args.quick,
                                         node_counts=nodes, chunk=args.chunk,
                                         profile_dir=args.profile, database=args.database,
                                         coordinators=args.coordinators,
                                         modes=args.modes),
        "bigshot": lambda: bigshot.run(scratch / "bigshot", quick=args.quick),
        "edge": lambda: edge.run(scratch / "edge", quick=args.quick),
        "pools": lambda: pools.run(scratch / "pools", quick=args.quick, nodes=args.pool_nodes,
                                   disabled_pool=args.disable_pool),
        # Issue 17 (benchmarks/deliveries.py); their figures are in results/latest.json.
        "movie": lambda: deliveries.run(scratch / "movie", ("movie",), args.quick)["movie"],
        "zip": lambda: deliveries.run(scratch / "zip", ("zip",), args.quick)["zip"],
    }
    failed = False
    try:
        for name in ALL:
            if name not in chosen:
                continue
            try:
                results[name] = runs[name]()
            except Exception as exc:  # one broken benchmark must not lose the others
                failed = True
                log(f"{name} failed: {type(exc).__name__}: {exc}")
                results.setdefault("errors", {})[name] = f"{type(exc).__name__}: {exc}"[:2000]
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
        else:
            log(f"scratch kept in {scratch}")
    results["seconds"] = round(time.monotonic() - started, 1)
    results["load_after"] = round(os.getloadavg()[0], 2)

    table = render(results)
    print(table)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    if failed:
        args.no_write = True   # never publish a table with a benchmark missing
        log("not writing README.md: a benchmark failed (see above)")
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        merged = {**previous, **results}   # --only keeps the other benchmarks' last figures
        RESULTS.write_text(json.dumps(merged, indent=1) + "\n")
        write_readme(render(merged))
        log(f"wrote {README.relative_to(HERE.parent)}")
    return 1 if failed else 0


def _export(rev: str, dest: Path) -> str:
    """`git archive REV` of this repository into `dest`; returns the short hash."""
    import subprocess

    repo = HERE.parent
    sha = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", rev], check=True,
                         capture_output=True, text=True).stdout.strip()
    dest.mkdir(parents=True)
    archive = subprocess.Popen(["git", "-C", str(repo), "archive", sha], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(dest)], stdin=archive.stdout, check=True)
    archive.wait()
    log(f"measuring commit {sha} (exported to {dest})")
    return sha


def _commit(repo: Path) -> str:
    import subprocess

    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--",
                                "coordinator", "node", "dashboard_static"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + (" + local changes" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# -- the table ---------------------------------------------------------------------------
def mark(ok: bool | None) -> str:
    return "—" if ok is None else ("met" if ok else "**missed**")


def render(r: dict) -> str:
    m = r["machine"]
    out = [
        f"Measured {r['date']}{' (--quick)' if r.get('quick') else ''} at commit "
        f"{r.get('commit', '?')} on: {m['cpu']}, "
        f"{m['cores']} cores, {m['ram_gb']} GB RAM; {m['os']}; Python {m['python']}, "
        f"Blender {m['blender']}, Chromium {m['chromium']}, aiohttp {m['aiohttp']}, "
        f"SQLite {m['sqlite']}. Load average before the run: {r.get('load_before')} "
        f"(other work on the machine slows every figure).",
        "",
    ]
    if "overhead" in r:
        o = r["overhead"]
        s = o["scene"]
        out += [
            f"### 1. Farm overhead ({s['frame_end']} frames, {s['width']}×{s['height']}, "
            f"Cycles {s['samples']} samples, no denoising)",
            "",
            "| run | chunk | jobs | seconds | farm / plain | first frame (s) | "
            "Blender render time (s) | CPU s | CPU farm / plain | target ≤ 1.10 |",
            "|---|---|---|---|---|---|---|---|---|---|",
            f"| `blender -b scene.blend -a` | — | — | {o['plain_s']} | 1.00 | — | "
            f"{o.get('plain_render_sum_s', '—')} | {o.get('plain_cpu_s', '—')} | 1.00 | — |",
        ]
        for f in o["farm"]:
            ok = f["ratio"] <= TARGETS["overhead_ratio"]
            verdict = "reference" if f["node"].startswith("--no-") else mark(ok)
            cpu_ratio = f.get("cpu_ratio")
            out.append(f"| farm: coordinator + 1 node ({f['node']}) | {f['chunk']} | "
                       f"{f['jobs']} | {f['seconds']} | {f['ratio']:.2f} | "
                       f"{f['first_frame_s']} | {f.get('render_sum_s', '—')} | "
                       f"{f.get('cpu_s', '—')} | "
                       f"{'—' if cpu_ratio is None else f'{cpu_ratio:.2f}'} | {verdict} |")
        out += ["", "Seconds are the best of "
                f"{len(o.get('plain_all_seconds', [1]))} interleaved run(s) "
                f"(plain: {o.get('plain_all_seconds')}); farm time runs from the submit "
                "(blob upload + `POST /api/shots`) to the last frame's SSE `frame` event "
                "(stored and thumbnailed). \"Blender render time\" sums Blender's own "
                "per-frame times: the rest is start-up, scene load and farm traffic. The "
                "node is idle at the submit, its spare Blender (started while idle) up "
                "and waiting; `--no-spare` starts Blender when the shot arrives. \"CPU s\" "
                "is the CPU time spent (plain: Blender; farm: coordinator, node and its "
                "Blender processes): it moves far less than seconds with the machine's "
                "other load, so its ratio is the steadier overhead figure.", ""]
    if "capacity" in r:
        rows = r["capacity"]
        out += [
            "### 2. Coordinator capacity (simulated nodes, 64×36 PNG frames, 1 frame per job)",
            "",
            "| nodes | load | frames/s | dispatch p50 (ms) | dispatch p99 (ms) | "
            "coordinator side p50 / p99 (ms) | "
            "after submit: all nodes busy (ms) | loop lag p99 (ms) | RSS peak (MB) | "
            "+ worker processes (MB) | "
            "coordinator CPU (cores) | CPU ms / frame (+ workers) | load generator CPU |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for c in rows:
            errors = sum(c["errors"].values()) if c.get("errors") else 0
            busy = (c["all_busy_ms"] if c.get("all_busy_ms") is not None
                    else f"{c.get('nodes_busy', '?')} of {c['nodes']} got a job")
            na = lambda v: "n/a" if v is None else v  # noqa: E731
            dropped = c.get("sse_dropped_at_s")
            note = "" if dropped is None else f" (SSE cut at {dropped} s¹)"
            where = "" if c.get("coordinators", 1) == 1 and c.get("database", "sqlite") \
                == "sqlite" else f" ({c.get('coordinators', 1)} × {c.get('database')})"
            out.append(
                f"| {c['nodes']}{where} | {c.get('mode', 'max')} | {c['frames_per_s']}{note}"
                f"{'' if not errors else f' ({errors} errors)'} | "
                f"{na(c['dispatch_p50_ms'])} | {na(c['dispatch_p99_ms'])} | "
                f"{na(c.get('server_dispatch_p50_ms'))} / {na(c.get('server_dispatch_p99_ms'))} | "
                f"{busy} | {na(c.get('loop_lag_p99_ms'))} | "
                f"{c['rss_peak_mb']} | {c['rss_peak_with_workers_mb']} | "
                f"{c['coordinator_cpu']} | {c.get('cpu_ms_per_frame')} "
                f"(+{c.get('worker_cpu_ms_per_frame')}) | {c.get('load_generator_cpu')} |")
        if any(c.get("sse_dropped_at_s") is not None for c in rows):
            out += ["", "¹ The coordinator closed the benchmark's `/api/events` stream (its "
                    "per-subscriber queue overflowed): a dashboard would "
                    "have reloaded. Frames were then counted through `GET /api/shots/{id}`."]
        huge = [c for c in rows if c["nodes"] >= 5000]
        for c in huge:
            busy, p99 = c.get("all_busy_ms"), c["dispatch_p99_ms"]
            lag = c.get("loop_lag_p99_ms")
            paced = c.get("mode") == "paced 500/s"
            out += ["", f"Targets with {c['nodes']:,} nodes ({c.get('mode')}): every node busy "
                    f"within 2 s of the submit: {na(busy)} ms "
                    f"({mark(busy is not None and busy < TARGETS['big_fleet_busy_ms'])}); "
                    + (f"dispatch p99 < 20 ms at 500 frames/s offered: {na(p99)} "
                       f"({mark(p99 is not None and p99 < TARGETS['big_fleet_dispatch_p99_ms'])}); "
                       if paced else "")
                    + f"loop lag p99 < 50 ms: {na(lag)} "
                    f"({mark(lag is not None and lag < TARGETS['loop_lag_p99_ms'])}); "
                    f"RSS < 300 MB: {c['rss_peak_mb']} "
                    f"({mark(c['rss_peak_mb'] < TARGETS['rss_mb'])})."]
        big = [c for c in rows if 1000 <= c["nodes"] < 5000]
        if big:
            fps = max(c["frames_per_s"] for c in big)
            paced = [c for c in big if c.get("mode") == "paced 500/s"]
            p99 = paced[0]["dispatch_p99_ms"] if paced else None
            rss = max(c["rss_peak_mb"] for c in big)
            out += ["", "Targets with 1,000 nodes: "
                    f"≥ 500 frames/s: {fps} ({mark(fps >= TARGETS['frames_per_s'])}); "
                    f"dispatch p99 < 50 ms at 500 frames/s offered: {na(p99)} "
                    f"({mark(p99 is not None and p99 < TARGETS['dispatch_p99_ms'])}); "
                    f"coordinator < 300 MB: {rss} ({mark(rss < TARGETS['rss_mb'])})."]
        out += ["", "**max**: nodes return each frame at once (the most the coordinator "
                "takes); **paced F/s**: each node \"renders\" nodes/F seconds per frame, "
                "offering F frames/s, so dispatch latency is measured on a farm that is "
                "busy rather than flooded (a flooded farm's latency is just nodes ÷ "
                "throughput). The load generator (benchmarks/simnodes.py, 1 process up to "
                "100 nodes, 2 up to 2,000, 3 above) and the coordinator share the machine's "
                f"{m['cores']} cores. frames/s counts SSE `frame` events (frame stored, "
                "recorded, thumbnailed, announced) from the moment `POST /api/shots` "
                "returns (paced runs: after one render time of ramp-up). Dispatch latency "
                "is `ready` (or a `job_done` asking for more) sent → `assign` received, in "
                "the load generator; each node's first assignment is left out (its `ready` "
                "predates the shot; n/a: no second job in the window). \"Coordinator "
                "side\": the same wait as the coordinator sees it (message read → "
                "assignment written, `GET /api/farm`), without the load generator's own "
                "delays. \"All nodes busy\": submit → the last node's "
                "first job. RSS: the coordinator process, then with its worker processes "
                "(frame workers, both pools). CPU ms / frame is coordinator CPU time "
                "(all threads; in brackets, its worker processes) per frame "
                "delivered: it moves much less with the machine's other load than "
                "frames/s do (still ±30 % between runs here: contention costs CPU "
                "too); 1000 ÷ it is roughly what one dedicated core would sustain. "
                "Loop lag (in the log and results JSON): how late the coordinator's event "
                "loop woke a 10 ms timer.", ""]
    if "bigshot" in r:
        b = r["bigshot"]
        ok_l = b["listing_median_s"] < TARGETS["listing_s"]
        dash = b.get("dashboard_median_s")
        ok_d = None if dash is None else dash < TARGETS["dashboard_s"]
        out += [
            f"### 3. Big shot ({b['frames']:,} frames, {b['frames_done']:,} done with "
            "thumbnails)",
            "",
            "| what | median (s) | best (s) | target < 1 s |",
            "|---|---|---|---|",
            f"| `POST /api/shots` (10,000 frames, chunks of 100) | {b['create_s']} | — | — |",
            f"| `GET /api/shots/{{id}}/frames` (all, {b['listing_mb']} MB) | "
            f"{b['listing_median_s']} | {b['listing_best_s']} | {mark(ok_l)} |",
            f"| `GET /api/shots/{{id}}/frames?limit=500` (the dashboard's page) | "
            f"{b['page500_median_s']} | — | — |",
            f"| dashboard Shot page, cold, until the grid shows thumbnails | {dash} | "
            f"{b.get('dashboard_best_s')} | {mark(ok_d)} |",
            "",
        ]
        bd = b.get("dashboard_breakdown_ms")
        if bd:
            out += ["Where the page's time goes (median ms after navigation start, from the "
                    f"page's resource timing): HTML {bd['html']}, last module {bd['modules']}, "
                    f"`/api/shots/{{id}}` {bd['shot']}, first frames page {bd['first_page']}, "
                    f"last thumbnail {bd['thumbnails']} ({bd['requests_before_ready']} "
                    f"requests before the grid was ready; {b['grid_in_view']['thumbnails']} "
                    "thumbnails in view).", ""]
    if "edge" in r:
        e = r["edge"]
        idle, loaded = e["farm_idle"], e["farm_loaded"]
        ok = loaded["p99_ms"] < TARGETS["farm_p99_ms"]
        reads = e["reads"]
        out += [
            f"### 4. `/api/farm` while the open reads are stressed ({e['frames']:,}-frame shot, "
            f"{e['streams']:,} idle event streams)",
            "",
            "| `GET /api/farm` | samples | p50 (ms) | p99 (ms) | max (ms) | target p99 < 50 ms |",
            "|---|---|---|---|---|---|",
            f"| idle coordinator | {idle['samples']} | {idle['p50_ms']} | {idle['p99_ms']} | "
            f"{idle['max_ms']} | — |",
            f"| under load ({e['window_s']:g} s) | {loaded['samples']} | {loaded['p50_ms']} | "
            f"{loaded['p99_ms']} | {loaded['max_ms']} | {mark(ok)} |",
            "",
            f"The load, all at once: {e['streams_accepted']:,} of {e['streams']:,} event "
            "streams that never read (20 per loopback source address 127.0.0.x, the "
            "default per-address cap; total cap raised with `--max-event-streams`); "
            f"full frame list ({e['frames_mb']} MB, {reads.get('frames', {}).get('runs')} "
            f"runs, median {reads.get('frames', {}).get('median_s')} s), full job list "
            f"({e['jobs_mb']} MB, {reads.get('jobs', {}).get('runs')} runs, median "
            f"{reads.get('jobs', {}).get('median_s')} s) and `POST /api/blobs/missing` of "
            "100,000 digests (10 calls of 10,000, the most one call takes) "
            f"({reads.get('missing', {}).get('runs')} runs, median "
            f"{reads.get('missing', {}).get('median_s')} s), each looped by its own "
            f"client; 300 blob uploads of 64 kB, 4 at a time ({e['uploads_s']} s in all); "
            "a priority change every second (a `shot` event to every stream).", ""]
    if "pools" in r:
        out += pools.table(r["pools"], mark, TARGETS["pools_dispatch_p99_ms"])
    out.append(f"Whole run: {r.get('seconds')} s.")
    return "\n".join(out)


def write_readme(table: str) -> None:
    begin, end = "<!-- results -->", "<!-- /results -->"
    text = README.read_text() if README.exists() else f"# Benchmarks\n\n{begin}\n{end}\n"
    if begin not in text or end not in text:
        text += f"\n{begin}\n{end}\n"
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    README.write_text(f"{head}{begin}\n{table}\n{end}{tail}")


if __name__ == "__main__":
    sys.exit(main())
