"""`brender-coordinator migrate --to`: a SQLite farm copied into PostgreSQL by the real
command, then served by a coordinator on PostgreSQL as it was."""
from __future__ import annotations

import hashlib
import subprocess
import sys

from coordinator.app import create_app
from coordinator.config import Config
from tests.unit.test_api import AUTH, TOKEN, _png, create_shot, node_hello


async def render_all(api, ws) -> None:
    png = _png()
    sha = hashlib.sha256(png).hexdigest()
    await ws.send_json({"type": "ready"})
    job = (await ws.receive_json())["job"]
    for n in job["frames"]:
        resp = await api.put(f"/api/attempts/{job['attempt_id']}/frames/{n}", data=png,
                             headers={**AUTH, "X-Sha256": sha, "X-Render-Time": "1.25"})
        assert resp.status == 201
    await ws.send_json({"type": "job_done", "attempt_id": job["attempt_id"]})


def migrate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "coordinator.cli", "migrate", *args],
                          capture_output=True, text=True, timeout=120)


async def test_a_sqlite_farm_moves_to_postgresql_whole(pg_url, aiohttp_client, tmp_path,
                                                       monkeypatch):
    monkeypatch.delenv("BRENDER_DATABASE", raising=False)
    data = tmp_path / "data"
    old = await aiohttp_client(create_app(Config(data_dir=data, database=""), TOKEN))
    gone = await create_shot(old, name="deleted")
    assert (await old.delete(f"/api/shots/{gone['id']}", headers=AUTH)).status == 200
    shot = await create_shot(old, name="kept", frame_end=2, chunk_size=2)
    ws = await old.ws_connect("/api/node/ws", headers=AUTH)
    node = await node_hello(ws, "box")
    await render_all(old, ws)
    await ws.close()
    before = {path: await (await old.get(path)).json() for path in (
        f"/api/shots/{shot['id']}", f"/api/shots/{shot['id']}/frames", "/api/nodes")}
    thumbnail = before[f"/api/shots/{shot['id']}/frames"]["frames"][0]["thumbnail_url"]
    thumb_bytes = await (await old.get(thumbnail)).read()
    await old.close()

    done = migrate("--data-dir", str(data), "--to", pg_url)
    assert done.returncode == 0, done.stderr
    assert "shots 1" in done.stdout and "frames 2" in done.stdout \
        and "thumbnails 2" in done.stdout and "nodes 1" in done.stdout

    again = migrate("--data-dir", str(data), "--to", pg_url)
    assert again.returncode != 0 and "not empty" in again.stderr

    new = await aiohttp_client(create_app(Config(data_dir=data, database=pg_url), TOKEN))
    for path, was in before.items():
        now = await (await new.get(path)).json()
        if path == "/api/nodes":
            assert [n["id"] for n in now["nodes"]] == [node["node_id"]]
        else:
            assert now == was, path
    assert await (await new.get(thumbnail)).read() == thumb_bytes
    # Ids go on above every id the old farm gave, the deleted shot's too.
    newer = await create_shot(new, name="after")
    assert newer["id"] > shot["id"] > gone["id"]
