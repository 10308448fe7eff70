"""Benchmark: taking the work home (issue 17).

- movie: a 240-frame 1920×1080 PNG shot lands (one simulated node uploads its frames,
  24 distinct images of a moving pattern with grain, in a cycle); measured is the time
  from the last frame's upload answered to the shot's preview movie being `ready`
  (`GET /api/shots/{id}` polled every 0.1 s), and the movie's size. Target: ≤ 10 s.
- zip: a 10,000-frame shot (~100 kB frames) lands; measured is
  `GET /api/shots/{id}/frames.zip` read to its end by a streaming client (MB/s) and
  the coordinator's RSS growth while it streams (sampled every 0.05 s from /proc).
  Targets: ≥ 200 MB/s, < 50 MB.

    python benchmarks/run.py --only movie --only zip
"""
from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import shutil
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

from .common import TOKEN, Coordinator, fake_blend, log, wait_for

MOVIE_FRAMES = 240
MOVIE_SIZE = (1920, 1080)
DISTINCT = 24
ZIP_FRAMES = 10_000


def movie_frames(count: int = DISTINCT, size: tuple[int, int] = MOVIE_SIZE) -> list[bytes]:
    """`count` PNG frames of a pattern that moves from frame to frame, with grain (like
    a path-traced render's), so the encoder works as it would on real frames."""
    import numpy as np
    from PIL import Image

    width, height = size
    rng = np.random.default_rng(17)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    out = []
    for i in range(count):
        t = i / count
        r = 128 + 100 * np.sin(x / 90 + 6.28 * t)
        g = 128 + 100 * np.cos(y / 70 - 6.28 * t)
        b = 128 + 100 * np.sin((x + y) / 150 + 12.56 * t)
        img = np.stack([r, g, b], axis=-1) + rng.normal(0, 6, (height, width, 3))
        buf = io.BytesIO()
        Image.fromarray(img.clip(0, 255).astype(np.uint8), "RGB").save(buf, "PNG",
                                                                      compress_level=1)
        out.append(buf.getvalue())
    return out


def small_frame(size: int = 100_000) -> bytes:
    """A PNG of about `size` bytes (noise does not compress)."""
    import numpy as np
    from PIL import Image

    side = int((size / 3) ** 0.5)
    pixels = np.random.default_rng(7).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, "PNG", compress_level=0)
    return buf.getvalue()


async def _render(url: str, bodies: list[bytes], total: int, concurrency: int = 8) -> float:
    """One simulated node: takes jobs until `total` frames are uploaded, frame n's body
    being bodies[n % len(bodies)]. Returns the monotonic time the last upload was
    answered."""
    import aiohttp

    digests = [hashlib.sha256(b).hexdigest() for b in bodies]
    hello = {"type": "hello", "node_id": None, "name": "deliveries-node", "hostname": "sim",
             "platform": "sim", "blender_version": "sim", "cpu_count": 1, "tags": [],
             "allow_scripts": False, "running_attempt": None}
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "image/png"}
    uploaded, last = 0, 0.0
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        ws = await http.ws_connect(f"{url}/api/node/ws", max_msg_size=1 << 26)
        await ws.send_str(json.dumps(hello))
        await ws.receive(timeout=60)
        await ws.send_str('{"type":"ready"}')
        gate = asyncio.Semaphore(concurrency)

        async def put(attempt: str, number: int) -> None:
            nonlocal last
            i = number % len(bodies)
            async with gate:
                async with http.put(f"{url}/api/attempts/{attempt}/frames/{number}",
                                    data=bodies[i], headers={**headers, "X-Sha256": digests[i]}
                                    ) as resp:
                    assert resp.status in (200, 201), await resp.text()
            last = time.monotonic()

        finished = asyncio.Event()

        async def run_job(job: dict) -> None:
            nonlocal uploaded
            await asyncio.gather(*(put(job["attempt_id"], n) for n in job["frames"]))
            uploaded += len(job["frames"])
            done = uploaded >= total
            await ws.send_str(json.dumps({"type": "job_done", "attempt_id": job["attempt_id"],
                                          "ready": not done}))
            if done:
                finished.set()

        async def read() -> None:
            # The channel keeps being read (and the coordinator's pings answered) while
            # a job uploads, as the real node does.
            async for msg in ws:
                data = json.loads(msg.data)
                if data.get("type") == "assign":
                    tasks.add(asyncio.create_task(run_job(data["job"])))

        tasks: set[asyncio.Task] = set()
        reader = asyncio.create_task(read())
        await finished.wait()
        reader.cancel()
        for task in tasks:
            await task
        await ws.close()
    return last


