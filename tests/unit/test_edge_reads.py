"""Big reads are written in pages (the loop serves others between them), blob checks
run off the loop, and a stalled upload is cut off (issue 12, item 5)."""
from __future__ import annotations

import asyncio
import hashlib

import aiohttp
import pytest
from brender_addon.client import Client

from coordinator import keys
from coordinator.app import create_app
from coordinator.config import Config
from coordinator.store import jobs as job_sql

TOKEN = "t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BLEND = b"BLENDER-v304" + b"\x00" * 100
FRAMES = 2_500      # more than one streamed page


@pytest.fixture
async def api(aiohttp_client, tmp_path):
    config = Config(data_dir=tmp_path / "data", upload_min_rate=64 * 1024,
                    upload_stall_seconds=0.5, upload_max_seconds=5)
    return await aiohttp_client(create_app(config, TOKEN))


async def big_shot(api) -> dict:
    sha = hashlib.sha256(BLEND).hexdigest()
    await api.put(f"/api/blobs/{sha}", data=BLEND, headers=AUTH)
    resp = await api.post("/api/shots", headers=AUTH, json={
        "name": "big", "files": [{"path": "s.blend", "sha256": sha, "size": len(BLEND)}],
        "frame_start": -5, "frame_end": FRAMES - 6, "chunk_size": 1})
    assert resp.status == 201
    return await resp.json()


async def test_full_frame_and_job_lists_are_streamed_whole_and_in_order(api):
    shot = await big_shot(api)
    resp = await api.get(f"/api/shots/{shot['id']}/frames")
    assert resp.status == 200 and resp.headers.get("Transfer-Encoding") == "chunked"
    body = await resp.json()
    assert body["total"] == FRAMES
    assert [f["number"] for f in body["frames"]] == list(range(-5, FRAMES - 5))
    page = await (await api.get(f"/api/shots/{shot['id']}/frames?offset=1200&limit=3")).json()
    assert page["frames"] == body["frames"][1200:1203] and page["total"] == FRAMES
    rest = await (await api.get(f"/api/shots/{shot['id']}/frames?offset=1200")).json()
    assert rest["frames"] == body["frames"][1200:]
    resp = await api.get(f"/api/shots/{shot['id']}/jobs")
    assert resp.headers.get("Transfer-Encoding") == "chunked"
    jobs = (await resp.json())["jobs"]
    listed = await api.server.app[keys.DB].read(job_sql.for_shot, shot["id"])
    assert [j["id"] for j in jobs] == [j["id"] for j in listed] and len(jobs) == FRAMES
    assert sorted(n for j in jobs for n in j["frames"]) == list(range(-5, FRAMES - 5))
    assert all(j["progress"] is None or isinstance(j["progress"], dict) for j in jobs)
    too_big = await api.get(f"/api/shots/{shot['id']}/frames?limit=10001")
    assert too_big.status == 400 and (await too_big.json())["field"] == "limit"


async def test_missing_blobs_are_asked_in_bounded_batches(api):
    have = hashlib.sha256(BLEND).hexdigest()
    await api.put(f"/api/blobs/{have}", data=BLEND, headers=AUTH)
    digests = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(99_999)] + [have]
    # The add-on and brender-submit ask 10,000 at a time.
    client = Client(str(api.make_url("")).rstrip("/"), TOKEN)
    missing = await asyncio.to_thread(client.missing_blobs, digests)
    assert missing == sorted(digests[:-1])
    resp = await api.post("/api/blobs/missing", json={"sha256": digests}, headers=AUTH)
    assert resp.status == 413          # 7 MB: refused before it is decoded
    resp = await api.post("/api/blobs/missing", json={"sha256": digests[:10_001]},
                          headers=AUTH)
    assert resp.status == 400 and (await resp.json())["field"] == "sha256"
    batch = digests[:10_000]
    batch[7_000] = "not a digest"
    resp = await api.post("/api/blobs/missing", json={"sha256": batch}, headers=AUTH)
    assert resp.status == 400 and (await resp.json())["field"] == "sha256[7000]"


@pytest.mark.parametrize("method, url", [("PUT", "/api/blobs/" + "a" * 64),
                                         ("POST", "/api/shots")])
async def test_a_stalled_upload_is_cut_off_and_leaves_nothing(api, method, url):
    async def stall():
        yield b"x" * 100_000
        await asyncio.sleep(30)
        yield b"never sent"

    headers = {**AUTH, "Content-Type": "application/json" if url == "/api/shots"
               else "application/octet-stream"}
    timeout = aiohttp.ClientTimeout(total=10)
    resp = await api.request(method, url, data=stall(), headers=headers, timeout=timeout)
    assert resp.status == 408
    assert "slower than 64 KiB/s" in (await resp.json())["error"]
    data_dir = api.server.app[keys.CONFIG].data_dir
    assert list((data_dir / "tmp").iterdir()) == []
    assert not list((data_dir / "blobs").rglob("a" * 64))
