"""The SQLite file: one aiosqlite connection, WAL mode, and forward-only migrations."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from c2c_ari import metrics

_T = TypeVar("_T")

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
    # Secrets of the service itself (e.g. the key that signs per-call tokens), made once.
    """
    CREATE TABLE service_keys (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
    # Every request costs the same however much data there is: history pages and time
    # windows walk (timestamp, seq) in one index; listings skip soft-deleted documents
    # without reading them; a dialplan call finds its click-to-call by id alone; retention
    # finds soft-deleted documents by age.
    """
    DROP INDEX history_by_c2c;
    CREATE INDEX history_by_time ON history(account_id, clicktocall_id, timestamp, seq);
    CREATE INDEX clicktocalls_live ON clicktocalls(account_id, id) WHERE deleted = 0;
    CREATE INDEX clicktocalls_by_id ON clicktocalls(id) WHERE deleted = 0;
    CREATE INDEX clicktocalls_deleted ON clicktocalls(modified) WHERE deleted = 1;
    """,
    # A call's item is in history from the moment its setup is over; `final` is 0 while a
    # bridged call is still up, and becomes 1 when the item is completed, once.
    """
    ALTER TABLE history ADD COLUMN final INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE active_calls ADD COLUMN bridged INTEGER NOT NULL DEFAULT 0;
    """,
    # Calls belong to the process that runs them (its boot id) and name their Asterisk node;
    # processes say they are alive in `instances`.
    """
    ALTER TABLE active_calls ADD COLUMN owner TEXT NOT NULL DEFAULT '';
    ALTER TABLE active_calls ADD COLUMN node TEXT NOT NULL DEFAULT '';
    CREATE TABLE instances (
        instance_id TEXT PRIMARY KEY,
        boot_id TEXT NOT NULL,
        app TEXT NOT NULL,
        seen_at REAL NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        expires REAL NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX active_calls_by_c2c ON active_calls(account_id, clicktocall_id);
    """,
    # Counting an account's live click-to-calls (its limit, at every create) from an index
    # alone, however many soft-deleted ones it has.
    """
    CREATE INDEX clicktocalls_by_state ON clicktocalls(account_id, deleted);
    """,
    # ...and then without counting at all: each account keeps the number of its live
    # click-to-calls, kept right by triggers in the statements that change it, so a create
    # checks the limit in the same cost however many documents the account has.
    """
    ALTER TABLE accounts ADD COLUMN live_clicktocalls INTEGER NOT NULL DEFAULT 0;
    UPDATE accounts SET live_clicktocalls = (SELECT count(*) FROM clicktocalls
        WHERE clicktocalls.account_id = accounts.id AND deleted = 0);
    CREATE TRIGGER clicktocalls_created AFTER INSERT ON clicktocalls WHEN NEW.deleted = 0
    BEGIN
        UPDATE accounts SET live_clicktocalls = live_clicktocalls + 1
        WHERE id = NEW.account_id;
    END;
    CREATE TRIGGER clicktocalls_deleted AFTER UPDATE OF deleted ON clicktocalls
    WHEN OLD.deleted = 0 AND NEW.deleted = 1
    BEGIN
        UPDATE accounts SET live_clicktocalls = live_clicktocalls - 1
        WHERE id = NEW.account_id;
    END;
    """,
    # Operators' account commands: `disabled` (0 enabled, 1 disabled, 2 being deleted); the
    # key generation a token was issued under, which a key rotation bumps on the account so
    # every older token is refused at once; an account's tokens found without a scan (a
    # delete takes them in batches); and the live count kept right when an account's
    # click-to-calls are removed outright (a delete), not only soft-deleted.
    """
    ALTER TABLE accounts ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE accounts ADD COLUMN key_generation INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE auth_tokens ADD COLUMN key_generation INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX auth_tokens_by_account ON auth_tokens(account_id);
    CREATE TRIGGER clicktocalls_removed AFTER DELETE ON clicktocalls WHEN OLD.deleted = 0
    BEGIN
        UPDATE accounts SET live_clicktocalls = live_clicktocalls - 1
        WHERE id = OLD.account_id;
    END;
    """,
    # The live count is kept by the triggers above, so nothing counts from this index any
    # more, and every create paid for keeping it.
    """
    DROP INDEX IF EXISTS clicktocalls_by_state;
    """,
]


