"""What the rest of the service asks of storage: one interface, two backends.

`store.sqlite` keeps everything in one SQLite file owned by one process (the embedded
default); `store.postgres` in a PostgreSQL database that several instances share. Both pass
the same tests. Every method is one short transaction unless it says otherwise, and every
write that must happen together with another is one method, so that no backend can commit
half of it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from c2c_ari.store.records import (
    AccountRecord,
    AccountSummary,
    ActiveCall,
    InstanceRecord,
    StoredDocument,
)


class AccountStore(Protocol):
    """Accounts and their auth tokens; only hashes of secrets are stored."""

    async def insert(self, record: AccountRecord, api_key_hash: str) -> None: ...
    async def get(self, account_id: str) -> AccountRecord | None:
        """The account, whatever its state (disabled, being deleted)."""
        ...
    async def by_api_key_hash(self, api_key_hash: str) -> tuple[AccountRecord, str] | None: ...
    async def insert_token(self, token_hash: str, account_id: str, expires_at: float, *,
                           key_generation: int = 0) -> bool:
        """Store a token issued from the account's key of `key_generation`; False (nothing
        stored) when the account is gone, disabled, or has rotated its key since."""
        ...
    async def token(self, token_hash: str) -> tuple[str, str, float] | None: ...
    async def token_account(self, token_hash: str) -> tuple[str, AccountRecord, float] | None:
        """(stored hash, account, expiry) of a token whose account exists, is enabled and
        still has the key the token was issued from; None otherwise. Expiry is the
        caller's to check. One read."""
        ...
    async def purge_tokens(self, now: float, batch: int) -> int: ...
    async def page(self, start_key: str | None, limit: int) -> list[AccountSummary]:
        """Accounts ordered by id, after `start_key`, each with its live click-to-calls."""
        ...
    async def summary(self, account_id: str) -> AccountSummary | None: ...
    async def rotate_key(self, account_id: str, api_key_hash: str) -> AccountRecord | None:
        """Replace the API key and bump the key generation (every token issued before is
        refused from this write on); the account after, None if unknown or being
        deleted."""
        ...
    async def set_status(self, account_id: str, status: int) -> AccountRecord | None:
        """Set `disabled` (records.ENABLED, DISABLED or DELETING); an account being deleted
        stays so. The account after, None if unknown."""
        ...
    async def delete_tokens(self, account_id: str, batch: int) -> int:
        """Delete up to `batch` tokens of the account; how many went."""
        ...
    async def delete(self, account_id: str) -> bool:
        """Remove the account row itself (its click-to-calls and tokens must be gone)."""
        ...
    def revocation_mark(self) -> bytes | None:
        """A value that changes, in every process using this store, once a key rotation,
        disable or delete has been committed by any of them; None where tokens must never
        be cached (several service instances). Cheap: no query; read at each
        authentication of a cached token."""
        ...


class ClickToCallStore(Protocol):
    """Click-to-call documents with CouchDB-style revisions and soft deletion."""

    async def insert(self, account_id: str, doc_id: str, body: str, revision: str, now: float,
                     *, limit: int) -> StoredDocument | None: ...
    async def get(self, account_id: str, doc_id: str) -> StoredDocument | None: ...
    async def find(self, doc_id: str) -> tuple[str, StoredDocument] | None: ...
    async def compare_and_swap(self, account_id: str, current: StoredDocument, body: str,
                               revision: str, now: float, *,
                               delete: bool = False) -> StoredDocument | None: ...
    async def page(self, account_id: str, start_key: str | None, limit: int, *,
                   bulk: bool = False) -> list[tuple[str, str | None, str | None]]: ...
    async def deleted_before(self, modified: float, limit: int) -> list[tuple[str, str]]: ...
    async def purge(self, account_id: str, doc_id: str) -> None: ...
    async def purge_account(self, account_id: str, batch: int) -> int:
        """Remove up to `batch` click-to-calls of the account for good, live or
        soft-deleted; how many went."""
        ...


