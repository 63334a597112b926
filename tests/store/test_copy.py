"""`c2c-ari db copy`: a SQLite file filled through the real stores, copied into a fresh
PostgreSQL database, is all there (documents and items byte for byte, revisions, deleted
flags, final flags, history order and seq), and a second copy adds nothing. `db migrate` too.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from c2c_ari.cli import main
from c2c_ari.domain.ids import GREGORIAN_OFFSET
from c2c_ari.store import DISABLED, AccountRecord, ActiveCall, Store, open_store
from c2c_ari.store.copy import copy_sqlite_to_postgres
from c2c_ari.store.postgres import schema
from c2c_ari.store.sqlite import FileInUse

ACCOUNTS = ["a" * 32, "b" * 32]
DAY = 86_400
NOW = 63_950_000_000  # 2026-07: any fixed moment will do


def _c2c(account: int, n: int) -> str:
    return f"{account}{n:031x}"


async def _fill(store: Store) -> None:
    """Two accounts, tokens, click-to-calls (changed, deleted), history over many months
    (final or not), a service key and calls in flight: 30+ rows of history, so that a batch
    of 7 takes several rounds."""
    for index, account in enumerate(ACCOUNTS):
        await store.accounts.insert(AccountRecord(account, f"Acct {index}", "r.example",
                                                  1_700_000_000.25 + index), f"key{index}")
        # Account 0 has rotated its key once (its token is of the new key); account 1 is
        # disabled.
        generation = 1 - index
        if generation:
            await store.accounts.rotate_key(account, f"key{index}")
        assert await store.accounts.insert_token(f"token{index}", account, 1_800_000_000.5,
                                                 key_generation=generation)
        if index:
            await store.accounts.set_status(account, DISABLED)
        for n in range(5):
            doc_id = _c2c(index, n)
            body = json.dumps({"id": doc_id, "name": f"Sales {n} \u00e9", "extension": "1001",
                               "odd": "\\u0000 \u2028"}, ensure_ascii=False)
            stored = await store.clicktocalls.insert(account, doc_id, body, f"1-{n}", 1.5,
                                                     limit=100)
            assert stored is not None
            if n == 1:
                await store.clicktocalls.compare_and_swap(account, stored, body + " ",
                                                          "2-changed", 2.5)
            if n == 2:
                await store.clicktocalls.compare_and_swap(account, stored, body, "2-gone",
                                                          3.5, delete=True)
    account = ACCOUNTS[0]
    for k in range(32):
        # Every 36 days back over about a year, three at a time in the same second.
        timestamp = NOW - (k // 3) * 36 * DAY
        await store.history.insert(account, _c2c(0, k % 2), f"call-{k:03d}", timestamp,
                                   {"timestamp": timestamp, "call_id": f"call-{k:03d}",
                                    "result": "success", "k": k})
    await store.keys.get_or_create("call_tokens")
    for n, bridged in enumerate((False, True)):
        call_id = f"c2c-{_c2c(0, 0)}-{n:016x}"
        call = ActiveCall(call_id, account, _c2c(0, 0),
                          {"timestamp": NOW, "call_id": call_id, "result": "error"},
                          [f"{call_id}-ext"], owner="boot-old", node="node1")
        await store.calls.put(call)
        if bridged:
            await store.calls.record_bridged(ActiveCall(**{
                **call.__dict__, "item": {**call.item, "result": "success"},
                "bridged": True}))


async def _snapshot(store: Store) -> dict[str, Any]:
    """Everything readable through the store interface."""
    out: dict[str, Any] = {}
    for index, account in enumerate(ACCOUNTS):
        out[f"account {index}"] = (await store.accounts.get(account),
                                   await store.accounts.by_api_key_hash(f"key{index}"),
                                   await store.accounts.token(f"token{index}"),
                                   await store.accounts.token_account(f"token{index}"),
                                   await store.accounts.summary(account))
        out[f"page {index}"] = await store.clicktocalls.page(account, None, 100)
        for n in range(5):
            out[f"doc {index} {n}"] = await store.clicktocalls.get(account, _c2c(index, n))
            out[f"find {index} {n}"] = await store.clicktocalls.find(_c2c(index, n))
        for n in range(2):
            out[f"history {index} {n}"] = await store.history.page(
                account, _c2c(index, n), before=None, created_from=None, created_to=None,
                limit=1000)
    out["deleted"] = sorted(await store.clicktocalls.deleted_before(10.0, 100))
    out["key"] = await store.keys.get_or_create("call_tokens")
    out["calls"] = sorted(await store.calls.all(), key=lambda call: call.call_id)
    return out


async def _fill_file(path: Path) -> dict[str, Any]:
    store = await open_store(str(path))
    try:
        await _fill(store)
        return await _snapshot(store)
    finally:
        await store.close()


async def test_a_sqlite_file_copies_whole_and_once(tmp_path: Path, postgres_url: str) -> None:
    path = tmp_path / "c2c-ari.sqlite3"
    before = await _fill_file(path)
    assert len(before["history 0 0"]) + len(before["history 0 1"]) == 33  # + the bridged

    first = await copy_sqlite_to_postgres(path, postgres_url, batch=7)
    assert {c.table: (c.read, c.added) for c in first} == {
        "accounts": (2, 2), "auth_tokens": (2, 2), "clicktocalls": (10, 10),
        "history": (33, 33),  # 32, and the bridged call's item
        "service_keys": (1, 1), "active_calls": (2, 2)}
    second = await copy_sqlite_to_postgres(path, postgres_url, batch=7)
    assert [c.added for c in second] == [0] * 6
    assert [c.read for c in second] == [c.read for c in first]

    store = await open_store(postgres_url)
    try:
        after = await _snapshot(store)
        # The same answers to every read: documents and items byte for byte, revisions,
        # deleted documents hidden (and found by retention), history in the same order
        # with the same seq (start keys stay valid), the service's key, calls in flight.
        assert after == before
        assert await store.clicktocalls.get(ACCOUNTS[0], _c2c(0, 2)) is None
        # Items went to their months' partitions, none to DEFAULT.
        rows = await store.backend.db.fetchall(
            "SELECT DISTINCT tableoid::regclass::text FROM history")
        assert "history_default" not in {row[0] for row in rows}
        assert len(rows) >= 11
        # The bridged call's item is still not final: completing it works once.
        bridged = next(call for call in after["calls"] if call.bridged)
        assert await store.calls.record_outcome(bridged)
        assert not await store.calls.record_outcome(bridged)
        # New items come after the copied ones.
        await store.history.insert(ACCOUNTS[0], _c2c(0, 0), "new", NOW, {"new": True})
        newest = await store.history.page(ACCOUNTS[0], _c2c(0, 0), before=None,
                                          created_from=None, created_to=None, limit=1)
        assert newest[0][2] == '{"new": true}'
        assert newest[0][1] > max(seq for _, seq, _ in before["history 0 0"])
    finally:
        await store.close()



async def test_copy_refuses_a_file_a_service_is_serving(tmp_path: Path,
                                                        postgres_url: str) -> None:
    path = tmp_path / "c2c-ari.sqlite3"
    serving = await open_store(str(path))
    try:
        with pytest.raises(FileInUse):
            await copy_sqlite_to_postgres(path, postgres_url)
    finally:
        await serving.close()


def test_the_db_commands(tmp_path: Path, postgres_url: str,
                         capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c2c-ari.sqlite3"
    asyncio.run(_fill_file(path))
    assert main(["db", "migrate", "--database", postgres_url]) == 0
    assert "up to date" in capsys.readouterr().out
    assert main(["db", "copy", str(path), postgres_url]) == 0
    out = capsys.readouterr().out
    assert "history: 33 read, 33 added, 0 already there" in out
    assert main(["db", "copy", str(path), postgres_url]) == 0
    assert "history: 33 read, 0 added, 33 already there" in capsys.readouterr().out
    assert main(["db", "copy", str(tmp_path / "missing.sqlite3"), postgres_url]) == 1
    assert main(["db", "copy", str(path), str(tmp_path / "x.sqlite3")]) == 2
    # migrate on a SQLite file works the same way
    assert main(["db", "migrate", "--database", str(tmp_path / "new.sqlite3")]) == 0


def test_partition_months_are_utc_calendar_months() -> None:
    # 2026-02-01T00:00:00Z and 2026-03-01T00:00:00Z in Gregorian seconds
    assert schema.month_start((2026, 2)) == 1769904000 + GREGORIAN_OFFSET
    assert schema.month_start((2026, 3)) == 1772323200 + GREGORIAN_OFFSET
    assert schema.month_of(1772323200 + GREGORIAN_OFFSET - 1) == (2026, 2)
    assert schema.month_of(1772323200 + GREGORIAN_OFFSET) == (2026, 3)
    assert schema.months((2025, 11), (2026, 2)) == [(2025, 11), (2025, 12), (2026, 1),
                                                    (2026, 2)]
