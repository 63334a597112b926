"""The PostgreSQL database: a pool of connections in autocommit mode, so that a
one-statement method costs one round trip (no BEGIN and COMMIT of its own), and
`transaction()` for the writes that must stand or fall together."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from psycopg import AsyncConnection, OperationalError
from psycopg.abc import Query
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
# Connections kept apart for heartbeats and leases (see Database.vital).
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
        self.vital_pool: AsyncConnectionPool[AsyncConnection[tuple[Any, ...]]] = (
            AsyncConnectionPool(conninfo, min_size=1, max_size=VITAL_CONNECTIONS,
                                kwargs=connection_kwargs(), open=False, name="c2c-ari-vital",
                                timeout=CONNECTION_WAIT))

    async def open(self) -> Database:
        # wait: an unreachable database fails here, at start-up, not at the first request.
        await self.pool.open(wait=True, timeout=OPEN_TIMEOUT)
        await self.vital_pool.open(wait=True, timeout=OPEN_TIMEOUT)
        return self

    async def close(self) -> None:
        await self.vital_pool.close()
        await self.pool.close()

    async def connect(self) -> AsyncConnection[tuple[Any, ...]]:
        """A connection of its own, outside the pool (the caller closes it)."""
        return await AsyncConnection.connect(self.conninfo, **connection_kwargs())

    @contextlib.asynccontextmanager
    async def connection(
        self, *, vital: bool = False
    ) -> AsyncIterator[AsyncConnection[tuple[Any, ...]]]:
        """A connection of the pool (`vital`: of the heartbeats' and leases' pool); a
        database out of reach (no connection within CONNECTION_WAIT, or one lost on the
        way) raises StoreUnavailable."""
        pool = self.vital_pool if vital else self.pool
        try:
            async with pool.connection() as conn:
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
