"""The PostgreSQL database: a pool of connections in autocommit mode, so that a
one-statement method costs one round trip (no BEGIN and COMMIT of its own), and
`transaction()` for the writes that must stand or fall together."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from psycopg import AsyncConnection, OperationalError
from psycopg.abc import Query
from psycopg.pq import TransactionStatus
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from c2c_ari import metrics
from c2c_ari.store.errors import StoreUnavailable

Params = Sequence[Any]

# Seen in pg_stat_activity, so an operator can tell this service's sessions apart.
APPLICATION_NAME = "c2c-ari"
# Seconds to wait for the pool's first connections at start-up.
OPEN_TIMEOUT = 30.0
# Seconds a request waits for a connection of the pool before giving up: a database that is
# down must turn into a prompt "try again", not requests piling up for the pool's 30 s.
CONNECTION_WAIT = 5.0
# Idle connections kept for heartbeats and leases (see VitalConnections).
VITAL_CONNECTIONS = 2


def connection_kwargs() -> dict[str, Any]:
    return {"autocommit": True, "application_name": APPLICATION_NAME}


class Database:
    def __init__(self, conninfo: str, *, min_size: int = 1, max_size: int = 10) -> None:
        self.conninfo = conninfo
        self.pool: AsyncConnectionPool[AsyncConnection[tuple[Any, ...]]] = AsyncConnectionPool(
            conninfo, min_size=min_size, max_size=max_size, kwargs=connection_kwargs(),
            open=False, name="c2c-ari", timeout=CONNECTION_WAIT)
        # Heartbeats and leases have connections of their own: queued behind the calls of a
        # busy instance, a heartbeat would be stamped late (the server's clock, when it
        # runs), the busy instance would look gone, and others would take its calls over
        # while it still runs them.
        self.vital = VitalConnections(conninfo)

    async def open(self) -> Database:
        # wait: an unreachable database fails here, at start-up, not at the first request.
        await self.pool.open(wait=True, timeout=OPEN_TIMEOUT)
        return self

    async def close(self) -> None:
        await self.vital.close()
        await self.pool.close()

    async def connect(self) -> AsyncConnection[tuple[Any, ...]]:
        """A connection of its own, outside the pool (the caller closes it)."""
        return await AsyncConnection.connect(self.conninfo, **connection_kwargs())

    @contextlib.asynccontextmanager
    async def connection(
        self, *, vital: bool = False
    ) -> AsyncIterator[AsyncConnection[tuple[Any, ...]]]:
        """A connection of the pool (`vital`: one of the heartbeats' and leases' own); a
        database out of reach (no connection within CONNECTION_WAIT, or one lost on the
        way) raises StoreUnavailable."""
        try:
            async with (self.vital.connection() if vital else self.pool.connection()) as conn:
                yield conn
        except PoolTimeout as exc:
            raise StoreUnavailable(str(exc).strip() or "no database connection") from exc
        except OperationalError as exc:
            if not _unreachable(exc):
                raise
            raise StoreUnavailable(str(exc).strip() or "database connection lost") from exc

    async def fetchone(self, query: Query, params: Params = ()) -> tuple[Any, ...] | None:
        async with self.connection() as conn:
            cursor = await conn.execute(query, params)
            return await cursor.fetchone()

    async def fetchall(self, query: Query, params: Params = (), *,
                       vital: bool = False) -> list[tuple[Any, ...]]:
        async with self.connection(vital=vital) as conn:
            cursor = await conn.execute(query, params)
            return await cursor.fetchall()

    async def execute(self, query: Query, params: Params = (), *, vital: bool = False) -> int:
        """Run one statement (its own transaction); the rows it changed."""
        started = time.perf_counter()
        async with self.connection(vital=vital) as conn:
            cursor = await conn.execute(query, params)
            rowcount = cursor.rowcount
        metrics.DB_WRITE.labels("postgresql").observe(time.perf_counter() - started)
        return rowcount

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection[tuple[Any, ...]]]:
        """A connection inside one transaction: committed when the block ends, rolled back
        if it raises."""
        started = time.perf_counter()
        async with self.connection() as conn, conn.transaction():
            yield conn
        metrics.DB_WRITE.labels("postgresql").observe(time.perf_counter() - started)


def _unreachable(exc: OperationalError) -> bool:
    """A lost or refused connection (no SQLSTATE: the client's own finding), a connection
    exception (class 08), the server going down or starting (57P), or out of resources such
    as connections (53). Not a query's own failure (a lock timeout, say), which the caller
    may expect and handle."""
    state = exc.sqlstate
    return state is None or state.startswith(("08", "57P", "53"))


class VitalConnections:
    """Connections for heartbeats and leases, outside the pool. Each use takes an idle one
    or connects at once; one that failed is dropped. A pool reconnects with exponential
    backoff (1, 2, 4, 8 s...): after an outage, one instance's heartbeats could then resume
    seconds after another's, which would count it gone and take its calls over. Here they
    resume at the first beat after the database is back (beats are a second apart, which is
    what paces the attempts)."""

    def __init__(self, conninfo: str, keep: int = VITAL_CONNECTIONS) -> None:
        self.conninfo = conninfo
        self.keep = keep
        self._idle: list[AsyncConnection[tuple[Any, ...]]] = []

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection[tuple[Any, ...]]]:
        conn = self._idle.pop() if self._idle else await self._connect()
        try:
            yield conn
        except BaseException:
            await conn.close()  # it may be broken, or mid-statement: never reused
            raise
        if (len(self._idle) < self.keep and not conn.closed
                and conn.info.transaction_status == TransactionStatus.IDLE):
            self._idle.append(conn)
        else:
            await conn.close()

    async def _connect(self) -> AsyncConnection[tuple[Any, ...]]:
        try:
            async with asyncio.timeout(CONNECTION_WAIT):
                return await AsyncConnection.connect(self.conninfo, **connection_kwargs())
        except (OperationalError, TimeoutError) as exc:
            # Refused, or not accepting connections (whatever its SQLSTATE): out of reach.
            raise StoreUnavailable(str(exc).strip() or "no database connection") from exc

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.close()
