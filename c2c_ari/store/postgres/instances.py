"""Service processes that say they are alive, and named leases. Times are the database
server's clock: instances on several hosts then agree on ages and expiries whatever their own
clocks say."""

from __future__ import annotations

from c2c_ari.store.postgres.db import Database
from c2c_ari.store.records import InstanceRecord

# Seconds since the epoch by the server's clock, at the start of the statement.
NOW = "extract(epoch FROM statement_timestamp())::float8"


class InstanceStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def heartbeat(self, instance: InstanceRecord) -> None:
        await self.db.execute(
            "INSERT INTO instances (instance_id, boot_id, app, seen_at)"
            f" VALUES (%s, %s, %s, {NOW}) ON CONFLICT (instance_id) DO UPDATE SET"
            " boot_id = excluded.boot_id, app = excluded.app, seen_at = excluded.seen_at",
            (instance.instance_id, instance.boot_id, instance.app), vital=True)

    async def live(self, max_age: float) -> list[InstanceRecord]:
        return [InstanceRecord(*row) for row in await self.db.fetchall(
            "SELECT instance_id, boot_id, app, seen_at FROM instances"
            f" WHERE seen_at >= {NOW} - %s", (max_age,), vital=True)]

    async def leave(self, boot_id: str) -> None:
        await self.db.execute("DELETE FROM instances WHERE boot_id = %s", (boot_id,))


class LeaseStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def acquire(self, name: str, holder: str, ttl: float) -> bool:
        """One statement: an insert, or an update of the row only if `holder` holds it or
        it lapsed; the row is locked while that is decided, so two claimers never both win."""
        rows = await self.db.fetchall(
            f"INSERT INTO leases (name, holder, expires) VALUES (%s, %s, {NOW} + %s)"
            " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,"
            " expires = excluded.expires WHERE leases.holder = excluded.holder"
            f" OR leases.expires < {NOW} RETURNING holder",
            (name, holder, ttl), vital=True)
        return bool(rows)

    async def release(self, name: str, holder: str) -> None:
        await self.db.execute("DELETE FROM leases WHERE name = %s AND holder = %s",
                              (name, holder))
