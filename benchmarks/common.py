"""Shared pieces of the benchmarks: real coordinator/node processes, HTTP, SSE, /proc.

Everything talks to 127.0.0.1 only. Processes are started with the project's own
entry points (`python -m coordinator.cli`, `python -m node.cli`), exactly as an
artist's farm runs them.
"""
from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# The checkout whose coordinator and node are measured (A/B a change: --repo elsewhere).
TARGET = Path(os.environ.get("BRENDER_BENCH_REPO") or REPO).resolve()
BLENDER = shutil.which("blender") or "/usr/bin/blender"
CHROMIUM = os.environ.get("BRENDER_CHROMIUM", "/usr/bin/chromium")
TOKEN = "bench-token"


def raise_fd_limit(wanted: int = 65536) -> int:
    """Thousands of sockets: lift the soft limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- /proc ---------------------------------------------------------------------------
def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM of one process in bytes (0 when it is gone)."""
    out = {"rss": 0, "hwm": 0}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return out
    for key, name in (("VmRSS", "rss"), ("VmHWM", "hwm")):
        m = re.search(rf"^{key}:\s+(\d+) kB", text, re.M)
        if m:
            out[name] = int(m.group(1)) * 1024
    return out


def children_of(pid: int) -> list[int]:
    """Every process below `pid`: Linux lists a child under the thread that started it
    (the coordinator's delivery process is started by the delivery thread)."""
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    kids = []
    for thread in threads:
        try:
            text = Path(f"/proc/{pid}/task/{thread}/children").read_text()
        except OSError:
            continue
        kids += [int(x) for x in text.split()]
    return kids + [g for k in kids for g in children_of(k)]


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """User+system CPU time of one process (not its children), or of one of its threads
    (`thread`: its id; the main thread's is the process's)."""
    path = f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat"
    try:
        fields = Path(path).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick


def run_queue_wait(pid: int) -> float:
    """Seconds the process's threads spent runnable but waiting for a CPU (schedstat)."""
    return _schedstat_seconds(pid, 1)


def run_seconds(pid: int) -> float:
    """Seconds the process's threads ran, as the scheduler counts them (schedstat, in
    ns: finer than `cpu_seconds`' clock ticks)."""
    return _schedstat_seconds(pid, 0)


def _schedstat_seconds(pid: int, field: int) -> float:
    """One field of /proc/PID/task/*/schedstat, summed over the threads."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0
    for tid in tasks:
        try:
            total += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[field])
        except (OSError, IndexError, ValueError):
            pass
    return total / 1e9


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process, its live descendants and the children it has reaped."""
    def own_and_reaped(p: int) -> float:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")

    return own_and_reaped(pid) + sum(cpu_seconds(k) for k in children_of(pid))


class MemorySampler(threading.Thread):
    """Samples a process's RSS (and its children's) every `interval` seconds."""

    def __init__(self, pid: int, interval: float = 0.25):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_main = 0
        self.peak_total = 0
        self._stop = threading.Event()

    def sample(self) -> tuple[int, int]:
        main = proc_status(self.pid)["rss"]
        total = main + sum(proc_status(k)["rss"] for k in children_of(self.pid))
        self.peak_main = max(self.peak_main, main)
        self.peak_total = max(self.peak_total, total)
        return main, total

    def run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        self._stop.set()
        self.sample()


