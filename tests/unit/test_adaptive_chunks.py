"""Adaptive chunks: jobs grow or shrink toward the target duration once frames are timed."""
from __future__ import annotations

import hashlib
import io
import time

import pytest
from PIL import Image

from coordinator import keys
from coordinator.app import create_app
from coordinator.config import Config

# Every test runs on SQLite and on PostgreSQL.
pytestmark = pytest.mark.usefixtures("backend")

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
                                   frame_end=40, chunk_size="auto")
    sizes = [len(await render_next(api, ws, 0.1)) for _ in range(4)]
    assert sizes[:3] == [1, 1, 1]  # first, last, middle: previews come first
    assert sizes[3] == 10, "0.1 s frames and a 1 s target: ten frames a job"
    shot = await (await api.get("/api/shots/1")).json()
    assert (shot["chunk_mode"], shot["chunk_size"]) == ("auto", None)
    await ws.close()


async def test_slow_frames_cut_a_long_job(aiohttp_client, tmp_path):
    api, ws = await farm_with_shot(aiohttp_client, tmp_path, target=1.0, frame_start=1,
                                   frame_end=60)
    for _ in range(3):
        await render_next(api, ws, 0.1)  # previews: 1, 60, 30
    await ws.send_json({"type": "ready"})
    job = (await ws.receive_json())["job"]
    assert len(job["frames"]) == 10  # grown: 0.1 s frames
    data = png()
    # Its first frame took 10 s: the frames are slow after all. The node goes away.
    resp = await api.put(f"/api/attempts/{job['attempt_id']}/frames/{job['frames'][0]}",
                         data=data, headers={**AUTH, "X-Sha256": hashlib.sha256(data).hexdigest(),
                                             "X-Render-Time": "10"})
    assert resp.status == 201
    await ws.close()
    await api.server.app[keys.DISPATCHER].reap(time.time() + 3600)
    ws2 = await api.ws_connect("/api/node/ws", headers=AUTH)
    await ws2.send_json({"type": "hello", "name": "sim2", "tags": []})
    await ws2.receive_json()
    await ws2.send_json({"type": "ready"})
    again = (await ws2.receive_json())["job"]
    assert again["frames"] == job["frames"][1:2], "the rest is cut to the 1 s target"
    await ws2.close()


async def test_a_chunk_size_given_is_honoured_exactly(aiohttp_client, tmp_path):
    api, ws = await farm_with_shot(aiohttp_client, tmp_path, target=1.0, frame_start=1,
                                   frame_end=40, chunk_size=6)
    shot = await (await api.get("/api/shots/1")).json()
    assert (shot["chunk_mode"], shot["chunk_size"]) == ("fixed", 6)
    seen = [await render_next(api, ws, 0.01) for _ in range(7)]
    # Fast frames never merge jobs; the ones holding first, last, middle go first.
    assert seen[:3] == [[1, 2, 3, 4, 5, 6], [37, 38, 39, 40], [19, 20, 21, 22, 23, 24]]
    assert sorted(len(j) for j in seen) == [4, 6, 6, 6, 6, 6, 6]
    api2, ws2 = await farm_with_shot(aiohttp_client, tmp_path / "b", target=1.0,
                                     frame_start=1, frame_end=30, chunk_size=10)
    first = await render_next(api2, ws2, 5.0)
    assert len(first) == 10
    # 5 s frames and a 1 s target: an adaptive shot would be cut to one frame a job.
    assert len(await render_next(api2, ws2, 5.0)) == 10
    await ws.close()
    await ws2.close()
