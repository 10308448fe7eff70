"""Two coordinators, one PostgreSQL database and one data dir, real nodes rendering
with real Blender: a coordinator is SIGKILLed mid-shot, and PostgreSQL restarts
mid-shot. Nothing is lost or recorded twice; dashboards see every frame."""
from __future__ import annotations

import json
import signal
import threading
import time
import urllib.request

import pytest

from tests.farm import Farm, wait_for
from tests.reliability.test_node_faults import assert_each_frame_once, done_frames

pytestmark = pytest.mark.blender


class Dashboard:
    """An /api/events stream read in a thread: the frame numbers it heard."""

    def __init__(self, url: str):
        self.frames: list[int] = []
        self._resp = urllib.request.urlopen(f"{url}/api/events", timeout=120)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        event = None
        try:
            for raw in self._resp:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "frame":
                    self.frames.append(json.loads(line[6:])["number"])
        except Exception:
            pass

    def close(self) -> None:
        self._resp.close()


def statuses(farm: Farm) -> dict[str, str]:
    return {n["name"]: n["status"] for n in farm.client()._request("GET", "/api/nodes")["nodes"]}


def two_coordinators(tmp_path, pg_url, **args) -> tuple[Farm, Farm]:
    a = Farm(tmp_path / "a", database=pg_url, **args)
    b = Farm(tmp_path / "b", database=pg_url, **args)
    b.data_dir = a.data_dir        # one farm: one data dir
    a.start_coordinator()
    b.start_coordinator()
    return a, b


def test_sigkill_of_a_coordinator_moves_its_nodes_to_the_other(tmp_path, pg_url, slow_scene):
    a, b = two_coordinators(tmp_path, pg_url)
    try:
        both, other_way = f"{a.url},{b.url}", f"{b.url},{a.url}"
        for name, urls in (("n1", both), ("n2", both), ("n3", other_way)):
            a.nodes[name] = a.add_node(name, "--coordinator", urls)
        wait_for(lambda: a.client().version()["nodes_online"] == 2
                 and b.client().version()["nodes_online"] == 1, 60, what="nodes")
        # Either coordinator lists the whole farm live, whichever each node dialled.
        for farm in (a, b):
            wait_for(lambda: statuses(farm) == {"n1": "idle", "n2": "idle", "n3": "idle"},
                     10, what=f"every node idle on {farm.url}")
            assert farm.client()._request("GET", "/api/farm")["nodes"]["idle"] == 3
        dashboard = Dashboard(b.url)
        shot = b.submit(slow_scene, frame_end=24, chunk_size=3)
        wait_for(lambda: len(done_frames(b, shot["id"])) >= 5, 120, what="5 frames")
        before = len(done_frames(b, shot["id"]))
        a.stop_coordinator(signal.SIGKILL)
        killed = time.monotonic()
        wait_for(lambda: b.client().version()["nodes_online"] == 3, 30, what="3 nodes on b")
        wait_for(lambda: len(done_frames(b, shot["id"])) > before + 2, 60, what="frames on b")
        moved = time.monotonic() - killed
        shot = b.wait_shot(shot["id"], 180)
        assert shot["status"] == "completed", b.debug_dump(shot["id"])
        # What the dead coordinator was receiving is removed by the survivor.
        wait_for(lambda: not any((b.data_dir / "tmp").iterdir()), 30,
                 what="the dead coordinator's half uploads removed")
        assert_each_frame_once(b, shot)
        wait_for(lambda: len(set(dashboard.frames)) >= 24, 10, what="every frame event")
        assert sorted(set(dashboard.frames)) == list(range(1, 25))
        print(f"nodes rendering on the survivor {moved:.1f} s after the SIGKILL")
        dashboard.close()
    finally:
        a.close()
        b.close()


def test_postgresql_restarting_mid_shot_loses_and_doubles_nothing(tmp_path, pg_cluster,
                                                                  pg_url, slow_scene):
    a, b = two_coordinators(tmp_path, pg_url)
    try:
        a.nodes["n1"] = a.add_node("n1", "--coordinator", f"{a.url},{b.url}")
        a.nodes["n2"] = a.add_node("n2", "--coordinator", f"{b.url},{a.url}")
        wait_for(lambda: a.client().version()["nodes_online"] == 1
                 and b.client().version()["nodes_online"] == 1, 60, what="nodes")
        shot = a.submit(slow_scene, frame_end=16, chunk_size=4)
        wait_for(lambda: len(done_frames(a, shot["id"])) >= 3, 120, what="3 frames")
        pg_cluster.pg_ctl("stop", "-m", "fast")
        time.sleep(3)   # frames rendered meanwhile are refused (503) and retried
        pg_cluster.pg_ctl("start", "-w")
        shot = a.wait_shot(shot["id"], 180)
        assert shot["status"] == "completed", a.debug_dump(shot["id"])
        assert_each_frame_once(a, shot)
        logs = [line for farm in (a, b)
                for line in (farm.logs / "coordinator.log").read_text().splitlines()]
        # Frames uploaded during the outage were refused (503) and sent again.
        assert any("PostgreSQL is unavailable" in line and "/api/attempts/" in line
                   for line in logs), "\n".join(logs)
    finally:
        a.close()
        b.close()