def run_movie(root: Path) -> dict:
    log("movie: making the frames")
    bodies = movie_frames()
    coord = Coordinator(root / "movie", "--lease-timeout", "300").start()
    try:
        shot = coord.api.create_shot("movie.blend", fake_blend(), frame_start=1,
                                     frame_end=MOVIE_FRAMES, chunk_size=MOVIE_FRAMES, fps=24)
        log("movie: uploading 240 frames of 1920x1080")
        last = asyncio.run(_render(coord.url, bodies, MOVIE_FRAMES, concurrency=2))
        movie = wait_for(lambda: (m := coord.api.get(f"/api/shots/{shot['id']}")["movie"])
                         and m["status"] in ("ready", "failed") and m, 900, interval=0.1,
                         what="the movie")
        ready_s = time.monotonic() - last
        assert movie["status"] == "ready", movie
        size = len(coord.api.get(movie["url"], raw=True))
        return {"frames": MOVIE_FRAMES, "size": f"{MOVIE_SIZE[0]}x{MOVIE_SIZE[1]}",
                "ready_after_last_frame_s": round(ready_s, 2),
                "ffmpeg_s": movie.get("seconds"), "ffmpeg_cpu_s": movie.get("cpu_seconds"),
                "load_average": round(os.getloadavg()[0], 1), "movie_mb": round(size / 2**20, 2),
                "frame_mb": round(sum(len(b) for b in bodies) / len(bodies) / 2**20, 2)}
    finally:
        coord.stop()


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def run_zip(root: Path, frames: int = ZIP_FRAMES) -> dict:
    body = small_frame()
    coord = Coordinator(root / "zip", "--lease-timeout", "300").start()
    try:
        shot = coord.api.create_shot("zip.blend", fake_blend(), frame_start=1,
                                     frame_end=frames, chunk_size=500)
        log(f"zip: uploading {frames} frames of {len(body) // 1000} kB")
        started = time.monotonic()
        asyncio.run(_render(coord.url, [body], frames))
        wait_for(lambda: coord.api.get(f"/api/shots/{shot['id']}")["status"] == "completed",
                 120, what="the shot")
        fill_s = time.monotonic() - started
        time.sleep(2)  # let the upload path settle before the baseline
        before = _rss(coord.pid)
        peak = [before]
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], _rss(coord.pid))
                time.sleep(0.05)

        sampler = threading.Thread(target=sample)
        sampler.start()
        url = f"{coord.url}/api/shots/{shot['id']}/frames.zip"
        if shutil.which("curl"):
            # curl reads as a browser would; a Python reader was the slower end.
            out = subprocess.run(["curl", "-sS", "-H", f"Authorization: Bearer {TOKEN}",
                                  "-o", "/dev/null", "-w", "%{size_download} %{time_total}",
                                  url], check=True, capture_output=True, text=True).stdout
            size, seconds = int(out.split()[0]), float(out.split()[1])
            client = "curl"
        else:
            size, seconds, _ = _read(url)
            client = "python"
        stop.set()
        sampler.join()
        # The end of the zip (its central directory) lists every frame (read again).
        entries = _count_entries(_read(url, keep_tail=True)[2])
        return {"frames": frames, "frame_kb": len(body) // 1000, "fill_s": round(fill_s, 1),
                "zip_mb": round(size / 2**20, 1), "seconds": round(seconds, 2),
                "mb_per_s": round(size / 2**20 / seconds, 1), "client": client,
                "rss_before_mb": round(before / 2**20, 1),
                "rss_growth_mb": round((peak[0] - before) / 2**20, 1),
                "entries_in_central_directory": entries}
    finally:
        coord.stop()


def _read(url: str, keep_tail: bool = False) -> tuple:
    """Read `url` to its end in 1 MB blocks: (bytes, seconds[, the last MB])."""
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
    size, tail = 0, b""
    started = time.monotonic()
    with urllib.request.urlopen(req, timeout=600) as resp:
        while block := resp.read(1 << 20):
            size += len(block)
            if keep_tail:
                tail = (tail + block)[-(1 << 20):]
    return size, time.monotonic() - started, tail


def _count_entries(tail: bytes) -> int | None:
    """Entries the zip's end-of-central-directory record counts (zip64 where set)."""
    at = tail.rfind(b"PK\x06\x06")    # zip64 end of central directory
    if at >= 0:
        return int.from_bytes(tail[at + 32:at + 40], "little")
    at = tail.rfind(b"PK\x05\x06")
    return int.from_bytes(tail[at + 10:at + 12], "little") if at >= 0 else None


def run(root: Path, only: tuple[str, ...] = ("movie", "zip"), quick: bool = False) -> dict:
    out: dict = {}
    if "movie" in only:
        out["movie"] = run_movie(root)
        log(f"movie: {out['movie']}")
    if "zip" in only:
        out["zip"] = run_zip(root, 2000 if quick else ZIP_FRAMES)
        log(f"zip: {out['zip']}")
    return out

