"""The SQLite file: one aiosqlite connection, WAL mode, and forward-only migrations."""

from __future__ import annotations

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
]


class Database:
    """Owns the connection. Statements run in autocommit mode: every write is one statement,
    so coroutines sharing the connection never see each other's half-done transactions."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: aiosqlite.Connection | None = None

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

    async def execute(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        """Run one write statement; returns the number of rows it changed."""
        cursor = await self.conn.execute(sql, params)
        try:
            return cursor.rowcount
        finally:
            await cursor.close()

    async def _migrate(self) -> None:
        (version,) = await self.fetchone("PRAGMA user_version") or (0,)
        for index in range(version, len(MIGRATIONS)):
            # executescript commits on its own; the version bump is part of the same script
            # so a crash mid-migration re-runs the whole step.
            await self.conn.executescript(
                f"BEGIN; {MIGRATIONS[index]} PRAGMA user_version = {index + 1}; COMMIT;"
            )
