"""Roles, enrollment and TLS with real processes (issue 18): a node joins with a
one-time code and renders an artist's shot with its own credential; an admin revokes
it mid-job; the coordinator serves HTTPS that nodes and clients verify."""
from __future__ import annotations

import json
import stat
import subprocess
import sys

import pytest

from brender_addon.client import BrenderError, Client, Unauthorized, Unreachable
from tests.certs import make_server_cert
from tests.farm import REPO, Farm, wait_for

pytestmark = pytest.mark.blender


def admin_cli(farm: Farm, *args: str) -> str:
    """`brender-coordinator token|join-code ...` on the running farm's data dir."""
    out = subprocess.run([sys.executable, "-m", "coordinator.cli", *args, "--data-dir",
                          str(farm.data_dir)], cwd=REPO, check=True, capture_output=True,
                         text=True, timeout=60)
    return out.stdout.strip().splitlines()[1].strip()  # the line after the heading


def jobs(farm: Farm, shot_id: int) -> list[dict]:
    return farm.client()._request("GET", f"/api/shots/{shot_id}/jobs")["jobs"]


def test_a_joined_node_renders_an_artists_shot_and_is_revoked_mid_job(
        farm_factory, scene, slow_scene):
    farm = farm_factory(lease_timeout=120)  # a requeue below is the revocation's, not expiry's
    code = admin_cli(farm, "join-code", "--name", "joined")
    anna = admin_cli(farm, "token", "create", "--role", "artist", "--name", "anna")
    node = farm.add_node("n1", join=code)
    farm.wait_nodes_online(1)
    saved = farm.root / "nodes" / "n1" / "credential"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    credential = json.loads(saved.read_text())
    assert credential["token"] not in farm.log("n1")  # never logged

    shot = farm.submit(scene, token=anna, frame_end=2, chunk_size=2)
    done = farm.wait_shot(shot["id"], timeout=180)
    assert done["status"] == "completed" and done["submitted_by"] == "anna"
    [listed] = farm.client()._request("GET", "/api/nodes")["nodes"]
    assert listed["name"] == "joined" and listed["id"] == credential["node_id"]

    # Restarted with the same command line, the node uses its saved credential: the
    # code is not needed again (nor spent again).
    farm.stop_node("n1")
    node = farm.add_node("n1", join=code)

    def reconnected():
        [now] = farm.client()._request("GET", "/api/nodes")["nodes"]
        return now if now["connected_at"] > listed["connected_at"] and \
            now["status"] == "idle" else None
    assert wait_for(reconnected, 60, what="the node to come back")["id"] == \
        credential["node_id"]

    # The join code was spent: a second node cannot join with it.
    second = farm.add_node("n2", join=code)
    assert second.wait(60) != 0
    assert "join code" in farm.log("n2")

    # The artist cannot revoke; the admin can, and the node loses its job at once.
    slow = farm.submit(slow_scene, token=anna, frame_end=12, chunk_size=12)
    wait_for(lambda: any(j["status"] == "running" for j in jobs(farm, slow["id"])), 90,
             what="the node to take the slow shot")
    with pytest.raises(BrenderError) as refused:
        farm.client(anna)._request("POST", f"/api/nodes/{credential['node_id']}/revoke")
    assert refused.value.status == 403
    farm.client()._request("POST", f"/api/nodes/{credential['node_id']}/revoke")
    assert [j["status"] for j in jobs(farm, slow["id"])] == ["queued"]
    assert node.wait(60) == 1  # told 401 when it dials again: it stops
    assert "revoked" in farm.log("n1")
    with pytest.raises(Unauthorized):
        Client(farm.url, credential["token"]).check_token()


def test_tls_coordinator_is_verified_by_nodes_and_clients(farm_factory, tmp_path, scene):
    certs = make_server_cert(tmp_path / "certs")
    farm = farm_factory(tls_cert=certs.cert, tls_key=certs.key, ca_file=str(certs.ca))
    assert farm.url.startswith("https://")
    farm.add_node("trusting")
    farm.wait_nodes_online(1)
    shot = farm.submit(scene, frame_end=1, chunk_size=1)
    assert farm.wait_shot(shot["id"], timeout=180)["status"] == "completed"

    # A node that trusts another CA refuses this coordinator's certificate.
    other = make_server_cert(tmp_path / "other", ca_name="Someone else's CA")
    farm.ca_file = str(other.ca)
    farm.add_node("doubting")
    wait_for(lambda: "CERTIFICATE_VERIFY_FAILED" in farm.log("doubting"), 60,
             what="the node to refuse the certificate")
    with pytest.raises(Unreachable) as failed:
        Client(farm.url, farm.token, ca_file=str(other.ca)).version()
    assert "CERTIFICATE_VERIFY_FAILED" in str(failed.value)
    farm.ca_file = str(certs.ca)
    assert farm.client().version()["nodes_online"] == 1  # only the trusting node


def test_plain_http_to_another_machine_is_refused_unless_insecure(tmp_path):
    remote = "http://192.0.2.10:8080"  # TEST-NET-1: never reached
    with pytest.raises(BrenderError) as refused:
        Client(remote, "t").version()
    assert "--insecure" in str(refused.value)
    with pytest.raises(Unreachable):
        Client(remote, "t", timeout=0.5, insecure=True).version()
    node = subprocess.run([sys.executable, "-m", "node.cli", "--coordinator", remote,
                           "--token", "t", "--blender", sys.executable,
                           "--work-dir", str(tmp_path / "n")], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert node.returncode != 0 and "--insecure" in node.stderr
