"""A shot's render settings through the API: the file's own by default, overrides checked
and stored, frames lists, fixed or adaptive chunks, missing files, the farm id, and the
migration of shots from before."""
from __future__ import annotations

import json
import sqlite3

import pytest

from coordinator.app import create_app
from coordinator.config import Config
from coordinator.store.migrations import MIGRATIONS
from tests.unit.test_api import AUTH, BLEND, TOKEN, api, create_shot, node_hello, put_blob

# Every test runs on SQLite and on PostgreSQL.
pytestmark = pytest.mark.usefixtures("backend")

__all__ = ["api"]


async def post_shot(api, **over):
    sha = await put_blob(api)
    body = {"name": "s", "files": [{"path": "s.blend", "sha256": sha, "size": len(BLEND)}],
            "frame_start": 1, "frame_end": 4}
    body.update(over)
    return await api.post("/api/shots", json=body, headers=AUTH)


async def refused(api, field: str, **over) -> str:
    resp = await post_shot(api, **over)
    assert resp.status == 400, await resp.text()
    error = (await resp.json())["error"]
    assert error.startswith(f"{field}: "), error
    return error


ALL_OVERRIDES = {
    "scene": "Shot 010", "camera": "CamB", "view_layers": ["Fg", "Bg"],
    "output_format": "OPEN_EXR", "color_depth": "32", "color_mode": "RGBA",
    "exr_codec": "DWAA", "view_transform": "Standard", "look": "None", "exposure": -0.5,
    "film_transparent": True, "resolution_x": 1920, "resolution_y": 804,
    "resolution_percentage": 50,
}


async def test_without_overrides_the_file_decides(api):
    shot = await create_shot(api, chunk_size=None)
    assert shot["render"] == {} and shot["settings_used"] is None and shot["missing"] == []
    # The old top-level fields have no default any more: the file's own.
    assert shot["output_format"] is None and shot["resolution_percentage"] is None
    assert (shot["chunk_mode"], shot["chunk_size"], shot["frames"]) == ("auto", None, None)


async def test_every_override_is_stored_and_returned(api):
    shot = await create_shot(api, render={**ALL_OVERRIDES, "look": None})
    expected = {k: v for k, v in ALL_OVERRIDES.items() if k != "look"}  # null = the file's
    assert shot["render"] == expected
    again = await (await api.get(f"/api/shots/{shot['id']}")).json()
    assert again["render"] == expected and again["output_format"] == "OPEN_EXR"
    listed = (await (await api.get("/api/shots")).json())["shots"][0]
    assert listed["render"] == expected and "missing" not in listed


async def test_old_clients_top_level_format_and_resolution_still_work(api):
    shot = await create_shot(api, output_format="jpeg", resolution_percentage=25)
    assert shot["render"] == {"output_format": "JPEG", "resolution_percentage": 25}
    assert shot["output_format"] == "JPEG" and shot["resolution_percentage"] == 25
    same = await create_shot(api, output_format="PNG", render={"output_format": "PNG"})
    assert same["render"] == {"output_format": "PNG"}
    await refused(api, "output_format", output_format="PNG", render={"output_format": "JPEG"})
    await refused(api, "output_format", output_format="FFMPEG")
    await refused(api, "resolution_percentage", resolution_percentage=0)


