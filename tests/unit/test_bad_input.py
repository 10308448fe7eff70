"""Every path parameter tried with traversal, oversized bodies, lying clients."""
from __future__ import annotations

import hashlib
import re

import pytest
from yarl import URL
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coordinator.app import create_app
from coordinator.config import Config
from coordinator.openapi import documented_routes
from brender_protocol.messages import parse_hello
from coordinator.validation import ValidationError

TOKEN = "t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TRAVERSALS = ["..%2F..%2Ftoken", "%2e%2e%2f%2e%2e%2fbrender.db", "..", "%2Fetc%2Fpasswd",
              "..%5C..%5Ctoken", "frame_000001.png%00.jpg", "-1", "99999999999999999999"]


@pytest.fixture
async def api(aiohttp_client, tmp_path):
    config = Config(data_dir=tmp_path / "data", max_upload_bytes=1000, max_json_bytes=2000)
    (tmp_path / "outside.txt").write_text("secret")
    return await aiohttp_client(create_app(config, TOKEN))


async def test_traversal_in_every_path_parameter_is_refused(api, tmp_path):
    before = sorted(p.name for p in tmp_path.iterdir())
    routes = [(m, p) for m, p, _ in documented_routes(api.server.app) if "{" in p]
    assert len(routes) >= 12
    for method, path in routes:
        for bad in TRAVERSALS:
            url = re.sub(r"\{\w+\}", bad, path)
            # encoded=True: send the path as written, with no client-side clean-up.
            raw = URL(str(api.make_url("")).rstrip("/") + url, encoded=True)
            resp = await api.session.request(method.upper(), raw, headers=AUTH, data=b"x")
            assert 400 <= resp.status < 500, (method, url, resp.status)
            if resp.content_type == "application/json":
                assert "error" in await resp.json()
            body = await resp.read()
            assert b"secret" not in body and TOKEN.encode() not in body
    assert sorted(p.name for p in tmp_path.iterdir()) == before


async def test_bodies_over_the_limit_are_refused(api):
    big = b"B" * 5000
    sha = hashlib.sha256(big).hexdigest()
    resp = await api.put(f"/api/blobs/{sha}", data=big, headers=AUTH)
    assert resp.status == 413 and "larger" in (await resp.json())["error"]
    resp = await api.post("/api/shots", data=b"{" + b" " * 3000 + b"}",
                          headers={**AUTH, "Content-Type": "application/json"})
    assert resp.status == 413 and "error" in await resp.json()


async def test_impossible_frame_ranges_and_numbers(api):
    blend = b"BLENDER-v304"
    sha = hashlib.sha256(blend).hexdigest()
    await api.put(f"/api/blobs/{sha}", data=blend, headers=AUTH)
    files = [{"path": "a.blend", "sha256": sha, "size": len(blend)}]
    for over in [{"frame_start": 10, "frame_end": 1}, {"frame_start": 1, "frame_end": 10**9},
                 {"frame_start": 1.5, "frame_end": 3}, {"frame_start": None, "frame_end": 3},
                 {"frame_start": 1, "frame_end": 3, "frame_step": -1},
                 {"frame_start": 1, "frame_end": 3, "chunk_size": 0}]:
        resp = await api.post("/api/shots", headers=AUTH,
                              json={"name": "x", "files": files, **over})
        assert resp.status == 400, over
        assert (await resp.json())["field"].startswith(("frame", "chunk"))


async def test_unknown_ids_are_404(api):
    for method, url in [("GET", "/api/shots/12345"), ("GET", "/api/shots/12345/frames"),
                        ("PATCH", "/api/shots/12345"), ("DELETE", "/api/shots/12345"),
                        ("POST", "/api/shots/12345/pause"), ("GET", "/api/jobs/777"),
                        ("POST", "/api/nodes/" + "a" * 32 + "/enable"),
                        ("GET", "/api/blobs/" + "a" * 64)]:
        resp = await api.request(method, url, headers=AUTH, json={"priority": 5})
        assert resp.status == 404, url
        assert "error" in await resp.json()


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(["type", "name", "node_id", "tags", "cpu_count",
                                        "hostname", "allow_scripts", "running_attempt"]),
                       st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=300),
                                 st.lists(st.text(max_size=60), max_size=60))))
def test_node_hello_is_parsed_or_refused(msg):
    try:
        hello = parse_hello(msg)
    except ValidationError:
        return
    assert hello["name"] and isinstance(hello["tags"], list)
    assert isinstance(hello["allow_scripts"], bool)
