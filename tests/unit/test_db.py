"""Database: group-committed writes, each with its own outcome, durable once awaited."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from c2c_ari.store.sqlite.db import Database

ACCOUNT = "INSERT INTO accounts (id, name, realm, api_key_hash, created) VALUES (?, ?, ?, ?, 0)"
DOC = ("INSERT INTO clicktocalls (account_id, id, doc, rev, revision, created, modified)"
       " VALUES (?, ?, '{}', 1, '1-x', 0, 0)")


async def account(db: Database, account_id: str, name: str = "Acme", *,
                  batchable: bool = False) -> int:
    return await db.execute(ACCOUNT, (account_id, name, "realm", f"hash-{account_id}"),
                            batchable=batchable)


async def ids(db: Database, table: str) -> list[str]:
    return [row[0] for row in await db.fetchall(f"SELECT id FROM {table} ORDER BY id")]


async def test_writes_queued_together_keep_their_own_outcomes(tmp_path: Path) -> None:
    path = tmp_path / "c2c.sqlite"
    async with Database(path) as db:
        await account(db, "a")
        results = await asyncio.gather(
            *(db.execute(DOC, ("a", f"doc{i}"), batchable=True) for i in range(5)),
            db.execute(DOC, ("a", "doc2"), batchable=True),  # a duplicate: fails alone
            db.execute(DOC, ("nobody", "doc9"), batchable=True),  # foreign key: fails alone
            db.execute("UPDATE clicktocalls SET rev = 2 WHERE id = ?", ("doc0",)),
            db.execute("UPDATE clicktocalls SET rev = 2 WHERE id = ?", ("missing",)),
            return_exceptions=True,
        )
        assert results[:5] == [1, 1, 1, 1, 1]
        assert isinstance(results[5], sqlite3.IntegrityError)
        assert isinstance(results[6], sqlite3.IntegrityError)
        assert results[7:] == [1, 0]
        assert await ids(db, "clicktocalls") == [f"doc{i}" for i in range(5)]
    async with Database(path) as db:  # what was acknowledged is on disk
        assert await ids(db, "clicktocalls") == [f"doc{i}" for i in range(5)]
        assert await db.fetchone("SELECT rev FROM clicktocalls WHERE id = 'doc0'") == (2,)


@pytest.mark.parametrize("batchable", [False, True])
async def test_an_error_that_ends_the_transaction_fails_every_write_in_it(
    tmp_path: Path, batchable: bool
) -> None:
    async with Database(tmp_path / "c2c.sqlite") as db:
        await db.execute(
            "CREATE TRIGGER refuse_bad BEFORE INSERT ON accounts WHEN NEW.name = 'bad'"
            " BEGIN SELECT RAISE(ROLLBACK, 'refused'); END"
        )
        results = await asyncio.gather(
            account(db, "a", batchable=batchable),
            account(db, "b", "bad", batchable=batchable),
            account(db, "c", batchable=batchable),
            return_exceptions=True,
        )
        # SQLite rolled back the whole transaction, "a" included: no caller may hear success
        assert all(isinstance(result, sqlite3.Error) for result in results), results
        assert await ids(db, "accounts") == []
        assert await account(db, "d") == 1  # and the next batch works


async def test_a_failed_commit_reaches_every_caller(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_commit(*_args: object) -> list[int]:
        raise sqlite3.OperationalError("disk I/O error")

    async with Database(tmp_path / "c2c.sqlite") as db:
        monkeypatch.setattr("c2c_ari.store.sqlite.db._commit", failing_commit)
        results = await asyncio.gather(account(db, "a"), account(db, "b"),
                                       return_exceptions=True)
        assert [str(result) for result in results] == ["disk I/O error"] * 2


async def test_writes_before_close_are_finished(tmp_path: Path) -> None:
    path = tmp_path / "c2c.sqlite"
    db = await Database(path).open()
    pending = asyncio.ensure_future(account(db, "a"))
    await asyncio.sleep(0)
    await db.close()
    assert await pending == 1
    async with Database(path) as db:
        assert await ids(db, "accounts") == ["a"]
    with pytest.raises(RuntimeError):
        await account(db, "b")


async def test_statements_together_stand_or_fall_together(tmp_path: Path) -> None:
    path = tmp_path / "c2c.sqlite"
    async with Database(path) as db:
        await account(db, "a")
        refused, kept, alone = await asyncio.gather(
            db.execute_together([(DOC, ("a", "doc1")), (DOC, ("nobody", "doc2"))]),
            db.execute_together([(DOC, ("a", "doc3")),
                                 ("UPDATE clicktocalls SET rev = 5 WHERE id = ?", ("doc3",))]),
            db.execute(DOC, ("a", "doc4")),
            return_exceptions=True,
        )
        # The foreign-key failure of its second statement undid the first one too; the other
        # writes of the same group commit were kept.
        assert isinstance(refused, sqlite3.IntegrityError)
        assert (kept, alone) == ([1, 1], 1)
    async with Database(path) as db:
        assert await ids(db, "clicktocalls") == ["doc3", "doc4"]
        assert await db.fetchone("SELECT rev FROM clicktocalls WHERE id = 'doc3'") == (5,)
