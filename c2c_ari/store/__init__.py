"""SQLite storage (aiosqlite): accounts, tokens, click-to-calls and call history."""

from c2c_ari.store.accounts import AccountRecord, AccountStore
from c2c_ari.store.calls import ActiveCall, ActiveCallStore
from c2c_ari.store.clicktocalls import ClickToCallStore, StoredDocument
from c2c_ari.store.db import Database
from c2c_ari.store.history import HistoryStore
from c2c_ari.store.keys import ServiceKeyStore

__all__ = [
    "AccountRecord",
    "AccountStore",
    "ActiveCall",
    "ActiveCallStore",
    "ClickToCallStore",
    "Database",
    "HistoryStore",
    "ServiceKeyStore",
    "StoredDocument",
]
