"""Housekeeping on a real SQLite file: expired tokens, old history and long-deleted
click-to-calls go, in small batches; everything else stays."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from c2c_ari.domain.ids import GREGORIAN_OFFSET
from c2c_ari.domain.retention import DAY, Housekeeper, RetentionPolicy
from c2c_ari.store import AccountRecord
from c2c_ari.store.sqlite.accounts import AccountStore
from c2c_ari.store.sqlite.clicktocalls import ClickToCallStore
from c2c_ari.store.sqlite.db import Database
from c2c_ari.store.sqlite.history import HistoryStore

NOW = 1_800_000_000.0


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    async with Database(tmp_path / "c2c.sqlite3") as database:
        await AccountStore(database).insert(AccountRecord("a" * 32, "A", "a.example", 0), "h")
        yield database


def _keeper(db: Database, **policy: int) -> Housekeeper:
    return Housekeeper(AccountStore(db), ClickToCallStore(db), HistoryStore(db),
                       RetentionPolicy(batch=3, pause=0, **policy), clock=lambda: NOW)


async def _count(db: Database, table: str) -> int:
    row = await db.fetchone(f"SELECT count(*) FROM {table}")
    assert row is not None
    return int(row[0])


async def test_expired_tokens_go_in_batches(db: Database) -> None:
    accounts = AccountStore(db)
    for n in range(10):
        await accounts.insert_token(f"old{n}", "a" * 32, NOW - 1)
    await accounts.insert_token("live", "a" * 32, NOW + 60)
    assert (await _keeper(db).run_once())["tokens"] == 10
    assert await accounts.token("live") is not None
    assert await _count(db, "auth_tokens") == 1


async def test_history_past_retention_goes(db: Database) -> None:
    history = HistoryStore(db)
    ages = [400, 390, 380, 370, 10, 5, 1]  # days, in the order the calls were recorded
    for n, days in enumerate(ages):
        timestamp = int(NOW - days * DAY) + GREGORIAN_OFFSET
        await history.insert("a" * 32, "c" * 32, f"call-{n}", timestamp, {"n": n})
    assert (await _keeper(db, history_days=365).run_once())["history"] == 4  # batches of 3
    left = [row[0] for row in await db.fetchall("SELECT call_id FROM history ORDER BY seq")]
    assert left == ["call-4", "call-5", "call-6"]
    # 0 keeps everything
    assert (await _keeper(db, history_days=0).run_once())["history"] == 0


async def test_long_deleted_click_to_calls_go_with_their_history(db: Database) -> None:
    store, history = ClickToCallStore(db), HistoryStore(db)
    for n, deleted_days_ago in enumerate((40, 10, None)):
        doc_id = f"{n:032x}"
        stored = await store.insert("a" * 32, doc_id, "{}", "1-x", NOW - 100 * DAY, limit=10)
        assert stored is not None
        for call in range(4):
            await history.insert("a" * 32, doc_id, f"{doc_id}-{call}",
                                 int(NOW) + GREGORIAN_OFFSET, {"call": call})
        if deleted_days_ago is not None:
            await store.compare_and_swap("a" * 32, stored, "{}", "2-x",
                                         NOW - deleted_days_ago * DAY, delete=True)
    removed = await _keeper(db, deleted_days=30, history_days=0).run_once()
    assert removed["deleted_clicktocalls"] == 1
    assert await _count(db, "clicktocalls") == 2
    assert await _count(db, "history") == 8
    row = await db.fetchone("SELECT count(*) FROM history WHERE clicktocall_id = ?",
                            (f"{0:032x}",))
    assert row == (0,)
