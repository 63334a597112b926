"""The embedded backend: one SQLite file, owned by one serving process."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from c2c_ari.store.base import Store
from c2c_ari.store.local_bus import LocalBus
from c2c_ari.store.sqlite.accounts import AccountStore
from c2c_ari.store.sqlite.calls import ActiveCallStore
from c2c_ari.store.sqlite.clicktocalls import ClickToCallStore
from c2c_ari.store.sqlite.db import Database
from c2c_ari.store.sqlite.history import HistoryStore
from c2c_ari.store.sqlite.instances import InstanceStore, LeaseStore
from c2c_ari.store.sqlite.keys import ServiceKeyStore
from c2c_ari.store.sqlite.throttle import MemoryThrottle


class FileInUse(RuntimeError):
    """Another serving process owns the file."""


class _ServingLock:
    """An exclusive lock on `<file>.serving` for as long as a service process uses the file:
    its cache and in-memory throttle are only right when no other process serves from it
    (the CLI's account commands may run beside it)."""

    def __init__(self, path: Path) -> None:
        self.path = path.with_name(path.name + ".serving")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise FileInUse(
                f"{path} is in use by another c2c-ari service process; several instances "
                "need a shared PostgreSQL database (--database postgresql://...)") from None

    def release(self) -> None:
        os.close(self._fd)


class SqliteBackend:
    def __init__(self, db: Database, lock: _ServingLock | None) -> None:
        self.db = db
        self._lock = lock

    async def close(self) -> None:
        await self.db.close()
        if self._lock is not None:
            self._lock.release()


async def open_sqlite(path: Path, *, serving: bool = True,
                      cache_bytes: int = 32 * 1024 * 1024) -> Store:
    """The store in `path`; `serving` takes the file for this process alone (a second
    service on the same file is refused with FileInUse)."""
    lock = _ServingLock(path) if serving else None
    try:
        db = await Database(path).open()
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    return Store(
        kind="sqlite", shared=False,
        accounts=AccountStore(db), clicktocalls=ClickToCallStore(db, cache_bytes=cache_bytes),
        history=HistoryStore(db), calls=ActiveCallStore(db), keys=ServiceKeyStore(db),
        instances=InstanceStore(db), leases=LeaseStore(db), throttle=MemoryThrottle(),
        bus=LocalBus(),
        backend=SqliteBackend(db, lock),
    )


__all__ = ["Database", "FileInUse", "open_sqlite"]
