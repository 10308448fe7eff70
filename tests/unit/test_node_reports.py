"""What nodes are told and what they report: the shot's overrides in the assignment, the
settings a node rendered with, failed jobs' reasons on their frames, and the format a
frame was written in (X-Output-Format)."""
from __future__ import annotations

import asyncio
import hashlib
import io

import pytest
from PIL import Image

from coordinator.app import create_app
from coordinator.config import Config
from tests.unit.test_api import AUTH, TOKEN, api, create_shot, node_hello

# Every test runs on SQLite and on PostgreSQL.
pytestmark = pytest.mark.usefixtures("backend")

__all__ = ["api"]

SETTINGS = {"scene": "Scene", "camera": "Camera", "view_layers": ["ViewLayer"],
            "output_format": "JPEG", "color_depth": "8", "color_mode": "RGB",
            "exr_codec": None, "view_transform": "Filmic", "look": "None", "exposure": 0.0,
            "film_transparent": False, "resolution_x": 64, "resolution_y": 36,
            "resolution_percentage": 50, "engine": "CYCLES", "samples": 4, "frame_step": 1,
            "blender_version": "3.4.1"}


async def take_job(api, name="n1") -> tuple:
    ws = await api.ws_connect("/api/node/ws", headers=AUTH)
    await node_hello(ws, name)
    await ws.send_json({"type": "ready"})
    msg = await ws.receive_json()
    assert msg["type"] == "assign", msg
    return ws, msg["job"]


async def until(predicate, seconds: float = 3.0):
    for _ in range(int(seconds / 0.02)):
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


def image(fmt: str, mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (48, 27), (30, 160, 90, 255)[:len(mode)]).save(buf, fmt)
    return buf.getvalue()


async def put_frame(api, job, number, data: bytes, fmt: str | None = None):
    headers = {**AUTH, "X-Sha256": hashlib.sha256(data).hexdigest()}
    if fmt is not None:
        headers["X-Output-Format"] = fmt
    return await api.put(f"/api/attempts/{job['attempt_id']}/frames/{number}", data=data,
                         headers=headers)


async def test_the_assignment_carries_only_the_overrides_set(api):
    await create_shot(api, frame_end=1, render={"camera": "CamB", "resolution_x": 640,
                                                "exposure": None})
    ws, job = await take_job(api)
    assert job["render"] == {"camera": "CamB", "resolution_x": 640}
    # Old nodes read these; null: the file's own.
    assert job["output_format"] is None and job["resolution_percentage"] is None
    await ws.close()


async def test_the_settings_a_node_reports_become_the_shots_settings_used(api):
    shot = await create_shot(api, frame_end=2, chunk_size=2)
    ws, job = await take_job(api)
    assert (await (await api.get(f"/api/shots/{shot['id']}")).json())["settings_used"] is None
    await ws.send_json({"type": "render_settings", "attempt_id": job["attempt_id"],
                        "settings": SETTINGS})

    async def reported():
        s = await (await api.get(f"/api/shots/{shot['id']}")).json()
        return s["settings_used"]
    assert await until(reported) == SETTINGS
    # Not an object, or too big: the node hears why; nothing changes.
    await ws.send_json({"type": "render_settings", "attempt_id": job["attempt_id"],
                        "settings": "PNG"})
    assert "settings" in (await ws.receive_json())["error"]
    await ws.send_json({"type": "render_settings", "attempt_id": job["attempt_id"],
                        "settings": {"look": "x" * 20_000}})
    assert "16384 bytes" in (await ws.receive_json())["error"]
    # A report for an attempt the node no longer holds is ignored.
    await ws.send_json({"type": "render_settings", "attempt_id": "f" * 32,
                        "settings": {"scene": "late"}})
    await ws.send_json({"type": "heartbeat"})
    await asyncio.sleep(0.1)
    assert await reported() == SETTINGS
    await ws.close()


async def test_settings_used_names_the_shots_frame_step_not_the_files(api):
    # The farm picks a stepped shot's frames; the node's Blender still says the file's step.
    shot = await create_shot(api, frame_end=9, frame_step=3, chunk_size=1)
    ws, job = await take_job(api)
    await ws.send_json({"type": "render_settings", "attempt_id": job["attempt_id"],
                        "settings": dict(SETTINGS, frame_step=1)})

    async def used():
        return (await (await api.get(f"/api/shots/{shot['id']}")).json())["settings_used"]
    assert (await until(used))["frame_step"] == 3
    await ws.close()


