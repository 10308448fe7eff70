"""The add-on's worker jobs and HTTP client against a stand-in coordinator.

Checks the order the issue asks for: every check (settings, coordinator
reachable, token, missing files) before the first byte is uploaded; uploads are
content-addressed; cancelling stops before the shot exists. The .blend files
are made by real Blender (see conftest.project); the live coordinator is used
in test_blender34.py / test_blender5.py.
"""
from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from brender_addon import jobs
from brender_addon.client import Client
from brender_addon.shot_spec import ShotSettings

from .fake_coordinator import FakeCoordinator

pytestmark = pytest.mark.blender

SETTINGS = ShotSettings(name="sc010", frame_start=1, frame_end=3, chunk_size=2)


def wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def kinds(job: jobs.Job) -> list[str]:
    return [kind for kind, _ in job.drain()]


def uploads(fake: FakeCoordinator) -> list[str]:
    return [p for p in fake.paths("PUT") if p.startswith("/api/blobs/")]


def test_submit_packs_uploads_and_creates_the_shot(project):
    with FakeCoordinator() as fake:
        job = jobs.SubmitJob(Client(fake.url, "T"), project["blend"], SETTINGS)
        job.run()
        messages = job.drain()
        assert job.error is None, job.error
        assert messages[-1][0] == "done"
        shot = job.result
        paths = {f["path"] for f in shot["files"]}
        assert shot["blend_path"] == "shot.blend"
        assert "shot.blend" in paths and "textures/checker.png" in paths
        outside = sorted(p for p in paths if p.startswith("_outside_project/"))
        assert [p.rsplit("/", 1)[-1] for p in outside] == ["library.blend", "red.png"]
        assert len(uploads(fake)) == 4 and len(fake.blobs) == 4
        # Every check came before the first upload, the shot after the last one.
        order = [p.split("?")[0] for _, p in fake.requests]
        first_put = next(i for i, (m, _) in enumerate(fake.requests) if m == "PUT")
        assert {"/api/version", "/api/auth", "/api/blobs/missing"} <= set(order[:first_put])
        assert order[-1] == "/api/shots"
        progress = [p["message"] for k, p in messages if k == "progress"]
        assert any(m.startswith("Packing") for m in progress)
        assert any(m.startswith("Uploading") for m in progress)

        # Same file again: the coordinator has every blob, nothing is re-sent.
        again = jobs.SubmitJob(Client(fake.url, "T"), project["blend"], SETTINGS)
        again.run()
        assert again.error is None and again.result["id"] == 2
        assert len(uploads(fake)) == 4


def test_missing_files_are_listed_and_nothing_is_uploaded(project_missing):
    with FakeCoordinator() as fake:
        job = jobs.SubmitJob(Client(fake.url, "T"), project_missing["blend"], SETTINGS)
        job.run()
        assert job.error is not None
        assert "missing" in job.error and "does_not_exist.png" in job.error
        assert "Image 'ghost'" in job.error
        gone = str(project_missing["blend"].parent / "textures" / "does_not_exist.png")
        assert job.missing == [{"path": gone, "used_by": "Image 'ghost'"}]
        assert uploads(fake) == [] and "/api/shots" not in fake.paths("POST")
        assert kinds(job)[-1] == "error"

        allowed = jobs.SubmitJob(Client(fake.url, "T"), project_missing["blend"], SETTINGS,
                                 allow_missing=True)
        allowed.run()
        assert allowed.error is None and allowed.result["id"] == 1
        # The shot records what was missing.
        assert fake.shots[1]["missing"] == [{"path": gone, "used_by": "Image 'ghost'"}]


def test_unreachable_coordinator_is_reported(project):
    job = jobs.SubmitJob(Client("http://127.0.0.1:9", "T", timeout=5), project["blend"], SETTINGS)
    job.run()
    assert "Cannot reach the coordinator at http://127.0.0.1:9" in job.error
    assert "URL" in job.error


def test_wrong_token_is_reported_before_anything_else(project):
    with FakeCoordinator() as fake:
        job = jobs.SubmitJob(Client(fake.url, "wrong"), project["blend"], SETTINGS)
        job.run()
        assert "refused the farm token" in job.error
        assert fake.paths("POST") == [] and fake.paths("PUT") == []


def test_bad_settings_fail_before_any_request(project):
    with FakeCoordinator() as fake:
        bad = dataclasses.replace(SETTINGS, frame_end=0)
        job = jobs.SubmitJob(Client(fake.url, "T"), project["blend"], bad)
        job.run()
        assert "frame range is empty" in job.error
        assert fake.requests == []


