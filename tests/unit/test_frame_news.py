"""Issue 17 at the edge and in its parts: output templates and roots refused with the
field named (`..`, absolute, symlinks), webhook routes guarded and checked, frame checks
on real images (a real EXR with NaN written with OpenEXR), a delivered copy replaced
atomically."""
from __future__ import annotations

import asyncio
import hashlib
import io
import os

import numpy as np
import OpenEXR
import pytest
from PIL import Image

from coordinator import delivery_paths, frame_checks, thumbnails
from coordinator.app import create_app
from coordinator.config import Config
from coordinator.delivered_files import copy_atomically
from coordinator.webhooks import signature

TOKEN = "t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BLEND = b"BLENDER-v304" + b"\0" * 64


@pytest.fixture
async def api(aiohttp_client, tmp_path):
    studio = tmp_path / "studio"
    (studio / "inside").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (studio / "escape").symlink_to(outside)
    config = Config(data_dir=tmp_path / "data", output_roots={"studio": studio,
                                                               "other": tmp_path / "other"})
    client = await aiohttp_client(create_app(config, TOKEN))
    sha = hashlib.sha256(BLEND).hexdigest()
    resp = await client.put(f"/api/blobs/{sha}", data=BLEND, headers=AUTH)
    assert resp.status in (200, 201)
    client.files = [{"path": "a.blend", "sha256": sha, "size": len(BLEND)}]  # type: ignore[attr-defined]
    return client


async def submit(api, **spec):
    body = {"name": "s", "files": api.files, "frame_start": 1, "frame_end": 2, **spec}
    resp = await api.post("/api/shots", json=body, headers=AUTH)
    return resp.status, await resp.json()


@pytest.mark.parametrize("template", [
    "../{frame}.png", "a/../../{frame}.{ext}", "/abs/{frame}.{ext}", "C:/x/{frame}",
    "a\\{frame}", "a//{frame}", "./{frame}", "escape/{frame}.{ext}", "{frame}/{nope}",
    "{shot!r}/{frame}", "{shot:>9}/{frame}", "{frame:x}", "no-frame.png", "", "{frame",
    "a/\x00/{frame}", "x" * 600 + "{frame}", 7, ["{frame}"]])
async def test_templates_that_escape_or_make_no_sense_are_refused(api, template, tmp_path):
    status, body = await submit(api, output_template=template, output_root="studio")
    assert status == 400 and body["field"] == "output_template", body
    assert not list((tmp_path / "outside").iterdir())


@pytest.mark.parametrize("spec, field", [
    ({"output_template": "{frame}"}, "output_root"),            # two roots: name one
    ({"output_template": "{frame}", "output_root": "nope"}, "output_root"),
    ({"output_template": "{frame}", "output_root": "../studio"}, "output_root"),
    ({"output_template": "{frame}", "output_root": 3}, "output_root"),
    ({"output_root": "studio"}, "output_template"),
    ({"rerender_suspicious": "yes"}, "rerender_suspicious")])
async def test_roots_are_named_and_known(api, spec, field):
    status, body = await submit(api, **spec)
    assert status == 400 and body["field"] == field, body


async def test_a_good_template_is_kept_on_the_shot(api):
    status, shot = await submit(api, output_template="{project}/{shot}/{frame:04d}.{ext}",
                                output_root="studio", rerender_suspicious=True)
    assert status == 201, shot
    assert (shot["output_template"], shot["output_root"], shot["rerender_suspicious"]) == \
        ("{project}/{shot}/{frame:04d}.{ext}", "studio", True)
    resp = await api.get(f"/api/shots/{shot['id']}/delivery")
    assert (await resp.json())["pending"] == 0


async def test_no_roots_no_delivery(aiohttp_client, tmp_path):
    api = await aiohttp_client(create_app(Config(data_dir=tmp_path / "d"), TOKEN))
    resp = await api.post("/api/shots", headers=AUTH, json={
        "name": "s", "files": [{"path": "a.blend", "sha256": "0" * 64, "size": 1}],
        "frame_start": 1, "frame_end": 1, "output_template": "{frame}"})
    assert resp.status == 400 and (await resp.json())["field"] == "output_root"


