"""Benchmark 5 (issue 17): what frame checks and delivery to studio storage cost the
coordinator per frame, against its whole CPU per frame in the capacity benchmark.

    python -m benchmarks.frame_checks [--frames 3000] [--window 12] [--nodes 10]

Two parts:
  parts       each step alone, in this process, CPU time over many frames: the image
              checks in a frame worker (on the capacity benchmark's PNG and on a
              1920x1080 render-like PNG), the verdict written with the record
              (`store/frame_checks.judge`: the neighbours' sizes, one UPDATE), and a
              delivery: one at a time (the copy with fsync and rename, and its
              record), and in groups of BATCH (512) as `Delivery` does it (the
              frames read, their paths made, copied, synced, recorded), its user and
              system CPU apart, its delivery process's (the copies) and the whole
              machine's (the kernel's flusher threads write what syncfs asks for);
              the same with an fdatasync per copy, in the delivery thread
              (`_fdatasync_each`); as copies (`_copies`) and as hard
              links (the default where the target is the data dir's file system);
              and the floor: an fdatasync per file's system
              calls with no other code
  --output-root DIR   where the copies go (default: beside the data dir, on its disk,
              where a frame is delivered as a hard link; on another file system it
              is copied): delivery's cost is mostly the target file system's
  --delivery-copies   the capacity runs copy every frame, as `brender-coordinator
              --delivery-copies` does (the parts measure links and copies both)
  disk        before anything else, what creating a small file costs on the output
              root's file system now: ext4 without a journal (this VM's disk) skips
              the inodes freed in the last 1-6 minutes one by one, so files deleted
              just before (a test suite's temp folders) make every new file dearer
              for a few minutes; the figure says which case a run measured
  capacity    the capacity benchmark's run (10 simulated nodes, frames as fast as the
              coordinator takes them), `--pairs` times each way, interleaved: frames
              kept in the data dir only, then also delivered to an output root; CPU
              per frame of the coordinator and its frame workers, and of the whole
              machine, their medians, and the share the checks and delivery take of
              the coordinator's. Runs here vary by ±30 %: the parts say what a step
              costs alone, the runs what it costs beside the rest (a syncfs on the
              data dir's own file system looked cheap alone and was dear in the runs).
              The coordinator's CPU is also split: its event loop's thread, its other
              threads (the delivery thread among them), and its delivery process
              (where the files are copied; counted with the workers): those two are
              steady from run to run, so delivery's own cost shows in them plainly,
              and the loop's says whether it made the loop's work dearer. `share`
              gives delivery's cost by the medians, by the median of the pairs'
              differences, and by thread and process
The checks run in both capacity runs (they cannot be turned off); their share is
the "parts" figure over the run's CPU per frame.
"""
from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import cpu_seconds, tiny_png  # noqa: E402
from coordinator import file_sync, frame_checks  # noqa: E402
from coordinator.database import Database  # noqa: E402
from coordinator.config import Config  # noqa: E402
from coordinator.delivered_files import copy_atomically, copy_batch  # noqa: E402
from coordinator.delivery import BATCH, Delivery  # noqa: E402
from coordinator.store import delivery as delivery_sql  # noqa: E402
from coordinator.store import frame_checks as check_sql  # noqa: E402
from coordinator.storage import Storage  # noqa: E402


def cpu_ms(fn, reps: int) -> float:
    """CPU milliseconds of one call of `fn`, over `reps` calls (this process, all threads)."""
    fn()
    start = time.process_time()
    for _ in range(reps):
        fn()
    return 1000 * (time.process_time() - start) / reps


