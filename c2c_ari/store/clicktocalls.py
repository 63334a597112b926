"""Click-to-call documents, with CouchDB-style revisions and soft deletion.

Reads of single documents are served from a bounded in-memory cache that every write of this
store keeps current. That is sound because one service process owns the database file: no
other writer changes click-to-calls behind its back (the CLI only creates accounts).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from c2c_ari.store.db import Database


@dataclass(frozen=True)
class StoredDocument:
    id: str
    doc: dict[str, Any]
    rev: int
    revision: str
    # The document as stored: canonical JSON, ready to send without encoding it again.
    body: str


def _row(row: tuple[Any, ...]) -> StoredDocument:
    return StoredDocument(id=row[0], doc=json.loads(row[1]), rev=row[2], revision=row[3],
                          body=row[1])


class ClickToCallStore:
    def __init__(self, db: Database, cache_size: int = 10_000) -> None:
        self.db = db
        self._cache: OrderedDict[tuple[str, str], StoredDocument] = OrderedDict()
        self._cache_size = cache_size

    def _remember(self, account_id: str, stored: StoredDocument) -> None:
        key = (account_id, stored.id)
        self._cache[key] = stored
        self._cache.move_to_end(key)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    async def insert(
        self, account_id: str, doc: dict[str, Any], body: str, revision: str, now: float
    ) -> StoredDocument:
        """Store a new document; `body` is its JSON text and `doc["id"]` its id."""
        doc_id = doc["id"]
        await self.db.execute(
            "INSERT INTO clicktocalls (account_id, id, doc, rev, revision, created, modified)"
            " VALUES (?, ?, ?, 1, ?, ?, ?)",
            (account_id, doc_id, body, revision, now, now),
            batchable=True,
        )
        stored = StoredDocument(doc_id, doc, 1, revision, body)
        self._remember(account_id, stored)
        return stored

    async def get(self, account_id: str, doc_id: str) -> StoredDocument | None:
        cached = self._cache.get((account_id, doc_id))
        if cached is not None:
            return cached
        row = await self.db.fetchone(
            "SELECT id, doc, rev, revision FROM clicktocalls"
            " WHERE account_id = ? AND id = ? AND deleted = 0",
            (account_id, doc_id),
        )
        if row is None:
            return None
        stored = _row(row)
        self._remember(account_id, stored)
        return stored

    async def find(self, doc_id: str) -> tuple[str, StoredDocument] | None:
        """(account id, document) of a live click-to-call, whatever its account: for calls
        that start from the dialplan, where only the id is known."""
        row = await self.db.fetchone(
            "SELECT account_id, id, doc, rev, revision FROM clicktocalls"
            " WHERE id = ? AND deleted = 0",
            (doc_id,),
        )
        return (row[0], _row(row[1:])) if row else None

    async def compare_and_swap(
        self,
        account_id: str,
        current: StoredDocument,
        doc: dict[str, Any],
        body: str,
        revision: str,
        now: float,
        *,
        delete: bool = False,
    ) -> StoredDocument | None:
        """Write only if the stored revision is still `current.rev`; None when it moved on.

        This is what keeps concurrent writers from losing each other's updates."""
        changed = await self.db.execute(
            "UPDATE clicktocalls SET doc = ?, rev = rev + 1, revision = ?, modified = ?,"
            " deleted = ? WHERE account_id = ? AND id = ? AND rev = ? AND deleted = 0",
            (body, revision, now, int(delete), account_id, current.id, current.rev),
        )
        if changed != 1:
            self._cache.pop((account_id, current.id), None)
            return None
        stored = StoredDocument(current.id, doc, current.rev + 1, revision, body)
        if delete:
            self._cache.pop((account_id, current.id), None)
        else:
            self._remember(account_id, stored)
        return stored

    async def page(
        self, account_id: str, start_key: str | None, limit: int | None
    ) -> list[tuple[str, str | None, str | None]]:
        """(id, name, extension) of live documents ordered by id, from `start_key` on;
        `limit` None means all."""
        return [
            (row[0], row[1], row[2])
            for row in await self.db.fetchall(
                "SELECT id, json_extract(doc, '$.name'), json_extract(doc, '$.extension')"
                " FROM clicktocalls WHERE account_id = ? AND deleted = 0 AND id >= ?"
                " ORDER BY id LIMIT ?",
                (account_id, start_key or "", -1 if limit is None else limit),
            )
        ]
