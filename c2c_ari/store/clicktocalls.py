"""Click-to-call documents, with CouchDB-style revisions and soft deletion."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from c2c_ari.store.db import Database


@dataclass(frozen=True)
class StoredDocument:
    id: str
    doc: dict[str, Any]
    rev: int
    revision: str


def _row(row: tuple[Any, ...]) -> StoredDocument:
    return StoredDocument(id=row[0], doc=json.loads(row[1]), rev=row[2], revision=row[3])


class ClickToCallStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def insert(
        self, account_id: str, doc_id: str, body: str, revision: str, now: float
    ) -> None:
        await self.db.execute(
            "INSERT INTO clicktocalls (account_id, id, doc, rev, revision, created, modified)"
            " VALUES (?, ?, ?, 1, ?, ?, ?)",
            (account_id, doc_id, body, revision, now, now),
        )

    async def get(self, account_id: str, doc_id: str) -> StoredDocument | None:
        row = await self.db.fetchone(
            "SELECT id, doc, rev, revision FROM clicktocalls"
            " WHERE account_id = ? AND id = ? AND deleted = 0",
            (account_id, doc_id),
        )
        return _row(row) if row else None

    async def compare_and_swap(
        self,
        account_id: str,
        doc_id: str,
        expected_rev: int,
        body: str,
        revision: str,
        now: float,
        *,
        delete: bool = False,
    ) -> bool:
        """Write only if the stored revision is still `expected_rev`; False when it moved on.

        This is what keeps concurrent writers from losing each other's updates."""
        changed = await self.db.execute(
            "UPDATE clicktocalls SET doc = ?, rev = rev + 1, revision = ?, modified = ?,"
            " deleted = ? WHERE account_id = ? AND id = ? AND rev = ? AND deleted = 0",
            (body, revision, now, int(delete), account_id, doc_id, expected_rev),
        )
        return changed == 1

    async def page(
        self, account_id: str, start_key: str | None, limit: int | None
    ) -> list[StoredDocument]:
        """Live documents ordered by id, from `start_key` on; `limit` None means all."""
        return [
            _row(row)
            for row in await self.db.fetchall(
                "SELECT id, doc, rev, revision FROM clicktocalls"
                " WHERE account_id = ? AND deleted = 0 AND id >= ? ORDER BY id LIMIT ?",
                (account_id, start_key or "", -1 if limit is None else limit),
            )
        ]