def render_like(width: int, height: int) -> bytes:
    """A PNG that compresses like a render: smooth gradients with a little noise."""
    y, x = np.mgrid[0:height, 0:width]
    rng = np.random.default_rng(3)
    rgb = np.stack([x * 255 // width, y * 255 // height, (x + y) * 127 // (width + height)], -1)
    rgb = (rgb + rng.integers(0, 3, rgb.shape)).clip(0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "PNG")
    return out.getvalue()


def image_checks() -> dict:
    result = {}
    for name, data in (("capacity_png_64x36", tiny_png()), ("render_png_1920x1080",
                                                          render_like(1920, 1080))):
        img = Image.open(io.BytesIO(data)).convert("RGB")
        img.thumbnail((240, 240), Image.Resampling.LANCZOS)   # what the worker checks
        result[name] = {"check_ms": round(cpu_ms(lambda: frame_checks.raster_checks(img),
                                                 500), 4)}
    return result


async def store_steps(root: Path, frames: int, out: Path) -> dict:
    """The verdict with the record and a delivery, on a real database and disk."""
    root.mkdir(parents=True, exist_ok=True)
    db = Database(root / "brender.db")
    await db.open()
    try:
        async def setup(c):
            await c.execute(
                """INSERT INTO shots (id, name, status, priority, blend_path, files,
                   frame_start, frame_end, frame_step, fps, created_at, frames_total,
                   output_template, output_root)
                   VALUES (1, 'bench', 'active', 50, 'b.blend', '[]', 1, ?, 1, 24, 0, ?,
                           '{shot}/{frame:04d}.{ext}', 'studio')""", (frames, frames))
            await c.execute("INSERT INTO jobs (id, shot_id, ordinal, status, frames) "
                            "VALUES (1, 1, 0, 'running', '[]')")
            await c.executemany(
                """INSERT INTO frames (shot_id, number, job_id, status, name, path, size,
                   sha256) VALUES (1, ?, 1, 'done', ?, ?, ?, 'x')""",
                [(n, f"frame_{n:06d}.png", "f.png", 2000 + n % 7) for n in range(1, frames + 1)])
        await db.write(setup)
        checks = {"uniform": None, "nonfinite": 0}

        async def judge_all(c):
            for n in range(1, frames + 1):
                await check_sql.judge(c, {"shot_id": 1, "number": n, "size": 2003,
                                          "node_id": "n", "job_id": 1}, checks)
        start = time.process_time()
        await db.write(judge_all)
        judge_ms = 1000 * (time.process_time() - start) / frames

        source = root / "frame.png"
        source.write_bytes(tiny_png())
        studio = out / "studio"
        studio.mkdir()
        start = time.process_time()
        for n in range(1, frames + 1):
            copy_atomically(source, studio, f"one/{n:04d}.png")
            await db.write(delivery_sql.delivered_many, [(1, n, "x")], batched=True)
        single_ms = 1000 * (time.process_time() - start) / frames
        # As the coordinator delivers while frames keep landing: groups of BATCH, each
        # read, its paths made, copied and recorded by `Delivery` itself.
        storage = Storage(root / "data")
        frame = storage.root / "shots" / "1" / "frames" / "frame.png"
        frame.parent.mkdir(parents=True)
        frame.write_bytes(tiny_png())

        async def in_data_dir(c):
            await c.execute("UPDATE frames SET path = 'shots/1/frames/frame.png'")
        await db.write(in_data_dir)
        groups = {}
        # As delivered by default (a hard link a frame when `out` is on the data dir's
        # file system), then as copies (`--delivery-copies`: one syncfs a group when
        # `out` is on another file system, else an fdatasync a copy), then copies with
        # an fdatasync each (where syncfs is missing), each to a root of its own.
        as_delivered = file_sync.SYNCFS
        try:
            for tag, links, syncfs in (("", True, as_delivered),
                                       ("_copies", False, as_delivered),
                                       ("_copies_fdatasync_each", False, None)):
                file_sync.SYNCFS = syncfs
                # Without syncfs the copies are made here, in the delivery thread: the
                # delivery process is another interpreter, whose syncfs stays.
                groups.update(await delivered_groups(db, storage, out / f"studio{tag}",
                                                     frames, tag, links,
                                                     in_thread=syncfs is None))
        finally:
            file_sync.SYNCFS = as_delivered
        storage.close()
        # In the delivered folder: a new inode is sought first in its folder's group.
        floor_ms = file_floor_ms(studio / "bench", tiny_png(), frames)
    finally:
        await db.close()
    return {"judge_ms": round(judge_ms, 4), "delivery_one_at_a_time_ms": round(single_ms, 4),
            **groups, "delivery_floor_ms": round(floor_ms, 4)}


async def delivered_groups(db: Database, storage: Storage, target: Path, frames: int,
                           tag: str, links: bool, in_thread: bool = False) -> dict:
    """Every frame delivered to `target` by `Delivery` itself, in groups of BATCH: CPU
    per frame, this process's (user, system), its delivery process's (where the files
    are copied) and the whole machine's."""
    delivery = Delivery(Config(output_roots={"studio": target}, delivery_links=links), db,
                        storage, lambda shot_id: None)
    if in_thread:
        delivery.copier.copy = copy_batch  # type: ignore[method-assign]
    # The delivery process started (an empty group), as in a coordinator delivering
    # for a while: its start is not a frame's cost.
    await asyncio.get_running_loop().run_in_executor(delivery.executor, delivery.copier.copy,
                                                     [], links)
    process = delivery.copier.pid
    process_before = cpu_seconds(process) if process else 0.0
    before, machine = resource.getrusage(resource.RUSAGE_SELF), machine_busy()
    for first in range(1, frames + 1, BATCH):
        await delivery._deliver([(1, n) for n in range(first, min(first + BATCH,
                                                                   frames + 1))])
    after, machine = resource.getrusage(resource.RUSAGE_SELF), machine_busy() - machine
    process_ms = 1000 * ((cpu_seconds(process) if process else 0.0) - process_before) / frames
    await delivery.close()
    assert delivery.delivered == frames, delivery.delivered
    user_ms = 1000 * (after.ru_utime - before.ru_utime) / frames
    system_ms = 1000 * (after.ru_stime - before.ru_stime) / frames
    return {f"delivery{tag}_ms": round(user_ms + system_ms + process_ms, 4),
            f"delivery{tag}_user_ms": round(user_ms, 4),
            f"delivery{tag}_system_ms": round(system_ms, 4),
            f"delivery{tag}_process_ms": round(process_ms, 4),
            f"delivery{tag}_all_cpus_ms": round(1000 * machine / frames, 4)}


def machine_busy() -> float:
    """CPU seconds every CPU of the machine has been busy (/proc/stat): a syncfs has
    the kernel's flusher threads write the files, and their CPU is no process's."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def creation_ms(folder: Path, files: int = 1000) -> float:
    """CPU per new small file (create, write, close), nothing synced: ~0.03 ms on a
    quiet ext4, 0.3-0.6 ms within minutes of deleting 10,000 files on one without a
    journal (measured here)."""
    folder.mkdir(parents=True)
    start = time.process_time()
    for n in range(files):
        fd = os.open(folder / f"probe{n}", os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        os.write(fd, b"x" * 2000)
        os.close(fd)
    return 1000 * (time.process_time() - start) / files


def file_floor_ms(folder: Path, data: bytes, frames: int) -> float:
    """CPU per file of the system calls any atomic copy makes, with no other code: a
    new file written, fdatasync, rename, one folder fsync per group. Measured right
    after the delivery, in its folder: where creating a file is dear (ext4 without
    a journal skips recently deleted inodes one by one), it is most of a delivery."""
    dir_fd = os.open(folder, os.O_RDONLY)
    start = time.process_time()
    for first in range(0, frames, BATCH):
        written = []
        for n in range(first, min(first + BATCH, frames)):
            fd = os.open(f".floor{n}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, dir_fd=dir_fd)
            os.write(fd, data)
            written.append((fd, n))
        for fd, n in written:
            os.fdatasync(fd)
            os.close(fd)
            os.rename(f".floor{n}", f"floor{n}.png", src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        os.fsync(dir_fd)
    floor = 1000 * (time.process_time() - start) / frames
    os.close(dir_fd)
    return floor


def capacity(root: Path, nodes: int, frames: int, window: float, out: Path,
             pairs: int, copies: bool) -> dict:
    """`pairs` plain runs and delivered runs, interleaved; CPU per frame of the
    coordinator and its workers, and of the whole machine (a syncfs has kernel threads
    write), each run's and their medians."""
    from benchmarks.capacity import run_one
    keys = ("frames_done", "frames_per_s", "cpu_ms_per_frame", "worker_cpu_ms_per_frame",
            "loop_cpu_ms_per_frame", "delivery_process_cpu_ms_per_frame",
            "coordinator_cpu", "dispatch_p50_ms", "dispatch_p99_ms")
    runs: dict[str, list] = {"plain": [], "delivered": []}
    for i in range(pairs):
        studio = out / f"studio-capacity-{i}"
        studio.mkdir(parents=True, exist_ok=True)
        for kind, extra in (("plain", {}), ("delivered", {
                "extra_args": ("--output-root", f"studio={studio}",
                               *(("--delivery-copies",) if copies else ())),
                "shot_fields": {"output_template": "{shot}/{frame:06d}.{ext}",
                                "output_root": "studio"}})):
            busy = machine_busy()
            run = run_one(root / f"{kind}-{i}", nodes, frames, 1, window, **extra)
            busy = machine_busy() - busy
            row = {k: run.get(k) for k in keys}
            row["machine_cpu_ms_per_frame"] = round(1000 * busy / run["frames_done"], 3)
            if kind == "delivered":
                row["copies"] = sum(1 for _ in studio.rglob("*.png"))
            runs[kind].append(row)
    for kind, rows in runs.items():
        for row in rows:   # the coordinator's threads other than the event loop's
            row["threads_cpu_ms_per_frame"] = round(
                row["cpu_ms_per_frame"] - row["loop_cpu_ms_per_frame"], 3)
    # Each pair's difference, delivered - plain (coordinator + workers): the runs
    # drift with the machine, the pairs less.
    runs["pair_differences_ms"] = [round(
        d["cpu_ms_per_frame"] + d["worker_cpu_ms_per_frame"]
        - p["cpu_ms_per_frame"] - p["worker_cpu_ms_per_frame"], 3)
        for p, d in zip(runs["plain"], runs["delivered"])]
    medians = ("cpu_ms_per_frame", "worker_cpu_ms_per_frame", "machine_cpu_ms_per_frame",
               "loop_cpu_ms_per_frame", "threads_cpu_ms_per_frame",
               "delivery_process_cpu_ms_per_frame")
    return {**runs, "median": {kind: {k: statistics.median(r[k] for r in runs[kind])
                                      for k in medians}
                               for kind in ("plain", "delivered")}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--frames", type=int, default=3000)
    p.add_argument("--window", type=float, default=12.0)
    p.add_argument("--nodes", type=int, default=10)
    p.add_argument("--parts-only", action="store_true")
    p.add_argument("--pairs", type=int, default=3,
                   help="capacity runs without and with delivery, interleaved")
    p.add_argument("--output-root", type=Path,
                   help="a folder on the file system the copies go to (a temp folder "
                        "is made in it)")
    p.add_argument("--delivery-copies", action="store_true",
                   help="the capacity runs' coordinator copies every frame (its "
                        "--delivery-copies) rather than linking what it can")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="brender-bench-checks-") as tmp, \
            tempfile.TemporaryDirectory(prefix="brender-bench-out-",
                                        dir=args.output_root) as out_tmp:
        root, out = Path(tmp), Path(out_tmp)
        result: dict = {"disk": {"file_creation_before_ms": round(creation_ms(out / "probe"),
                                                                  4)},
                        "image_checks": image_checks(),
                        "store": asyncio.run(store_steps(root / "store", args.frames, out))}
        if not args.parts_only:
            result["capacity"] = run = capacity(root / "capacity", args.nodes, 12_000,
                                                args.window, out, args.pairs,
                                                args.delivery_copies)
            plain, delivered = run["median"]["plain"], run["median"]["delivered"]
            total = plain["cpu_ms_per_frame"] + plain["worker_cpu_ms_per_frame"]
            checks = result["image_checks"]["capacity_png_64x36"]["check_ms"] + \
                result["store"]["judge_ms"]
            with_delivery = delivered["cpu_ms_per_frame"] + delivered["worker_cpu_ms_per_frame"]
            # The whole machine's CPU: syncfs's writing is done by kernel threads.
            machine = delivered["machine_cpu_ms_per_frame"] - plain["machine_cpu_ms_per_frame"]
            result["share"] = {
                "checks_of_plain_frame": round(checks / total, 4),
                "delivery_in_run_coordinator": round((with_delivery - total) / total, 4),
                "delivery_in_run_machine": round(machine / total, 4),
                "delivery_in_run_pairs_median": round(
                    statistics.median(run["pair_differences_ms"]) / total, 4),
                # Delivery's own work (its thread, mostly waiting on its process, and
                # the process, where the files are copied) and the event loop's, each
                # delivered - plain, over the plain frame.
                "delivery_threads": round((delivered["threads_cpu_ms_per_frame"]
                                           - plain["threads_cpu_ms_per_frame"]) / total, 4),
                "delivery_process": round(
                    delivered["delivery_process_cpu_ms_per_frame"] / total, 4),
                "delivery_loop": round((delivered["loop_cpu_ms_per_frame"]
                                        - plain["loop_cpu_ms_per_frame"]) / total, 4),
                "checks_and_delivery_in_run_machine": round((checks + machine) / total, 4),
                "delivery_from_parts": round(result["store"]["delivery_all_cpus_ms"] / total,
                                             4),
                "checks_and_delivery_from_parts": round(
                    (checks + result["store"]["delivery_all_cpus_ms"]) / total, 4)}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
