"""The SQLite file: one aiosqlite connection, WAL mode, and forward-only migrations."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

# Each entry moves the schema from version i to i + 1 (PRAGMA user_version); never edit one
# that has shipped, append a new one.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE accounts (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        realm TEXT NOT NULL,
        api_key_hash TEXT NOT NULL UNIQUE,
        created REAL NOT NULL
    );
    CREATE TABLE auth_tokens (
        token_hash TEXT PRIMARY KEY,
        account_id TEXT NOT NULL REFERENCES accounts(id),
        expires_at REAL NOT NULL
    );
    CREATE INDEX auth_tokens_expiry ON auth_tokens(expires_at);
    CREATE TABLE clicktocalls (
        account_id TEXT NOT NULL REFERENCES accounts(id),
        id TEXT NOT NULL,
        doc TEXT NOT NULL,
        rev INTEGER NOT NULL,
        revision TEXT NOT NULL,
        created REAL NOT NULL,
        modified REAL NOT NULL,
        deleted INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (account_id, id)
    ) WITHOUT ROWID;
    CREATE TABLE history (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        account_id TEXT NOT NULL,
        clicktocall_id TEXT NOT NULL,
        call_id TEXT NOT NULL UNIQUE,
        timestamp INTEGER NOT NULL,
        doc TEXT NOT NULL
    );
    CREATE INDEX history_by_c2c ON history(account_id, clicktocall_id, seq);
    """,
    # Calls in flight, so that a crash loses none: rows left here at start-up are calls
    # whose outcome was never recorded.
    """
    CREATE TABLE active_calls (
        call_id TEXT PRIMARY KEY,
        account_id TEXT NOT NULL,
        clicktocall_id TEXT NOT NULL,
        item TEXT NOT NULL,
        resources TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
]


@dataclass
class _Write:
    sql: str
    params: tuple[Any, ...]
    batchable: bool
    done: asyncio.Future[int]


class Database:
    """Owns the connection. Writes are group-committed: every write queued while the previous
    commit ran goes into the next transaction together, so a burst of requests pays for one
    commit instead of one each, and each caller still returns only once its write is durable.
    Reads run directly and see the writes of this connection."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: aiosqlite.Connection | None = None
        self._queue: list[_Write] = []
        self._flusher: asyncio.Task[None] | None = None

    async def open(self) -> Database:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = await aiosqlite.connect(self.path, isolation_level=None)
        # WAL lets readers proceed during writes; NORMAL is durable across process crashes
        # (only an OS crash can lose the last commits). busy_timeout covers a second process
        # (the CLI creating an account) writing at the same time.
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=NORMAL",
            "PRAGMA foreign_keys=ON",
            "PRAGMA busy_timeout=5000",
        ):
            await self._conn.execute(pragma)
        await self._migrate()
        return self

    async def close(self) -> None:
        if self._flusher is not None:
            await asyncio.wait({self._flusher})
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def __aenter__(self) -> Database:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def conn(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise RuntimeError("database is not open")
        return self._conn

    async def fetchone(self, sql: str, params: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
        rows = await self.conn.execute_fetchall(sql, params)
        return next(iter(rows), None)

    async def fetchall(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return list(await self.conn.execute_fetchall(sql, params))

    async def execute(
        self, sql: str, params: tuple[Any, ...] = (), *, batchable: bool = False
    ) -> int:
        """Run one write statement in the next group commit; returns the rows it changed.

        `batchable` statements (plain inserts whose row count is not needed) may be sent
        together with others of the same text in one `executemany`."""
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.append(_Write(sql, params, batchable, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await done

    async def _flush(self) -> None:
        # One pass of the event loop first: requests being handled right now join this batch.
        await asyncio.sleep(0)
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                await self.conn.execute("BEGIN IMMEDIATE")
            except Exception as exc:  # every waiting caller must hear of it
                _fail(batch, exc)
                continue
            results: list[tuple[_Write, int | BaseException]] = []
            for run in _runs(batch):
                results += await self._write_run(run)
            try:
                await self.conn.execute("COMMIT")
            except Exception as exc:
                with contextlib.suppress(Exception):
                    await self.conn.execute("ROLLBACK")
                _fail(batch, exc)
                continue
            for write, outcome in results:
                if write.done.done():
                    continue
                if isinstance(outcome, BaseException):
                    write.done.set_exception(outcome)
                else:
                    write.done.set_result(outcome)

    async def _write_run(self, run: list[_Write]) -> list[tuple[_Write, int | BaseException]]:
        if len(run) > 1 and run[0].batchable:
            # A savepoint, so that a failing row undoes the whole executemany and the rows
            # can be retried one by one, each with its own outcome.
            await self.conn.execute("SAVEPOINT many")
            try:
                await self.conn.executemany(run[0].sql, [w.params for w in run])
                await self.conn.execute("RELEASE many")
                return [(w, 1) for w in run]
            except sqlite3.Error:
                await self.conn.execute("ROLLBACK TO many")
                await self.conn.execute("RELEASE many")
        out: list[tuple[_Write, int | BaseException]] = []
        for write in run:
            try:
                cursor = await self.conn.execute(write.sql, write.params)
                out.append((write, cursor.rowcount))
            except sqlite3.Error as exc:
                out.append((write, exc))
        return out

    async def _migrate(self) -> None:
        (version,) = await self.fetchone("PRAGMA user_version") or (0,)
        for index in range(version, len(MIGRATIONS)):
            # executescript commits on its own; the version bump is part of the same script
            # so a crash mid-migration re-runs the whole step.
            await self.conn.executescript(
                f"BEGIN; {MIGRATIONS[index]} PRAGMA user_version = {index + 1}; COMMIT;"
            )


def _runs(batch: list[_Write]) -> list[list[_Write]]:
    """Consecutive writes of the same batchable statement, grouped; order is kept."""
    runs: list[list[_Write]] = []
    for write in batch:
        if runs and write.batchable and runs[-1][0].batchable and runs[-1][0].sql == write.sql:
            runs[-1].append(write)
        else:
            runs.append([write])
    return runs


def _fail(batch: list[_Write], exc: BaseException) -> None:
    for write in batch:
        if not write.done.done():
            write.done.set_exception(exc)