def test_rendered_values_never_leave_their_folder(tmp_path):
    shot = {"id": 4, "name": "../../etc/passwd", "blend_path": "dir/..hidden.blend"}
    path = delivery_paths.render("{project}/{shot}/{frame:04d}.{ext}", shot, 7, "png")
    assert path == "hidden/_.._etc_passwd/0007.png"   # one folder, never a way up
    with pytest.raises(ValueError):
        delivery_paths.inside(tmp_path, "../x")
    assert delivery_paths.parse_roots(["a=/tmp/x", "/srv/renders"]) == \
        {"a": delivery_paths.Path("/tmp/x"), "renders": delivery_paths.Path("/srv/renders")}
    with pytest.raises(ValueError):
        delivery_paths.parse_roots(["a=/x", "a=/y"])


# -- webhooks at the edge ----------------------------------------------------------------
async def test_webhook_routes_need_the_token_reads_too(api):
    for method, path in [("GET", "/api/webhooks"), ("POST", "/api/webhooks"),
                         ("DELETE", "/api/webhooks/0123456789abcdef"),
                         ("GET", "/api/webhooks/0123456789abcdef/deliveries")]:
        resp = await api.request(method, path, json={"url": "http://127.0.0.1:9/x"})
        assert resp.status == 401, (method, path)


@pytest.mark.parametrize("body, field", [
    ({"url": "ftp://x/y"}, "url"), ({"url": "http://"}, "url"), ({"url": 5}, "url"),
    ({"url": "http://h/" + "a" * 2100}, "url"), ({"url": "http://h/\x00"}, "url"),
    ({"url": "http://h/#frag"}, "url"),
    ({"url": "http://h/", "events": ["shot.exploded"]}, "events"),
    ({"url": "http://h/", "events": []}, "events"),
    ({"url": "http://h/", "secret": "short"}, "secret"),
    ({"url": "http://h/", "secret": "has spaces in it, sixteen+"}, "secret"),
    ({"url": "http://h/", "colour": "red"}, "colour"), ([], "body")])
async def test_webhook_bodies_are_checked(api, body, field):
    resp = await api.post("/api/webhooks", json=body, headers=AUTH)
    assert resp.status == 400 and (await resp.json())["field"] == field


async def test_webhooks_are_added_listed_and_removed(api):
    resp = await api.post("/api/webhooks", headers=AUTH,
                          json={"url": "https://hooks.example/brender", "events": ["shot.done"]})
    assert resp.status == 201
    hook = await resp.json()
    assert len(hook["secret"]) >= 32 and hook["events"] == ["shot.done"]
    listed = (await (await api.get("/api/webhooks", headers=AUTH)).json())["webhooks"]
    assert [h["id"] for h in listed] == [hook["id"]] and "secret" not in listed[0]
    resp = await api.get(f"/api/webhooks/{hook['id']}/deliveries", headers=AUTH)
    assert (await resp.json()) == {"deliveries": []}
    assert (await api.delete(f"/api/webhooks/{hook['id']}", headers=AUTH)).status == 200
    assert (await api.delete(f"/api/webhooks/{hook['id']}", headers=AUTH)).status == 404
    assert (await api.get(f"/api/webhooks/{hook['id']}/deliveries",
                          headers=AUTH)).status == 404


def test_the_signature_is_hmac_sha256_of_the_raw_body():
    import hmac
    body = b'{"event":"shot.done"}'
    expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert signature("s3cret", body) == f"sha256={expected}"


