"""Calls in flight: written when a call starts, removed when its history item is recorded."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from c2c_ari.store.db import Database
from c2c_ari.store.history import insert_statement


@dataclass(frozen=True)
class ActiveCall:
    call_id: str
    account_id: str
    clicktocall_id: str
    item: dict[str, Any]
    # ARI ids (channels, bridge) that may still exist in Asterisk for this call
    resources: list[str]


class ActiveCallStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def put(self, call: ActiveCall) -> None:
        await self.db.execute(
            "INSERT OR REPLACE INTO active_calls"
            " (call_id, account_id, clicktocall_id, item, resources) VALUES (?, ?, ?, ?, ?)",
            (call.call_id, call.account_id, call.clicktocall_id, json.dumps(call.item),
             json.dumps(call.resources)),
        )

    async def record_outcome(self, call: ActiveCall) -> bool:
        """Record the call's history item and drop its in-flight row, in one transaction (so
        one commit, and never one without the other). False if the item was already
        recorded."""
        inserted, _removed = await self.db.execute_together([
            insert_statement(call.account_id, call.clicktocall_id, call.call_id,
                             call.item["timestamp"], call.item),
            ("DELETE FROM active_calls WHERE call_id = ?", (call.call_id,)),
        ])
        return inserted == 1

    async def all(self) -> list[ActiveCall]:
        return [
            ActiveCall(row[0], row[1], row[2], json.loads(row[3]), json.loads(row[4]))
            for row in await self.db.fetchall(
                "SELECT call_id, account_id, clicktocall_id, item, resources FROM active_calls"
            )
        ]
