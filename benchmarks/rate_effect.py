"""What the same work costs on this machine at different rates: no Brender code.

    python -m benchmarks.rate_effect [--rounds 3] [--seconds 6]

Issue 16 asks that two coordinators sharing a farm spend no more CPU a frame than one.
Sharing the work halves the rate each coordinator runs at. This measures what a
halved rate does to fixed work on its own:
- `request`: a plain aiohttp + uvloop server, one fixed JSON handler, 200 keep-alive
  clients in this process; the server's CPU a request.
- `thumbnail`: a child process decoding a 64×36 PNG and thumbnailing it with Pillow
  (`coordinator.thumbnails.make_from_bytes`, the frame workers' call), a request a
  byte over a pipe.
- `compute`: a child process decompressing and hashing the same 100 kB, a request a
  byte over a pipe (no I/O, no imports beyond zlib and hashlib).
Each is paced at 500, 250 and 125 requests a second, in rounds; CPU is the scheduler's
own count of the process's run time (`/proc/PID/task/*/schedstat`, nanoseconds).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time

from benchmarks.common import free_port, log, run_seconds

RATES = (500, 250, 125)

SERVER = r"""
import sys, orjson, uvloop
from aiohttp import web
async def handle(request):
    body = orjson.loads(await request.read())
    return web.Response(body=orjson.dumps({"id": body["id"], "items": [
        {"k": i, "v": str(i) * 5} for i in range(20)]}), content_type="application/json")
app = web.Application()
app.router.add_post("/x", handle)
uvloop.install()
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""

CHILD = r"""
import hashlib, sys, zlib
kind = sys.argv[1]
if kind == "thumbnail":
    from benchmarks.common import tiny_png
    from coordinator.thumbnails import make_from_bytes
    png = tiny_png(64, 36)
    work = lambda: make_from_bytes(png, 256)
else:
    data = bytes(range(256)) * 400
    packed = zlib.compress(data)
    def work():
        for _ in range(3):
            zlib.decompress(packed)
            hashlib.sha256(data).digest()
requests, replies = sys.stdin.buffer, sys.stdout.buffer
while requests.read(1):
    work()
    replies.write(b"x")
    replies.flush()
"""


def paced_pipe(child: subprocess.Popen, rate: float, count: int) -> None:
    assert child.stdin is not None and child.stdout is not None
    t0 = time.monotonic()
    for i in range(count):
        wait = t0 + i / rate - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        child.stdin.write(b"g")
        child.stdin.flush()
        child.stdout.read(1)


async def paced_http(url: str, rate: float, count: int) -> None:
    import aiohttp
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as http:
        async def one(i: int) -> None:
            async with http.post(url, data=json.dumps({"id": i})) as response:
                await response.read()
        t0 = time.monotonic()
        tasks = []
        for i in range(count):
            wait = t0 + i / rate - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)


def measure(rounds: int, seconds: float) -> dict[str, dict[int, list[float]]]:
    port = free_port()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.join(root, "addon"), root, os.environ.get("PYTHONPATH", "")]))
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], env=env)
    children = {kind: subprocess.Popen([sys.executable, "-c", CHILD, kind], env=env,
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE)
                for kind in ("thumbnail", "compute")}
    url = f"http://127.0.0.1:{port}/x"
    out: dict[str, dict[int, list[float]]] = {k: {r: [] for r in RATES}
                                              for k in ("request", "thumbnail", "compute")}
    try:
        deadline = time.monotonic() + 15
        while True:   # the server is up when it answers
            try:
                asyncio.run(paced_http(url, 1000, 200))
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        for child in children.values():
            paced_pipe(child, 1000, 300)   # warm: imports done, caches filled once
        for r in range(rounds):
            for rate in RATES:
                count = int(rate * seconds)
                before = run_seconds(server.pid)
                asyncio.run(paced_http(url, rate, count))
                out["request"][rate].append((run_seconds(server.pid) - before) / count)
                for kind, child in children.items():
                    before = run_seconds(child.pid)
                    paced_pipe(child, rate, count)
                    out[kind][rate].append((run_seconds(child.pid) - before) / count)
            log(f"rate effect: round {r + 1} of {rounds} done")
    finally:
        server.kill()
        for child in children.values():
            child.kill()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=6.0, help="per rate and round")
    args = p.parse_args()
    out = measure(args.rounds, args.seconds)
    rows = []
    for kind, by_rate in out.items():
        base = statistics.median(by_rate[RATES[0]])
        for rate in RATES:
            ms = [round(1000 * v, 3) for v in by_rate[rate]]
            median = statistics.median(by_rate[rate])
            rows.append({"work": kind, "rate_per_s": rate, "cpu_ms_each": ms,
                         "median_ms": round(1000 * median, 3),
                         "against_500_per_s": f"{100 * (median / base - 1):+.0f} %"})
            log(f"{kind:9s} {rate:4d}/s: {1000 * median:.3f} ms each "
                f"({rows[-1]['against_500_per_s']} against 500/s; rounds {ms})")
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
