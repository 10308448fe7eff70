"""The app factory: `create_app(config)` wires storage, database, events and routes."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from typing import AsyncIterator

from aiohttp import web

from . import browser_headers, credentials, keys, routes
from .config import Config, resolve_token
from .database import Database, open_database
from .farm_link import FarmLink
from .events import EventBroker
from .frame_pipeline import FramePipeline
from .auth import Auth, audit_middleware, audit_rows, auth_middleware, served_names
from .middleware import error_middleware
from .metrics import FarmMetrics
from .news import frame_landed, news_ctx
from .service import Farm
from .storage import Storage
from .store import audit as audit_sql
from .store import shots as shot_sql
from .timings import Timings, watch_loop_lag

log = logging.getLogger("brender")
# Event streams get a comment line this often, so proxies and browsers keep them open.
PING_SECONDS = 15


def create_app(config: Config, token: str | None = None) -> web.Application:
    app = web.Application(middlewares=[audit_middleware, error_middleware, auth_middleware],
                          client_max_size=config.max_json_bytes)
    app[keys.CONFIG] = config
    app[keys.TOKEN] = token or resolve_token(config)[0]
    app[keys.METRICS] = FarmMetrics()
    app[keys.AUTH] = Auth(app[keys.TOKEN], config.max_auth_failures,
                          served_names(config.host, config.allowed_hosts))
    app.cleanup_ctx.extend([_storage_ctx, _database_ctx, _farm_ctx, _frame_pipeline_ctx,
                            news_ctx])
    app.on_shutdown.append(_close_streams)
    routes.setup(app)
    browser_headers.setup(app)
    return app


async def _storage_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[keys.CONFIG]
    app[keys.STORAGE] = Storage(config.data_dir, pace=config.upload_pace)
    yield


async def _database_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[keys.CONFIG]
    db = open_database(config.database, config.data_dir)
    await db.open()
    app[keys.DB] = db
    app[keys.AUDIT_ROWS] = audit_rows(db)
    yield
    await db.close()


async def _farm_ctx(app: web.Application) -> AsyncIterator[None]:
    """Event broker and the farm service with its scheduler, reaper and node events:
    the background work of a running farm."""
    config, db = app[keys.CONFIG], app[keys.DB]
    events = EventBroker()
    farm = Farm(config, db, app[keys.STORAGE], events)
    app[keys.EVENTS], app[keys.FARM] = events, farm
    app[keys.LOOP_LAG] = lag = Timings()
    await farm.open()
    await asyncio.to_thread(farm.movies.load)
    app[keys.FARM_LINK] = link = FarmLink(db, events, farm.scheduler.kick)
    farm.kick_peers = link.kick_peers
    farm.view.peer_view, link.tell_nodes = link.peer_nodes.view, farm.view.tell_nodes
    farm.scheduler.peers_online = link.peer_nodes.online
    farm.view.told_peers = link.told
    farm.reaper.holds_duties = lambda: link.holds_duties
    tasks = [
        asyncio.create_task(link.run(), name="farm-link"),
        asyncio.create_task(_drop_orphaned_temps(app[keys.STORAGE], link), name="orphans"),
        asyncio.create_task(farm.scheduler.run(), name="dispatch"),
        asyncio.create_task(farm.reaper.run(min(1.0, config.lease_timeout / 4)),
                            name="reaper"),
        asyncio.create_task(farm.channels.run(), name="channel-watch"),
        # Summaries count a shot's jobs (100,000 of them in a big shot): on the bulk
        # connection, so the quick reads never wait behind them.
        asyncio.create_task(events.flush_shots(farm.load_shot), name="shots"),
        asyncio.create_task(farm.availability.run(), name="availability"),
        asyncio.create_task(events.ping_forever(PING_SECONDS), name="event-pings"),
        asyncio.create_task(farm.view.flush_forever(), name="nodes"),
        asyncio.create_task(watch_loop_lag(lag), name="loop-lag"),
        asyncio.create_task(farm.movies.run(), name="movies"),
        asyncio.create_task(_prune_audit_log(db, config, link), name="audit-retention"),
        asyncio.create_task(credentials.watch_revocations(app, config.revocation_check_seconds),
                            name="revocations"),
    ]
    yield
    await farm.movies.close()
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _drop_orphaned_temps(storage: Storage, link: FarmLink,
                               interval: float = 5.0) -> None:
    """Coordinators sharing a data dir: what a dead one was writing into tmp is
    removed by the one holding the farm's duties."""
    while True:
        await asyncio.sleep(interval)
        if link.shared and link.holds_duties:
            try:
                await asyncio.to_thread(storage.drop_orphaned_temps)
            except OSError as exc:
                log.warning("could not clear orphaned uploads: %s", exc)


async def _prune_audit_log(db: Database, config: Config, link: FarmLink) -> None:
    """The audit log keeps `--audit-days` days (0: forever). The coordinator holding
    the farm's duties prunes it soon after it takes them, then every
    `audit_prune_seconds`."""
    if not config.audit_days:
        return
    interval = config.audit_prune_seconds
    last = -math.inf
    while True:
        await asyncio.sleep(min(5.0, interval))  # the farm link takes the duties first
        if not link.holds_duties or time.monotonic() - last < interval:
            continue
        last = time.monotonic()
        try:
            pruned = await prune_audit_log(db, time.time() - config.audit_days * 86400)
        except Exception as exc:  # the database is restarting: next time
            log.warning("could not prune the audit log: %s", exc)
            continue
        if pruned:
            log.info("audit log: %d entries older than %d days removed", pruned,
                     config.audit_days)


async def prune_audit_log(db: Database, before: float) -> int:
    """Every entry made before `before`, a short write at a time; how many went."""
    pruned = 0
    while True:
        gone = await db.write(audit_sql.prune, before)
        pruned += gone
        if gone < audit_sql.PRUNE_BATCH:
            return pruned
        # A free connection writes in its caller's turn of the loop: let the requests
        # and frame records waiting meanwhile go first (a batch is ~3 ms of SQLite).
        await asyncio.sleep(0)


async def _frame_pipeline_ctx(app: web.Application) -> AsyncIterator[None]:
    """The frame path; its worker processes start with the first frame that needs them
    (the heavy pool with the first EXR or very large frame: a farm rendering PNG or
    JPEG never pays its ~45 MB a worker)."""
    config = app[keys.CONFIG]
    app[keys.FRAME_PIPELINE] = pipeline = FramePipeline(
        app[keys.STORAGE], app[keys.DB], lambda frame: frame_landed(app, frame),
        config.max_upload_bytes, config.thumbnail_size, config.frame_workers,
        config.thumbnail_workers)
    link = app[keys.FARM_LINK]
    if link.shared:   # a frame's news leaves with its record's commit (farm_link.py)
        pipeline.tell_peers = link.frame_news
    yield
    await pipeline.close()


async def _close_streams(app: web.Application) -> None:
    """Runs before aiohttp waits for open handlers: end event streams and node channels,
    or a dashboard left open would hold the shutdown for a minute."""
    await app[keys.FARM].close()
