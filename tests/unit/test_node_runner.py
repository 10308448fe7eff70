"""What the runner takes from an assignment and what it sends with each frame."""
from __future__ import annotations

import hashlib

import aiohttp
from aiohttp import web

from node.runner import Uploads, files_digest, job_overrides


def test_only_the_overrides_that_are_set_apply():
    job = {"render": {"camera": "Side", "look": None, "film_transparent": False},
           "output_format": None, "resolution_percentage": None}
    assert job_overrides(job) == {"camera": "Side", "film_transparent": False}


def test_a_coordinator_from_before_render_still_sets_format_and_percentage():
    assert job_overrides({"output_format": "JPEG", "resolution_percentage": 50}) == \
        {"output_format": "JPEG", "resolution_percentage": 50}


def test_a_warm_session_is_told_apart_by_the_files_it_holds():
    red = [{"path": "shot.blend", "sha256": "a" * 64}, {"path": "t.png", "sha256": "c" * 64}]
    blue = [{"path": "shot.blend", "sha256": "b" * 64}, {"path": "t.png", "sha256": "c" * 64}]
    assert files_digest(red) != files_digest(blue)
    assert files_digest(red) == files_digest(red[::-1]), "the order files are listed in is not"


async def test_each_frame_goes_up_with_the_format_it_was_written_in(aiohttp_server, tmp_path):
    received: list[tuple[str, dict, bytes]] = []

    async def put_frame(request: web.Request) -> web.Response:
        received.append((request.match_info["number"], dict(request.headers),
                         await request.read()))
        return web.json_response({"recorded": True}, status=201)

    app = web.Application()
    app.router.add_put("/api/attempts/{attempt}/frames/{number}", put_frame)
    server = await aiohttp_server(app)
    frame = tmp_path / "frame_000007.tif"
    frame.write_bytes(b"II*\x00 a tiff")
    async with aiohttp.ClientSession() as http:
        base = str(server.make_url("")).rstrip("/")
        uploads = Uploads(http, lambda: base, "c" * 32)
        uploads.add(7, frame, 1.25, "TIFF")
        await uploads.finish()
    ((number, headers, body),) = received
    assert (number, body) == ("7", b"II*\x00 a tiff")
    assert headers["X-Output-Format"] == "TIFF"
    assert headers["X-Sha256"] == hashlib.sha256(body).hexdigest()
