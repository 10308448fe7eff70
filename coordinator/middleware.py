"""JSON errors for every failure (who may call what: auth.py)."""
from __future__ import annotations

import asyncio
import logging
import sqlite3
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from . import keys
from .pacing import TooSlow, paced
from .storage import DigestMismatch, OutsideDataDir, TooLarge
from .store.connection import StoreUnavailable
from .validation import ValidationError, parse_json

log = logging.getLogger("brender.http")

# Bodies larger than this are decoded on a worker thread: 100,000 digests are 7 MB.
DECODE_IN_THREAD = 512 * 1024


def json_error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") \
            else exc.reason
        return json_error(exc.status, message or exc.reason)
    except ValidationError as exc:
        return json_error(400, exc.message and f"{exc.field}: {exc.message}", field=exc.field)
    except TooLarge as exc:
        return json_error(413, str(exc))
    except TooSlow as exc:
        return json_error(408, str(exc))
    except DigestMismatch as exc:
        return json_error(422, str(exc))
    except OutsideDataDir:
        return json_error(404, "no such file")
    except StoreUnavailable as exc:
        # PostgreSQL restarting: nothing was written; the node retries its upload.
        log.warning("%s on %s", exc, request.path)
        response = json_error(503, "the database is unavailable; try again shortly")
        response.headers["Retry-After"] = "2"
        return response
    except sqlite3.OperationalError as exc:
        if "full" not in str(exc):
            raise
        log.error("database write failed on %s: %s", request.path, exc)
        return json_error(507, "the coordinator's disk is full; try again later")
    except OSError as exc:
        # Disk full and friends: the upload is refused whole; the client retries later.
        log.error("storage error on %s: %s", request.path, exc)
        return json_error(507, f"the coordinator could not store the data: {exc.strerror}")
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return json_error(500, "internal error; see the coordinator log")


async def read_json(request: web.Request, max_bytes: int | None = None) -> object:
    """The request's JSON document, checked by `validation.parse_json`; at most
    `max_bytes` (default: the config's `max_json_bytes`), read at the upload pace."""
    if request.content_type not in ("application/json", ""):
        raise web.HTTPUnsupportedMediaType(text="send JSON (Content-Type: application/json)")
    config = request.app[keys.CONFIG]
    limit = max_bytes or config.max_json_bytes
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge(f"body is larger than {limit} bytes")
    body = bytearray()
    async for chunk in paced(request.content.iter_chunked(256 * 1024), config.upload_pace):
        body += chunk
        if len(body) > limit:
            raise TooLarge(f"body is larger than {limit} bytes")
    if not body:
        return {}
    if len(body) > DECODE_IN_THREAD:
        return await asyncio.to_thread(parse_json, bytes(body))
    return parse_json(body)
