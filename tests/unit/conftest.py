"""Fixtures the unit tests share."""
from __future__ import annotations

import pytest

from coordinator.database import Database


@pytest.fixture
async def db(tmp_path):
    """A database in a temp dir with one table, t (k, v)."""
    database = Database(tmp_path / "t.db")
    await database.open()
    await database.write(lambda c: c.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)"))
    yield database
    await database.close()
