"""The coordinator dies mid-shot, or its disk fills: nothing is lost or half-written."""
from __future__ import annotations

import hashlib
import os
import signal
import socket
import time

import pytest
from PIL import Image

from tests.farm import Farm, wait_for
from tests.reliability.test_node_faults import assert_each_frame_once, done_frames, jobs

pytestmark = pytest.mark.blender


def start_half_upload(farm: Farm, attempt_id: str, number: int) -> socket.socket:
    """Send the headers and half of a 24 MB frame's body, then stall.

    12 MB is past what the coordinator holds in memory, so part of the body is
    already in a temp file on disk when the coordinator dies."""
    sock = socket.create_connection(("127.0.0.1", farm.port))
    head = (f"PUT /api/attempts/{attempt_id}/frames/{number} HTTP/1.1\r\n"
            f"Host: 127.0.0.1\r\nAuthorization: Bearer {farm.token}\r\n"
            f"X-Sha256: {'e' * 64}\r\nContent-Length: {24 << 20}\r\n\r\n")
    sock.sendall(head.encode() + b"\x89PNG" + b"\x00" * ((12 << 20) - 4))
    return sock


def spilled(farm: Farm) -> bool:
    """A temp file of a megabyte or more in tmp/: the half upload's (the test scenes'
    frames are a few kilobytes)."""
    for path in (farm.data_dir / "tmp").iterdir():
        try:
            if path.stat().st_size >= 1 << 20:
                return True
        except FileNotFoundError:   # a frame moved into place meanwhile
            pass
    return False


@pytest.mark.usefixtures("backend")   # on SQLite and on PostgreSQL
def test_coordinator_sigkill_mid_shot_loses_nothing(farm_factory, slow_scene):
    farm = farm_factory(nodes=2)
    shot = farm.submit(slow_scene, frame_end=16, chunk_size=4)
    wait_for(lambda: len(done_frames(farm, shot["id"])) >= 4, 90, what="4 frames")
    running = next(j for j in jobs(farm, shot["id"]) if j["status"] == "running")
    pending = [n for n in running["frames"] if n not in done_frames(farm, shot["id"])]
    half = start_half_upload(farm, running["attempt_id"], pending[-1])
    # The half upload's spilled part, not a node's frame passing through tmp/ meanwhile.
    wait_for(lambda: spilled(farm), 10, what="the upload on disk")
    before = done_frames(farm, shot["id"])
    farm.stop_coordinator(signal.SIGKILL)
    half.close()
    assert spilled(farm), "the half upload was in flight"
    time.sleep(2)
    farm.start_coordinator()  # same port, same data dir; nodes find it by themselves
    assert list((farm.data_dir / "tmp").iterdir()) == [], "half-written uploads are dropped"
    shot = farm.wait_shot(shot["id"], 150)
    assert shot["status"] == "completed", farm.debug_dump(shot["id"])
    assert_each_frame_once(farm, shot)
    after = done_frames(farm, shot["id"])
    for number, frame in before.items():
        assert after[number]["sha256"] == frame["sha256"], "recorded frames survive the crash"
    frames_dir = farm.data_dir / "shots" / str(shot["id"]) / "frames"
    for frame in after.values():
        data = (frames_dir / frame["name"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == frame["sha256"]
        with Image.open(frames_dir / frame["name"]) as img:
            img.load()



@pytest.fixture(scope="module")
def noisy_scene(tmp_path_factory):
    """960x540 frames of white noise: about 1.5 MB each, whatever PNG tries."""
    from tests.farm import make_scene
    return make_scene(tmp_path_factory.mktemp("noisy") / "noisy.blend", width=960, height=540,
                      samples=1, frame_end=3, noise_world=True)


def test_full_disk_fails_uploads_cleanly_and_the_job_is_retried(small_disk, tmp_path,
                                                               noisy_scene):
    farm = Farm(tmp_path / "farm")
    farm.data_dir = small_disk / "data"
    try:
        farm.start_coordinator()
        shot = farm.submit(noisy_scene, frame_end=2, chunk_size=2)
        filler = small_disk / "filler"
        free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
        with open(filler, "wb") as f:
            # Room for the database's writes, not for a 1.5 MB frame.
            f.write(b"\0" * max(0, free - 512 * 1024))
        farm.add_node("node1", "--upload-tries", "2")
        wait_for(lambda: any(j["failures"] for j in jobs(farm, shot["id"])), 60,
                 what="an upload to fail")
        failed = farm.client()._request("GET", f"/api/jobs/{jobs(farm, shot['id'])[0]['id']}")
        assert "507" in failed["failure_reason"] or "could not store" in failed["failure_reason"]
        assert list((farm.data_dir / "tmp").iterdir()) == [], "no partial file remains"
        frames_dir = farm.data_dir / "shots" / str(shot["id"]) / "frames"
        assert not frames_dir.exists() or list(frames_dir.iterdir()) == []
        filler.unlink()  # the admin frees space; the retried job now lands
        shot = farm.wait_shot(shot["id"], 120)
        assert shot["status"] == "completed", farm.debug_dump(shot["id"])
        assert_each_frame_once(farm, shot)
    finally:
        farm.close()