# -- HTTP ------------------------------------------------------------------------------
class Api:
    """A tiny blocking JSON client (standard library, keeps the benchmark self-contained)."""

    def __init__(self, url: str, token: str = TOKEN):
        self.url = url.rstrip("/")
        self.token = token

    def call(self, method: str, path: str, body=None, data: bytes | None = None,
             headers: dict | None = None, timeout: float = 60, raw: bool = False):
        hdrs = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=hdrs)
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            payload = resp.read()
        if raw:
            return payload
        return json.loads(payload) if payload else None

    def get(self, path: str, **kw):
        return self.call("GET", path, **kw)

    def upload_blob(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        self.call("PUT", f"/api/blobs/{sha}", data=data,
                  headers={"Content-Type": "application/octet-stream"})
        return sha

    def create_shot(self, blend_name: str, blend: bytes, timeout: float = 60, **spec) -> dict:
        """Upload the .blend as a blob, then POST /api/shots (what brender-submit does)."""
        sha = self.upload_blob(blend)
        body = {"name": Path(blend_name).stem, "blend_path": blend_name,
                "files": [{"path": blend_name, "sha256": sha, "size": len(blend)}]}
        body.update(spec)
        return self.call("POST", "/api/shots", body, timeout=timeout)

    def up(self) -> bool:
        try:
            self.get("/api/version", timeout=2)
            return True
        except (urllib.error.URLError, OSError, ValueError):
            return False


def wait_for(predicate, timeout: float, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


class EventCounter(threading.Thread):
    """Listens on /api/events and timestamps every `frame` event (per shot)."""

    def __init__(self, url: str, token: str = TOKEN):
        super().__init__(daemon=True)
        host, port = url.split("//", 1)[1].split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=600)
        self.conn.request("GET", "/api/events", headers={
            "Accept": "text/event-stream", "Authorization": f"Bearer {token}"})
        self.resp = self.conn.getresponse()
        if self.resp.status != 200:
            raise RuntimeError(f"/api/events answered {self.resp.status}")
        self.frames: dict[int, list[float]] = {}   # shot id -> arrival times
        self.counts: dict[str, int] = {}
        self.cond = threading.Condition()
        self.hello = threading.Event()
        self.closed = False
        self.closed_at: float | None = None

    def run(self) -> None:
        kind = None
        try:
            for raw in self.resp:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: ") and kind:
                    now = time.monotonic()
                    self.counts[kind] = self.counts.get(kind, 0) + 1
                    if kind == "hello":
                        self.hello.set()
                    elif kind == "frame":
                        m = re.search(r'"shot_id":(\d+)', line)
                        shot = int(m.group(1)) if m else -1
                        with self.cond:
                            self.frames.setdefault(shot, []).append(now)
                            self.cond.notify_all()
                    kind = None
        except (OSError, ValueError, AttributeError, http.client.HTTPException):
            pass  # closed under us at the end of a run
        finally:
            self.closed_at = time.monotonic()
            self.closed = True
            with self.cond:
                self.cond.notify_all()

    def count(self, shot_id: int) -> int:
        return len(self.frames.get(shot_id, ()))

    def wait_frames(self, shot_id: int, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.count(shot_id) < count and not self.closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
        return self.count(shot_id) >= count

    def close(self) -> None:
        try:
            self.resp.close()
            self.conn.close()
        except Exception:
            pass


# -- processes -----------------------------------------------------------------------
class _Process:
    """What a benchmark process (coordinator or node) shares: its log and its stop."""

    proc: subprocess.Popen | None
    log_path: Path

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        stop_process(self.proc)


class Coordinator(_Process):
    """`brender-coordinator` in its own process, with its own data dir."""

    def __init__(self, root: Path, *args: str, port: int | None = None,
                 log_name: str | None = None):
        self.root = root
        self.data_dir = root / "data"
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api = Api(self.url)
        self.args = list(args)
        self.proc: subprocess.Popen | None = None
        self.log_path = root / (log_name or "coordinator.log")

    def start(self) -> "Coordinator":
        self.root.mkdir(parents=True, exist_ok=True)
        # BRENDER_BENCH_COORDINATOR_PY="-m cProfile -o /tmp/c.prof" profiles the coordinator.
        wrap = os.environ.get("BRENDER_BENCH_COORDINATOR_PY", "").split()
        cmd = [sys.executable, *wrap, "-m", "coordinator.cli", "--data-dir", str(self.data_dir),
               "--port", str(self.port), "--token", TOKEN, *self.args]
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(cmd, cwd=TARGET, stdout=out, stderr=out)
        try:
            wait_for(self._up, 30, what="the coordinator")
        except TimeoutError:
            raise RuntimeError("coordinator did not start:\n" + self.log_tail()) from None
        return self

    def _up(self) -> bool:
        if self.proc and self.proc.poll() is not None:
            raise RuntimeError("coordinator exited:\n" + self.log_tail())
        return self.api.up()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid



class Node(_Process):
    """`brender-node` in its own process (real Blender)."""

    def __init__(self, root: Path, url: str, name: str = "bench-node", *extra: str):
        self.root, self.url, self.name, self.extra = root, url, name, list(extra)
        self.proc: subprocess.Popen | None = None
        self.log_path = root / f"{name}.log"

    def start(self) -> "Node":
        cmd = [sys.executable, "-m", "node.cli", "--coordinator", self.url, "--token", TOKEN,
               "--name", self.name, "--blender", BLENDER,
               "--work-dir", str(self.root / "nodes" / self.name), *self.extra]
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(cmd, cwd=TARGET, stdout=out, stderr=out)
        return self



def stop_process(proc: subprocess.Popen | None, grace: float = 15) -> None:
    """SIGTERM, then SIGKILL after `grace`; descendants still alive then (a killed
    coordinator's thumbnail workers, a node's Blender) are killed too, never leaked."""
    if proc is None or proc.poll() is not None:
        return
    descendants = children_of(proc.pid)
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    for pid in descendants:
        try:
            os.kill(pid, 0)
        except OSError:
            continue
        time.sleep(0.5)   # a moment to exit on their own after their parent
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


# -- images and machine ----------------------------------------------------------------
def tiny_png(width: int = 64, height: int = 36) -> bytes:
    """A small, real PNG frame (a gradient), encoded once."""
    from PIL import Image

    img = Image.new("RGB", (width, height))
    img.putdata([(x * 4 % 256, y * 7 % 256, 128) for y in range(height) for x in range(width)])
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def fake_blend(size: int = 4096) -> bytes:
    """A blob the coordinator accepts as a .blend (magic bytes); nobody opens it."""
    return b"BLENDER-v304" + os.urandom(size - 12)


def machine() -> dict:
    cpu = "unknown"
    try:
        m = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = m.group(1).strip() if m else platform.processor()
    except OSError:
        pass
    ram = 0
    try:
        m = re.search(r"^MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
        ram = int(m.group(1)) * 1024 if m else 0
    except OSError:
        pass

    def version_of(cmd: list[str], pattern: str) -> str:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout
        except (OSError, subprocess.TimeoutExpired):
            return "not found"
        m = re.search(pattern, out)
        return m.group(1) if m else "unknown"

    import sqlite3

    import aiohttp

    return {
        "cpu": cpu, "cores": os.cpu_count(), "ram_gb": round(ram / 1024**3, 1),
        "os": platform.platform(terse=True),
        "python": platform.python_version(),
        "blender": version_of([BLENDER, "--version"], r"Blender (\S+)"),
        "chromium": version_of([CHROMIUM, "--version"], r"Chromium (\S+)"),
        "aiohttp": aiohttp.__version__, "sqlite": sqlite3.sqlite_version,
    }
