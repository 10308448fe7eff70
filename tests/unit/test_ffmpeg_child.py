"""ffmpeg is started from a thread (no fork of the coordinator, see movie_encoding.py):
it still runs niced and dies with the coordinator, even one killed with SIGKILL."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

CHILD = """
import asyncio, sys, time
from coordinator.movie_encoding import _spawn
async def main():
    proc = await asyncio.get_running_loop().run_in_executor(None, _spawn, ["sleep", "60"])
    print(proc.pid, flush=True)
    time.sleep(60)
asyncio.run(main())
"""


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's /proc")
def test_ffmpeg_runs_niced_and_dies_with_a_killed_coordinator():
    coordinator = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE,
                                   text=True)
    try:
        pid = int(coordinator.stdout.readline())
        time.sleep(0.2)   # setpriv has exec'd the command
        assert alive(pid)
        assert os.getpriority(os.PRIO_PROCESS, pid) == 10
        coordinator.send_signal(signal.SIGKILL)
        coordinator.wait(10)
        deadline = time.monotonic() + 10
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(pid), "the child outlived the coordinator"
    finally:
        coordinator.kill()