@pytest.mark.parametrize("render, field", [
    ({"samples": 0}, "render.samples"),
    ({"denoise": True}, "render.denoise"),
    ({"samples": 1_000_001}, "render.samples"),
    ({"scene": ""}, "render.scene"),
    ({"scene": 3}, "render.scene"),
    ({"camera": "a\nb"}, "render.camera"),
    ({"camera": "x" * 300}, "render.camera"),
    ({"view_layers": "Fg"}, "render.view_layers"),
    ({"view_layers": []}, "render.view_layers"),
    ({"view_layers": ["Fg", "Fg"]}, "render.view_layers"),
    ({"view_layers": ["Fg", 2]}, "render.view_layers"),
    ({"output_format": "FFMPEG"}, "render.output_format"),
    ({"color_depth": "12"}, "render.color_depth"),
    ({"color_depth": True}, "render.color_depth"),
    ({"output_format": "JPEG", "color_depth": "16"}, "render.color_depth"),
    ({"output_format": "PNG", "color_depth": "32"}, "render.color_depth"),
    ({"color_mode": "CMYK"}, "render.color_mode"),
    ({"output_format": "JPEG", "color_mode": "RGBA"}, "render.color_mode"),
    ({"exr_codec": "LZMA"}, "render.exr_codec"),
    ({"output_format": "PNG", "exr_codec": "ZIP"}, "render.exr_codec"),
    ({"view_transform": ""}, "render.view_transform"),
    ({"look": 1}, "render.look"),
    ({"exposure": "1"}, "render.exposure"),
    ({"exposure": 40}, "render.exposure"),
    ({"film_transparent": 1}, "render.film_transparent"),
    ({"resolution_x": 2}, "render.resolution_x"),
    ({"resolution_y": 70000}, "render.resolution_y"),
    ({"resolution_x": 10.5}, "render.resolution_x"),
    ({"resolution_percentage": 1001}, "render.resolution_percentage"),
])
async def test_bad_overrides_are_refused_naming_the_key(api, render, field):
    await refused(api, field, render=render)


async def test_render_must_be_an_object(api):
    await refused(api, "render", render=["PNG"])
    resp = await post_shot(api, render="PNG")
    assert resp.status == 400
    assert (await api.get("/api/shots")).status == 200
    assert (await (await api.get("/api/shots")).json())["shots"] == []  # nothing was stored


async def test_a_frames_list_is_expanded_exactly(api):
    shot = await create_shot(api, frames="1-10, 20,30-40,35-36 ,-3", frame_start=None,
                             frame_end=None, chunk_size=None)
    expected = [-3] + list(range(1, 11)) + [20] + list(range(30, 41))
    frames = (await (await api.get(f"/api/shots/{shot['id']}/frames")).json())["frames"]
    assert [f["number"] for f in frames] == expected
    assert shot["frames_total"] == len(expected)
    assert (shot["frame_start"], shot["frame_end"]) == (-3, 40)
    assert shot["frames"] == "1-10, 20,30-40,35-36 ,-3"
    jobs = (await (await api.get(f"/api/shots/{shot['id']}/jobs")).json())["jobs"]
    assert sorted(n for j in jobs for n in j["frames"]) == expected


async def test_frame_step_applies_inside_each_range(api):
    shot = await create_shot(api, frames="1-9,20,30-34", frame_step=4, chunk_size=None)
    frames = (await (await api.get(f"/api/shots/{shot['id']}/frames")).json())["frames"]
    assert [f["number"] for f in frames] == [1, 5, 9, 20, 30, 34]


@pytest.mark.parametrize("frames", ["", "1-", "a-b", "10-1", "1;2", "1-10,,20", 12, ["1"],
                                    "1-200000", "1-60000,70000-130000", "1-2," * 30_000])
async def test_bad_frames_lists_are_refused(api, frames):
    await refused(api, "frames", frames=frames)


async def test_a_frames_list_needs_no_start_or_end(api):
    resp = await post_shot(api, frames="5", frame_start=None, frame_end=None)
    assert resp.status == 201
    await refused(api, "frame_start", frame_start=None)  # a plain range still needs both


async def test_chunk_size_fixed_or_auto(api):
    fixed = await create_shot(api, frame_end=48, chunk_size=6)
    assert (fixed["chunk_mode"], fixed["chunk_size"]) == ("fixed", 6)
    jobs = (await (await api.get(f"/api/shots/{fixed['id']}/jobs")).json())["jobs"]
    assert [len(j["frames"]) for j in jobs] == [6] * 8
    auto = await create_shot(api, frame_end=48, chunk_size="auto")
    assert (auto["chunk_mode"], auto["chunk_size"]) == ("auto", None)
    jobs = (await (await api.get(f"/api/shots/{auto['id']}/jobs")).json())["jobs"]
    assert [len(j["frames"]) for j in jobs] == [1] * 48  # grown once frames are timed
    for bad in (0, "six", 2.5, True, 100_001):
        await refused(api, "chunk_size", chunk_size=bad)


