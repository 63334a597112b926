"""Click-to-call documents, with CouchDB-style revisions and soft deletion.

Reads of single documents are served from a cache bounded in bytes that every write of this
store keeps current. That is sound because one service process owns the database file: no
other writer changes click-to-calls behind its back (the CLI's `accounts delete` removes
them only from an account it has disabled first, which no request can reach any more).
"""

from __future__ import annotations

import sys
from collections import OrderedDict

from c2c_ari.store.records import StoredDocument
from c2c_ari.store.sqlite.db import Database

# What a cached entry costs besides its text: the entry, its key and the bookkeeping.
_ENTRY_OVERHEAD = 400


def _cost(stored: StoredDocument) -> int:
    return sys.getsizeof(stored.body) + _ENTRY_OVERHEAD


class DocumentCache:
    """The most recently used documents, at most `limit` bytes in all, and at most
    `limit // share` bytes for any one account: an account that reads or writes many large
    documents evicts its own, never more than its share of everyone else's."""

    def __init__(self, limit: int, share: int = 8) -> None:
        self.limit = limit
        self.account_limit = limit // share
        self.used = 0
        self._entries: OrderedDict[tuple[str, str], tuple[StoredDocument, int]] = OrderedDict()
        # Per account: its documents, least recently used first, and the bytes they take.
        self._by_account: dict[str, tuple[OrderedDict[str, None], list[int]]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def account_bytes(self, account_id: str) -> int:
        entry = self._by_account.get(account_id)
        return 0 if entry is None else entry[1][0]

    def get(self, account_id: str, doc_id: str) -> StoredDocument | None:
        entry = self._entries.get((account_id, doc_id))
        if entry is None:
            return None
        self._entries.move_to_end((account_id, doc_id))
        self._by_account[account_id][0].move_to_end(doc_id)
        return entry[0]

    def put(self, account_id: str, stored: StoredDocument) -> None:
        self.drop(account_id, stored.id)
        cost = _cost(stored)
        if cost > self.account_limit:
            return
        self._entries[(account_id, stored.id)] = (stored, cost)
        order, total = self._by_account.setdefault(account_id, (OrderedDict(), [0]))
        order[stored.id] = None
        total[0] += cost
        self.used += cost
        while total[0] > self.account_limit:
            self.drop(account_id, next(iter(order)))
        while self.used > self.limit:
            self.drop(*next(iter(self._entries)))

    def drop_account(self, account_id: str) -> None:
        entry = self._by_account.get(account_id)
        for doc_id in list(entry[0]) if entry else []:
            self.drop(account_id, doc_id)

    def drop(self, account_id: str, doc_id: str) -> None:
        entry = self._entries.pop((account_id, doc_id), None)
        if entry is None:
            return
        order, total = self._by_account[account_id]
        del order[doc_id]
        total[0] -= entry[1]
        self.used -= entry[1]
        if not order:
            del self._by_account[account_id]


class ClickToCallStore:
    def __init__(self, db: Database, cache_bytes: int = 32 * 1024 * 1024) -> None:
        self.db = db
        self.cache = DocumentCache(cache_bytes)

    async def insert(
        self, account_id: str, doc_id: str, body: str, revision: str, now: float,
        *, limit: int,
    ) -> StoredDocument | None:
        """Store a new document (`body`, its JSON text) unless the account already has
        `limit` live ones; None then. The check and the insert are one statement (the count
        is the account's, kept by triggers), so concurrent creates cannot pass the limit
        together."""
        inserted = await self.db.execute(
            "INSERT INTO clicktocalls (account_id, id, doc, rev, revision, created, modified)"
            " SELECT ?, ?, ?, 1, ?, ?, ?"
            " WHERE (SELECT live_clicktocalls FROM accounts WHERE id = ?) < ?",
            (account_id, doc_id, body, revision, now, now, account_id, limit),
            batchable=True,
        )
        if inserted != 1:
            return None
        stored = StoredDocument(doc_id, 1, revision, body)
        self.cache.put(account_id, stored)
        return stored

    async def get(self, account_id: str, doc_id: str) -> StoredDocument | None:
        cached = self.cache.get(account_id, doc_id)
        if cached is not None:
            return cached
        row = await self.db.fetchone(
            "SELECT id, rev, revision, doc FROM clicktocalls"
            " WHERE account_id = ? AND id = ? AND deleted = 0",
            (account_id, doc_id),
        )
        if row is None:
            return None
        stored = StoredDocument(*row)
        self.cache.put(account_id, stored)
        return stored

    async def find(self, doc_id: str) -> tuple[str, StoredDocument] | None:
        """(account id, document) of a live click-to-call, whatever its account: for calls
        that start from the dialplan, where only the id is known."""
        row = await self.db.fetchone(
            "SELECT account_id, id, rev, revision, doc FROM clicktocalls"
            " WHERE id = ? AND deleted = 0",
            (doc_id,),
        )
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

        This is what keeps concurrent writers from losing each other's updates."""
        changed = await self.db.execute(
            "UPDATE clicktocalls SET doc = ?, rev = rev + 1, revision = ?, modified = ?,"
            " deleted = ? WHERE account_id = ? AND id = ? AND rev = ? AND deleted = 0",
            (body, revision, now, int(delete), account_id, current.id, current.rev),
        )
        self.cache.drop(account_id, current.id)
        if changed != 1:
            return None
        stored = StoredDocument(current.id, current.rev + 1, revision, body)
        if not delete:
            self.cache.put(account_id, stored)
        return stored

    async def deleted_before(self, modified: float, limit: int) -> list[tuple[str, str]]:
        """(account id, id) of soft-deleted documents last changed before `modified`."""
        return [(row[0], row[1]) for row in await self.db.fetchall(
            "SELECT account_id, id FROM clicktocalls WHERE deleted = 1 AND modified < ?"
            " LIMIT ?", (modified, limit), bulk=True)]

    async def purge(self, account_id: str, doc_id: str) -> None:
        """Remove a soft-deleted document for good."""
        await self.db.execute(
            "DELETE FROM clicktocalls WHERE account_id = ? AND id = ? AND deleted = 1",
            (account_id, doc_id))

    async def purge_account(self, account_id: str, batch: int) -> int:
        """Remove up to `batch` click-to-calls of the account, live or soft-deleted (the
        live count follows, by trigger). The cache of this process forgets the account's
        documents; another process's cache may keep them, but no request reaches them: the
        account was made DELETING first, and every way in checks that."""
        removed = await self.db.execute(
            "DELETE FROM clicktocalls WHERE account_id = ? AND id IN"
            " (SELECT id FROM clicktocalls WHERE account_id = ? LIMIT ?)",
            (account_id, account_id, batch))
        self.cache.drop_account(account_id)
        return removed

    async def page(
        self, account_id: str, start_key: str | None, limit: int, *, bulk: bool = False
    ) -> list[tuple[str, str | None, str | None]]:
        """(id, name, extension) of live documents ordered by id, from `start_key` on."""
        return [
            (row[0], row[1], row[2])
            for row in await self.db.fetchall(
                "SELECT id, json_extract(doc, '$.name'), json_extract(doc, '$.extension')"
                " FROM clicktocalls WHERE account_id = ? AND deleted = 0 AND id >= ?"
                " ORDER BY id LIMIT ?",
                (account_id, start_key or "", limit), bulk=bulk,
            )
        ]
