"""Typed application keys: everything the routes share lives behind one of these."""
from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from .config import Config
    from .database import Database
    from .events import EventBroker
    from .frame_pipeline import FramePipeline
    from .service import Farm
    from .storage import Storage
    from .timings import Timings

CONFIG = web.AppKey("config", "Config")
TOKEN = web.AppKey("token", str)
DB = web.AppKey("db", "Database")
STORAGE = web.AppKey("storage", "Storage")
EVENTS = web.AppKey("events", "EventBroker")
FARM = web.AppKey("farm", "Farm")
DISPATCHER = FARM  # the name the farm had while it was only the dispatcher (tests use it)
FRAME_PIPELINE = web.AppKey("frame_pipeline", "FramePipeline")
LOOP_LAG = web.AppKey("loop_lag", "Timings")
