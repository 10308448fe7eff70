"""Extra outputs of frames over the HTTP API: upload under the lease, list, download,
thumbnails, replacement, bad input, a full disk, and deletion with the shot."""
from __future__ import annotations

import hashlib
import io
import os
import time

import numpy as np
import pytest
from PIL import Image

from coordinator import keys
from coordinator.app import create_app
from coordinator.config import Config
from tests.unit.test_api import AUTH, TOKEN, create_shot, node_hello

# Every test runs on SQLite and on PostgreSQL.
pytestmark = pytest.mark.usefixtures("backend")


def png(color=(200, 40, 40), size=(32, 18)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def exr(tmp_path) -> bytes:
    import OpenEXR
    pixels = np.full((18, 32, 3), 4.0, np.float32)
    pixels[:, :16] = 0.25
    path = tmp_path / "pass.exr"
    OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage},
                 {"RGB": pixels}).write(str(path))
    return path.read_bytes()


@pytest.fixture
async def api(aiohttp_client, tmp_path):
    app = create_app(Config(data_dir=tmp_path / "data", lease_timeout=30), TOKEN)
    return await aiohttp_client(app)


async def assigned(api, **shot) -> tuple[dict, dict, object]:
    shot = await create_shot(api, frame_end=2, chunk_size=2, **shot)
    ws = await api.ws_connect("/api/node/ws", headers=AUTH)
    await node_hello(ws)
    await ws.send_json({"type": "ready"})
    job = (await ws.receive_json())["job"]
    return shot, job, ws


async def put_output(api, attempt: str, number: int, data: bytes, kind="pass",
                     name="File Output/depth_", fmt="PNG", sha=None):
    headers = {**AUTH, "X-Sha256": sha or hashlib.sha256(data).hexdigest()}
    if fmt:
        headers["X-Output-Format"] = fmt
    return await api.put(f"/api/attempts/{attempt}/frames/{number}/outputs",
                         params={"kind": kind, "name": name}, data=data, headers=headers)


async def test_outputs_are_recorded_listed_downloaded_and_counted(api, tmp_path):
    shot, job, ws = await assigned(api)
    attempt = job["attempt_id"]
    depth, mist = png((10, 20, 30)), exr(tmp_path)
    right = png((0, 200, 0))
    for data, kind, name, fmt in [(depth, "pass", "File Output/depth_", "PNG"),
                                  (mist, "pass", "Passes EXR/mist_", "OPEN_EXR"),
                                  (right, "view", "R", "PNG")]:
        resp = await put_output(api, attempt, 1, data, kind, name, fmt)
        assert resp.status == 201, await resp.text()
    heard: list[dict] = []
    api.server.app[keys.EVENTS].observers.append(
        lambda kind, data: heard.append(data) if kind == "frame" else None)
    frame = png()
    resp = await api.put(f"/api/attempts/{attempt}/frames/1", data=frame,
                         headers={**AUTH, "X-Sha256": hashlib.sha256(frame).hexdigest()})
    assert resp.status == 201
    # The frame's event counts its outputs, as the listing does.
    assert [(f["number"], f["outputs"]) for f in heard] == [(1, 3)]

    listed = (await (await api.get(f"/api/shots/{shot['id']}/frames/1/outputs")).json())["outputs"]
    assert [(o["kind"], o["name"], o["format"]) for o in listed] == [
        ("view", "R", "PNG"), ("pass", "File Output/depth_", "PNG"),
        ("pass", "Passes EXR/mist_", "OPEN_EXR")]
    for output, data in zip(listed, (right, depth, mist)):
        assert output["size"] == len(data)
        assert output["sha256"] == hashlib.sha256(data).hexdigest()
        got = await api.get(output["url"])
        assert got.status == 200 and await got.read() == data
        thumb = await api.get(output["thumbnail_url"])
        assert thumb.status == 200 and thumb.content_type.startswith("image/")
    # The EXR pass is tone-mapped for the browser: its dark half stays darker.
    preview = await api.get(listed[2]["preview_url"])
    assert preview.content_type == "image/jpeg"
    with Image.open(io.BytesIO(await preview.read())) as img:
        img = img.convert("L")
        assert img.getpixel((4, 9)) < img.getpixel((28, 9))

    frames = (await (await api.get(f"/api/shots/{shot['id']}/frames")).json())["frames"]
    assert [f["outputs"] for f in frames] == [3, 0]
    files = api.server.app[keys.CONFIG].data_dir / "shots" / str(shot["id"]) / "outputs"
    assert len(list(files.rglob("*.png"))) == 2 and len(list(files.rglob("*.exr"))) == 1
    await ws.close()


async def test_an_upload_again_replaces_the_output(api):
    shot, job, ws = await assigned(api)
    first, second = png((1, 2, 3)), png((250, 250, 250))
    assert (await put_output(api, job["attempt_id"], 2, first)).status == 201
    assert (await put_output(api, job["attempt_id"], 2, second, fmt="JPEG")).status == 201
    listed = (await (await api.get(f"/api/shots/{shot['id']}/frames/2/outputs")).json())["outputs"]
    assert len(listed) == 1 and listed[0]["sha256"] == hashlib.sha256(second).hexdigest()
    assert listed[0]["format"] == "JPEG"
    files = api.server.app[keys.CONFIG].data_dir / "shots" / str(shot["id"]) / "outputs"
    assert [p.suffix for p in files.rglob("*") if p.is_file()] == [".jpg"]
    await ws.close()


