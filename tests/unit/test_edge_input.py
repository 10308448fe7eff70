"""Bad input at the edge: every malformed request is a JSON 4xx naming the field, and
a shot whose files no node could lay out is refused at submit (issue 12, items 2, 4, 6)."""
from __future__ import annotations

import hashlib
import json

import pytest
from yarl import URL

from coordinator.app import create_app
from coordinator.config import Config
from brender_protocol.messages import parse_hello
from coordinator.validation import ValidationError

TOKEN = "t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
JSON = {**AUTH, "Content-Type": "application/json"}
BLEND = b"BLENDER-v304" + b"\x00" * 100


@pytest.fixture
async def api(aiohttp_client, tmp_path):
    return await aiohttp_client(create_app(Config(data_dir=tmp_path / "data"), TOKEN))


async def put_blob(api, data: bytes) -> str:
    sha = hashlib.sha256(data).hexdigest()
    resp = await api.put(f"/api/blobs/{sha}", data=data, headers=AUTH)
    assert resp.status in (200, 201)
    return sha


async def shot_body(api, *extra_paths: str, **over) -> dict:
    """A valid shot (s.blend plus a texture per extra path), with `over` applied."""
    blend, texture = await put_blob(api, BLEND), await put_blob(api, b"texture")
    files = [{"path": "s.blend", "sha256": blend, "size": len(BLEND)}]
    files += [{"path": p, "sha256": texture, "size": 7} for p in extra_paths]
    return {"name": "s", "files": files, "frame_start": 1, "frame_end": 2, **over}


async def refused(resp, field: str, status: int = 400) -> str:
    assert resp.status == status, (resp.status, await resp.text())
    body = await resp.json()
    assert body.get("field") == field, body
    return body["error"]


async def test_a_file_name_with_a_lone_surrogate_is_refused_at_submit(api):
    # What json.dumps(Path("caf\xe9.png" read as bytes).as_posix()) sends: "\udce9".
    body = await shot_body(api, "textures/caf\udce9.png")
    resp = await api.post("/api/shots", data=json.dumps(body), headers=JSON)
    error = await refused(resp, "files[1].path")
    assert "surrogate" in error
    assert (await (await api.get("/api/shots")).json())["shots"] == []


@pytest.mark.parametrize("field", ["name", "submitted_by"])
async def test_lone_surrogates_in_names_are_refused(api, field):
    body = await shot_body(api, **{field: "Ren\udcc3\udca9"})
    resp = await api.post("/api/shots", data=json.dumps(body), headers=JSON)
    await refused(resp, field)


@pytest.mark.parametrize("paths, field, words", [
    (["a", "a/tex.png"], "files[1].path", "folder"),           # a file and a folder
    (["tex/a.png", "tex"], "files[2].path", "folder"),
    (["Tex.png", "tex.png"], "files[2].path", "case"),
    (["CON"], "files[1].path", "Windows"),
    (["maps/aux.png"], "files[1].path", "Windows"),
    (["lpt1.txt"], "files[1].path", "Windows"),
    (["trailing./a.png"], "files[1].path", "Windows"),
    (["what?.png"], "files[1].path", "Windows"),
    (["evil\u202egnp.exe"], "files[1].path", "bidirectional"),
    (["a\u2066b.png"], "files[1].path", "bidirectional"),
    (["tab\there.png"], "files[1].path", "control"),
    (["x" * 300 + ".png"], "files[1].path", "255 bytes"),
])
async def test_file_lists_no_node_can_lay_out_are_refused(api, paths, field, words):
    resp = await api.post("/api/shots", json=await shot_body(api, *paths), headers=AUTH)
    assert words in await refused(resp, field)


async def test_a_file_list_every_node_can_lay_out_is_accepted(api):
    body = await shot_body(api, "tex/café.png", "tex/a/b.png", "console.png", "icons/x.png")
    resp = await api.post("/api/shots", json=body, headers=AUTH)
    assert resp.status == 201, await resp.text()


# Each of these got a 500 before (issue 12, item 4).
MALFORMED_URLS = [
    ("GET", "/api/shots/%C2%B2"), ("GET", "/api/shots/%E2%91%A0"),          # ², ①
    ("GET", "/api/jobs/%C2%B2"), ("PATCH", "/api/shots/%E2%91%A0"),
    ("POST", "/api/shots/%C2%B3/pause"), ("GET", "/api/shots/%C2%B9/frames"),
    ("GET", "/files/shots/%C2%B2/frames/frame_000001.png"),
    ("PUT", "/api/attempts/" + "a" * 32 + "/frames/%C2%B2"),
]


@pytest.mark.parametrize("method, url", MALFORMED_URLS)
async def test_unicode_digits_in_ids_are_400(api, method, url):
    raw = URL(str(api.make_url("")).rstrip("/") + url, encoded=True)
    resp = await api.session.request(method, raw, headers={**AUTH, "X-Sha256": "a" * 64},
                                     data=b"{}")
    assert resp.status == 400, (url, await resp.text())
    assert (await resp.json())["field"] in ("shot_id", "job_id", "number")


async def test_unicode_digits_in_offsets_are_400(api):
    shot = await (await api.post("/api/shots", json=await shot_body(api), headers=AUTH)).json()
    for query, field in [("offset=%C2%B2", "offset"), ("limit=%E2%91%A0", "limit"),
                         ("offset=" + "9" * 5000, "offset")]:
        raw = URL(str(api.make_url("")).rstrip("/") + f"/api/shots/{shot['id']}/frames?{query}",
                  encoded=True)
        await refused(await api.session.get(raw), field)


@pytest.mark.parametrize("data, words", [
    (b'{"name": "s", "priority": ' + b"7" * 5000 + b"}", "digits"),   # over 4,300 digits
    (b"[" * 100_000 + b"]" * 100_000, "nested"),
    (b'{"a":' * 5000 + b"1" + b"}" * 5000, "nested"),
    (b'{"name": "caf\xe9"}', "UTF-8"),                                  # Latin-1, not UTF-8
    (b"\xff\xfe{\x00}\x00", "UTF-8"),
    (b'{"priority": NaN}', "NaN"),
])
@pytest.mark.parametrize("method, url", [("POST", "/api/shots"), ("PATCH", "/api/shots/1"),
                                         ("POST", "/api/blobs/missing")])
async def test_undecodable_bodies_are_400(api, method, url, data, words):
    if url == "/api/shots/1":
        await api.post("/api/shots", json=await shot_body(api), headers=AUTH)
    resp = await api.request(method, url, data=data, headers=JSON)
    assert words in await refused(resp, "body")


async def test_a_nul_byte_in_a_dashboard_path_is_404(api):
    for path in ("/app%00.js", "/static/a%00b", "/views/%00"):
        raw = URL(str(api.make_url("")).rstrip("/") + path, encoded=True)
        resp = await api.session.get(raw)
        assert resp.status == 404, (path, await resp.text())
        assert "error" in await resp.json()


@pytest.mark.parametrize("field, value", [("name", "node\x00"), ("name", "n\u202eode"),
                                          ("hostname", "h\udce9"), ("platform", "l\x1binux")])
def test_node_hello_text_is_valid_unicode(field, value):
    hello = {"type": "hello", "name": "n1", field: value}
    with pytest.raises(ValidationError) as err:
        parse_hello(hello)
    assert err.value.field == field
