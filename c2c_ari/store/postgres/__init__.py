"""The shared backend: a PostgreSQL database that several service instances use at once.

Everything another process can change is read from the database every time (no document or
token cache: `Store.shared` is True); the throttle and the bus go through the database too,
so they hold across processes. Opening migrates the schema (see schema.py) and makes the
history partitions of this month and the next ones.
"""

from __future__ import annotations

from c2c_ari.store.base import Store
from c2c_ari.store.postgres.accounts import AccountStore
from c2c_ari.store.postgres.bus import PostgresBus
from c2c_ari.store.postgres.calls import ActiveCallStore
from c2c_ari.store.postgres.clicktocalls import ClickToCallStore
from c2c_ari.store.postgres.db import Database
from c2c_ari.store.postgres.history import HistoryStore
from c2c_ari.store.postgres.instances import InstanceStore, LeaseStore
from c2c_ari.store.postgres.keys import ServiceKeyStore
from c2c_ari.store.postgres.schema import SchemaTooNew, migrate
from c2c_ari.store.postgres.throttle import PostgresThrottle


class PostgresBackend:
    def __init__(self, db: Database, bus: PostgresBus, throttle: PostgresThrottle) -> None:
        self.db = db
        self.bus = bus
        self.throttle = throttle

    async def close(self) -> None:
        try:
            await self.bus.close()
            await self.throttle.close()
        finally:
            # Whatever failed before: psycopg_pool's tasks outlive a pool left open (they
            # survive cancellation), and an event loop could then never finish.
            await self.db.close()


async def migrate_database(conninfo: str) -> int:
    """Bring the database's schema up to date; its version. Safe beside running instances
    and other instances migrating at the same time."""
    db = Database(conninfo)
    conn = await db.connect()
    try:
        return await migrate(conn)
    finally:
        await conn.close()


async def open_postgres(conninfo: str, *, min_connections: int = 1,
                        max_connections: int = 10) -> Store:
    """The store in the database `conninfo` names (a postgresql:// URL or libpq's key=value
    form), migrated; its pool keeps `min_connections` to `max_connections` connections, and
    its bus one more."""
    await migrate_database(conninfo)
    db = await Database(conninfo, min_size=min_connections, max_size=max_connections).open()
    try:
        history = HistoryStore(db)
        await history.ensure_partitions()
        bus = await PostgresBus(db).start()
    except BaseException:
        await db.close()
        raise
    throttle = PostgresThrottle(db)
    return Store(
        kind="postgresql", shared=True,
        accounts=AccountStore(db), clicktocalls=ClickToCallStore(db), history=history,
        calls=ActiveCallStore(db), keys=ServiceKeyStore(db), instances=InstanceStore(db),
        leases=LeaseStore(db), throttle=throttle, bus=bus,
        backend=PostgresBackend(db, bus, throttle),
    )


__all__ = ["Database", "PostgresBackend", "SchemaTooNew", "migrate_database", "open_postgres"]
