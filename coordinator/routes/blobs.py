"""Content-addressed uploads: a .blend and every file it needs, by sha256."""
from __future__ import annotations

import asyncio

import orjson
from aiohttp import web

from .. import keys
from ..middleware import read_json
from ..storage import Storage
from ..validation import SHA256, ValidationError, sha256

routes = web.RouteTableDef()
# Per call: decoding a document of 100,000 digests (7 MB) held the GIL, and so the
# event loop, for 30 ms and more; clients ask in batches of this many.
MAX_DIGESTS = 10_000
MAX_BODY = 1024 * 1024


@routes.post("/api/blobs/missing")
async def missing_blobs(request: web.Request) -> web.Response:
    """Which of these sha256 digests the coordinator does not have yet."""
    body = await read_json(request, MAX_BODY)
    digests = body.get("sha256") if isinstance(body, dict) else None
    if not isinstance(digests, list) or len(digests) > MAX_DIGESTS:
        raise ValidationError("sha256", f"must be a list of at most {MAX_DIGESTS} digests")
    storage = request.app[keys.STORAGE]
    # A stat per digest: they are checked and looked up on a file thread (it yields
    # the CPU to the loop).
    missing = await asyncio.get_running_loop().run_in_executor(
        storage.executor, _missing, storage, digests)
    return web.Response(body=orjson.dumps({"missing": missing}), content_type="application/json")


def _missing(storage: Storage, digests: list) -> list[str]:
    if not all(isinstance(d, str) and SHA256.match(d) for d in digests):
        for i, d in enumerate(digests):
            sha256(d, f"sha256[{i}]")
    return storage.missing_blobs(digests)


@routes.put("/api/blobs/{sha256}")
async def put_blob(request: web.Request) -> web.Response:
    """Upload one file; its bytes must hash to the sha256 in the path."""
    digest = sha256(request.match_info["sha256"])
    storage = request.app[keys.STORAGE]
    path = storage.blob_path(digest)
    if path.is_file():
        await request.content.readany()
        return web.json_response({"sha256": digest, "size": path.stat().st_size, "new": False})
    limit = request.app[keys.CONFIG].max_upload_bytes
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length,
                                            text=f"body is larger than {limit} bytes")
    _, size, _ = await storage.receive(request.content.iter_chunked(256 * 1024), path, limit,
                                       expected_sha=digest)
    return web.json_response({"sha256": digest, "size": size, "new": True}, status=201)


@routes.get("/api/blobs/{sha256}")
async def get_blob(request: web.Request) -> web.StreamResponse:
    """Download a file by its sha256 (nodes fetch .blend files this way)."""
    path = request.app[keys.STORAGE].blob_path(sha256(request.match_info["sha256"]))
    if not path.is_file():
        raise web.HTTPNotFound(text="no file with that sha256")
    return web.FileResponse(path, headers={"Content-Type": "application/octet-stream"})
