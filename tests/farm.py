"""A real farm for tests: a coordinator process and node processes with real Blender."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from brender_addon.client import Client, sha256_file

REPO = Path(__file__).resolve().parent.parent
BLENDER = shutil.which("blender") or "/usr/bin/blender"
MAKE_SCENE = Path(__file__).with_name("scenes") / "make_scene.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_scene(path: Path, **opts) -> Path:
    """Write a tiny .blend with real Blender (Cycles, few samples, no denoiser)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [BLENDER, "-b", "--factory-startup", "--python-exit-code", "1", "--python",
         str(MAKE_SCENE), "--", str(path), json.dumps(opts)],
        check=True, capture_output=True, timeout=120)
    return path


def wait_for(predicate, timeout: float, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


class Farm:
    def __init__(self, root: Path, token: str = "test-token", ca_file: str = "",
                 **coordinator_args):
        self.root = root
        self.data_dir = root / "data"
        self.token = token
        self.port = free_port()
        # With --tls-cert: HTTPS, verified against `ca_file` (issue 18).
        scheme = "https" if coordinator_args.get("tls_cert") else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.ca_file = ca_file
        self.coordinator_args = coordinator_args
        self.coordinator: subprocess.Popen | None = None
        self.nodes: dict[str, subprocess.Popen] = {}
        self.logs = root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    # -- processes -------------------------------------------------------------
    def start_coordinator(self) -> None:
        cmd = [sys.executable, "-m", "coordinator.cli", "--data-dir", str(self.data_dir),
               "--port", str(self.port), "--token", self.token]
        for key, value in self.coordinator_args.items():
            flag = "--" + key.replace("_", "-")
            cmd += [flag] if value is True else [flag, str(value)]
        log = open(self.logs / "coordinator.log", "ab")
        self.coordinator = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=log)
        wait_for(self._up, 30, what="the coordinator to answer")

    def _up(self) -> bool:
        try:
            self.client().version()
            return True
        except Exception:
            if self.coordinator and self.coordinator.poll() is not None:
                raise RuntimeError("coordinator exited:\n" + self.log("coordinator"))
            return False

    def stop_coordinator(self, sig: int = signal.SIGTERM) -> None:
        if self.coordinator and self.coordinator.poll() is None:
            self.coordinator.send_signal(sig)
            self.coordinator.wait(30)

    def add_node(self, name: str, *extra: str, blender: str = BLENDER,
                 join: str | None = None) -> subprocess.Popen:
        """`join`: the node joins with that code (its own credential) instead of the
        farm token."""
        credential = ["--join", join] if join else ["--token", self.token]
        trust = ["--ca-file", self.ca_file] if self.ca_file else []
        cmd = [sys.executable, "-m", "node.cli", "--coordinator", self.url, *credential,
               *trust, "--name", name, "--blender", blender,
               "--work-dir", str(self.root / "nodes" / name), *extra]
        log = open(self.logs / f"{name}.log", "ab")
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=log)
        self.nodes[name] = proc
        return proc

    def stop_node(self, name: str, sig: int = signal.SIGTERM, wait: float = 30) -> None:
        proc = self.nodes[name]
        if proc.poll() is None:
            proc.send_signal(sig)
            proc.wait(wait)

    def wait_nodes_online(self, count: int, timeout: float = 60) -> None:
        wait_for(lambda: self.client().version()["nodes_online"] >= count, timeout,
                 what=f"{count} nodes online")

    def close(self) -> None:
        for name in list(self.nodes):
            try:
                self.stop_node(name, signal.SIGTERM, wait=15)
            except subprocess.TimeoutExpired:
                self.nodes[name].kill()
        try:
            self.stop_coordinator()
        except subprocess.TimeoutExpired:
            self.coordinator.kill()

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-5000:] if path.exists() else ""

    # -- API -------------------------------------------------------------------------
    def client(self, token: str | None = None) -> Client:
        return Client(self.url, self.token if token is None else token, timeout=30,
                      ca_file=self.ca_file)

    def submit(self, blend: Path, token: str | None = None, **spec) -> dict:
        """Upload one .blend and create a shot from it (as `token`'s holder)."""
        client = self.client(token)
        sha = sha256_file(blend)
        files = [{"path": blend.name, "sha256": sha, "size": blend.stat().st_size}]
        client.upload_files(files, blend.parent)
        body = {"name": blend.stem, "blend_path": blend.name, "files": files,
                "frame_start": 1, "frame_end": 4, "chunk_size": 2}
        body.update(spec)
        return client.create_shot(body)

    def wait_shot(self, shot_id: int, timeout: float = 120,
                  states=("completed", "failed", "cancelled")) -> dict:
        def ended():
            shot = self.client().shot(shot_id)
            return shot if shot["status"] in states else None
        try:
            return wait_for(ended, timeout, what=f"shot {shot_id} to end")
        except TimeoutError:
            raise TimeoutError(self.debug_dump(shot_id)) from None

    def debug_dump(self, shot_id: int) -> str:
        client = self.client()
        jobs = client._request("GET", f"/api/shots/{shot_id}/jobs")
        parts = [json.dumps(client.shot(shot_id)), json.dumps(jobs), self.log("coordinator")]
        parts += [f"--- {n}\n{self.log(n)}" for n in self.nodes]
        return "\n".join(parts)
