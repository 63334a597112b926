"""Storage behind one interface (`base.Store`), in SQLite (`sqlite`, the embedded default)
or PostgreSQL (`postgres`, for several instances)."""

from __future__ import annotations

from pathlib import Path

from c2c_ari.store.base import (
    AccountStore,
    Bus,
    CallStore,
    ClickToCallStore,
    HistoryStore,
    InstanceStore,
    KeyStore,
    LeaseStore,
    Store,
    ThrottleStore,
)
from c2c_ari.store.records import (
    DELETING,
    DISABLED,
    ENABLED,
    AccountRecord,
    AccountSummary,
    ActiveCall,
    InstanceRecord,
    StoredDocument,
)


def is_postgres_url(database: str) -> bool:
    return database.startswith(("postgresql://", "postgres://"))


async def open_store(database: str, *, serving: bool = True,
                     cache_bytes: int = 32 * 1024 * 1024) -> Store:
    """The store a `database` setting names: a PostgreSQL URL, else a SQLite file path."""
    if is_postgres_url(database):
        from c2c_ari.store.postgres import open_postgres

        return await open_postgres(database)
    from c2c_ari.store.sqlite import open_sqlite

    return await open_sqlite(Path(database), serving=serving, cache_bytes=cache_bytes)


__all__ = [
    "DELETING",
    "DISABLED",
    "ENABLED",
    "AccountRecord",
    "AccountStore",
    "AccountSummary",
    "ActiveCall",
    "Bus",
    "CallStore",
    "ClickToCallStore",
    "HistoryStore",
    "InstanceRecord",
    "InstanceStore",
    "KeyStore",
    "LeaseStore",
    "Store",
    "StoredDocument",
    "ThrottleStore",
    "is_postgres_url",
    "open_store",
]
