"""Call history: one row per call attempt, listed newest first."""

from __future__ import annotations

import json
from typing import Any

from c2c_ari.store.sqlite.db import Database


def insert_statement(
    account_id: str, clicktocall_id: str, call_id: str, timestamp: int, item: dict[str, Any],
    *, final: bool = True,
) -> tuple[str, tuple[Any, ...]]:
    """The write that records one attempt, ignored when its call id is already recorded."""
    return (
        "INSERT OR IGNORE INTO history"
        " (account_id, clicktocall_id, call_id, timestamp, doc, final) VALUES (?, ?, ?, ?, ?, ?)",
        (account_id, clicktocall_id, call_id, timestamp, json.dumps(item), int(final)),
    )


def complete_statement(
    account_id: str, clicktocall_id: str, call_id: str, timestamp: int, item: dict[str, Any],
) -> tuple[str, tuple[Any, ...]]:
    """The write that records an attempt's final item: inserted if its setup left none,
    else replacing the item its bridge recorded; never an item that is final already, so a
    call's end is recorded once."""
    return (
        "INSERT INTO history (account_id, clicktocall_id, call_id, timestamp, doc, final)"
        " VALUES (?, ?, ?, ?, ?, 1)"
        " ON CONFLICT (call_id) DO UPDATE SET doc = excluded.doc, final = 1"
        " WHERE history.final = 0",
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

    async def prune(self, before_timestamp: int, batch: int) -> int:
        """Among the `batch` items recorded first, those whose call started before
        `before_timestamp`. History is recorded in the order calls start, give or take a
        call's length, so the oldest items are at its head: no index on time is needed,
        and a young item at the head only holds the old ones behind it for as long."""
        return await self.db.execute(
            "DELETE FROM history WHERE seq IN (SELECT seq FROM"
            " (SELECT seq, timestamp FROM history ORDER BY seq LIMIT ?) WHERE timestamp < ?)",
            (batch, before_timestamp))

    async def delete_of(self, account_id: str, clicktocall_id: str, batch: int) -> int:
        """Delete up to `batch` items of one click-to-call; how many went."""
        return await self.db.execute(
            "DELETE FROM history WHERE seq IN (SELECT seq FROM history"
            " WHERE account_id = ? AND clicktocall_id = ? LIMIT ?)",
            (account_id, clicktocall_id, batch))

    async def delete_of_account(self, account_id: str, batch: int) -> int:
        """Delete up to `batch` items of the account (an index range of history_by_time);
        how many went."""
        return await self.db.execute(
            "DELETE FROM history WHERE seq IN (SELECT seq FROM history"
            " WHERE account_id = ? LIMIT ?)", (account_id, batch))

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
        before: tuple[int, int] | None,
        created_from: int | None,
        created_to: int | None,
        limit: int,
        bulk: bool = False,
    ) -> list[tuple[int, int, str]]:
        """(timestamp, seq, item as JSON text), newest first, from `before` (a (timestamp,
        seq) pair, inclusive) on. One index range, whatever the window or the history's
        size."""
        newest = (1 << 62, 1 << 62) if before is None else before
        upper = newest[0] if created_to is None else min(created_to, newest[0])
        return [
            (row[0], row[1], row[2])
            for row in await self.db.fetchall(
                "SELECT timestamp, seq, doc FROM history"
                " WHERE account_id = ? AND clicktocall_id = ?"
                # The index range ends at the start key's second; within that second the
                # rows after the start key's seq are skipped one by one (a handful).
                " AND timestamp >= ? AND timestamp <= ? AND (timestamp < ? OR seq <= ?)"
                " ORDER BY timestamp DESC, seq DESC LIMIT ?",
                (
                    account_id,
                    clicktocall_id,
                    0 if created_from is None else created_from,
                    upper,
                    *newest,
                    limit,
                ),
                bulk=bulk,
            )
        ]
