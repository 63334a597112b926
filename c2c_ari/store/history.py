"""Call history: one row per call attempt, listed newest first."""

from __future__ import annotations

import json
from typing import Any

from c2c_ari.store.db import Database


def insert_statement(
    account_id: str, clicktocall_id: str, call_id: str, timestamp: int, item: dict[str, Any],
) -> tuple[str, tuple[Any, ...]]:
    """The write that records one attempt, ignored when its call id is already recorded."""
    return (
        "INSERT OR IGNORE INTO history (account_id, clicktocall_id, call_id, timestamp, doc)"
        " VALUES (?, ?, ?, ?, ?)",
        (account_id, clicktocall_id, call_id, timestamp, json.dumps(item)),
    )


class HistoryStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def insert(
        self, account_id: str, clicktocall_id: str, call_id: str, timestamp: int,
        item: dict[str, Any],
    ) -> bool:
        """Record one attempt; False if this call id is already recorded (exactly once)."""
        changed = await self.db.execute(
            *insert_statement(account_id, clicktocall_id, call_id, timestamp, item))
        return changed == 1

    async def get(self, account_id: str, call_id: str) -> dict[str, Any] | None:
        row = await self.db.fetchone(
            "SELECT doc FROM history WHERE call_id = ? AND account_id = ?", (call_id, account_id)
        )
        return json.loads(row[0]) if row else None

    async def page(
        self,
        account_id: str,
        clicktocall_id: str,
        *,
        before_seq: int | None,
        created_from: int | None,
        created_to: int | None,
        limit: int | None,
    ) -> list[tuple[int, dict[str, Any]]]:
        """(seq, item) pairs, newest first, starting at `before_seq` (inclusive)."""
        rows = await self.db.fetchall(
            "SELECT seq, doc FROM history WHERE account_id = ? AND clicktocall_id = ?"
            " AND seq <= ? AND timestamp >= ? AND timestamp <= ?"
            " ORDER BY seq DESC LIMIT ?",
            (
                account_id,
                clicktocall_id,
                (1 << 62) if before_seq is None else before_seq,
                -(1 << 62) if created_from is None else created_from,
                (1 << 62) if created_to is None else created_to,
                -1 if limit is None else limit,
            ),
        )
        return [(seq, json.loads(doc)) for seq, doc in rows]
