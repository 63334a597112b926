"""Calls in flight: a row from before the first dial until the call's item is final.

With history, this is what makes exactly one history item per attempt whatever crashes: the
row is durable before anything is dialled; when setup is over (bridged or failed) the item
goes into history in the same statement that updates or drops the row; when a bridged call
ends, the item is completed and the row dropped, again in one statement. Each of those is
one statement with a data-modifying WITH: atomic, and one round trip.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from c2c_ari.store.postgres.db import Database
from c2c_ari.store.postgres.history import (
    COMPLETE,
    INSERT,
    complete_params,
    insert_params,
)
from c2c_ari.store.records import ActiveCall

_COLUMNS = "call_id, account_id, clicktocall_id, item, resources, bridged, owner, node"


class ActiveCallStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def put(self, call: ActiveCall) -> None:
        """The call is about to be dialled: durable before anything reaches Asterisk."""
        await self.db.execute(
            f"INSERT INTO active_calls ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (call_id) DO UPDATE SET account_id = excluded.account_id,"
            " clicktocall_id = excluded.clicktocall_id, item = excluded.item,"
            " resources = excluded.resources, bridged = excluded.bridged,"
            " owner = excluded.owner, node = excluded.node",
            (call.call_id, call.account_id, call.clicktocall_id, json.dumps(call.item),
             json.dumps(call.resources), call.bridged, call.owner, call.node))

    async def record_bridged(self, call: ActiveCall) -> None:
        """Both legs are bridged: the item (success so far) goes into history, where it is
        listed while the call is up, and the row says so, in one statement."""
        await self.db.execute(
            "WITH bridged AS (UPDATE active_calls SET item = %s, bridged = true"
            f" WHERE call_id = %s) {INSERT}",
            (json.dumps(call.item), call.call_id,
             *insert_params(call.account_id, call.clicktocall_id, call.call_id,
                            call.item["timestamp"], call.item, final=False)))

    async def record_outcome(self, call: ActiveCall) -> bool:
        """The call's final item goes into history (inserted, or completing the one its
        bridge recorded) and its in-flight row goes, in one statement. False if the item was
        final already."""
        recorded = await self.db.execute(
            f"WITH gone AS (DELETE FROM active_calls WHERE call_id = %s) {COMPLETE}",
            (call.call_id,
             *complete_params(call.account_id, call.clicktocall_id, call.call_id,
                              call.item["timestamp"], call.item)))
        return recorded == 1

    async def get(self, call_id: str) -> ActiveCall | None:
        row = await self.db.fetchone(
            f"SELECT {_COLUMNS} FROM active_calls WHERE call_id = %s", (call_id,))
        return None if row is None else _call(row)

    async def of_clicktocall(self, account_id: str, clicktocall_id: str) -> list[ActiveCall]:
        return [_call(row) for row in await self.db.fetchall(
            f"SELECT {_COLUMNS} FROM active_calls WHERE account_id = %s"
            " AND clicktocall_id = %s", (account_id, clicktocall_id))]

    async def count_of_account(self, account_id: str) -> int:
        row = await self.db.fetchone(
            "SELECT count(*) FROM active_calls WHERE account_id = %s", (account_id,))
        return int(row[0]) if row else 0

    async def count_by_node(self, exclude_owner: str = "") -> dict[str, int]:
        return {row[0]: int(row[1]) for row in await self.db.fetchall(
            "SELECT node, count(*) FROM active_calls WHERE owner IS DISTINCT FROM %s"
            " GROUP BY node",
            (exclude_owner,))}

    async def all(self) -> list[ActiveCall]:
        return [_call(row) for row in await self.db.fetchall(
            f"SELECT {_COLUMNS} FROM active_calls")]

    async def owners(self) -> set[str]:
        return {row[0] for row in await self.db.fetchall(
            "SELECT DISTINCT owner FROM active_calls WHERE owner IS NOT NULL")}

    async def claim_orphans(
        self, live_owners: Collection[str], new_owner: str, limit: int
    ) -> list[ActiveCall]:
        """One statement. The distinct owners are read by a loose scan of the owner index
        (one descent per owner: there are a few, however many calls), the dead ones' rows
        are locked with SKIP LOCKED (rows another claimer is taking right now are left to
        it) and given to `new_owner`. A row another claimer took and committed meanwhile is
        re-checked under its lock and no longer has a dead owner, so no call is claimed
        twice."""
        rows = await self.db.fetchall(
            "WITH RECURSIVE owners AS ("
            "  SELECT min(owner) AS owner FROM active_calls"
            "  UNION ALL"
            "  SELECT (SELECT min(owner) FROM active_calls a WHERE a.owner > o.owner)"
            "  FROM owners o WHERE o.owner IS NOT NULL"
            "), dead AS ("
            "  SELECT owner FROM owners WHERE owner IS NOT NULL AND owner <> ALL(%s)"
            "), picked AS MATERIALIZED ("
            "  SELECT call_id FROM active_calls WHERE owner IN (SELECT owner FROM dead)"
            "  LIMIT %s FOR UPDATE SKIP LOCKED"
            f") UPDATE active_calls SET owner = %s FROM picked"
            f" WHERE active_calls.call_id = picked.call_id"
            f" RETURNING {', '.join('active_calls.' + c for c in _COLUMNS.split(', '))}",
            (sorted(set(live_owners)), limit, new_owner))
        return [_call(row) for row in rows]


def _call(row: tuple[Any, ...]) -> ActiveCall:
    return ActiveCall(row[0], row[1], row[2], json.loads(row[3]), json.loads(row[4]),
                      bool(row[5]), row[6], row[7])
