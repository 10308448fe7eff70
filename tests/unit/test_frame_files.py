"""Uploaded frames: where their bytes, thumbnails and previews end up and how they are served."""
from __future__ import annotations

import asyncio
import hashlib
import io
import json

from PIL import Image

from coordinator import keys

from .test_api import AUTH, api, create_shot, node_hello  # noqa: F401 (api is a fixture)


def image(mode: str, size=(600, 300), color=(200, 40, 40, 255), fmt="PNG") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color[:len(mode)]).save(buf, fmt)
    return buf.getvalue()


async def take_job(api, frames: int) -> tuple[dict, dict, object]:
    shot = await create_shot(api, frame_end=frames, chunk_size=frames)
    ws = await api.ws_connect("/api/node/ws", headers=AUTH)
    await node_hello(ws)
    await ws.send_json({"type": "ready"})
    return shot, (await ws.receive_json())["job"], ws


async def upload(api, job: dict, number: int, data: bytes):
    return await api.put(f"/api/attempts/{job['attempt_id']}/frames/{number}", data=data,
                         headers={**AUTH, "X-Sha256": hashlib.sha256(data).hexdigest()})


async def frames_of(api, shot: dict) -> list[dict]:
    return (await (await api.get(f"/api/shots/{shot['id']}/frames")).json())["frames"]


async def test_thumbnails_are_served_scaled_jpeg_or_png_with_alpha(api):
    shot, job, ws = await take_job(api, 3)
    opaque, transparent = image("RGB"), image("RGBA", color=(0, 90, 200, 120))
    jpeg = image("RGB", size=(1000, 500), fmt="JPEG")
    for number, data in ((1, opaque), (2, transparent), (3, jpeg)):
        assert (await upload(api, job, number, data)).status == 201
    frames = await frames_of(api, shot)
    expected = [("JPEG", (240, 120)), ("PNG", (240, 120)), ("JPEG", (240, 120))]
    for frame, (fmt, size) in zip(frames, expected):
        resp = await api.get(frame["thumbnail_url"])
        assert resp.status == 200
        assert resp.content_type == f"image/{fmt.lower()}"
        assert "immutable" in resp.headers["Cache-Control"]
        with Image.open(io.BytesIO(await resp.read())) as thumb:
            assert (thumb.format, thumb.size) == (fmt, size)
            if fmt == "PNG":
                assert thumb.mode == "RGBA" and thumb.getpixel((5, 5))[3] == 120
    # The frames themselves are files in the data dir, byte for byte.
    assert await (await api.get(frames[1]["image_url"])).read() == transparent
    # A thumbnail asked for under the wrong type or a frame never rendered: 404.
    wrong = frames[0]["thumbnail_url"].replace(".jpg", ".png")
    assert (await api.get(wrong)).status == 404
    missing = f"/files/shots/{shot['id']}/thumbnails/frame_000009_thumbnail.jpg"
    assert (await api.get(missing)).status == 404
    await ws.close()


async def test_a_body_that_is_not_an_image_is_refused_and_leaves_nothing(api):
    shot, job, ws = await take_job(api, 1)
    resp = await upload(api, job, 1, b"this is not a picture" * 100)
    assert resp.status == 422
    assert "not an image" in (await resp.json())["error"]
    storage = api.server.app[keys.STORAGE]
    assert list(storage.tmp.iterdir()) == []
    assert (await frames_of(api, shot))[0]["status"] != "done"
    # The node may still deliver the real frame.
    assert (await upload(api, job, 1, image("RGB"))).status == 201
    await ws.close()


async def test_thumbnail_files_from_before_the_database_kept_them_are_still_served(api):
    shot = await create_shot(api, frame_end=1, chunk_size=1)
    storage = api.server.app[keys.STORAGE]
    old = storage.root / "shots" / str(shot["id"]) / "thumbnails"
    old.mkdir(parents=True)
    (old / "frame_000001_thumbnail.jpg").write_bytes(image("RGB", fmt="JPEG"))
    resp = await api.get(f"/files/shots/{shot['id']}/thumbnails/frame_000001_thumbnail.jpg")
    assert resp.status == 200 and (await resp.read())[:3] == b"\xff\xd8\xff"


async def test_the_frame_and_job_events_say_what_the_api_says(api):
    events = api.server.app[keys.EVENTS]
    sub = events.subscribe()
    shot, job, ws = await take_job(api, 1)
    assert (await upload(api, job, 1, image("RGB"))).status == 201
    await ws.send_json({"type": "job_done", "attempt_id": job["attempt_id"]})
    api.server.app[keys.DISPATCHER].flush_changes()
    seen: dict[str, list[dict]] = {}
    for _ in range(100):
        for message in events.take(sub):
            kind, data = message.decode().split("\n", 2)[:2]
            seen.setdefault(kind[len("event: "):], []).append(json.loads(data[len("data: "):]))
        if any(j["status"] == "done" for j in seen.get("job", [])):
            break
        await asyncio.sleep(0.02)
        api.server.app[keys.DISPATCHER].flush_changes()
    frame_event = seen["frame"][0]
    assert frame_event.pop("shot_name") == shot["name"]
    assert frame_event == (await frames_of(api, shot))[0]
    done = [j for j in seen["job"] if j["status"] == "done"][-1]
    listed = (await (await api.get(f"/api/shots/{shot['id']}/jobs")).json())["jobs"][0]
    assert done == listed and done["node_name"] == "n1"
    events.unsubscribe(sub)
    await ws.close()