# -- frame checks on real images ------------------------------------------------------------
def png(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize("colour, mode, expected", [
    ((0, 0, 0), "RGB", "black"), ((255, 255, 255), "RGB", "white"),
    ((10, 200, 30), "RGB", "#0ac81e"), ((90, 0, 0, 0), "RGBA", "transparent")])
def test_one_colour_frames_are_found_in_the_thumbnail_decode(colour, mode, expected):
    result = thumbnails.make_from_bytes(png(Image.new(mode, (64, 36), colour)), 32)
    assert result is not None and result.checks == {"uniform": expected, "nonfinite": 0}
    assert expected in (frame_checks.verdict(result.checks, 500, []) or "")


def test_a_dithered_black_frame_is_black_and_a_real_picture_is_not():
    noise = np.random.default_rng(1).integers(0, 2, (36, 64, 3), dtype=np.uint8)
    result = thumbnails.make_from_bytes(png(Image.fromarray(noise)), 32)
    assert result is not None and result.checks["uniform"] == "black"
    picture = Image.new("RGB", (64, 36), (0, 0, 0))
    picture.putpixel((10, 10), (200, 200, 200))
    result = thumbnails.make_from_bytes(png(picture), 32)
    assert result is not None and result.checks["uniform"] is None
    assert frame_checks.verdict(result.checks, 500, [520, 480]) is None


def test_a_frame_far_smaller_than_its_neighbours_is_suspicious():
    checks = {"uniform": None, "nonfinite": 0}
    assert "far smaller" in frame_checks.verdict(checks, 1000, [9000, 8000, 10000])
    assert frame_checks.verdict(checks, 5000, [9000, 8000]) is None
    assert frame_checks.verdict(checks, 10, [9000]) is None   # one neighbour says little


def write_exr(path, rgba: np.ndarray) -> None:
    channels = {c: rgba[..., i].astype(np.float32) for i, c in enumerate("RGBA")}
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with OpenEXR.File(header, channels) as exr:
        exr.write(str(path))


def test_nan_and_inf_pixels_in_a_real_exr_are_counted(tmp_path):
    rgba = np.random.default_rng(2).random((36, 64, 4)).astype(np.float32)
    rgba[..., 3] = 1
    rgba[3, 5, 0] = np.nan
    rgba[7, 9, 2] = np.inf
    rgba[7, 10, 1] = -np.inf
    write_exr(tmp_path / "bad.exr", rgba)
    result = thumbnails.make(tmp_path / "bad.exr", 32)
    assert result.checks == {"uniform": None, "nonfinite": 3}
    assert frame_checks.verdict(result.checks, 9000, []) == "3 pixels are NaN or infinite"
    rgba = np.zeros((36, 64, 4), np.float32)
    rgba[..., 3] = 1
    write_exr(tmp_path / "black.exr", rgba)
    assert thumbnails.make(tmp_path / "black.exr", 32).checks == \
        {"uniform": "black", "nonfinite": 0}


async def test_checks_come_back_from_a_frame_worker_process(tmp_path):
    from coordinator.frame_workers import FrameWorkers
    workers = FrameWorkers(1, 32)
    try:
        stored = await workers.store(tmp_path / "f.png", png(Image.new("RGB", (64, 36))))
        assert stored is not None and stored.checks == {"uniform": "black", "nonfinite": 0}
        rgba = np.ones((8, 8, 4), np.float32)
        rgba[0, 0, 0] = np.nan
        write_exr(tmp_path / "f.exr", rgba)
        exr = await workers.thumbnail(tmp_path / "f.exr", "OPEN_EXR")
        assert exr.checks == {"uniform": None, "nonfinite": 1}
        assert workers._workers, "the work ran in a process, not the thread fallback"
    finally:
        await workers.close()


# -- a delivered copy --------------------------------------------------------------------
def test_a_copy_replaces_the_earlier_one_atomically_and_stays_in_its_root(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    first, second = tmp_path / "1.png", tmp_path / "2.png"
    first.write_bytes(b"first render")
    second.write_bytes(b"second render, longer")
    copy_atomically(first, root, "p/s/0001.png")
    target = root / "p" / "s" / "0001.png"
    assert target.read_bytes() == b"first render"
    inode = os.stat(target).st_ino
    copy_atomically(second, root, "p/s/0001.png")
    assert target.read_bytes() == b"second render, longer"
    assert os.stat(target).st_ino != inode          # renamed over, never rewritten in place
    assert sorted(p.name for p in target.parent.iterdir()) == ["0001.png"]
    (root / "p" / "link").symlink_to(outside)
    with pytest.raises(ValueError):
        copy_atomically(first, root, "p/link/0001.png")
    assert not list(outside.iterdir())


def test_a_group_of_copies_goes_on_past_one_that_fails(tmp_path):
    from coordinator.delivered_files import Copy, copy_batch
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "link").symlink_to(outside)
    (root / "blocked").write_text("a file where a folder should be")
    sources = []
    for n in range(3):
        sources.append(tmp_path / f"{n}.png")
        sources[-1].write_bytes(f"frame {n}".encode())
    copies = [Copy((1, 1), sources[0], root, "s/0001.png"),
              Copy((1, 2), sources[1], root, "link/0002.png"),
              Copy((1, 3), sources[2], root, "blocked/0003.png"),
              Copy((1, 4), tmp_path / "gone.png", root, "s/0004.png"),
              Copy((1, 5), sources[2], root, "s/0005.png")]
    copy_batch(copies)
    assert [c.error is None for c in copies] == [True, False, False, False, True]
    assert isinstance(copies[1].error, ValueError)          # outside its root
    assert isinstance(copies[2].error, FileExistsError)     # mkdir over a file
    assert isinstance(copies[3].error, FileNotFoundError)
    assert sorted(p.name for p in (root / "s").iterdir()) == ["0001.png", "0005.png"]
    assert (root / "s" / "0005.png").read_bytes() == b"frame 2"
    assert not list(outside.iterdir())


@pytest.mark.parametrize("links", [False, True])
def test_a_symlink_at_the_final_name_is_replaced_never_written_through(tmp_path, links):
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "s").mkdir(parents=True)
    outside.mkdir()
    secret = outside / "secret.txt"
    secret.write_bytes(b"not the studio's")
    (root / "s" / "0001.png").symlink_to(secret)
    (root / "s" / "0002.png").symlink_to(outside / "new.png")    # dangling
    source = tmp_path / "frame.png"
    source.write_bytes(b"the frame")
    copy_atomically(source, root, "s/0001.png", links)
    copy_atomically(source, root, "s/0002.png", links)
    for name in ("0001.png", "0002.png"):
        assert not (root / "s" / name).is_symlink()
        assert (root / "s" / name).read_bytes() == b"the frame"
    assert secret.read_bytes() == b"not the studio's"
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert sorted(p.name for p in (root / "s").iterdir()) == ["0001.png", "0002.png"]