def test_cancel_during_upload_creates_no_shot(project):
    with FakeCoordinator() as fake:
        fake.upload_delay = 0.4
        job = jobs.SubmitJob(Client(fake.url, "T"), project["blend"], SETTINGS)
        job.start()
        deadline = time.monotonic() + 60
        seen = []
        while time.monotonic() < deadline and not any(
                k == "progress" and p["message"].startswith("Uploading") for k, p in seen):
            seen += job.drain()
            time.sleep(0.01)
        job.cancel()
        job.join(30)
        assert not job.is_alive()
        seen += job.drain()
        assert seen[-1][0] == "cancelled", seen[-3:]   # what ended it, if not the cancel
        assert job.error == "Cancelled"
        assert "/api/shots" not in fake.paths("POST")
        assert len(uploads(fake)) < 4


def test_cancel_before_packing_finishes(project):
    with FakeCoordinator() as fake:
        job = jobs.SubmitJob(Client(fake.url, "T"), project["blend"], SETTINGS)
        job.cancel()
        job.run()
        messages = job.drain()
        assert messages[-1][0] == "cancelled", messages[-1]
        assert uploads(fake) == []


def test_connection_check_reports_version_and_nodes():
    with FakeCoordinator(nodes_online=3) as fake:
        job = jobs.ConnectionCheck(Client(fake.url, "T"))
        job.run()
        assert job.result == {"version": "0.1.0-fake", "nodes_online": 3}
        bad = jobs.ConnectionCheck(Client(fake.url, "nope"))
        bad.run()
        assert "refused the farm token" in bad.error


def test_status_watcher_follows_the_shot_and_fetches_thumbnails(tmp_path):
    with FakeCoordinator() as fake:
        client = Client(fake.url, "T")
        for digest in ("a" * 64,):
            fake.blobs[digest] = b""
        shot = client.create_shot({"name": "sc", "blend_path": "sc.blend", "frame_start": 1,
                                   "frame_end": 2, "files": [{"path": "sc.blend", "sha256": "a" * 64,
                                                              "size": 0}]})
        watcher = jobs.StatusWatcher(client, shot["id"], tmp_path / "thumbs", interval=0.05)
        watcher.start()
        wait_for(lambda: any(k == "shot" for k, _ in list(watcher.messages.queue)))
        fake.finish_frame(shot["id"], 1, b"thumb-one")
        wait_for(lambda: any(k == "thumbnail" for k, _ in list(watcher.messages.queue)))
        fake.finish_frame(shot["id"], 2, b"thumb-two")
        watcher.join(10)
        assert not watcher.is_alive()
        messages = watcher.drain()
        statuses = [p["status"] for k, p in messages if k == "shot"]
        assert statuses[0] == "queued" and statuses[-1] == "completed"
        thumbs = [p for k, p in messages if k == "thumbnail"]
        assert [t["frame"] for t in thumbs] == [1, 2]
        assert [open(t["path"], "rb").read() for t in thumbs] == [b"thumb-one", b"thumb-two"]
        assert messages[-1][0] == "done" and messages[-1][1]["status"] == "completed"


def test_status_watcher_stops_on_cancel_and_survives_a_deleted_shot(tmp_path):
    with FakeCoordinator() as fake:
        client = Client(fake.url, "T")
        watcher = jobs.StatusWatcher(client, 42, tmp_path, interval=0.05)
        watcher.start()
        watcher.join(5)
        assert not watcher.is_alive()            # 404: the shot is gone, watching ends
        assert watcher.result["status"] == "deleted"

        fake.shots[1] = {"id": 1, "name": "x", "status": "active", "frames_done": 0, "frames_total": 5}
        watcher = jobs.StatusWatcher(client, 1, tmp_path, interval=0.05)
        watcher.start()
        time.sleep(0.2)
        assert watcher.is_alive()
        watcher.cancel()
        watcher.join(5)
        assert not watcher.is_alive()


def test_upload_progress_counts_every_byte(tmp_path):
    files = []
    for i, size in enumerate((70_000, 12, 200_000)):
        path = tmp_path / f"f{i}.bin"
        path.write_bytes(bytes([i]) * size)
        from brender_addon.client import sha256_file
        files.append({"path": path.name, "sha256": sha256_file(path), "size": size})
    seen: list[tuple[int, int]] = []
    lock = threading.Lock()

    def progress(sent: int, total: int) -> None:
        with lock:
            seen.append((sent, total))

    with FakeCoordinator() as fake:
        client = Client(fake.url, "T")
        assert client.upload_missing(files, tmp_path, progress) == (3, 270_012)
        assert seen[0] == (0, 270_012) and seen[-1] == (270_012, 270_012)
        assert [s for s, _ in seen] == sorted(s for s, _ in seen)
        assert len(seen) > 3                     # finer than one report per file
        assert client.upload_missing(files, tmp_path, progress) == (0, 0)
        assert client.download_url(f"{fake.url}/api/version?x=1") .startswith(b"{")