async def test_frames_of_a_job_that_failed_for_good_say_why(aiohttp_client, tmp_path):
    client = await aiohttp_client(create_app(Config(data_dir=tmp_path / "d", max_attempts=2),
                                             TOKEN))
    shot = await create_shot(client, frame_end=4, chunk_size=2)
    reason = "no camera in scene 'Scene'"
    for attempt in range(2):
        ws, job = await take_job(client, f"n{attempt}")
        if attempt == 0:
            first = job
            assert (await put_frame(client, job, job["frames"][0], image("PNG"))).status == 201
        await ws.send_json({"type": "job_failed", "attempt_id": job["attempt_id"],
                            "reason": reason, "log_tail": "Error: Cannot render, no camera"})
        await ws.close()
    frames_url = f"/api/shots/{shot['id']}/frames"

    async def failed():
        s = await (await client.get(f"/api/shots/{shot['id']}")).json()
        return s if s["status"] == "failed" else None
    shot_now = await until(failed)
    assert shot_now["failure_reason"].startswith(reason)
    assert shot_now["frames_failed"] == 1
    frames = {f["number"]: f for f in (await (await client.get(frames_url)).json())["frames"]}
    done_one = first["frames"][0]
    lost = [n for n in first["frames"] if n != done_one]
    assert frames[done_one]["status"] == "done" and frames[done_one]["failure_reason"] is None
    assert [(frames[n]["status"], frames[n]["failure_reason"]) for n in lost] == \
        [("failed", reason)]
    others = [n for n in frames if n not in first["frames"]]
    assert all(frames[n]["status"] == "queued" for n in others)
    # Requeued: the frames are queued again and the old reason is gone.
    resp = await client.post(f"/api/shots/{shot['id']}/requeue", headers=AUTH)
    assert resp.status == 200 and (await resp.json())["frames_failed"] == 0
    frames = {f["number"]: f for f in (await (await client.get(frames_url)).json())["frames"]}
    assert [(frames[n]["status"], frames[n]["failure_reason"]) for n in lost] == \
        [("queued", None)]


@pytest.mark.parametrize("fmt, pillow, mode, ext, thumb", [
    ("TIFF", "TIFF", "RGB", "tif", "jpg"),
    ("TIFF", "TIFF", "RGBA", "tif", "png"),
    ("BMP", "BMP", "RGB", "bmp", "jpg"),
    ("TARGA", "TGA", "RGBA", "tga", "png"),
    ("WEBP", "WEBP", "RGB", "webp", "jpg"),
    ("JPEG", "JPEG", "RGB", "jpg", "jpg"),
    ("png", "PNG", "RGB", "png", "jpg"),
])
async def test_the_frames_format_decides_its_extension_and_thumbnail(api, fmt, pillow, mode,
                                                                     ext, thumb):
    shot = await create_shot(api, frame_end=1, render={"output_format": "OPEN_EXR"})
    ws, job = await take_job(api)
    data = image(pillow, mode)
    if mode == "RGBA":   # a transparent corner: the thumbnail keeps its alpha
        img = Image.open(io.BytesIO(data))
        img.putpixel((0, 0), (0, 0, 0, 0))
        buf = io.BytesIO()
        img.save(buf, pillow)
        data = buf.getvalue()
    resp = await put_frame(api, job, 1, data, fmt)
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["name"] == f"frame_000001.{ext}"
    frame = (await (await api.get(f"/api/shots/{shot['id']}/frames")).json())["frames"][0]
    assert frame["image_url"].endswith(f"frame_000001.{ext}")
    assert await (await api.get(frame["image_url"])).read() == data
    assert frame["thumbnail_url"].endswith(f"_thumbnail.{thumb}")
    with Image.open(io.BytesIO(await (await api.get(frame["thumbnail_url"])).read())) as t:
        assert t.size == (48, 27) and t.getpixel((10, 10))[:3] == pytest.approx(
            (30, 160, 90), abs=8)
    await ws.close()


async def test_without_the_header_the_shots_format_then_png_decides(api):
    for render, ext in (({"output_format": "JPEG"}, "jpg"), ({}, "png")):
        await create_shot(api, frame_end=1, render=render)
        ws, job = await take_job(api)
        data = image("JPEG" if ext == "jpg" else "PNG")
        resp = await put_frame(api, job, 1, data)
        assert (await resp.json())["name"] == f"frame_000001.{ext}"
        await ws.send_json({"type": "job_done", "attempt_id": job["attempt_id"]})
        await ws.close()


async def test_an_unknown_output_format_header_is_refused(api):
    await create_shot(api, frame_end=1)
    ws, job = await take_job(api)
    resp = await put_frame(api, job, 1, image("PNG"), "FFMPEG")
    assert resp.status == 400 and "X-Output-Format" in (await resp.json())["error"]
    assert (await put_frame(api, job, 1, image("PNG"), "PNG")).status == 201
    await ws.close()


async def test_frames_say_why_when_every_node_gave_up_on_the_shot(aiohttp_client, tmp_path):
    client = await aiohttp_client(create_app(Config(data_dir=tmp_path / "d", max_attempts=3,
                                                    blocklist_threshold=1), TOKEN))
    shot = await create_shot(client, frame_end=2, chunk_size=2)
    ws, job = await take_job(client)
    await ws.send_json({"type": "job_failed", "attempt_id": job["attempt_id"],
                        "reason": "out of memory", "log_tail": ""})

    async def failed():
        s = await (await client.get(f"/api/shots/{shot['id']}")).json()
        return s if s["status"] == "failed" else None
    shot_now = await until(failed)
    # One attempt of three, but the only node is blocklisted: the shot fails now.
    assert shot_now["failure_reason"] == \
        "out of memory (every online node failed this shot repeatedly)"
    frames = (await (await client.get(f"/api/shots/{shot['id']}/frames")).json())["frames"]
    assert [(f["status"], f["failure_reason"]) for f in frames] == \
        [("failed", "out of memory")] * 2
    await ws.close()
