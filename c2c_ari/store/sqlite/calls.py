"""Calls in flight: a row from before the first dial until the call's item is final.

With history, this is what makes exactly one history item per attempt whatever crashes: the
row is durable before anything is dialled; when setup is over (bridged or failed) the item
goes into history in the same transaction that updates or drops the row; when a bridged call
ends, the item is completed and the row dropped, again in one transaction. A row left at
start-up is a call whose item is not final yet.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from c2c_ari.store.records import ActiveCall
from c2c_ari.store.sqlite.db import Database
from c2c_ari.store.sqlite.history import complete_statement, insert_statement


class ActiveCallStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def put(self, call: ActiveCall) -> None:
        """The call is about to be dialled: durable before anything reaches Asterisk."""
        await self.db.execute(
            "INSERT OR REPLACE INTO active_calls (call_id, account_id, clicktocall_id, item,"
            " resources, bridged, owner, node) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (call.call_id, call.account_id, call.clicktocall_id, json.dumps(call.item),
             json.dumps(call.resources), int(call.bridged), call.owner, call.node),
        )

    async def record_bridged(self, call: ActiveCall) -> None:
        """Both legs are bridged: the item (success so far) goes into history, where it is
        listed while the call is up, and the row says so, in one transaction."""
        await self.db.execute_together([
            insert_statement(call.account_id, call.clicktocall_id, call.call_id,
                             call.item["timestamp"], call.item, final=False),
            ("UPDATE active_calls SET item = ?, bridged = 1 WHERE call_id = ?",
             (json.dumps(call.item), call.call_id)),
        ])

    async def record_outcome(self, call: ActiveCall) -> bool:
        """The call's final item goes into history (inserted, or completing the one its
        bridge recorded) and its in-flight row goes, in one transaction (one commit, and never
        one without the other). False if the item was final already."""
        recorded, _removed = await self.db.execute_together([
            complete_statement(call.account_id, call.clicktocall_id, call.call_id,
                               call.item["timestamp"], call.item),
            ("DELETE FROM active_calls WHERE call_id = ?", (call.call_id,)),
        ])
        return recorded == 1

    async def get(self, call_id: str) -> ActiveCall | None:
        row = await self.db.fetchone(f"SELECT {_COLUMNS} FROM active_calls WHERE call_id = ?",
                                     (call_id,))
        return None if row is None else _call(row)

    async def of_clicktocall(self, account_id: str, clicktocall_id: str) -> list[ActiveCall]:
        return [_call(row) for row in await self.db.fetchall(
            f"SELECT {_COLUMNS} FROM active_calls WHERE account_id = ? AND clicktocall_id = ?",
            (account_id, clicktocall_id))]

    async def count_of_account(self, account_id: str) -> int:
        row = await self.db.fetchone(
            "SELECT count(*) FROM active_calls WHERE account_id = ?", (account_id,))
        return int(row[0]) if row else 0

    async def count_by_node(self, exclude_owner: str = "") -> dict[str, int]:
        return {row[0]: int(row[1]) for row in await self.db.fetchall(
            "SELECT node, count(*) FROM active_calls WHERE owner IS NOT ? GROUP BY node",
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
        owners = sorted(set(live_owners))
        marks = ",".join("?" * len(owners)) or "NULL"
        # One statement: the writer runs one transaction at a time, so no other claimer can
        # take the same rows.
        rows = await self.db.execute_returning(
            f"UPDATE active_calls SET owner = ? WHERE call_id IN (SELECT call_id FROM"
            f" active_calls WHERE owner NOT IN ({marks}) LIMIT ?) RETURNING {_COLUMNS}",
            (new_owner, *owners, limit),
        )
        return [_call(row) for row in rows]


_COLUMNS = "call_id, account_id, clicktocall_id, item, resources, bridged, owner, node"


def _call(row: tuple[Any, ...]) -> ActiveCall:
    return ActiveCall(row[0], row[1], row[2], json.loads(row[3]), json.loads(row[4]),
                      bool(row[5]), row[6], row[7])
