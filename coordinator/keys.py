"""Typed application keys: everything the routes share lives behind one of these."""
from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from .auth import Auth
    from .config import Config
    from .database import Database
    from .delivery import Delivery
    from .events import EventBroker
    from .farm_link import FarmLink
    from .frame_pipeline import FramePipeline
    from .metrics import FarmMetrics
    from .batches import Batches
    from .service import Farm
    from .storage import Storage
    from .timings import Timings
    from .webhooks import Webhooks

CONFIG: web.AppKey[Config] = web.AppKey("config")
TOKEN = web.AppKey("token", str)  # the farm token: an admin's (issue 18)
AUTH: web.AppKey[Auth] = web.AppKey("auth")
DB: web.AppKey[Database] = web.AppKey("db")
AUDIT_ROWS: web.AppKey[Batches[tuple, None]] = web.AppKey("audit_rows")  # the audit log's writes
STORAGE: web.AppKey[Storage] = web.AppKey("storage")
EVENTS: web.AppKey[EventBroker] = web.AppKey("events")
FARM: web.AppKey[Farm] = web.AppKey("farm")
DISPATCHER = FARM  # the name the farm had while it was only the dispatcher (tests use it)
FRAME_PIPELINE: web.AppKey[FramePipeline] = web.AppKey("frame_pipeline")
FARM_LINK: web.AppKey[FarmLink] = web.AppKey("farm_link")
LOOP_LAG: web.AppKey[Timings] = web.AppKey("loop_lag")
DELIVERY: web.AppKey[Delivery] = web.AppKey("delivery")
WEBHOOKS: web.AppKey[Webhooks] = web.AppKey("webhooks")
METRICS: web.AppKey[FarmMetrics] = web.AppKey("metrics")
