"""Arbitrary input at every route of the OpenAPI document: never a 5xx, and a 4xx
changes nothing (database rows and data-dir files are the same before and after)."""
from __future__ import annotations

import asyncio
import hashlib
import json
import re
from pathlib import Path
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from aiohttp.test_utils import TestClient, TestServer

from coordinator.app import create_app
from coordinator.config import Config
from tests.unit.roles_kit import snapshot

TOKEN = "t0ken"
BLEND = b"BLENDER-v304" + b"\x00" * 100
# The add-on zip route takes no input and builds dist/ in the repository.
SKIPPED = {("get", "/addon/brender_addon.zip")}

# Every character, lone surrogates and controls included.
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
numbers = st.one_of(st.integers(), st.integers(min_value=10**30, max_value=10**60),
                    st.floats(allow_nan=False))
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), numbers, any_text),
    lambda inner: st.one_of(st.lists(inner, max_size=5),
                            st.dictionaries(st.one_of(any_text, st.sampled_from(
                                ["name", "files", "path", "sha256", "priority", "frame_start",
                                 "frame_end", "size", "blend_path"])), inner, max_size=5)),
    max_leaves=20)
path_values = st.one_of(
    st.sampled_from(["1", "0", "2", "-1", "%C2%B2", "%E2%91%A0", "%D9%A3", "9" * 30, "a" * 32, "a" * 64,
                     "frame_000001.png", "frames", "thumbnails", "..", "%2e%2e", "%00",
                     "%ff", "%ed%b3%a9"]),
    any_text.filter(bool).map(lambda s: quote(s, safe="", errors="surrogatepass")))
query_keys = st.sampled_from(["offset", "limit", "status", "window", "token", "after"])
bodies = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),          # lone surrogates escaped
    st.binary(max_size=200),
    st.sampled_from([b"[" * 50_000, b'{"a":' * 3000 + b"1" + b"}" * 3000,
                     b'{"priority": ' + b"9" * 5000 + b"}", b'{"name": "\xe9"}', b""]))


async def start(data_dir: Path) -> TestClient:
    # Wrong tokens are drawn often: no 429 for them here (test_roles.py checks it).
    config = Config(data_dir=data_dir, max_auth_failures=10**9)
    client = TestClient(TestServer(create_app(config, TOKEN)))
    await client.start_server()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    sha = hashlib.sha256(BLEND).hexdigest()
    await client.put(f"/api/blobs/{sha}", data=BLEND, headers=auth)
    resp = await client.post("/api/shots", headers=auth, json={
        "name": "seed", "files": [{"path": "s.blend", "sha256": sha, "size": len(BLEND)}],
        "frame_start": 1, "frame_end": 3})
    assert resp.status == 201
    return client


async def probe(client: TestClient, method: str, path: str, params: list[str],
                query: dict[str, str], body: bytes, headers: dict[str, str]) -> tuple:
    filled = iter(params)
    url = re.sub(r"\{\w+\}", lambda _: next(filled), path)
    encoded = "&".join(f"{k}={quote(v, safe='', errors='surrogatepass')}"
                       for k, v in query.items())
    raw = str(client.make_url("")).rstrip("/") + url + (f"?{encoded}" if encoded else "")
    resp = await client.session.request(method.upper(), URL(raw, encoded=True),
                                        data=body, headers=headers)
    try:
        if path == "/api/events" and resp.status == 200:
            return resp.status, None    # a stream: its status line is all we check
        payload = await resp.read()
        return resp.status, (resp.content_type, payload)
    finally:
        resp.close()


def test_no_route_answers_5xx_or_changes_anything_on_4xx(tmp_path):
    data_dir = tmp_path / "data"
    loop = asyncio.new_event_loop()
    client = loop.run_until_complete(start(data_dir))
    try:
        doc = loop.run_until_complete(
            (loop.run_until_complete(client.get("/api/openapi.json"))).json())
        routes = sorted((m, p) for p, ops in doc["paths"].items() for m in ops
                        if (m, p) not in SKIPPED)
        assert len(routes) >= 20
        state = {"before": snapshot(data_dir)}

        @settings(max_examples=400, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(route=st.sampled_from(routes), data=st.data(), body=bodies,
               query=st.dictionaries(query_keys, any_text, max_size=3),
               content_type=st.sampled_from(["application/json", "", "text/plain",
                                             "application/octet-stream"]),
               token=st.sampled_from([TOKEN, "", "wrong"]))
        def check(route, data, body, query, content_type, token):
            method, path = route
            params = [data.draw(path_values) for _ in re.findall(r"\{\w+\}", path)]
            headers = {"Content-Type": content_type, "X-Sha256": hashlib.sha256(body).hexdigest()}
            if token:
                headers["Authorization"] = f"Bearer {token}"
            status, answer = loop.run_until_complete(
                probe(client, method, path, params, query, body, headers))
            assert status < 500, (method, path, params, query, body[:200], answer)
            after = snapshot(data_dir)
            if 400 <= status < 500:
                assert answer[0] == "application/json", (method, path, answer)
                assert "error" in json.loads(answer[1])
                assert after == state["before"], (method, path, params, query, body[:200])
            state["before"] = after

        check()
    finally:
        loop.run_until_complete(client.close())
        loop.close()
