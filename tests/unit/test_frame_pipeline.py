"""The frame pipeline's outcomes, called as the upload routes call it: a frame or an
output recorded and placed (and a frame announced), already recorded, a stale lease,
not in the job, not an image, a wrong digest, a full disk; EXR through the heavy
pool, and a heavy worker that dies. Whatever the outcome, nothing is left in tmp/."""
from __future__ import annotations

import asyncio
import errno
import hashlib
import io
import os

import numpy as np
import pytest
from PIL import Image

from coordinator import keys
from coordinator.app import create_app
from coordinator.config import Config
from coordinator.frame_pipeline import FramePipeline, NotAnImage, NotInJob, StaleAttempt
from coordinator.storage import DigestMismatch
from tests.unit.test_api import AUTH, TOKEN, create_shot, node_hello
from tests.unit.test_outputs_api import assigned, exr

# Every test runs on SQLite and on PostgreSQL.
pytestmark = pytest.mark.usefixtures("backend")


def png(size=(64, 36), mode="RGB", color=(10, 200, 30, 255)) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color[:len(mode)]).save(buf, "PNG")
    return buf.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def body(data: bytes):
    yield data


@pytest.fixture
async def api(aiohttp_client, tmp_path):
    app = create_app(Config(data_dir=tmp_path / "data", lease_timeout=30), TOKEN)
    return await aiohttp_client(app)


@pytest.fixture
async def farm(api):
    """A job held by a node, and a pipeline on the app's storage and database whose
    announcements are kept in a list."""
    shot, job, ws = await assigned(api)
    app = api.server.app
    announced: list[dict] = []
    pipeline = FramePipeline(app[keys.STORAGE], app[keys.DB], announced.append,
                             10**8, 32, 1, 1)
    yield shot, job, pipeline, announced, app[keys.STORAGE]
    await pipeline.close()
    await ws.close()


def nothing_in_tmp(storage) -> bool:
    return list(storage.tmp.iterdir()) == []


async def test_a_frame_is_written_thumbnailed_placed_recorded_and_announced_once(farm):
    shot, job, pipeline, announced, storage = farm
    data = png(mode="RGBA", color=(0, 0, 255, 100))
    frame = await pipeline.frame(body(data), job["attempt_id"], 1, sha(data), 2.5, None)
    assert frame["status"] == "done" and frame["name"] == "frame_000001.png"
    assert frame["render_time"] == 2.5 and (frame["width"], frame["height"]) == (64, 36)
    assert announced == [frame]
    placed = storage.root / "shots" / str(shot["id"]) / "frames" / "frame_000001.png"
    assert placed.read_bytes() == data and nothing_in_tmp(storage)
    assert frame["thumbnail_url"].endswith("frame_000001_thumbnail.png")  # it has alpha
    # Small PNGs never start the heavy pool.
    assert pipeline.heavy._workers == [] and len(pipeline.light._workers) == 1
    # The same frame again: nothing recorded, kept or announced.
    again = png(color=(1, 2, 3, 255))
    assert await pipeline.frame(body(again), job["attempt_id"], 1, sha(again), None,
                                None) is None
    assert placed.read_bytes() == data and nothing_in_tmp(storage) and len(announced) == 1


async def test_a_stale_attempt_or_a_frame_outside_the_job_leaves_nothing(farm):
    shot, job, pipeline, announced, storage = farm
    data = png()
    with pytest.raises(StaleAttempt):
        await pipeline.frame(body(data), "0" * 32, 1, sha(data), None, None)
    with pytest.raises(StaleAttempt):
        await pipeline.output(body(data), "0" * 32, 1, "pass", "a/b", "PNG", sha(data))
    with pytest.raises(NotInJob):
        await pipeline.frame(body(data), job["attempt_id"], 7, sha(data), None, None)
    assert nothing_in_tmp(storage) and announced == []
    assert not (storage.root / "shots" / str(shot["id"])).exists()


async def test_a_wrong_digest_or_a_body_that_is_no_image_is_refused_and_leaves_nothing(farm):
    shot, job, pipeline, announced, storage = farm
    data = png()
    with pytest.raises(DigestMismatch):
        await pipeline.frame(body(data), job["attempt_id"], 1, "0" * 64, None, None)
    junk = b"not a picture" * 50
    with pytest.raises(NotAnImage):
        await pipeline.frame(body(junk), job["attempt_id"], 1, sha(junk), None, None)
    with pytest.raises(NotAnImage):   # said to be an EXR, read as one: not one
        await pipeline.frame(body(junk), job["attempt_id"], 1, sha(junk), None, "OPEN_EXR")
    assert nothing_in_tmp(storage) and announced == []
    # An output that is no image is kept, downloadable, without a thumbnail.
    output = await pipeline.output(body(junk), job["attempt_id"], 1, "pass", "Out/x", "",
                                   sha(junk))
    assert output["thumbnail_url"] is None and output["size"] == len(junk)
    assert nothing_in_tmp(storage) and announced == []


async def test_exr_goes_to_the_heavy_pool_and_its_preview_is_placed(farm, tmp_path):
    shot, job, pipeline, announced, storage = farm
    data = exr(tmp_path)
    frame = await pipeline.frame(body(data), job["attempt_id"], 1, sha(data), None,
                                 "OPEN_EXR")
    assert frame["name"] == "frame_000001.exr" and len(pipeline.heavy._workers) == 1
    preview = storage.root / "shots" / str(shot["id"]) / "previews" / \
        "frame_000001_preview.jpg"
    with Image.open(preview) as img:
        assert img.format == "JPEG" and img.size == (32, 18)
        # Tone-mapped: the left half (0.25) darker than the right (4.0).
        assert img.getpixel((4, 9))[0] < img.getpixel((28, 9))[0]
    assert nothing_in_tmp(storage) and announced == [frame]