def test_a_group_checks_each_folder_and_refuses_every_frame_of_one_that_escapes(tmp_path):
    from coordinator.delivered_files import Copy, copy_batch
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "real").mkdir(parents=True)
    outside.mkdir()
    (root / "away").symlink_to(outside)
    (root / "alias").symlink_to(root / "real")     # a symlink that stays in the root
    source = tmp_path / "frame.png"
    source.write_bytes(b"frame")
    relatives = ["a/b/0001.png", "away/0002.png", "alias/0003.png", "away/0004.png",
                 "a/b/0005.png", "0006.png", "a/../../0007.png", "a/"]
    copies = [Copy((1, n), source, root, rel) for n, rel in enumerate(relatives, 1)]
    copy_batch(copies)
    assert [c.error is None for c in copies] == [True, False, True, False, True, True,
                                                 False, False]
    assert all(isinstance(copies[i].error, ValueError) for i in (1, 3, 6, 7))
    assert sorted(p.name for p in (root / "a" / "b").iterdir()) == ["0001.png", "0005.png"]
    assert sorted(p.name for p in (root / "real").iterdir()) == ["0003.png"]
    assert (root / "0006.png").read_bytes() == b"frame"
    assert not list(outside.iterdir()) and not (tmp_path / "0007.png").exists()
    assert not [p for p in root.rglob("*") if "brender-tmp" in p.name]


