"""Call history: one row per call attempt, listed newest first, in monthly partitions (see
schema.py)."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from psycopg import errors, sql

from c2c_ari.store.postgres import schema
from c2c_ari.store.postgres.db import Database

log = logging.getLogger(__name__)

_COLUMNS = '(account_id, clicktocall_id, call_id, "timestamp", doc, final)'

# Recording an attempt; nothing when its call id is recorded already. The conflict target is
# the partitioned table's unique (call_id, timestamp): every write of a call carries the
# call's start as its timestamp, so this is "one item per call id".
INSERT = (f"INSERT INTO history {_COLUMNS} VALUES (%s, %s, %s, %s, %s, %s)"
          ' ON CONFLICT (call_id, "timestamp") DO NOTHING')
# An attempt's final item: inserted if its setup left none, else replacing the item its
# bridge recorded; never an item that is final already, so a call's end is recorded once.
COMPLETE = (f"INSERT INTO history {_COLUMNS} VALUES (%s, %s, %s, %s, %s, true)"
            ' ON CONFLICT (call_id, "timestamp") DO UPDATE SET doc = excluded.doc,'
            " final = true WHERE NOT history.final")

# How long retention may wait for the lock that dropping a partition takes (every query of
# history holds a weaker one): past it, the next round tries again, and queries never queue
# behind a waiting DROP for longer.
DROP_LOCK_TIMEOUT = "2s"


def insert_params(account_id: str, clicktocall_id: str, call_id: str, timestamp: int,
                  item: dict[str, Any], *, final: bool = True) -> tuple[Any, ...]:
    return (account_id, clicktocall_id, call_id, timestamp, json.dumps(item), final)


def complete_params(account_id: str, clicktocall_id: str, call_id: str, timestamp: int,
                    item: dict[str, Any]) -> tuple[Any, ...]:
    return (account_id, clicktocall_id, call_id, timestamp, json.dumps(item))


def _gregorian_now() -> int:
    return int(time.time()) + schema.GREGORIAN_OFFSET


class HistoryStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        # The month whose partitions (it and the next ones) this process last made sure of.
        self._ensured: schema.Month | None = None

    async def insert(
        self, account_id: str, clicktocall_id: str, call_id: str, timestamp: int,
        item: dict[str, Any],
    ) -> bool:
        """Record one attempt; False if this call id is already recorded (exactly once)."""
        changed = await self.db.execute(
            INSERT, insert_params(account_id, clicktocall_id, call_id, timestamp, item))
        return changed == 1

    async def get(self, account_id: str, call_id: str) -> dict[str, Any] | None:
        # No timestamp to prune partitions with: one probe of each partition's
        # (call_id, timestamp) index, a dozen or so for a year of history.
        row = await self.db.fetchone(
            "SELECT doc FROM history WHERE call_id = %s AND account_id = %s",
            (call_id, account_id))
        return json.loads(row[0]) if row else None

    async def page(
        self,
        account_id: str,
        clicktocall_id: str,
        *,
        before: tuple[int, int] | None,
        created_from: int | None,
        created_to: int | None,
        limit: int,
        bulk: bool = False,
    ) -> list[tuple[int, int, str]]:
        """(timestamp, seq, item as JSON text), newest first, from `before` (a (timestamp,
        seq) pair, inclusive) on. One index range per partition the window touches."""
        newest = (1 << 62, 1 << 62) if before is None else before
        upper = newest[0] if created_to is None else min(created_to, newest[0])
        return [
            (row[0], row[1], row[2])
            for row in await self.db.fetchall(
                'SELECT "timestamp", seq, doc FROM history'
                " WHERE account_id = %s AND clicktocall_id = %s"
                ' AND "timestamp" >= %s AND "timestamp" <= %s'
                ' AND ("timestamp" < %s OR seq <= %s)'
                ' ORDER BY "timestamp" DESC, seq DESC LIMIT %s',
                (account_id, clicktocall_id, 0 if created_from is None else created_from,
                 upper, *newest, limit))
        ]

    async def delete_of(self, account_id: str, clicktocall_id: str, batch: int) -> int:
        """Delete up to `batch` items of one click-to-call; how many went."""
        return await self.db.execute(
            "DELETE FROM history WHERE account_id = %s AND clicktocall_id = %s"
            ' AND ("timestamp", seq) IN (SELECT "timestamp", seq FROM history'
            " WHERE account_id = %s AND clicktocall_id = %s LIMIT %s)",
            (account_id, clicktocall_id, account_id, clicktocall_id, batch))

    async def delete_of_account(self, account_id: str, batch: int) -> int:
        """Delete up to `batch` items of the account, whatever their click-to-call (the
        history_by_time index of each partition); how many went."""
        return await self.db.execute(
            'DELETE FROM history WHERE account_id = %s AND ("timestamp", seq) IN'
            ' (SELECT "timestamp", seq FROM history WHERE account_id = %s LIMIT %s)',
            (account_id, account_id, batch))

    async def ensure_partitions(self, since: int | None = None, *,
                                months_ahead: int = schema.MONTHS_AHEAD) -> list[str]:
        """Make sure history has a partition for every month from the one of `since`
        (Gregorian seconds; default now) to `months_ahead` months after the current one;
        the names of the partitions made. At start-up and from `prune`; `c2c-ari db copy`
        asks for the months of the history it brings."""
        now = schema.month_of(_gregorian_now())
        first = now if since is None else min(now, schema.month_of(since))
        last = now
        for _ in range(months_ahead):
            last = schema.next_month(last)
        async with self.db.connection() as conn:
            made = await schema.ensure_partitions(conn, first, last)
        if since is None:
            self._ensured = now
        if made:
            log.info("history partitions made: %s", ", ".join(made))
        return made

    async def prune(self, before_timestamp: int, batch: int) -> int:
        """Remove items whose call started before `before_timestamp`, a whole month at a
        time where a partition lies entirely before it, else up to `batch` rows of the
        partitions that straddle it (and of DEFAULT). Dropping a partition answers its row
        count, and at least `batch`, so that the caller comes back for the rest.

        Housekeeping calls this regularly: it also makes this month's and the next months'
        partitions when the month has turned since it last did."""
        if self._ensured != schema.month_of(_gregorian_now()):
            await self.ensure_partitions()
        async with self.db.connection() as conn:
            parts = await schema.partitions(conn)
        whole = [p for p in parts if p.upper is not None and p.upper <= before_timestamp]
        if whole:
            return await self._drop(whole[0], batch)
        removed = 0
        for part in parts:
            if part.lower is not None and part.lower >= before_timestamp:
                continue  # nothing old can be in it
            table = sql.Identifier(part.name)
            # A TID scan of one partition: the rows found, deleted by their addresses.
            removed += await self.db.execute(
                sql.SQL("DELETE FROM {} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {}"
                        ' WHERE "timestamp" < %s LIMIT %s))').format(table, table),
                (before_timestamp, batch - removed))
            if removed >= batch:
                break
        return removed

    async def _drop(self, part: schema.Partition, batch: int) -> int:
        table = sql.Identifier(part.name)
        # Counted before: nothing writes to a month that ended before the retention cutoff.
        row = await self.db.fetchone(sql.SQL("SELECT count(*) FROM {}").format(table))
        count = int(row[0]) if row else 0
        try:
            async with self.db.transaction() as conn:
                await conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(
                    sql.Literal(DROP_LOCK_TIMEOUT)))
                await conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
        except errors.LockNotAvailable:
            log.info("history partition %s is busy; dropping it later", part.name)
            return 0
        log.info("history partition %s dropped (%d items)", part.name, count)
        return max(count, batch)
