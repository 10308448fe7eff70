"""Big JSON lists sent in pages: `{"<key>": [...], ...}` written a page at a time.

A 100,000-frame shot's frame list is 28 MB of JSON; encoded in one piece it held the
event loop for seconds. Each page is read on the database's thread and encoded in a
millisecond or two, and the loop serves others between pages.
"""
from __future__ import annotations

import asyncio
from typing import AsyncIterator

import orjson
from aiohttp import web


async def stream_list(request: web.Request, key: str, pages: AsyncIterator[list],
                      tail: dict | None = None) -> web.StreamResponse:
    """Answer `{key: [every item of every page], **tail}`, written page by page."""
    response = web.StreamResponse(headers={"Content-Type": "application/json; charset=utf-8"})
    await response.prepare(request)
    await response.write(b'{"' + key.encode() + b'":[')
    first = True
    async for page in pages:
        if page:
            items = orjson.dumps(page)[1:-1]
            await response.write(items if first else b"," + items)
            first = False
        await asyncio.sleep(0)
    end = orjson.dumps(tail)[1:] if tail else b"}"
    await response.write(b"]" + (b"," + end if tail else end))
    await response.write_eof()
    return response