def test_a_folder_swapped_for_a_symlink_after_its_check_is_not_written(tmp_path,
                                                                       monkeypatch):
    """The folder is checked, then opened: a symlink swapped in between (here: the
    check answers with the path as it was) is caught on the opened folder itself."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    (outside / "t").mkdir(parents=True)
    (root / "s").symlink_to(outside)
    checked = delivery_paths.inside_folder
    monkeypatch.setattr(delivery_paths, "inside_folder",
                        lambda r, folder: os.path.join(checked(r, ""), folder))
    source = tmp_path / "frame.png"
    source.write_bytes(b"frame")
    with pytest.raises(ValueError):
        copy_atomically(source, root, "s/t/0001.png")
    assert not list((outside / "t").iterdir())
    copy_atomically(source, root, "u/0001.png")    # a folder that stays inside: written
    assert (root / "u" / "0001.png").read_bytes() == b"frame"


async def test_a_group_reads_its_frames_and_records_their_delivery_per_shot(backend, tmp_path):
    """On SQLite and PostgreSQL: one group spans two shots and names a frame that is
    gone; a shot's last error goes once no frame of it is failing, and a frame whose
    render changed since its read is not marked delivered."""
    from coordinator.database import open_database
    from coordinator.store import delivery as delivery_sql
    db = open_database(backend, tmp_path)
    await db.open()
    try:
        async def setup(c):
            for shot_id in (1, 2):
                await c.execute(
                    """INSERT INTO shots (id, name, status, priority, blend_path, files,
                       frame_start, frame_end, frame_step, fps, created_at, frames_total,
                       output_template, output_root)
                       VALUES (?, ?, 'active', 50, 'b.blend', '[]', 1, 4, 1, 24, 0, 4,
                               '{shot}/{frame:04d}.{ext}', 'studio')""",
                    (shot_id, f"shot {shot_id}"))
                await c.execute("INSERT INTO jobs (id, shot_id, ordinal, status, frames) "
                                "VALUES (?, ?, 0, 'running', '[]')", (shot_id, shot_id))
                await c.executemany(
                    """INSERT INTO frames (shot_id, number, job_id, status, name, path, size,
                       sha256, delivery) VALUES (?, ?, ?, 'done', ?, ?, 10, ?, 'pending')""",
                    [(shot_id, n, shot_id, f"frame_{n:06d}.png", f"p{shot_id}-{n}",
                      f"sha{n}") for n in range(1, 5)])
        await db.write(setup)
        for shot_id, number in ((1, 2), (2, 3), (2, 4)):
            await db.write(delivery_sql.failed, shot_id, number, "disk full")
        keys = [(1, 1), (2, 3), (1, 2), (1, 9), (2, 1)]
        found = await db.read(delivery_sql.sources, keys)
        assert sorted((f["shot_id"], f["number"], f["path"], f["shot_name"],
                       f["output_template"]) for f in found) == [
            (1, 1, "p1-1", "shot 1", "{shot}/{frame:04d}.{ext}"),
            (1, 2, "p1-2", "shot 1", "{shot}/{frame:04d}.{ext}"),
            (2, 1, "p2-1", "shot 2", "{shot}/{frame:04d}.{ext}"),
            (2, 3, "p2-3", "shot 2", "{shot}/{frame:04d}.{ext}")]
        done = [(1, 1, "sha1"), (1, 2, "sha2"), (2, 1, "sha1"), (2, 3, "a newer render")]
        assert await db.write(delivery_sql.delivered_many, done) == 3
        shot1 = await db.read(delivery_sql.summary, 1)
        shot2 = await db.read(delivery_sql.summary, 2)
        assert (shot1["delivered"], shot1["failed"], shot1["last_error"]) == (2, 0, None)
        assert (shot2["delivered"], shot2["failed"], shot2["last_error"]) == (1, 2, "disk full")
    finally:
        await db.close()


async def test_a_frame_file_swapped_for_a_symlink_is_never_delivered(tmp_path):
    """The data dir's own frames go out; a frame file that became a symlink (to a
    secret, even one inside the data dir) fails alone and is recorded on its frame."""
    from coordinator.config import Config
    from coordinator.database import Database
    from coordinator.delivery import Delivery
    from coordinator.storage import Storage
    from coordinator.store import delivery as delivery_sql
    db, storage = Database(tmp_path / "brender.db"), Storage(tmp_path / "data")
    studio, secret = tmp_path / "studio", tmp_path / "secret.txt"
    studio.mkdir()
    secret.write_bytes(b"secret")
    frames = storage.root / "shots" / "1" / "frames"
    frames.mkdir(parents=True)
    for n in (1, 2, 3):
        (frames / f"frame_{n:06d}.png").write_bytes(f"frame {n}".encode())
    (frames / "frame_000002.png").unlink()
    (frames / "frame_000002.png").symlink_to(secret)
    (frames / "frame_000003.png").unlink()
    (frames / "frame_000003.png").symlink_to(frames / "frame_000001.png")
    await db.open()
    try:
        async def setup(c):
            await c.execute(
                """INSERT INTO shots (id, name, status, priority, blend_path, files,
                   frame_start, frame_end, frame_step, fps, created_at, frames_total,
                   output_template, output_root) VALUES (1, 'sh', 'active', 50, 'b.blend',
                   '[]', 1, 3, 1, 24, 0, 3, '{shot}/{frame:04d}.{ext}', 'studio')""")
            await c.execute("INSERT INTO jobs (id, shot_id, ordinal, status, frames) "
                            "VALUES (1, 1, 0, 'running', '[]')")
            await c.executemany(
                """INSERT INTO frames (shot_id, number, job_id, status, name, path, size,
                   sha256, delivery) VALUES (1, ?, 1, 'done', ?, ?, 7, 'x', 'pending')""",
                [(n, f"frame_{n:06d}.png", f"shots/1/frames/frame_{n:06d}.png")
                 for n in (1, 2, 3)])
        await db.write(setup)
        delivery = Delivery(Config(output_roots={"studio": studio}), db, storage,
                            lambda shot_id: None)
        try:
            await delivery._deliver([(1, 1), (1, 2), (1, 3)])
        finally:
            for handle in delivery._retries.values():
                handle.cancel()
            await delivery.close()
        assert sorted(p.name for p in (studio / "sh").iterdir()) == ["0001.png"]
        assert (studio / "sh" / "0001.png").read_bytes() == b"frame 1"
        summary = await db.read(delivery_sql.summary, 1)
        assert (summary["delivered"], summary["failed"]) == (1, 2)
        assert [f["number"] for f in summary["failed_frames"]] == [2, 3]
    finally:
        await db.close()
        storage.close()


async def test_a_shot_that_fails_is_news_once_however_often_it_is_shown(tmp_path):
    """The farm's shot summaries (the event broker's) become webhook deliveries: once
    per ending, to the webhooks that want that event only."""
    from coordinator.database import Database
    from coordinator.store import webhooks as webhook_sql
    from coordinator.webhooks import Webhooks
    db = Database(tmp_path / "brender.db")
    await db.open()
    try:
        wants_failures = await db.write(webhook_sql.create, "http://127.0.0.1:9/a",
                                        "s" * 16, ["shot.failed"])
        wants_done = await db.write(webhook_sql.create, "http://127.0.0.1:9/b",
                                    "s" * 16, ["shot.done"])
        hooks = Webhooks(db, 1.0)
        failed = {"id": 3, "name": "x", "status": "failed", "finished_at": 100.0,
                  "failure_reason": "out of memory"}
        for shown in (failed, failed, {**failed, "status": "active"}):
            hooks.farm_event("shot", shown)
        hooks.farm_event("frame", {"shot_id": 3, "status": "done"})
        await asyncio.gather(*hooks._tasks)
        listed = await db.read(webhook_sql.deliveries, wants_failures["id"])
        assert [(d["event"], d["status"]) for d in listed] == [("shot.failed", "pending")]
        assert await db.read(webhook_sql.deliveries, wants_done["id"]) == []
        # Failed again after a requeue: a new ending, news again.
        hooks.farm_event("shot", {**failed, "finished_at": 200.0})
        await asyncio.gather(*hooks._tasks)
        assert len(await db.read(webhook_sql.deliveries, wants_failures["id"])) == 2
    finally:
        await db.close()


async def test_only_the_coordinator_holding_the_farms_duties_sends_webhooks(tmp_path):
    """Coordinators sharing a farm all record a delivery; one that does not hold the
    duties (farm_link.py) tries none until it takes them over."""
    from coordinator.database import Database
    from coordinator.store import webhooks as webhook_sql
    from coordinator.webhooks import Webhooks
    db = Database(tmp_path / "brender.db")
    await db.open()
    holds = False
    hooks = Webhooks(db, 60.0, lambda: holds)
    sender = asyncio.create_task(hooks.run())
    try:
        # Nothing listens on port 9: a try fails at once and is counted.
        hook = await db.write(webhook_sql.create, "http://127.0.0.1:9/hook", "s" * 16,
                              ["shot.done"])
        hooks.farm_event("shot", {"id": 1, "name": "x", "status": "completed",
                                  "finished_at": 1.0})
        await asyncio.wait_for(asyncio.gather(*hooks._tasks), 10)

        async def tries() -> list[int]:
            return [d["attempts"] for d in await db.read(webhook_sql.deliveries, hook["id"])]
        await asyncio.sleep(1.5)
        assert await tries() == [0]
        holds = True
        for _ in range(100):
            if (await tries())[0] > 0:
                break
            await asyncio.sleep(0.05)
        assert (await tries())[0] == 1
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        await hooks.close()
        await db.close()


async def test_a_shared_farm_takes_over_only_the_frames_nobody_delivers(tmp_path):
    """On a farm of several coordinators each copies what it records; at start, and
    then as the holder of the farm's duties, one takes over only frames that waited
    long (a dead peer's), never what a live peer is copying now."""
    import time

    from coordinator.database import Database
    from coordinator.delivery import ABANDONED_SECONDS, Delivery
    from coordinator.storage import Storage
    studio, data = tmp_path / "studio", tmp_path / "data"
    studio.mkdir()
    storage = Storage(data)
    (data / "shots" / "f.png").write_bytes(b"frame")
    db = Database(tmp_path / "brender.db")
    await db.open()
    now = time.time()

    async def setup(c):
        await c.execute(
            """INSERT INTO shots (id, name, status, priority, blend_path, files, frame_start,
               frame_end, frame_step, fps, created_at, frames_total, output_template,
               output_root) VALUES (1, 'sh', 'active', 50, 'b.blend', '[]', 1, 2, 1, 24, 0,
               2, '{shot}/{frame:04d}.{ext}', 'studio')""")
        await c.execute("INSERT INTO jobs (id, shot_id, ordinal, status, frames) "
                        "VALUES (1, 1, 0, 'done', '[1, 2]')")
        await c.executemany(
            """INSERT INTO frames (shot_id, number, job_id, status, name, path, size, sha256,
               rendered_at, delivery) VALUES (1, ?, 1, 'done', ?, 'shots/f.png', 5, 'x', ?,
               'pending')""",
            [(1, "frame_000001.png", now - ABANDONED_SECONDS - 60),
             (2, "frame_000002.png", now)])
    await db.write(setup)
    config = Config(data_dir=data, output_roots={"studio": studio})
    delivery = Delivery(config, db, storage, lambda shot_id: None, lambda: True)
    runner = asyncio.create_task(delivery.run(shared=True))
    try:
        for _ in range(100):
            if delivery.delivered:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)    # a second copy, if one were queued, would land by now
        assert sorted(p.name for p in (studio / "sh").iterdir()) == ["0001.png"]
        # Still waiting when the next sweep comes (its peer died): taken over then.
        await delivery.take_over(None)
        for _ in range(100):
            if delivery.delivered == 2:
                break
            await asyncio.sleep(0.05)
        assert sorted(p.name for p in (studio / "sh").iterdir()) == ["0001.png", "0002.png"]
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await db.close()


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
async def test_a_due_delivery_is_claimed_once_until_its_attempt_or_its_lease_ends(
        database, tmp_path, request):
    """However often (and from however many coordinators) the sender looks, a delivery
    being posted is not handed out again: a receiver hears it once. Its attempt sets
    when it is due again; if its sender died instead, the lease ending frees it."""
    from coordinator.database import open_database
    from coordinator.store import webhooks as webhook_sql
    url = request.getfixturevalue("pg_url") if database == "postgresql" else ""
    one, other = open_database(url, tmp_path), open_database(url, tmp_path)
    await one.open()
    await other.open()
    try:
        hook = await one.write(webhook_sql.create, "http://127.0.0.1:9/a", "s" * 16,
                               ["shot.done"])
        assert await one.write(webhook_sql.enqueue, "shot.done", "k1", '{"n": 1}') == 1
        now = 1e12   # long after it was queued
        claims = await asyncio.gather(*(db.write(webhook_sql.claim_due, now, 30.0, 4)
                                        for db in (one, other, one, other)))
        won = [d for claim in claims for d in claim]
        assert [(d["event"], d["body"], d["attempts"], d["url"], d["secret"]) for d in won] \
            == [("shot.done", '{"n": 1}', 0, "http://127.0.0.1:9/a", "s" * 16)]
        assert await one.write(webhook_sql.claim_due, now + 29, 30.0, 4) == []
        # Its attempt failed: due again at the time the attempt set, and then only.
        await one.write(webhook_sql.attempted, won[0]["id"], "pending", 500, "HTTP 500",
                        now + 5)
        assert await one.write(webhook_sql.claim_due, now + 4, 30.0, 4) == []
        again = await one.write(webhook_sql.claim_due, now + 5, 30.0, 4)
        assert [(d["id"], d["attempts"]) for d in again] == [(won[0]["id"], 1)]
        # Its sender died mid-post (no attempt recorded): free once the lease is over.
        assert await other.write(webhook_sql.claim_due, now + 34, 30.0, 4) == []
        assert len(await other.write(webhook_sql.claim_due, now + 35, 30.0, 4)) == 1
        listed = await one.read(webhook_sql.deliveries, hook["id"])
        assert [(d["status"], d["attempts"]) for d in listed] == [("pending", 1)]
    finally:
        await one.close()
        await other.close()


