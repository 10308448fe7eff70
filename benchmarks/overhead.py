"""Benchmark 1: farm overhead against plain Blender on the same scene.

Plain: `blender -b scene.blend -o OUT/frame_###### -a` (start-up, load, render,
write: everything an artist waits for).

Farm: a coordinator and one local `brender-node` (default threads, like plain
Blender) are started first and left idle (a farm is already running when an artist
submits): the node's CPU has settled, its spare Blender is up. The clock starts
before the blob upload (what `brender-submit --no-pack` does: upload the .blend,
POST /api/shots) and stops when the SSE stream
(/api/events) has delivered the `frame` event of the last frame, i.e. every frame
is stored on the coordinator and thumbnailed.
"""
from __future__ import annotations

import json
import os
import resource
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from .common import (BLENDER, REPO, Coordinator, EventCounter, Node, cpu_seconds, log,
                     tree_cpu_seconds, wait_for)

MAKE_SCENE = REPO / "tests" / "scenes" / "make_scene.py"
SCENE = {"width": 640, "height": 360, "samples": 16, "frame_end": 24}


def make_scene(path: Path, opts: dict) -> Path:
    """The test suite's scene maker (Cycles, CPU, denoising off), at benchmark size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([BLENDER, "-b", "--factory-startup", "--python-exit-code", "1",
                    "--python", str(MAKE_SCENE), "--", str(path), json.dumps(opts)],
                   check=True, capture_output=True, timeout=180)
    return path


def plain(scene: Path) -> dict:
    out = Path(tempfile.mkdtemp(prefix="brender-plain-"))
    try:
        started = time.monotonic()
        cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run([BLENDER, "-b", str(scene), "-o", str(out / "frame_######"),
                               "-a"], check=True, capture_output=True, text=True, timeout=900)
        seconds = time.monotonic() - started
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        written = len(list(out.glob("frame_*")))
        if written != SCENE["frame_end"]:
            raise RuntimeError(f"plain Blender wrote {written} frames")
        # Blender prints "Time: 00:01.23 (Saving: 00:00.01)" after each frame.
        render = sum(int(m) * 60 + float(s) for m, s in
                     re.findall(r"^\s*Time: (\d+):(\d+\.\d+)", proc.stdout, re.M))
        return {"seconds": round(seconds, 2), "render_sum_s": round(render, 2),
                "cpu_s": round(cpu, 2), "load": round(os.getloadavg()[0], 2)}
    finally:
        shutil.rmtree(out, ignore_errors=True)


def settled(pid: int, window: float = 0.5) -> bool:
    """Whether a process tree used (almost) no CPU for `window` seconds."""
    before = tree_cpu_seconds(pid)
    time.sleep(window)
    return tree_cpu_seconds(pid) - before < 0.05


def farm(root: Path, scene: Path, chunk: int | None, node_args: tuple[str, ...] = ()) -> dict:
    """One shot on a fresh idle farm; `chunk=None` leaves the chunk size to the coordinator."""
    tag = f"chunk{chunk or 'default'}{''.join(node_args).replace('-', '')}"
    coord = Coordinator(root / f"farm-{tag}").start()
    node = Node(coord.root, coord.url, "bench-node", *node_args).start()
    events = None
    try:
        wait_for(lambda: coord.api.get("/api/version")["nodes_online"] >= 1, 60,
                 what="the node to connect")
        # Idle: its spare Blender (if any) is up and waiting, as on a running farm.
        wait_for(lambda: settled(node.proc.pid), 60, what="the node to be idle")
        events = EventCounter(coord.url)
        events.start()
        events.hello.wait(10)
        frames = SCENE["frame_end"]
        spec = {"frame_start": 1, "frame_end": frames, "output_format": "PNG",
                "name": f"overhead-{tag}"}
        if chunk is not None:
            spec["chunk_size"] = chunk
        started = time.monotonic()
        cpu0 = cpu_seconds(coord.pid) + tree_cpu_seconds(node.proc.pid)
        shot = coord.api.create_shot(scene.name, scene.read_bytes(), **spec)
        submitted = time.monotonic()
        if not events.wait_frames(shot["id"], frames, 900):
            raise RuntimeError(f"farm run {tag} did not finish:\n{node.log_tail()}")
        last = events.frames[shot["id"]][-1]
        first = events.frames[shot["id"]][0]
        # Coordinator + node + its Blender processes: the CPU the farm spent on the shot.
        cpu = cpu_seconds(coord.pid) + tree_cpu_seconds(node.proc.pid) - cpu0
        info = coord.api.get(f"/api/shots/{shot['id']}")
        listing = coord.api.get(f"/api/shots/{shot['id']}/frames")["frames"]
        render = sum(f["render_time"] or 0 for f in listing)
        return {"chunk": chunk if chunk is not None else f"default ({info['chunk_size']})",
                "node": " ".join(node_args) or "warm session, spare",
                "seconds": round(last - started, 2),
                "submit_s": round(submitted - started, 3),
                "first_frame_s": round(first - started, 2),
                "jobs": info["jobs_total"], "render_sum_s": round(render, 2),
                "cpu_s": round(cpu, 2),
                "load": round(os.getloadavg()[0], 2)}
    finally:
        if events is not None:
            events.close()
        node.stop()
        coord.stop()


def run(root: Path, quick: bool = False) -> dict:
    """Plain Blender and each farm variant, interleaved `repeat` times; the best run counts.

    The best of several runs is the least disturbed by whatever else the machine does
    (the ratio compares best with best).
    """
    root.mkdir(parents=True, exist_ok=True)
    scene = make_scene(root / "scene" / "overhead.blend", SCENE)
    # 5 is brender-submit's default chunk; --no-warm is the classic process per chunk.
    variants: list[tuple[int, tuple[str, ...]]] = [(1, ()), (24, ())]
    repeat = 1
    if not quick:
        variants = [(1, ()), (5, ()), (24, ()), (1, ("--no-spare",)), (1, ("--no-warm",))]
        repeat = 2
    plains: list[dict] = []
    runs: dict[int, list[dict]] = {i: [] for i in range(len(variants))}
    for r in range(repeat):
        log(f"overhead: plain blender -a (run {r + 1}/{repeat})")
        plains.append(plain(scene))
        log(f"overhead: plain {plains[-1]['seconds']} s (load {plains[-1]['load']})")
        for i, (chunk, node_args) in enumerate(variants):
            log(f"overhead: farm, chunk {chunk} {' '.join(node_args)} (run {r + 1}/{repeat})")
            runs[i].append(farm(root, scene, chunk, node_args))
            log(f"overhead: farm {runs[i][-1]['seconds']} s (load {runs[i][-1]['load']})")
            shutil.rmtree(root / f"farm-chunk{chunk}{''.join(node_args).replace('-', '')}",
                          ignore_errors=True)
    best_plain = min(plains, key=lambda p: p["seconds"])
    rows = []
    for i in range(len(variants)):
        best = dict(min(runs[i], key=lambda p: p["seconds"]))
        best["all_seconds"] = [x["seconds"] for x in runs[i]]
        best["ratio"] = round(best["seconds"] / best_plain["seconds"], 3)
        # CPU time barely depends on what else the machine runs: a steadier ratio.
        best["cpu_s"] = min(x["cpu_s"] for x in runs[i])   # least disturbed run
        best["cpu_ratio"] = round(best["cpu_s"] / min(p["cpu_s"] for p in plains), 3)
        rows.append(best)
    return {"scene": SCENE, "plain_s": best_plain["seconds"],
            "plain_render_sum_s": best_plain["render_sum_s"],
            "plain_cpu_s": min(p["cpu_s"] for p in plains),
            "plain_all_seconds": [p["seconds"] for p in plains], "farm": rows}
