"""What follows a frame or a shot beyond the farm itself (issue 17): delivery to studio
storage and webhooks, started with the app and fed by the farm's events."""
from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncIterator

from aiohttp import web

from . import keys
from .delivery import Delivery
from .webhooks import Webhooks


def frame_landed(app: web.Application, frame: dict) -> None:
    """A frame was recorded: dashboards hear of it, its delivery is queued; a suspicious
    one sent back to the queue (a re-render job) is claimed for the idle nodes now."""
    farm = app[keys.FARM]
    farm.frame_landed(frame)
    if frame.get("status") == "queued":
        farm.kick()
    app[keys.DELIVERY].frame_landed(frame)


async def news_ctx(app: web.Application) -> AsyncIterator[None]:
    config, db, farm = app[keys.CONFIG], app[keys.DB], app[keys.FARM]
    shared = config.database.startswith("postgres")   # coordinators may share the farm
    app[keys.DELIVERY] = delivery = Delivery(config, db, app[keys.STORAGE],
                                             farm.view.shot_changed,
                                             lambda: farm.reaper.holds_duties())
    app[keys.WEBHOOKS] = webhooks = Webhooks(db, config.webhook_retry_seconds,
                                             lambda: farm.reaper.holds_duties())
    app[keys.EVENTS].observers.append(webhooks.farm_event)
    farm.node_lost = webhooks.node_lost
    tasks = [asyncio.create_task(delivery.run(shared), name="delivery"),
             asyncio.create_task(webhooks.run(), name="webhooks")]
    yield
    farm.node_lost = None
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await delivery.close()
    await webhooks.close()
