"""The coordinator as a user starts it: one command, a generated token, clean stops."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from brender_addon.client import Client
from tests.farm import REPO, free_port, wait_for


def start(tmp_path, *args) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "coordinator.cli", "--data-dir",
                             str(tmp_path / "data"), "--port", str(port), *args],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: _answers(url) or proc.poll() is not None, 30, what="coordinator")
    return proc, url


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url + "/api/version", timeout=2).read()
        return True
    except OSError:
        return False


def test_first_start_generates_saves_and_prints_a_token(tmp_path):
    proc, url = start(tmp_path)
    try:
        token = (tmp_path / "data" / "token").read_text().strip()
        assert len(token) >= 24
        assert (tmp_path / "data" / "token").stat().st_mode & 0o077 == 0
        assert Client(url, token).check_token()["role"] == "admin"  # the farm token
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert token in out
    # The second start keeps the same token and does not print it again.
    proc, url = start(tmp_path)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert token not in out
    assert (tmp_path / "data" / "token").read_text().strip() == token


def test_sigterm_stops_promptly_with_a_dashboard_stream_open(tmp_path):
    proc, url = start(tmp_path, "--token", "t")
    stream = urllib.request.urlopen(url + "/api/events", timeout=30)
    assert b"event: hello" in stream.readline() + stream.readline()
    began = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert time.monotonic() - began < 10
    stream.close()


@pytest.mark.blender
def test_one_command_farm_renders_with_its_local_node(tmp_path, scene):
    proc, url = start(tmp_path, "--token", "tok", "--local-node")
    try:
        client = Client(url, "tok")
        wait_for(lambda: client.version()["nodes_online"] == 1, 60, what="the local node")
        result = subprocess.run(
            [sys.executable, "-m", "brender_addon.submit_cli", str(scene), "--coordinator", url,
             "--token", "tok", "--frames", "1-3", "--wait"],
            cwd=REPO, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        shot_id = int(result.stdout.split()[0])
        assert client.shot(shot_id)["frames_done"] == 3
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    time.sleep(0.5)
    leftover = subprocess.run(["pgrep", "-f", "node.cli --coordinator " + url],
                              capture_output=True, text=True)
    assert leftover.stdout.strip() == "", "the local node stops with the coordinator"