async def test_frames_are_delivered_in_a_group_a_second_unless_a_full_group_waits(
        tmp_path, monkeypatch):
    """A busy farm's frames go out in few groups (each wakes threads that take turns
    with the event loop): the first at once, then at most one a GATHER_SECONDS, except
    when a whole group is waiting."""
    import time

    from coordinator import delivery as module
    from coordinator.config import Config
    from coordinator.delivery import Delivery
    monkeypatch.setattr(module, "GATHER_SECONDS", 1.0)
    monkeypatch.setattr(module, "BATCH", 8)
    groups: list[tuple[float, list]] = []
    delivery = Delivery(Config(data_dir=tmp_path), None, None, lambda shot_id: None)

    async def deliver(keys):
        groups.append((time.monotonic(), sorted(k[1] for k in keys)))
    monkeypatch.setattr(delivery, "_deliver", deliver)
    copier = asyncio.create_task(delivery._copier())
    try:
        start = time.monotonic()
        delivery.put((1, 1))
        await asyncio.sleep(0.05)
        for n in range(2, 6):       # land while the first group was just sent
            delivery.put((1, n))
            await asyncio.sleep(0.02)
        await asyncio.sleep(1.3)
        for n in range(10, 30):     # more than a group at once: no waiting for those
            delivery.put((1, n))
        await asyncio.sleep(1.5)
        assert [g for _, g in groups[:2]] == [[1], [2, 3, 4, 5]]
        assert groups[0][0] - start < 0.5
        assert groups[1][0] - groups[0][0] >= 0.99
        assert [len(g) for _, g in groups[2:]] == [8, 8, 4]
        assert groups[3][0] - groups[2][0] < 0.5     # full groups go back to back,
        assert groups[4][0] - groups[3][0] >= 0.99   # the rest waits its turn
        assert sorted(n for _, g in groups for n in g) == [*range(1, 6), *range(10, 30)]
    finally:
        copier.cancel()
        await asyncio.gather(copier, return_exceptions=True)
        await delivery.close()