class RevocationMark:
    """`<file>.revocations`: 16 bytes that the store rewrites with new random ones after it
    has committed a key rotation, a disable or a delete, in whichever process did it (the
    CLI runs beside the service). The service caches tokens it has checked; it reads these
    bytes (one pread, no query) before trusting its cache, and forgets every cached token
    once they differ. Random rather than a counter: two processes bumping at once still
    leave a value no reader has seen."""

    SIZE = 16

    def __init__(self, database: Path) -> None:
        self.path = database.with_name(database.name + ".revocations")
        self._fd: int | None = None

    def open(self) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)

    def read(self) -> bytes:
        if self._fd is None:
            raise RuntimeError("database is not open")
        return os.pread(self._fd, self.SIZE, 0)

    def bump(self) -> None:
        if self._fd is None:
            raise RuntimeError("database is not open")
        # One small pwrite: readers see the old bytes or the new ones (a torn read would be
        # a third value, which only costs a cache refill).
        os.pwrite(self._fd, os.urandom(self.SIZE), 0)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@dataclass
class _Write:
    sql: str
    params: tuple[Any, ...]
    batchable: bool
    done: asyncio.Future[Any]
    # Statements that stand or fall together (`execute_together`); then sql and params are
    # unused and the outcome is the list of their row counts.
    together: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    # The outcome is the rows the statement returns (RETURNING), not its row count.
    returning: bool = False


_PRAGMAS = (
    # WAL lets readers proceed during writes; NORMAL is durable across process crashes (only an
    # OS crash can lose the last commits). busy_timeout covers a second process (the CLI
    # creating an account) writing at the same time. All but journal_mode are per connection.
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=5000",
    # After a checkpoint the WAL file is cut back to this size: a burst of writes (or a long
    # read that held checkpoints off) cannot leave a huge file behind for good.
    "PRAGMA journal_size_limit=67108864",
)


def _connect_writer(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)  # usable only in the thread that made it
    # temp_store=MEMORY: the savepoint of `_write_run` keeps the pages it may have to undo in
    # memory instead of a temporary file created and deleted for every commit (a batch easily
    # passes SQLite's 64 KiB in-memory threshold). Those pages only serve ROLLBACK TO within
    # the transaction; crash safety is the WAL's business and does not change.
    for pragma in (*_PRAGMAS, "PRAGMA temp_store=MEMORY"):
        conn.execute(pragma)
    return conn


class Database:
    """Owns the file. Reads go through one aiosqlite connection. Writes go through a second,
    plain sqlite3 connection that lives in a thread of its own, and are group-committed:
    every write queued while the previous commit ran goes into the next transaction together,
    and the whole transaction (BEGIN, the writes, COMMIT) is one call into that thread. So a
    burst of requests pays for one commit and one thread hand-off instead of one each, and
    each caller still returns only once its write is durable. Reads see committed data only,
    which includes every write whose caller has returned."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: aiosqlite.Connection | None = None
        # A second reader for long listings, read a bounded chunk at a time: interactive
        # reads never queue behind them.
        self._bulk: aiosqlite.Connection | None = None
        self._writer: ThreadPoolExecutor | None = None
        self._writer_conn: sqlite3.Connection | None = None
        self._queue: list[_Write] = []
        self._flusher: asyncio.Task[None] | None = None
        self.revocations = RevocationMark(path)

    async def open(self) -> Database:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = await self._reader()
        await self._migrate()
        self._bulk = await self._reader()
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._writer_conn = await self._in_writer(_connect_writer, self.path)
        self.revocations.open()
        return self

    async def _reader(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        for pragma in _PRAGMAS:
            await conn.execute(pragma)
        return conn

    async def close(self) -> None:
        if self._flusher is not None:
            await asyncio.wait({self._flusher})
        if self._writer is not None:
            if self._writer_conn is not None:
                await self._in_writer(self._writer_conn.close)
                self._writer_conn = None
            self._writer.shutdown()
            self._writer = None
        for conn in (self._conn, self._bulk):
            if conn is not None:
                await conn.close()
        self._conn = self._bulk = None
        self.revocations.close()

    async def __aenter__(self) -> Database:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def conn(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise RuntimeError("database is not open")
        return self._conn

    async def _in_writer(self, fn: Callable[..., _T], *args: Any) -> _T:
        if self._writer is None:
            raise RuntimeError("database is not open")
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn, *args)

    async def fetchone(self, sql: str, params: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
        rows = await self.conn.execute_fetchall(sql, params)
        return next(iter(rows), None)

    async def fetchall(
        self, sql: str, params: tuple[Any, ...] = (), *, bulk: bool = False
    ) -> list[tuple[Any, ...]]:
        """Rows of a read; `bulk` reads (chunks of long listings) use a connection of their
        own."""
        conn = self._bulk if bulk else self._conn
        if conn is None:
            raise RuntimeError("database is not open")
        return list(await conn.execute_fetchall(sql, params))

    async def execute(
        self, sql: str, params: tuple[Any, ...] = (), *, batchable: bool = False
    ) -> int:
        """Run one write statement in the next group commit; returns the rows it changed.

        `batchable` statements (inserts that change one row each when they succeed) may be
        sent together with others of the same text in one `executemany`."""
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._enqueue(_Write(sql, params, batchable, done))
        return await done

    async def execute_returning(
        self, sql: str, params: tuple[Any, ...] = ()
    ) -> list[tuple[Any, ...]]:
        """Run one write statement with a RETURNING clause in the next group commit; the
        rows it returns."""
        done: asyncio.Future[list[tuple[Any, ...]]] = (
            asyncio.get_running_loop().create_future())
        self._enqueue(_Write(sql, params, False, done, returning=True))
        return await done

    async def execute_together(
        self, statements: list[tuple[str, tuple[Any, ...]]]
    ) -> list[int]:
        """Run write statements in the next group commit, all or none of them: one commit
        (and one thread hand-off) for a change that spans tables. Their changed-row counts."""
        done: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        self._enqueue(_Write("", (), False, done, tuple(statements)))
        return await done

    def _enqueue(self, write: _Write) -> None:
        """Queue a write for the next group commit, starting a flush unless one runs."""
        self._queue.append(write)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        # One pass of the event loop first: requests being handled right now join this batch.
        await asyncio.sleep(0)
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                conn = self._writer_conn
                if conn is None:
                    raise RuntimeError("database is not open")
                started = time.perf_counter()
                outcomes = await self._in_writer(_commit, conn, batch)
                metrics.DB_WRITE.labels("sqlite").observe(time.perf_counter() - started)
            except Exception as exc:  # the transaction failed: every waiting caller hears it
                outcomes = [exc] * len(batch)
            for write, outcome in zip(batch, outcomes, strict=True):
                if write.done.done():  # the caller was cancelled
                    continue
                if isinstance(outcome, BaseException):
                    write.done.set_exception(outcome)
                else:
                    write.done.set_result(outcome)

    async def _migrate(self) -> None:
        (version,) = await self.fetchone("PRAGMA user_version") or (0,)
        for index in range(version, len(MIGRATIONS)):
            # executescript commits on its own; the version bump is part of the same script
            # so a crash mid-migration re-runs the whole step.
            await self.conn.executescript(
                f"BEGIN; {MIGRATIONS[index]} PRAGMA user_version = {index + 1}; COMMIT;"
            )


# --- run in the writer thread: plain sqlite3 calls on the writer connection ------------------


def _commit(conn: sqlite3.Connection, batch: list[_Write]) -> list[Any]:
    """One transaction holding every write of `batch`: each write's changed-row count, or the
    error that statement alone raised (its statement undone, the others kept). An error that
    ends the transaction (BEGIN, COMMIT, a full disk) is raised: then nothing was stored.

    Only `sql`, `params` and `batchable` of each write are read here; the futures belong to
    the event loop's thread."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        outcomes: list[Any] = []
        for run in _runs(batch):
            outcomes += _write_run(conn, run)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise
    return outcomes


