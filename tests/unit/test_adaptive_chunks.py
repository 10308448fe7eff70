"""Adaptive chunks: jobs grow or shrink toward the target duration once frames are timed."""
from __future__ import annotations

import hashlib
import io

import pytest
from PIL import Image

from coordinator.app import create_app
from coordinator.config import Config

TOKEN = "t"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (9, 9, 9)).save(buf, "PNG")
    return buf.getvalue()


async def farm_with_shot(aiohttp_client, tmp_path, target: float, **shot):
    app = create_app(Config(data_dir=tmp_path / "d", target_job_seconds=target), TOKEN)
    api = await aiohttp_client(app)
    blend = b"BLENDER-v304"
    sha = hashlib.sha256(blend).hexdigest()
    await api.put(f"/api/blobs/{sha}", data=blend, headers=AUTH)
    body = {"name": "a", "files": [{"path": "a.blend", "sha256": sha, "size": len(blend)}],
            **shot}
    assert (await api.post("/api/shots", json=body, headers=AUTH)).status == 201
    ws = await api.ws_connect("/api/node/ws", headers=AUTH)
    await ws.send_json({"type": "hello", "name": "sim", "tags": []})
    await ws.receive_json()
    return api, ws


async def render_next(api, ws, seconds: float) -> list[int]:
    """Act as a node: take the next job, upload its frames with a render time."""
    await ws.send_json({"type": "ready"})
    job = (await ws.receive_json())["job"]
    data = png()
    for n in job["frames"]:
        resp = await api.put(f"/api/attempts/{job['attempt_id']}/frames/{n}", data=data,
                             headers={**AUTH, "X-Sha256": hashlib.sha256(data).hexdigest(),
                                      "X-Render-Time": str(seconds)})
        assert resp.status == 201
    await ws.send_json({"type": "job_done", "attempt_id": job["attempt_id"]})
    return job["frames"]


async def test_fast_frames_grow_the_next_jobs(aiohttp_client, tmp_path):
    api, ws = await farm_with_shot(aiohttp_client, tmp_path, target=1.0, frame_start=1,
                                   frame_end=40, chunk_size=2)
    sizes = [len(await render_next(api, ws, 0.1)) for _ in range(4)]
    assert sizes[:3] == [1, 1, 1]  # first, last, middle: previews come first
    assert sizes[3] == 10, "0.1 s frames and a 1 s target: ten frames a job"
    await ws.close()


async def test_slow_frames_cut_a_long_job(aiohttp_client, tmp_path):
    api, ws = await farm_with_shot(aiohttp_client, tmp_path, target=1.0, frame_start=1,
                                   frame_end=30, chunk_size=30)
    first = await render_next(api, ws, 0.5)
    assert first == list(range(1, 31))  # nothing measured yet: the chunk as submitted
    api2, ws2 = await farm_with_shot(aiohttp_client, tmp_path / "b", target=1.0,
                                     frame_start=1, frame_end=60, chunk_size=20)
    await render_next(api2, ws2, 0.5)  # preview 1
    await render_next(api2, ws2, 0.5)  # preview 60
    await render_next(api2, ws2, 0.5)  # preview 30
    assert len(await render_next(api2, ws2, 0.5)) == 2, "0.5 s frames, 1 s target"
    await ws.close()
    await ws2.close()
