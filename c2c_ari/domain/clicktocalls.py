"""Click-to-call definitions: validation, revisions, merge, soft delete, listing, history."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from c2c_ari.domain.errors import NotFound, RevisionConflict, ValidationFailed
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
    items: list[dict[str, Any]]
    next_start_key: str | None


def _fetch_limit(page_size: int | None) -> int | None:
    """One row more than a page: its presence says there is a next page, and where it starts."""
    return None if page_size is None else page_size + 1


def _split_page(rows: list[Any], page_size: int | None) -> tuple[list[Any], str | None]:
    """(the page, the next page's start key: the first column of the extra row, if any)."""
    if page_size is None or len(rows) <= page_size:
        return rows, None
    return rows[:page_size], str(rows[page_size][0])


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
    ) -> None:
        self.store = store
        self.history_store = history
        self.validate = validate

    def _prepare(self, data: dict[str, Any], doc_id: str) -> tuple[dict[str, Any], str]:
        doc = self.validate(public(data))
        doc["id"] = doc_id
        return doc, encode(doc)

    async def create(self, account_id: str, data: dict[str, Any]) -> StoredDocument:
        doc_id = new_id()
        doc, body = self._prepare(data, doc_id)
        return await self.store.insert(account_id, doc, body, revision_of(1, body),
                                       time.time())

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
            doc, body = (current.doc, current.body) if change is None else self._prepare(
                change(current.doc), doc_id)
            stored = await self.store.compare_and_swap(
                account_id, current, doc, body, revision_of(current.rev + 1, body),
                time.time(), delete=change is None,
            )
            if stored is not None:
                return stored
            if pinned is not None:
                raise RevisionConflict((await self.get(account_id, doc_id)).revision)

    async def page(self, account_id: str, start_key: str | None, page_size: int | None) -> Page:
        rows = await self.store.page(account_id, start_key, _fetch_limit(page_size))
        rows, next_key = _split_page(rows, page_size)
        items = [{"id": i, "name": name, "extension": ext} for i, name, ext in rows]
        return Page(items=items, next_start_key=next_key)

    async def history(
        self,
        account_id: str,
        doc_id: str,
        *,
        start_key: str | None,
        page_size: int | None,
        created_from: int | None,
        created_to: int | None,
    ) -> Page:
        await self.get(account_id, doc_id)
        before = None
        if start_key is not None:
            if not start_key.isdigit() or len(start_key) > 18:
                raise ValidationFailed.single(
                    "start_key", "type", "start_key is not a history key", value=start_key[:64]
                )
            before = int(start_key)
        rows = await self.history_store.page(
            account_id, doc_id, before_seq=before, created_from=created_from,
            created_to=created_to, limit=_fetch_limit(page_size),
        )
        rows, next_key = _split_page(rows, page_size)
        return Page(items=[item for _seq, item in rows], next_start_key=next_key)
