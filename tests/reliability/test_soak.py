"""Soak: 1,000 frames on 4 nodes while nodes are killed and the coordinator restarts."""
from __future__ import annotations

import os
import random
import signal
import time

import pytest

from tests.farm import make_scene, wait_for

pytestmark = [pytest.mark.blender, pytest.mark.slow]

FRAMES = 1000


def test_thousand_frames_survive_kills_and_a_restart(farm_factory, tmp_path_factory):
    seed = int(os.environ.get("BRENDER_SOAK_SEED", time.time()))
    rng = random.Random(seed)
    print(f"soak seed {seed}")
    blend = make_scene(tmp_path_factory.mktemp("soak") / "soak.blend", width=32, height=18,
                       samples=1, frame_end=FRAMES)
    farm = farm_factory(nodes=4, lease_timeout=3)
    shot = farm.submit(blend, frame_end=FRAMES, chunk_size=25)
    client = farm.client()
    kills, restarted = 0, False
    deadline = time.monotonic() + 420
    while time.monotonic() < deadline:
        status = client.shot(shot["id"])
        if status["status"] in ("completed", "failed", "cancelled"):
            break
        done = status["frames_done"]
        if not restarted and done >= FRAMES * 0.4:
            farm.stop_coordinator(signal.SIGKILL)
            time.sleep(1)
            farm.start_coordinator()
            restarted = True
        elif kills < 6 and done >= (kills + 1) * FRAMES / 8:
            name = rng.choice(sorted(farm.nodes))
            farm.nodes[name].send_signal(signal.SIGKILL)
            farm.nodes[name].wait(10)
            farm.add_node(name)  # the machine reboots and its node comes back
            kills += 1
        time.sleep(0.3)
    shot = client.shot(shot["id"])
    assert shot["status"] == "completed", f"seed {seed}: " + farm.debug_dump(shot["id"])
    assert restarted and kills >= 4, (restarted, kills)

    frames = client.frames(shot["id"])
    assert [f["number"] for f in frames] == list(range(1, FRAMES + 1))
    assert all(f["status"] == "done" and f["thumbnail_url"] for f in frames)
    shot_dir = farm.data_dir / "shots" / str(shot["id"])
    assert sorted(p.name for p in (shot_dir / "frames").iterdir()) == \
        [f"frame_{n:06d}.png" for n in range(1, FRAMES + 1)]
    # Every thumbnail is served (a few, spread over the shot, fetched whole).
    for f in frames[::97]:
        assert client.download(f["thumbnail_url"])[:3] == b"\xff\xd8\xff"
    # The completed shot's movie is made from links in tmp/: they go when it is made.
    movie = wait_for(lambda: (m := client.shot(shot["id"])["movie"]) is not None
                     and m["status"] not in ("queued", "making") and m, 120,
                     what="the shot's movie")
    assert movie["status"] == "ready", movie
    assert list((farm.data_dir / "tmp").iterdir()) == []
    assert len({f["node_id"] for f in frames}) >= 3
