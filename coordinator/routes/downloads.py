"""Taking a shot's work home: its preview movie, and its frames (all, some, or one
pass) as one zip streamed as it is made."""
from __future__ import annotations

import time
from pathlib import Path
from typing import AsyncIterator

from aiohttp import web
from brender_protocol import shot as shot_rules
from brender_protocol.formats import frame_stem

from .. import keys, validation
from ..frame_pipeline import UNSAFE
from ..movies import movie_path
from ..storage import OutsideDataDir
from ..store import takeaway as takeaway_sql
from ..zip_stream import Entry, stream_zip
from .shots import shot_or_404

routes = web.RouteTableDef()
MAX_PASS_NAME = 200


@routes.post("/api/shots/{shot_id}/movie")
async def make_movie(request: web.Request) -> web.Response:
    """Make the shot's preview movie now from the frames that have landed (202; its
    state is the shot's `movie`); 409 when no frame has landed yet."""
    shot = await shot_or_404(request)
    if not shot["frames_done"]:
        raise web.HTTPConflict(text=f"no frame of shot {shot['id']} has landed yet")
    state = request.app[keys.FARM].movies.request(shot["id"], shot["frames_done"],
                                                  asked_at=time.time())
    return web.json_response({"movie": state}, status=202)


@routes.get("/api/shots/{shot_id}/movie")
async def get_movie(request: web.Request) -> web.StreamResponse:
    """The shot's preview movie (MP4, H.264), with Range requests; 404 until it is made."""
    shot = await shot_or_404(request)
    storage = request.app[keys.STORAGE]
    path = storage.inside(movie_path(storage, shot["id"]).relative_to(storage.root))
    if not path.is_file():
        state = shot.get("movie") or {}
        why = state.get("error") or (f"it is {state['status']}" if state else "none was made")
        raise web.HTTPNotFound(text=f"shot {shot['id']} has no preview movie yet: {why}")
    name = UNSAFE.sub("_", shot["name"]).strip("._")[:80] or "shot"
    return web.FileResponse(path, headers={
        "Content-Type": "video/mp4", "Cache-Control": "no-cache",
        "Content-Disposition": f'inline; filename="{shot["id"]}-{name}.mp4"'})


def frame_ranges(text: str | None) -> list[tuple[int, int]]:
    """`?frames=1-10,20` as sorted, merged ranges; everything when absent."""
    if text is None:
        return [(-shot_rules.FRAME_LIMIT, shot_rules.FRAME_LIMIT)]
    if not text.strip() or len(text) > shot_rules.MAX_FRAMES_TEXT:
        raise validation.ValidationError("frames", "must be a list like 1-10,20")
    try:
        items = sorted(shot_rules.frame_items(text))
    except shot_rules.BadFrameItem as exc:
        what = "ends before it starts" if exc.reversed else "is not N or A-B"
        raise validation.ValidationError("frames", f"{exc.item[:40]!r} {what}") from None
    merged: list[tuple[int, int]] = []
    for first, last in items:
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return merged


def pass_of(request: web.Request) -> str | None:
    name = request.query.get("pass")
    if name is None:
        return None
    if not name or len(name) > MAX_PASS_NAME or not name.isprintable():
        raise validation.ValidationError("pass", f"must be 1 to {MAX_PASS_NAME} printable "
                                         "characters")
    return name


@routes.get("/api/shots/{shot_id}/frames.zip")
async def frames_zip(request: web.Request) -> web.StreamResponse:
    """The shot's landed frames as one zip, streamed; `?frames=1-10,20` picks frames,
    `?pass=NAME` takes that pass of its extra outputs instead of the frames."""
    shot = await shot_or_404(request)
    ranges = frame_ranges(request.query.get("frames"))
    pass_name = pass_of(request)
    db, storage = request.app[keys.DB], request.app[keys.STORAGE]
    shot_id = shot["id"]
    if pass_name is not None and not await db.read(takeaway_sql.has_pass, shot_id, pass_name):
        raise web.HTTPNotFound(text=f"shot {shot_id} has no pass {pass_name[:80]!r}")
    folder = UNSAFE.sub("_", pass_name or "").strip("._")[:80]

    async def rows(first: int, last: int) -> AsyncIterator[list[dict]]:
        after = first - 1
        while True:
            if pass_name is None:
                page = await db.read_bulk(takeaway_sql.done_frames, shot_id, after,
                                          takeaway_sql.PAGE, last)
            else:
                page = await db.read_bulk(takeaway_sql.pass_outputs, shot_id, pass_name,
                                          after, takeaway_sql.PAGE, last)
            if not page:
                return
            yield page
            after = page[-1]["number"]

    def entry(row: dict) -> Entry | None:
        try:
            path: Path = storage.inside(row["path"])
        except OutsideDataDir:  # a symlink planted out of the data dir: never followed
            return None
        if pass_name is None:
            return Entry(path, row["name"], row["size"])
        return Entry(path, f"{folder or 'pass'}/{frame_stem(row['number'])}{path.suffix}",
                     row["size"])

    async def pages() -> AsyncIterator[list[Entry]]:
        for first, last in ranges:
            async for page in rows(first, last):
                yield [e for e in map(entry, page) if e is not None]

    # Nothing to send is a 404, said before the zip starts.
    first_pages = pages()
    try:
        first = await first_pages.__anext__()
    except StopAsyncIteration:
        raise web.HTTPNotFound(text=f"no frames of shot {shot_id} to download "
                               "(none landed in that range)") from None

    async def all_pages() -> AsyncIterator[list[Entry]]:
        yield first
        async for page in first_pages:
            yield page

    name = UNSAFE.sub("_", shot["name"]).strip("._")[:80] or "shot"
    suffix = f"-{folder}" if pass_name is not None else ""
    return await stream_zip(request, f"{shot_id}-{name}{suffix}-frames.zip", all_pages())
