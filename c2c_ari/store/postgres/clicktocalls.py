"""Click-to-call documents, with CouchDB-style revisions and soft deletion.

No document cache here: other processes change documents too, and a stale copy would let a
stale If-Match pass or hand out an old revision. Every read is one primary-key lookup.
"""

from __future__ import annotations

from c2c_ari.store.postgres.db import Database
from c2c_ari.store.records import StoredDocument

# The first key of pg_advisory_xact_lock(int, int) for "the click-to-calls of an account";
# the second is the hash of the account id.
ACCOUNT_LOCK = 0x6332  # "c2"


class ClickToCallStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def insert(
        self, account_id: str, doc_id: str, body: str, revision: str, now: float,
        *, limit: int,
    ) -> StoredDocument | None:
        """Store a new document (`body`, its JSON text) unless the account already has
        `limit` live ones; None then.

        Under READ COMMITTED a count and an insert in one statement would let concurrent
        creates each count the same rows and pass the limit together; so the account's
        creates take turns on an advisory lock held to the end of the transaction, and the
        count (a statement after the lock, so with a snapshot taken after it) sees every
        create that went before."""
        async with self.db.transaction() as conn:
            await conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                               (ACCOUNT_LOCK, account_id))
            cursor = await conn.execute(
                "INSERT INTO clicktocalls (account_id, id, doc, rev, revision, created,"
                " modified) SELECT %s, %s, %s, 1, %s, %s, %s WHERE (SELECT count(*)"
                " FROM clicktocalls WHERE account_id = %s AND NOT deleted) < %s",
                (account_id, doc_id, body, revision, now, now, account_id, limit))
            inserted = cursor.rowcount
        if inserted != 1:
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
            " deleted = %s WHERE account_id = %s AND id = %s AND rev = %s AND NOT deleted",
            (body, revision, now, delete, account_id, current.id, current.rev))
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

    async def page(
        self, account_id: str, start_key: str | None, limit: int, *, bulk: bool = False
    ) -> list[tuple[str, str | None, str | None]]:
        """(id, name, extension) of live documents ordered by id, from `start_key` on.
        (`bulk` matters to SQLite only: here every read has a pooled connection.)"""
        return [
            (row[0], row[1], row[2])
            for row in await self.db.fetchall(
                # json, not jsonb: only the two fields are read out of the text, and jsonb
                # would refuse a document holding an escaped NUL (\u0000) anywhere.
                "SELECT id, j ->> 'name', j ->> 'extension' FROM clicktocalls,"
                " LATERAL (SELECT doc::json AS j) parsed"
                " WHERE account_id = %s AND NOT deleted AND id >= %s ORDER BY id LIMIT %s",
                (account_id, start_key or "", limit))
        ]
