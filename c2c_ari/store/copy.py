"""`c2c-ari db copy`: everything of a SQLite file into a PostgreSQL database.

Accounts (with their API key hashes, key generations and whether disabled), auth tokens,
click-to-calls (documents byte for byte, revisions, soft deletion, times), history (items
byte for byte, final flags, and each item's `seq`, so the order and the start keys clients
hold stay the same), service keys, and calls in flight (which an instance on PostgreSQL then
claims as orphans and records). Instances, leases and the throttle are not copied: they
describe running processes.

Read a batch at a time in key order from SQLite, written a batch per transaction with
ON CONFLICT DO NOTHING: a second run (say, after an interrupted one) adds only what is
missing and never a row twice. Rows that exist in PostgreSQL already are left as they are.
The file is taken as a service would take it, so the copy refuses to run while a service
serves it (its calls in flight and history would still change).

Meant for a new database (or one an earlier copy of the same file filled): history keeps
SQLite's `seq` numbers, and the sequence is moved past them afterwards. Run again after a
service has started on PostgreSQL, it brings back the in-flight rows of calls that service
has recorded since; it records them again as orphans, and their items, final already, stay
as they are (history never has two items for a call).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from c2c_ari.store.postgres import Database, migrate_database, schema
from c2c_ari.store.postgres.clicktocalls import listed_fields
from c2c_ari.store.postgres.history import HistoryStore
from c2c_ari.store.sqlite import open_sqlite
from c2c_ari.store.sqlite.db import Database as SqliteDatabase

# The oldest month given a partition of its own; older items go to DEFAULT (retention removes
# them in batches), so that a stray timestamp cannot make hundreds of partitions.
MAX_MONTHS_BACK = 120


@dataclass
class Copied:
    table: str
    read: int = 0
    added: int = 0

    def __str__(self) -> str:
        return (f"{self.table}: {self.read} read, {self.added} added, "
                f"{self.read - self.added} already there")


@dataclass(frozen=True)
class _Table:
    name: str
    # SQLite: the rows after a key, in key order; {after} is where the key condition goes.
    select: str
    key_columns: int  # how many leading columns form the key
    first_key: tuple[Any, ...]
    insert: str
    convert: Callable[[tuple[Any, ...]], tuple[Any, ...]] = lambda row: row


def _clicktocall(row: tuple[Any, ...]) -> tuple[Any, ...]:
    account_id, doc_id, doc, rev, revision, created, modified, deleted = row
    return (account_id, doc_id, doc, rev, revision, created, modified, bool(deleted),
            *listed_fields(doc))


def _history(row: tuple[Any, ...]) -> tuple[Any, ...]:
    seq, account_id, clicktocall_id, call_id, timestamp, doc, final = row
    return (seq, account_id, clicktocall_id, call_id, timestamp, doc, bool(final))


def _active_call(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return (*row[:5], bool(row[5]), *row[6:])


TABLES = [
    _Table(
        "accounts",
        "SELECT id, name, realm, api_key_hash, created, disabled, key_generation"
        " FROM accounts WHERE id > ? ORDER BY id LIMIT ?", 1, ("",),
        "INSERT INTO accounts (id, name, realm, api_key_hash, created, disabled,"
        " key_generation) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"),
    _Table(
        "auth_tokens",
        "SELECT token_hash, account_id, expires_at, key_generation FROM auth_tokens"
        " WHERE token_hash > ? ORDER BY token_hash LIMIT ?", 1, ("",),
        "INSERT INTO auth_tokens (token_hash, account_id, expires_at, key_generation)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING"),
    _Table(
        "clicktocalls",
        "SELECT account_id, id, doc, rev, revision, created, modified, deleted"
        " FROM clicktocalls WHERE (account_id, id) > (?, ?) ORDER BY account_id, id LIMIT ?",
        2, ("", ""),
        "INSERT INTO clicktocalls (account_id, id, doc, rev, revision, created, modified,"
        " deleted, name, extension) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT DO NOTHING", _clicktocall),
    _Table(
        "history",
        "SELECT seq, account_id, clicktocall_id, call_id, timestamp, doc, final FROM history"
        " WHERE seq > ? ORDER BY seq LIMIT ?", 1, (0,),
        'INSERT INTO history (seq, account_id, clicktocall_id, call_id, "timestamp", doc,'
        " final) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING", _history),
    _Table(
        "service_keys",
        "SELECT name, value FROM service_keys WHERE name > ? ORDER BY name LIMIT ?", 1, ("",),
        "INSERT INTO service_keys (name, value) VALUES (%s, %s) ON CONFLICT DO NOTHING"),
    _Table(
        "active_calls",
        "SELECT call_id, account_id, clicktocall_id, item, resources, bridged, owner, node"
        " FROM active_calls WHERE call_id > ? ORDER BY call_id LIMIT ?", 1, ("",),
        "INSERT INTO active_calls (call_id, account_id, clicktocall_id, item, resources,"
        " bridged, owner, node) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT DO NOTHING", _active_call),
]


async def copy_sqlite_to_postgres(
    sqlite_path: Path, conninfo: str, *, batch: int = 500,
    progress: Callable[[Copied], None] | None = None,
) -> list[Copied]:
    """Copy everything of the SQLite file into the PostgreSQL database (migrated first);
    what each table read and added. `progress` hears each table when it is done. (The
    caller checks that the file exists: opening a missing one would make it.)"""
    # serving=True: the file's serving lock, so no service changes it during the copy (and
    # opening brings an older file's schema up to date first).
    source = await open_sqlite(sqlite_path, serving=True)
    try:
        sqlite_db: SqliteDatabase = source.backend.db
        await migrate_database(conninfo)
        target = await Database(conninfo, min_size=1, max_size=1).open()
        try:
            await _partitions_for(sqlite_db, HistoryStore(target))
            results = []
            for table in TABLES:
                copied = await _copy_table(sqlite_db, target, table, batch)
                results.append(copied)
                if progress is not None:
                    progress(copied)
            await _move_sequence_past_copied_history(target)
            return results
        finally:
            await target.close()
    finally:
        await source.close()


async def _partitions_for(sqlite_db: SqliteDatabase, history: HistoryStore) -> None:
    """The monthly partitions of the months the file's history spans (within
    MAX_MONTHS_BACK), so that copied items land in their month's partition."""
    row = await sqlite_db.fetchone("SELECT min(timestamp) FROM history")
    if row is None or row[0] is None:
        return
    now = int(time.time()) + schema.GREGORIAN_OFFSET
    oldest = now - MAX_MONTHS_BACK * 31 * 86_400
    await history.ensure_partitions(since=min(max(int(row[0]), oldest), now))


async def _copy_table(sqlite_db: SqliteDatabase, target: Database, table: _Table,
                      batch: int) -> Copied:
    copied = Copied(table.name)
    key = table.first_key
    while True:
        rows = await sqlite_db.fetchall(table.select, (*key, batch), bulk=True)
        if not rows:
            return copied
        async with target.transaction() as conn:
            cursor = conn.cursor()
            await cursor.executemany(table.insert, [table.convert(row) for row in rows])
            copied.added += max(cursor.rowcount, 0)
        copied.read += len(rows)
        key = tuple(rows[-1][:table.key_columns])
        if len(rows) < batch:
            return copied


async def _move_sequence_past_copied_history(target: Database) -> None:
    """New items must get a seq above every copied one (the sequence only moves forward)."""
    await target.execute(
        "SELECT setval(pg_get_serial_sequence('history', 'seq'), top)"
        " FROM (SELECT max(seq) AS top FROM history) copied"
        " WHERE top > COALESCE(pg_sequence_last_value("
        "pg_get_serial_sequence('history', 'seq')::regclass), 0)")