class HistoryStore(Protocol):
    """One item per call attempt."""

    async def insert(self, account_id: str, clicktocall_id: str, call_id: str, timestamp: int,
                     item: dict[str, Any]) -> bool: ...
    async def get(self, account_id: str, call_id: str) -> dict[str, Any] | None: ...
    async def page(self, account_id: str, clicktocall_id: str, *,
                   before: tuple[int, int] | None, created_from: int | None,
                   created_to: int | None, limit: int,
                   bulk: bool = False) -> list[tuple[int, int, str]]: ...
    async def prune(self, before_timestamp: int, batch: int) -> int:
        """Remove up to `batch` items whose call started before `before_timestamp`
        (Gregorian seconds); how many went. Fewer than `batch`: nothing old is left."""
        ...
    async def delete_of(self, account_id: str, clicktocall_id: str, batch: int) -> int: ...
    async def delete_of_account(self, account_id: str, batch: int) -> int:
        """Delete up to `batch` items of any click-to-call of the account; how many went."""
        ...


class CallStore(Protocol):
    """Calls in flight, each owned by the process (boot) that runs it."""

    async def put(self, call: ActiveCall) -> None: ...
    async def record_bridged(self, call: ActiveCall) -> None: ...
    async def record_outcome(self, call: ActiveCall) -> bool: ...
    async def get(self, call_id: str) -> ActiveCall | None: ...
    async def all(self) -> list[ActiveCall]: ...
    async def of_clicktocall(self, account_id: str, clicktocall_id: str) -> list[ActiveCall]:
        ...
    async def count_of_account(self, account_id: str) -> int:
        """How many calls of the account are in flight, on any instance."""
        ...
    async def count_by_node(self, exclude_owner: str = "") -> dict[str, int]:
        """Calls in flight on each Asterisk node, whoever runs them but `exclude_owner`."""
        ...
    async def owners(self) -> set[str]:
        """The processes (boot ids) that own calls in flight."""
        ...
    async def claim_orphans(self, live_owners: Collection[str], new_owner: str,
                            limit: int) -> list[ActiveCall]:
        """Take over up to `limit` calls whose owner is not in `live_owners`: they are
        `new_owner`'s from this statement on, and no other claimer gets them."""
        ...


class KeyStore(Protocol):
    async def get_or_create(self, name: str) -> str: ...


class InstanceStore(Protocol):
    async def heartbeat(self, instance: InstanceRecord) -> None: ...
    async def live(self, max_age: float) -> list[InstanceRecord]: ...
    async def leave(self, boot_id: str) -> None: ...


class LeaseStore(Protocol):
    """Named leases: at most one holder at a time, lost when not renewed within `ttl`
    seconds (so a killed holder's lease passes on by itself)."""

    async def acquire(self, name: str, holder: str, ttl: float) -> bool:
        """Take or renew the lease; True if `holder` holds it now."""
        ...
    async def release(self, name: str, holder: str) -> None: ...


class ThrottleStore(Protocol):
    async def hit(self, bucket: str, key: str, limit: int, window: float) -> float | None:
        """Count an attempt in a sliding window of `window` seconds: None when it is within
        `limit`, else the seconds until one would be (the refused attempt is not counted).
        Exact however many processes share the store."""
        ...


class Bus(Protocol):
    """Messages between the instances sharing a store (in-process with SQLite)."""

    async def publish(self, channel: str, message: dict[str, Any]) -> None: ...
    def subscribe(self, channel: str) -> AbstractAsyncContextManager[
        AsyncIterator[dict[str, Any]]]: ...


@dataclass
class Store:
    kind: str  # "sqlite" or "postgresql"
    # True when several service processes may share it (then no process may cache what
    # another can change).
    shared: bool
    accounts: AccountStore
    clicktocalls: ClickToCallStore
    history: HistoryStore
    calls: CallStore
    keys: KeyStore
    instances: InstanceStore
    leases: LeaseStore
    throttle: ThrottleStore
    bus: Bus
    backend: Any  # the backend's own handle (a Database or a pool), for closing

    async def close(self) -> None:
        await self.backend.close()
