"""Click-to-call documents, with CouchDB-style revisions and soft deletion.

No document cache here: other processes change documents too, and a stale copy would let a
stale If-Match pass or hand out an old revision. Every read is one primary-key lookup.
"""

from __future__ import annotations

import json
from typing import Any

from c2c_ari.store.postgres.db import Database
from c2c_ari.store.records import StoredDocument


def _shown(value: Any) -> str | None:
    """A listed field as SQLite's json_extract gives it: text as is, anything else (a
    schema never lets through) as JSON."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value)


def listed_fields(body: str) -> tuple[str | None, str | None]:
    """(name, extension) of a document's JSON text, for the listing columns."""
    doc = json.loads(body)
    if not isinstance(doc, dict):
        return None, None
    return _shown(doc.get("name")), _shown(doc.get("extension"))


class ClickToCallStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def insert(
        self, account_id: str, doc_id: str, body: str, revision: str, now: float,
        *, limit: int,
    ) -> StoredDocument | None:
        """Store a new document (`body`, its JSON text) unless the account already has
        `limit` live ones; None then. Exact under concurrency, across processes too: see
        c2c_insert_clicktocall in schema.py."""
        row = await self.db.fetchone(
            "SELECT c2c_insert_clicktocall(%s, %s, %s, %s, %s, %s, %s, %s)",
            (account_id, doc_id, body, revision, now, *listed_fields(body), limit))
        if row is None or not row[0]:
            return None
        return StoredDocument(doc_id, 1, revision, body)

    async def get(self, account_id: str, doc_id: str) -> StoredDocument | None:
        row = await self.db.fetchone(
            "SELECT id, rev, revision, doc FROM clicktocalls"
            " WHERE account_id = %s AND id = %s AND NOT deleted", (account_id, doc_id))
        return StoredDocument(*row) if row else None

    async def find(self, doc_id: str) -> tuple[str, StoredDocument] | None:
        """(account id, document) of a live click-to-call, whatever its account: for calls
        that start from the dialplan, where only the id is known."""
        row = await self.db.fetchone(
            "SELECT account_id, id, rev, revision, doc FROM clicktocalls"
            " WHERE id = %s AND NOT deleted", (doc_id,))
        return (row[0], StoredDocument(*row[1:])) if row else None

    async def compare_and_swap(
        self,
        account_id: str,
        current: StoredDocument,
        body: str,
        revision: str,
        now: float,
        *,
        delete: bool = False,
    ) -> StoredDocument | None:
        """Write only if the stored revision is still `current.rev`; None when it moved on.
        A concurrent writer of the same row waits for this one's commit, then finds the
        revision changed and writes nothing."""
        changed = await self.db.execute(
            "UPDATE clicktocalls SET doc = %s, rev = rev + 1, revision = %s, modified = %s,"
            " deleted = %s, name = %s, extension = %s"
            " WHERE account_id = %s AND id = %s AND rev = %s AND NOT deleted",
            (body, revision, now, delete, *listed_fields(body), account_id, current.id,
             current.rev))
        if changed != 1:
            return None
        return StoredDocument(current.id, current.rev + 1, revision, body)

    async def deleted_before(self, modified: float, limit: int) -> list[tuple[str, str]]:
        """(account id, id) of soft-deleted documents last changed before `modified`."""
        return [(row[0], row[1]) for row in await self.db.fetchall(
            "SELECT account_id, id FROM clicktocalls WHERE deleted AND modified < %s"
            " LIMIT %s", (modified, limit))]

    async def purge(self, account_id: str, doc_id: str) -> None:
        """Remove a soft-deleted document for good."""
        await self.db.execute(
            "DELETE FROM clicktocalls WHERE account_id = %s AND id = %s AND deleted",
            (account_id, doc_id))

    async def purge_account(self, account_id: str, batch: int) -> int:
        """Remove up to `batch` click-to-calls of the account, live or soft-deleted."""
        return await self.db.execute(
            "DELETE FROM clicktocalls WHERE account_id = %s AND id = ANY(ARRAY(SELECT id"
            " FROM clicktocalls WHERE account_id = %s LIMIT %s))",
            (account_id, account_id, batch))

    async def page(
        self, account_id: str, start_key: str | None, limit: int, *, bulk: bool = False
    ) -> list[tuple[str, str | None, str | None]]:
        """(id, name, extension) of live documents ordered by id, from `start_key` on.
        (`bulk` matters to SQLite only: here every read has a pooled connection.)"""
        return [
            (row[0], row[1], row[2])
            for row in await self.db.fetchall(
                "SELECT id, name, extension FROM clicktocalls"
                " WHERE account_id = %s AND NOT deleted AND id >= %s ORDER BY id LIMIT %s",
                (account_id, start_key or "", limit))
        ]
