"""The coordinator's garbage collector runs on a clock (coordinator/gc_pacing.py): young
garbage goes within a tick even when allocations never start a collection, and
garbage that lived long enough to be old goes at the next full collection, not at a
young tick (whose walk must stay short)."""
from __future__ import annotations

import asyncio
import contextlib
import gc
import weakref
from collections.abc import AsyncIterator, Iterator

import pytest

from coordinator.gc_pacing import Pacer


class Cycle:
    """Garbage only a collection frees: it refers to itself."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def no_automatic_collections() -> Iterator[None]:
    was = gc.isenabled()
    gc.disable()
    yield
    if was:
        gc.enable()


@contextlib.asynccontextmanager
async def pacing(young_every: float, full_every: float) -> AsyncIterator[None]:
    task = asyncio.create_task(Pacer(young_every, full_every).run())
    try:
        yield
    finally:
        task.cancel()


async def freed_within(ref: weakref.ref, seconds: float) -> bool:
    for _ in range(int(seconds / 0.01)):
        if ref() is None:
            return True
        await asyncio.sleep(0.01)
    return ref() is None


async def test_young_garbage_goes_within_a_tick(no_automatic_collections: None) -> None:
    async with pacing(young_every=0.02, full_every=3600):
        young = Cycle()
        ref = weakref.ref(young)
        del young
        assert await freed_within(ref, 2), "a young cycle outlived the clock's collections"


async def test_old_garbage_goes_at_the_full_collection(no_automatic_collections: None) -> None:
    old = Cycle()
    ref = weakref.ref(old)
    gc.collect(1)  # it survives: now in the oldest generation, as a long-lived object is
    del old
    async with pacing(young_every=0.01, full_every=0.5):
        await asyncio.sleep(0.1)
        assert ref() is not None, "a young tick walked the old generation"
        assert await freed_within(ref, 3), "no full collection freed the old cycle"