async def test_a_stale_attempt_is_fenced_and_nothing_is_kept(api):
    shot, job, ws = await assigned(api)
    await ws.close()
    await api.server.app[keys.DISPATCHER].reap(time.time() + 3600)
    resp = await put_output(api, job["attempt_id"], 1, png())
    assert resp.status == 409 and "requeued" in (await resp.json())["error"]
    data_dir = api.server.app[keys.CONFIG].data_dir
    assert not (data_dir / "shots" / str(shot["id"]) / "outputs").exists()
    assert list((data_dir / "tmp").iterdir()) == []


async def test_bad_input_is_refused_with_the_field_named(api):
    shot, job, ws = await assigned(api)
    attempt, data = job["attempt_id"], png()
    cases = [
        (dict(kind="beauty"), "kind"),
        (dict(name=""), "name"),
        (dict(name="x" * 201), "name"),
        (dict(name="bad\x07name"), "name"),
        (dict(fmt="GIF"), "X-Output-Format"),
        (dict(sha="zz"), "X-Sha256"),
    ]
    for over, field in cases:
        resp = await put_output(api, attempt, 1, data, **over)
        assert resp.status == 400, (over, await resp.text())
        assert (await resp.json())["field"] == field
    resp = await api.put(f"/api/attempts/{attempt}/frames/x/outputs",
                         params={"kind": "pass", "name": "a"}, data=data, headers=AUTH)
    assert resp.status == 400 and (await resp.json())["field"] == "number"
    outside = await put_output(api, attempt, 7, data)
    assert outside.status == 400 and "not part of this job" in (await outside.json())["error"]
    wrong = await put_output(api, attempt, 1, data, sha="d" * 64)
    assert wrong.status == 422
    unauthenticated = await api.put(f"/api/attempts/{attempt}/frames/1/outputs",
                                    params={"kind": "pass", "name": "a"}, data=data)
    assert unauthenticated.status == 401
    data_dir = api.server.app[keys.CONFIG].data_dir
    assert list((data_dir / "tmp").iterdir()) == []
    await ws.close()


async def test_names_never_become_paths_outside_the_shot(api):
    shot, job, ws = await assigned(api)
    name = "../../../../etc/evil/..\\x"
    resp = await put_output(api, job["attempt_id"], 1, png(), name=name)
    assert resp.status == 201
    data_dir = api.server.app[keys.CONFIG].data_dir
    stored = [p for p in data_dir.rglob("*") if p.is_file() and "outputs" in p.parts]
    assert len(stored) == 1
    assert stored[0].parent == data_dir / "shots" / str(shot["id"]) / "outputs" / "frame_000001"
    listed = (await (await api.get(f"/api/shots/{shot['id']}/frames/1/outputs")).json())["outputs"]
    assert listed[0]["name"] == name
    for path in [f"/files/shots/{shot['id']}/outputs/..%2F..%2Fbrender.db/file",
                 f"/files/shots/{shot['id']}/outputs/{listed[0]['id']}/..",
                 f"/files/shots/{shot['id']}/outputs/{listed[0]['id']}/brender.db",
                 f"/files/shots/{shot['id'] + 1}/outputs/{listed[0]['id']}/file"]:
        resp = await api.get(path)
        assert resp.status in (400, 404), path
    await ws.close()


async def test_deleting_the_shot_removes_its_outputs(api):
    shot, job, ws = await assigned(api)
    assert (await put_output(api, job["attempt_id"], 1, png())).status == 201
    listed = (await (await api.get(f"/api/shots/{shot['id']}/frames/1/outputs")).json())["outputs"]
    await ws.close()
    assert (await api.delete(f"/api/shots/{shot['id']}", headers=AUTH)).status in (200, 204)
    assert (await api.get(listed[0]["url"])).status == 404
    data_dir = api.server.app[keys.CONFIG].data_dir
    assert not (data_dir / "shots" / str(shot["id"])).exists()
    db = api.server.app[keys.DB]
    assert await db.fetchone("SELECT 1 FROM frame_outputs") is None



async def test_a_full_disk_answers_507_and_leaves_nothing(aiohttp_client, small_disk):
    app = create_app(Config(data_dir=small_disk / "data", lease_timeout=30), TOKEN)
    api = await aiohttp_client(app)
    shot, job, ws = await assigned(api)
    stat = os.statvfs(small_disk)
    filler = small_disk / "filler"
    with open(filler, "wb") as f:
        # Room for the database, not for a 1 MB pass.
        f.write(b"\0" * max(0, stat.f_bavail * stat.f_frsize - 256 * 1024))
    big = os.urandom(1024 * 1024)
    resp = await put_output(api, job["attempt_id"], 1, big, fmt="")
    assert resp.status == 507, await resp.text()
    assert "could not store" in (await resp.json())["error"]
    data_dir = small_disk / "data"
    assert list((data_dir / "tmp").iterdir()) == []
    assert not (data_dir / "shots" / str(shot["id"]) / "outputs").exists()
    listed = (await (await api.get(f"/api/shots/{shot['id']}/frames/1/outputs")).json())["outputs"]
    assert listed == []
    filler.unlink()  # space again: the node's retry lands
    resp = await put_output(api, job["attempt_id"], 1, big, fmt="")
    assert resp.status == 201
    listed = (await (await api.get(f"/api/shots/{shot['id']}/frames/1/outputs")).json())["outputs"]
    assert listed[0]["size"] == len(big) and listed[0]["thumbnail_url"] is None
    await ws.close()
