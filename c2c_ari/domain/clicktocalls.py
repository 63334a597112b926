"""Click-to-call definitions: validation, revisions, merge, soft delete, listing, history."""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from c2c_ari.domain import whitelist
from c2c_ari.domain.errors import LimitReached, NotFound, RevisionConflict, ValidationFailed
from c2c_ari.domain.ids import is_valid_id, new_id
from c2c_ari.store import ClickToCallStore, HistoryStore, StoredDocument

# Keys a client can never write: the id and revision are ours; `pvt_` and `_` keys are
# private in Kazoo's documents and never shown or accepted.
_READ_ONLY = frozenset({"id", "revision"})


def _is_private(key: str) -> bool:
    return key in _READ_ONLY or key.startswith(("pvt_", "_"))


def public(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if not _is_private(k)}


def revision_of(rev: int, body: str) -> str:
    return f"{rev}-{hashlib.md5(body.encode(), usedforsecurity=False).hexdigest()}"


def encode(doc: dict[str, Any]) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Kazoo's PATCH: objects merge recursively, anything else replaces."""
    out = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


@dataclass(frozen=True)
class Page:
    """One page of a listing: its items as JSON texts, in order, and where the next starts."""

    items: list[str]
    next_start_key: str | None


# Rows a long listing reads at a time (paginate=false): memory and the time any one read
# holds the database stay bounded, whatever the listing's length.
CHUNK_ROWS = 500
# A history start key is the (timestamp, seq) of the first item of the page.
_HISTORY_KEY = re.compile(r"([0-9]{1,18})-([0-9]{1,18})")


def history_key(timestamp: int, seq: int) -> str:
    return f"{timestamp}-{seq}"


def parse_history_key(key: str | None) -> tuple[int, int] | None:
    if key is None:
        return None
    match = _HISTORY_KEY.fullmatch(key)
    if match is None:
        raise ValidationFailed.single(
            "start_key", "pattern", "start_key is not a history key (take next_start_key of "
            "the previous page)", target=_HISTORY_KEY.pattern)
    return int(match.group(1)), int(match.group(2))


def _listing_item(row: tuple[str, str | None, str | None]) -> str:
    return encode({"id": row[0], "name": row[1], "extension": row[2]})


def _unquote(etag: str) -> str:
    etag = etag.strip()
    if etag.startswith("W/"):
        etag = etag[2:]
    return etag.strip('"')


