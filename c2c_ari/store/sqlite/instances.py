"""Service processes that say they are alive. With SQLite there is one, but its calls still
belong to its boot, so that the next start finds the calls of the one before as orphans,
exactly as an instance sharing PostgreSQL finds those of one that died."""

from __future__ import annotations

import time

from c2c_ari.store.records import InstanceRecord
from c2c_ari.store.sqlite.db import Database


class InstanceStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def heartbeat(self, instance: InstanceRecord) -> None:
        await self.db.execute(
            "INSERT OR REPLACE INTO instances (instance_id, boot_id, app, seen_at)"
            " VALUES (?, ?, ?, ?)",
            (instance.instance_id, instance.boot_id, instance.app, time.time()))

    async def live(self, max_age: float) -> list[InstanceRecord]:
        return [InstanceRecord(*row) for row in await self.db.fetchall(
            "SELECT instance_id, boot_id, app, seen_at FROM instances WHERE seen_at >= ?",
            (time.time() - max_age,))]

    async def leave(self, boot_id: str) -> None:
        await self.db.execute("DELETE FROM instances WHERE boot_id = ?", (boot_id,))


class LeaseStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def acquire(self, name: str, holder: str, ttl: float) -> bool:
        now = time.time()
        rows = await self.db.execute_returning(
            "INSERT INTO leases (name, holder, expires) VALUES (?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,"
            " expires = excluded.expires WHERE leases.holder = excluded.holder"
            " OR leases.expires < ? RETURNING holder",
            (name, holder, now + ttl, now))
        return bool(rows)

    async def release(self, name: str, holder: str) -> None:
        await self.db.execute("DELETE FROM leases WHERE name = ? AND holder = ?",
                              (name, holder))