def _write_run(conn: sqlite3.Connection, run: list[_Write]) -> list[Any]:
    if run[0].together:
        return [_write_together(conn, run[0])]
    if len(run) > 1 and run[0].batchable:
        # A savepoint, so that a failing row undoes the whole executemany and the rows can be
        # retried one by one, each with its own outcome.
        # Retried one by one too when a row was not written (an insert guarded by a WHERE,
        # such as a limit), since only then does each caller learn its own count.
        conn.execute("SAVEPOINT many")
        try:
            if conn.executemany(run[0].sql, [w.params for w in run]).rowcount == len(run):
                conn.execute("RELEASE many")
                return [1] * len(run)
        except sqlite3.Error:
            pass
        conn.execute("ROLLBACK TO many")
        conn.execute("RELEASE many")
    out: list[Any] = []
    for write in run:
        try:
            cursor = conn.execute(write.sql, write.params)
            out.append(cursor.fetchall() if write.returning else cursor.rowcount)
        except sqlite3.Error as exc:
            if not conn.in_transaction:  # SQLite gave up the whole transaction (disk full...)
                raise
            out.append(exc)  # SQLite undid this statement only; the transaction goes on
    return out


def _write_together(conn: sqlite3.Connection, write: _Write) -> list[int] | Exception:
    conn.execute("SAVEPOINT together")
    try:
        counts = [conn.execute(sql, params).rowcount for sql, params in write.together]
    except sqlite3.Error as exc:
        if not conn.in_transaction:
            raise
        conn.execute("ROLLBACK TO together")
        conn.execute("RELEASE together")
        return exc
    conn.execute("RELEASE together")
    return counts


def _runs(batch: list[_Write]) -> list[list[_Write]]:
    """Consecutive writes of the same batchable statement, grouped; order is kept."""
    runs: list[list[_Write]] = []
    for write in batch:
        if runs and write.batchable and runs[-1][0].batchable and runs[-1][0].sql == write.sql:
            runs[-1].append(write)
        else:
            runs.append([write])
    return runs