async def test_missing_files_are_stored_and_returned(api):
    missing = [{"path": "//textures/wood.png", "used_by": "image 'wood'"},
               {"path": "C:\\lib\\rig.blend", "used_by": "library 'rig'"},
               {"path": "/abs/é.exr"}]
    shot = await create_shot(api, missing=missing)
    missing[2]["used_by"] = ""
    assert shot["missing"] == missing
    assert (await (await api.get(f"/api/shots/{shot['id']}")).json())["missing"] == missing
    await refused(api, "missing", missing={"path": "x"})
    await refused(api, "missing", missing=[{"path": "x"}] * 10_001)
    await refused(api, "missing[0]", missing=["x.png"])
    await refused(api, "missing[1].path", missing=[{"path": "a"}, {"used_by": "b"}])
    await refused(api, "missing[0].path", missing=[{"path": "a\x00b"}])
    await refused(api, "missing[0].used_by", missing=[{"path": "a", "used_by": 5}])
    await refused(api, "missing[0].size", missing=[{"path": "a", "size": 5}])


async def test_the_farm_id_is_made_once_per_data_dir(aiohttp_client, tmp_path):
    ids = []
    for _ in range(2):   # the same data dir, a restarted coordinator
        client = await aiohttp_client(create_app(Config(data_dir=tmp_path / "d"), TOKEN))
        ws = await client.ws_connect("/api/node/ws", headers=AUTH)
        ids.append((await node_hello(ws))["farm_id"])
        await ws.close()
        await client.close()
    assert ids[0] == ids[1] and len(ids[0]) == 32 and int(ids[0], 16) >= 0
    assert (tmp_path / "d" / "farm_id").read_text().strip() == ids[0]
    other = await aiohttp_client(create_app(Config(data_dir=tmp_path / "e"), TOKEN))
    ws = await other.ws_connect("/api/node/ws", headers=AUTH)
    assert (await node_hello(ws))["farm_id"] != ids[0]
    await ws.close()


@pytest.mark.sqlite_only
async def test_shots_from_before_migrate_with_their_settings(aiohttp_client, tmp_path):
    data = tmp_path / "old"
    data.mkdir()
    conn = sqlite3.connect(data / "brender.db")
    for version, script in enumerate(MIGRATIONS[:4], start=1):
        conn.executescript(script)
        conn.execute(f"PRAGMA user_version={version}")
    conn.execute(
        """INSERT INTO shots (id, name, status, priority, blend_path, files, frame_start,
           frame_end, frame_step, chunk_size, output_format, resolution_percentage, fps,
           created_at, frames_total) VALUES (7, 'old', 'queued', 50, 'a.blend', ?, 1, 4, 1,
           5, 'JPEG', 50, 24, 1, 4)""", (json.dumps([{"path": "a.blend", "sha256": "a" * 64,
                                                      "size": 1}]),))
    conn.execute("INSERT INTO jobs (id, shot_id, ordinal, status, frames) "
                 "VALUES (1, 7, 0, 'queued', '[1,2]')")
    conn.execute("INSERT INTO jobs (id, shot_id, ordinal, status, frames, failure_reason) "
                 "VALUES (2, 7, 1, 'failed', '[3,4]', 'out of memory')")
    conn.executemany("INSERT INTO frames (shot_id, number, job_id, status) VALUES (7,?,?,?)",
                     [(1, 1, "queued"), (2, 1, "queued"), (3, 2, "done"), (4, 2, "queued")])
    conn.commit()
    conn.close()
    client = await aiohttp_client(create_app(Config(data_dir=data), TOKEN))
    shot = await (await client.get("/api/shots/7")).json()
    assert shot["render"] == {"output_format": "JPEG", "resolution_percentage": 50}
    assert (shot["chunk_mode"], shot["chunk_size"], shot["missing"]) == ("auto", None, [])
    assert shot["frames_total"] == 4 and shot["name"] == "old"
    frames = (await (await client.get("/api/shots/7/frames")).json())["frames"]
    # The frames a failed job left unrendered are failed, with its reason.
    assert [(f["status"], f["failure_reason"]) for f in frames] == \
        [("queued", None), ("queued", None), ("done", None), ("failed", "out of memory")]
    ws = await client.ws_connect("/api/node/ws", headers=AUTH)
    await node_hello(ws)
    await ws.send_json({"type": "ready"})
    job = (await ws.receive_json())["job"]
    assert job["render"] == {"output_format": "JPEG", "resolution_percentage": 50}
    assert (job["output_format"], job["resolution_percentage"]) == ("JPEG", 50)
    await ws.close()
