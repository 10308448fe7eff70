"""`brender-coordinator migrate --to postgresql://...`: copy a SQLite farm (shots,
jobs, frames, thumbnails, outputs, nodes, and any table a later release adds) into
an empty PostgreSQL database, then check that every table has as many rows there.

The coordinator is stopped meanwhile; the data dir (frames, uploads) stays where it
is and serves the PostgreSQL farm as it served the SQLite one. Both databases are
first brought to the newest schema, so they have the same tables and columns.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from .database import Database
from .pg_database import PostgresDatabase
from .store import sqlite as sqlite_store
from .store import transfer

# Referenced tables before the tables that reference them; tables a later release
# adds come after these, in the order they were made.
FIRST = ("shots", "nodes", "jobs", "frames", "blocklist", "thumbnails", "frame_outputs")


class MigrationError(RuntimeError):
    pass


async def copy_farm(source: Path, target_url: str,
                    say: Callable[[str], None] = print) -> dict[str, int]:
    """Copy the SQLite database at `source` into the PostgreSQL one at `target_url`;
    the rows of each table (the same in both, or MigrationError)."""
    if not source.exists():
        raise MigrationError(f"no SQLite database at {source}")
    lite = Database(source)
    await lite.open()          # its newest schema, then closed: nothing else writes it
    await lite.close()
    target = PostgresDatabase(target_url)
    await target.open()
    raw = sqlite_store.connect(source, sqlite_store.READER_PRAGMAS).raw
    try:
        columns = await target.read(transfer.columns)
        for table in columns:
            if await target.read(transfer.count, table):
                raise MigrationError(f"the PostgreSQL database is not empty ({table} has "
                                     "rows): migrate into a new database")
        have = sqlite_store.tables(raw)
        missing = sorted(set(have) - set(columns))
        if missing:
            raise MigrationError(f"PostgreSQL's schema has no {', '.join(missing)}: "
                                 "is this coordinator older than the farm?")
        order = [t for t in FIRST if t in have] + [t for t in have if t not in FIRST]
        for table in order:
            names = [n for n in sqlite_store.column_names(raw, table) if n in columns[table]]
            copied = 0
            for page in sqlite_store.table_pages(raw, table, names):
                await target.write(transfer.add_rows, table, names, page)
                copied += len(page)
            say(f"{table}: {copied} rows")
        sequences = sqlite_store.id_sequences(raw)
        for table in await target.read(transfer.identity_tables):
            await target.write(transfer.ids_after, table, sequences.get(table, 0))
        counts: dict[str, int] = {}
        for table in order:
            there = await target.read(transfer.count, table)
            here = sqlite_store.row_count(raw, table)
            if there != here:
                raise MigrationError(f"{table}: {here} rows in SQLite, {there} in PostgreSQL")
            counts[table] = there
        return counts
    finally:
        raw.close()
        await target.close()

