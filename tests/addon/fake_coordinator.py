"""A tiny stand-in coordinator (stdlib http.server) for the add-on's unit tests.

It speaks the parts of docs/api.md the add-on uses and records every request,
so tests can check what was (not) uploaded and in which order. The live tests
use the real coordinator.
"""
from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def expand_frames(body: dict) -> list[int]:
    """The frame numbers of a shot body: `frames` ("1-10,20") or frame_start..frame_end."""
    step = body.get("frame_step", 1)
    if "frames" in body:
        numbers: set[int] = set()
        for item in body["frames"].split(","):
            first, _, last = item.strip().partition("-")
            numbers.update(range(int(first), int(last or first) + 1, step))
        return sorted(numbers)
    return list(range(body["frame_start"], body["frame_end"] + 1, step))


class FakeCoordinator:
    def __init__(self, token: str = "T", version: str = "0.1.0-fake", nodes_online: int = 2):
        self.token = token
        self.version = version
        self.nodes_online = nodes_online
        self.blobs: dict[str, bytes] = {}
        self.shots: dict[int, dict] = {}
        self.frames: dict[int, list[dict]] = {}
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.upload_delay = 0.0
        handler = self._handler()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeCoordinator":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def paths(self, method: str) -> list[str]:
        return [p for m, p in self.requests if m == method]

    def finish_frame(self, shot_id: int, number: int, thumbnail: bytes) -> None:
        """Pretend a node rendered `number`: the shot progresses, a thumbnail exists."""
        with self.lock:
            shot = self.shots[shot_id]
            name = f"{number:04d}.png"
            self.files[f"/files/shots/{shot_id}/thumbnails/{name}.jpg"] = thumbnail
            frame = {"shot_id": shot_id, "number": number, "name": name, "status": "done",
                     "rendered_at": time.time(), "sha256": hashlib.sha256(thumbnail).hexdigest(),
                     "thumbnail_url": f"/files/shots/{shot_id}/thumbnails/{name}.jpg",
                     "shot_name": shot["name"]}
            self.frames.setdefault(shot_id, []).append(frame)
            shot["frames_done"] += 1
            shot["status"] = "completed" if shot["frames_done"] >= shot["frames_total"] else "active"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, body: Any = None, raw: bytes | None = None) -> None:
                data = raw if raw is not None else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/octet-stream" if raw is not None else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _authed(self) -> bool:
                if self.headers.get("Authorization") == f"Bearer {fake.token}":
                    return True
                self._send(401, {"error": "bad or missing token"})
                return False

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def do_GET(self) -> None:
                fake.requests.append(("GET", self.path))
                path = self.path.split("?")[0]
                if path == "/api/version":
                    return self._send(200, {"version": fake.version, "nodes_online": fake.nodes_online})
                if path == "/api/auth":
                    if self._authed():
                        self._send(200, {"ok": True})
                    return
                if m := re.fullmatch(r"/api/shots/(\d+)", path):
                    shot = fake.shots.get(int(m.group(1)))
                    return self._send(200, shot) if shot else self._send(404, {"error": "no such shot"})
                if m := re.fullmatch(r"/api/shots/(\d+)/frames", path):
                    frames = fake.frames.get(int(m.group(1)), [])
                    return self._send(200, {"frames": frames, "total": len(frames)})
                if path == "/api/frames/latest":
                    every = [f for fs in fake.frames.values() for f in fs]
                    if not every:
                        return self._send(404, {"error": "no frame yet"})
                    return self._send(200, max(every, key=lambda f: f["rendered_at"]))
                if path in fake.files:
                    return self._send(200, raw=fake.files[path])
                self._send(404, {"error": f"no route {path}"})

            def do_POST(self) -> None:
                fake.requests.append(("POST", self.path))
                if not self._authed():
                    return
                body = json.loads(self._body() or b"{}")
                if self.path == "/api/blobs/missing":
                    return self._send(200, {"missing": [d for d in body["sha256"] if d not in fake.blobs]})
                if self.path == "/api/shots":
                    for f in body.get("files", []):
                        if f["sha256"] not in fake.blobs:
                            return self._send(400, {"error": f"blob {f['sha256']} was not uploaded",
                                                    "field": "files"})
                    with fake.lock:
                        shot_id = len(fake.shots) + 1
                        total = len(expand_frames(body))
                        shot = dict(body, id=shot_id, status="queued", frames_total=total, frames_done=0,
                                    frames_rendering=0, eta_seconds=None, avg_frame_time=None,
                                    failure_reason=None)
                        fake.shots[shot_id] = shot
                    return self._send(201, shot)
                self._send(404, {"error": f"no route {self.path}"})

            def do_PUT(self) -> None:
                fake.requests.append(("PUT", self.path))
                if not self._authed():
                    return
                m = re.fullmatch(r"/api/blobs/([0-9a-f]{64})", self.path)
                if not m:
                    return self._send(404, {"error": "no route"})
                data = self._body()
                if fake.upload_delay:
                    time.sleep(fake.upload_delay)
                if hashlib.sha256(data).hexdigest() != m.group(1):
                    return self._send(400, {"error": "sha256 mismatch"})
                new = m.group(1) not in fake.blobs
                fake.blobs[m.group(1)] = data
                self._send(201 if new else 200, {"sha256": m.group(1)})

        return Handler