async def test_when_a_heavy_worker_dies_its_work_is_done_in_a_thread(farm, tmp_path,
                                                                     caplog):
    shot, job, pipeline, announced, storage = farm
    data = exr(tmp_path)
    upload = asyncio.create_task(pipeline.output(body(data), job["attempt_id"], 1, "pass",
                                                 "Out/a", "OPEN_EXR", sha(data)))
    # Killed with the request sent (a new worker is still importing its libraries).
    while not any(w.pending for w in pipeline.heavy._workers):
        await asyncio.sleep(0.001)
    for worker in pipeline.heavy._workers:
        worker.transport.kill()
    output = await upload
    assert "doing its work in a thread" in caplog.text
    assert output["thumbnail_url"] and output["preview_url"].endswith("/preview")
    assert (output["width"], output["height"]) == (32, 18)
    assert nothing_in_tmp(storage)


async def test_a_full_disk_refuses_the_frame_whole_and_the_retry_lands(aiohttp_client,
                                                                      small_disk):
    app = create_app(Config(data_dir=small_disk / "data", lease_timeout=30), TOKEN)
    api = await aiohttp_client(app)
    shot, job, ws = await assigned(api)
    announced: list[dict] = []
    pipeline = FramePipeline(app[keys.STORAGE], app[keys.DB], announced.append,
                             10**8, 32, 1, 1)
    noise = io.BytesIO()
    Image.frombytes("RGB", (600, 600), os.urandom(600 * 600 * 3)).save(noise, "PNG")
    data = noise.getvalue()
    stat = os.statvfs(small_disk)
    filler = small_disk / "filler"
    with open(filler, "wb") as f:   # room for the database, not for the frame
        f.write(b"\0" * max(0, stat.f_bavail * stat.f_frsize - 256 * 1024))
    try:
        with pytest.raises(OSError) as full:
            await pipeline.frame(body(data), job["attempt_id"], 1, sha(data), None, None)
        # Told as what it is: the 507 says "No space left on device".
        assert full.value.errno == errno.ENOSPC and full.value.strerror
        storage = app[keys.STORAGE]
        assert nothing_in_tmp(storage) and announced == []
        assert not (storage.root / "shots" / str(shot["id"]) / "frames").exists()
        filler.unlink()
        frame = await pipeline.frame(body(data), job["attempt_id"], 1, sha(data), None, None)
        assert frame["size"] == len(data) and announced == [frame]
    finally:
        await pipeline.close()
        await ws.close()


async def test_peers_hear_of_a_frame_with_its_records_commit_and_only_then(farm, backend):
    """Coordinators sharing a farm (PostgreSQL): the frame's NOTIFY is part of its
    record's transaction, so a coordinator dying after the commit loses no news, and
    a fenced (rolled back) upload tells nobody anything."""
    if not backend:
        pytest.skip("coordinators share a farm on PostgreSQL only")
    import asyncpg
    shot, job, pipeline, announced, storage = farm
    heard: list[str] = []
    listener = await asyncpg.connect(backend)
    await listener.add_listener("test_news", lambda *args: heard.append(args[-1]))
    pipeline.tell_peers = lambda frame: ("test_news", f"frame {frame['number']}")
    try:
        data = png()
        with pytest.raises(StaleAttempt):
            await pipeline.frame(body(data), "f" * 32, 1, sha(data), None, None)
        frame = await pipeline.frame(body(data), job["attempt_id"], 2, sha(data), None, None)
        assert frame["number"] == 2
        for _ in range(100):
            if heard:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        assert heard == ["frame 2"]
    finally:
        await listener.close()


async def test_a_frame_far_smaller_than_the_frames_recorded_beside_it_is_flagged(api):
    """The record reads the neighbours' sizes with the frame's own write (one statement
    on PostgreSQL): frames 2 and 4 are noise, frame 3 a two-colour picture a tenth of
    their size, judged against both; its thumbnail is kept like any other's."""
    await create_shot(api, frame_end=5, chunk_size=5)
    ws = await api.ws_connect("/api/node/ws", headers=AUTH)
    await node_hello(ws)
    await ws.send_json({"type": "ready"})
    job = (await ws.receive_json())["job"]
    app = api.server.app
    pipeline = FramePipeline(app[keys.STORAGE], app[keys.DB], lambda f: None,
                             10**8, 32, 1, 1)
    rng = np.random.default_rng(3)
    try:
        for number in (2, 4):
            noise = Image.fromarray(rng.integers(0, 256, (36, 64, 3), dtype=np.uint8))
            data = encode(noise)
            frame = await pipeline.frame(body(data), job["attempt_id"], number, sha(data),
                                         None, None)
            assert frame["suspicious"] is None   # no recorded neighbours yet to judge by
        halves = Image.new("RGB", (64, 36), (200, 20, 20))
        halves.paste((20, 20, 200), (0, 0, 32, 36))
        small = encode(halves)
        frame = await pipeline.frame(body(small), job["attempt_id"], 3, sha(small), None,
                                     None)
        assert "far smaller than its neighbours" in frame["suspicious"]
        assert f"({len(small)} bytes" in frame["suspicious"]
        thumb = await api.get(frame["thumbnail_url"], headers=AUTH)
        assert thumb.status == 200 and thumb.content_type == "image/jpeg"
        assert Image.open(io.BytesIO(await thumb.read())).size[0] > 0
    finally:
        await pipeline.close()
        await ws.close()


def encode(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()