class ClickToCallService:
    def __init__(
        self,
        store: ClickToCallStore,
        history: HistoryStore,
        validate: Callable[[dict[str, Any]], dict[str, Any]],
        *,
        max_per_account: int = 1000,
    ) -> None:
        self.store = store
        self.history_store = history
        self.validate = validate
        self.max_per_account = max_per_account

    def _prepare(self, data: dict[str, Any], doc_id: str) -> tuple[dict[str, Any], str]:
        # The whitelist's cost first: it stops a hostile list before the schema compiles
        # every entry of it.
        entries = data.get("whitelist")
        whitelist.check_budget(entries if isinstance(entries, list) else None)
        doc = self.validate(public(data))
        doc["id"] = doc_id
        return doc, encode(doc)

    async def create(self, account_id: str, data: dict[str, Any]) -> StoredDocument:
        doc_id = new_id()
        _doc, body = self._prepare(data, doc_id)
        stored = await self.store.insert(account_id, doc_id, body, revision_of(1, body),
                                         time.time(), limit=self.max_per_account)
        if stored is None:
            raise LimitReached(
                f"an account may have at most {self.max_per_account} click-to-calls: delete "
                "one first", self.max_per_account)
        return stored

    async def get(self, account_id: str, doc_id: str) -> StoredDocument:
        found = await self.store.get(account_id, doc_id) if is_valid_id(doc_id) else None
        if found is None:
            raise NotFound(doc_id)
        return found

    async def find(self, doc_id: str) -> tuple[str, StoredDocument]:
        """(account id, document) by id alone: for calls from the dialplan."""
        found = await self.store.find(doc_id) if is_valid_id(doc_id) else None
        if found is None:
            raise NotFound(doc_id)
        return found

    async def replace(
        self, account_id: str, doc_id: str, data: dict[str, Any], if_match: str | None = None
    ) -> StoredDocument:
        return await self._update(account_id, doc_id, lambda _old: data, if_match)

    async def patch(
        self, account_id: str, doc_id: str, data: dict[str, Any], if_match: str | None = None
    ) -> StoredDocument:
        return await self._update(
            account_id, doc_id, lambda old: merge(public(old), public(data)), if_match
        )

    async def delete(
        self, account_id: str, doc_id: str, if_match: str | None = None
    ) -> StoredDocument:
        return await self._update(account_id, doc_id, None, if_match)

    async def _update(
        self,
        account_id: str,
        doc_id: str,
        change: Callable[[dict[str, Any]], dict[str, Any]] | None,
        if_match: str | None,
    ) -> StoredDocument:
        """Read, change, validate and write back; on a concurrent write, start again from the
        newer document, unless the client pinned a revision with If-Match."""
        pinned = None if if_match is None or if_match.strip() == "*" else _unquote(if_match)
        while True:
            current = await self.get(account_id, doc_id)
            if pinned is not None and pinned != current.revision:
                raise RevisionConflict(current.revision)
            body = current.body if change is None else self._prepare(
                change(current.doc), doc_id)[1]
            stored = await self.store.compare_and_swap(
                account_id, current, body, revision_of(current.rev + 1, body),
                time.time(), delete=change is None,
            )
            if stored is not None:
                return stored
            if pinned is not None:
                raise RevisionConflict((await self.get(account_id, doc_id)).revision)

    async def page(self, account_id: str, start_key: str | None, page_size: int) -> Page:
        rows = await self.store.page(account_id, start_key, page_size + 1)
        next_key = rows[page_size][0] if len(rows) > page_size else None
        return Page([_listing_item(row) for row in rows[:page_size]], next_key)

    async def all_items(self, account_id: str, start_key: str | None) -> AsyncIterator[str]:
        """Every listing item from `start_key` on, read CHUNK_ROWS at a time."""
        while True:
            rows = await self.store.page(account_id, start_key, CHUNK_ROWS + 1, bulk=True)
            for row in rows[:CHUNK_ROWS]:
                yield _listing_item(row)
            if len(rows) <= CHUNK_ROWS:
                return
            start_key = rows[CHUNK_ROWS][0]

    async def history(
        self,
        account_id: str,
        doc_id: str,
        *,
        start_key: str | None,
        page_size: int,
        created_from: int | None,
        created_to: int | None,
    ) -> Page:
        await self.get(account_id, doc_id)
        rows = await self.history_store.page(
            account_id, doc_id, before=parse_history_key(start_key),
            created_from=created_from, created_to=created_to, limit=page_size + 1,
        )
        next_key = history_key(*rows[page_size][:2]) if len(rows) > page_size else None
        return Page([row[2] for row in rows[:page_size]], next_key)

    async def all_history(
        self,
        account_id: str,
        doc_id: str,
        *,
        start_key: str | None,
        created_from: int | None,
        created_to: int | None,
    ) -> AsyncIterator[str]:
        """Every history item in the window from `start_key` on, read CHUNK_ROWS at a time."""
        await self.get(account_id, doc_id)
        before = parse_history_key(start_key)
        while True:
            rows = await self.history_store.page(
                account_id, doc_id, before=before, created_from=created_from,
                created_to=created_to, limit=CHUNK_ROWS + 1, bulk=True,
            )
            for row in rows[:CHUNK_ROWS]:
                yield row[2]
            if len(rows) <= CHUNK_ROWS:
                return
            before = rows[CHUNK_ROWS][0], rows[CHUNK_ROWS][1]
