"""Operators' account commands at the store and domain level, on every backend: a key
rotation and a disable take effect at once (for a second store on the same database too,
as the CLI beside a running service), a delete removes one account's rows and nothing else,
in batches, and finishes when run again; SQLite's live click-to-call counts stay right."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from c2c_ari.domain.account_admin import (
    AccountAdmin,
    AccountBeingDeleted,
    CallsInFlight,
    UnknownAccount,
)
from c2c_ari.domain.accounts import AccountService
from c2c_ari.domain.errors import Unauthorized
from c2c_ari.domain.ids import GREGORIAN_OFFSET, hash_secret
from c2c_ari.store import DELETING, DISABLED, ENABLED, ActiveCall, Store, open_store

NOW = 1_800_000_000 + GREGORIAN_OFFSET


@pytest.fixture
async def second(store: Store, database: str, tmp_path: Path) -> AsyncIterator[Store]:
    """Another store on the same database, as `c2c-ari accounts ...` opens it beside a
    running service (serving=False on SQLite)."""
    opened = await open_store(database or str(tmp_path / "c2c.sqlite3"), serving=False)
    yield opened
    await opened.close()


def _c2c(account: int, n: int) -> str:
    return f"{account:x}{n:031x}"


async def _fill(store: Store, service: AccountService, index: int, *, docs: int = 4,
                history: int = 7, tokens: int = 3) -> tuple[str, str, list[str]]:
    """An account with `docs` click-to-calls (the last one soft-deleted), `history` items
    spread over them, and `tokens` tokens; (account id, api key, tokens)."""
    account, api_key = await service.create(f"Acct {index}", "r.example")
    for n in range(docs):
        doc_id = _c2c(index, n)
        body = json.dumps({"id": doc_id, "name": f"Sales {n}", "extension": "1001"})
        stored = await store.clicktocalls.insert(account.id, doc_id, body, f"1-{n}", 1.0,
                                                 limit=100)
        assert stored is not None
        if n == docs - 1:
            assert await store.clicktocalls.compare_and_swap(account.id, stored, body,
                                                             "2-gone", 2.0, delete=True)
    for k in range(history):
        call_id = f"c2c-{_c2c(index, k % docs)}-{k:016x}"
        assert await store.history.insert(account.id, _c2c(index, k % docs), call_id,
                                          NOW + k, {"call_id": call_id, "k": k})
    issued = [(await service.issue_token(api_key)).token for _ in range(tokens)]
    return account.id, api_key, issued


async def _snapshot(store: Store, account_id: str, index: int, docs: int = 4,
                    ) -> dict[str, Any]:
    """Everything of one account the store interface can read."""
    out: dict[str, Any] = {"summary": await store.accounts.summary(account_id),
                           "page": await store.clicktocalls.page(account_id, None, 100)}
    for n in range(docs):
        out[f"doc {n}"] = await store.clicktocalls.get(account_id, _c2c(index, n))
        out[f"history {n}"] = await store.history.page(
            account_id, _c2c(index, n), before=None, created_from=None, created_to=None,
            limit=100)
    return out


async def test_a_rotated_key_and_its_tokens_are_refused_at_once(store: Store,
                                                                second: Store) -> None:
    service = AccountService(store.accounts, 3600)
    account_id, old_key, old_tokens = await _fill(store, service, 1)
    other_id, other_key, other_tokens = await _fill(store, service, 2)
    for token in old_tokens:  # the service has checked (and, on SQLite, cached) them
        assert (await service.authenticate(token)).id == account_id
    mark = store.accounts.revocation_mark()

    # The CLI's process rotates the key through its own store.
    account, new_key = await AccountAdmin(second).rotate_key(account_id)
    assert account.key_generation == 1
    assert new_key != old_key

    if mark is not None:  # SQLite: the service's cache learns it from the mark
        assert store.accounts.revocation_mark() != mark
    for token in old_tokens:
        with pytest.raises(Unauthorized):
            await service.authenticate(token)
    with pytest.raises(Unauthorized):
        await service.issue_token(old_key)
    assert await store.accounts.by_api_key_hash(hash_secret(old_key)) is None
    fresh = await service.issue_token(new_key)
    assert (await service.authenticate(fresh.token)).id == account_id
    # A token being issued from the old key while the rotation commits is never stored.
    assert not await store.accounts.insert_token("t" * 64, account_id, NOW,
                                                 key_generation=0)
    # The other account is untouched: its key and tokens still work.
    for token in other_tokens:
        assert (await service.authenticate(token)).id == other_id
    assert (await service.issue_token(other_key)).account.key_generation == 0


async def test_disable_refuses_key_and_tokens_and_enable_brings_them_back(
        store: Store, second: Store) -> None:
    service = AccountService(store.accounts, 3600)
    account_id, api_key, tokens = await _fill(store, service, 1)
    other_id, _, other_tokens = await _fill(store, service, 2)
    before = await _snapshot(store, account_id, 1)
    assert (await service.authenticate(tokens[0])).id == account_id
    assert await service.get(account_id) is not None

    admin = AccountAdmin(second)
    assert (await admin.disable(account_id)).disabled
    with pytest.raises(Unauthorized):
        await service.authenticate(tokens[0])
    with pytest.raises(Unauthorized):
        await service.issue_token(api_key)
    assert await service.get(account_id) is None  # public connects and the dialplan
    assert (await service.authenticate(other_tokens[0])).id == other_id
    # nothing is deleted
    after = await _snapshot(store, account_id, 1)
    assert after["summary"].account.disabled
    assert {**after, "summary": None} == {**before, "summary": None}

    assert not (await admin.enable(account_id)).disabled
    assert (await service.authenticate(tokens[0])).id == account_id
    assert (await service.issue_token(api_key)).account.id == account_id


async def test_delete_removes_one_account_in_batches_and_nothing_else(store: Store) -> None:
    service = AccountService(store.accounts, 3600)
    account_id, _, tokens = await _fill(store, service, 1, docs=5, history=11, tokens=4)
    other_id, _, other_tokens = await _fill(store, service, 2)
    other_before = await _snapshot(store, other_id, 2)
    assert (await store.accounts.summary(account_id)).live_clicktocalls == 4  # type: ignore[union-attr]

    deleted = await AccountAdmin(store, batch=3, pause=0).delete(account_id)
    assert deleted.account
    assert deleted.removed == {"history": 11, "auth_tokens": 4, "clicktocalls": 5}
    assert await store.accounts.get(account_id) is None
    assert await store.accounts.summary(account_id) is None
    for n in range(5):
        assert await store.clicktocalls.get(account_id, _c2c(1, n)) is None
        assert await store.clicktocalls.find(_c2c(1, n)) is None
        assert await store.history.page(account_id, _c2c(1, n), before=None,
                                        created_from=None, created_to=None, limit=10) == []
    assert await store.clicktocalls.deleted_before(10.0, 100) == [(other_id, _c2c(2, 3))]
    for token in tokens:
        assert await store.accounts.token(hash_secret(token)) is None
    # The other account: every row as it was, its tokens still good.
    assert await _snapshot(store, other_id, 2) == other_before
    assert (await service.authenticate(other_tokens[0])).id == other_id
    # Run again: there is nothing left to delete.
    with pytest.raises(UnknownAccount):
        await AccountAdmin(store).delete(account_id)


async def test_an_interrupted_delete_finishes_when_run_again(store: Store) -> None:
    service = AccountService(store.accounts, 3600)
    account_id, _, _ = await _fill(store, service, 1, docs=5, history=9)
    other_id, _, _ = await _fill(store, service, 2)
    other_before = await _snapshot(store, other_id, 2)

    class Interrupted(Exception):
        pass

    purge = store.clicktocalls.purge_account

    async def one_batch_then_crash(account: str, batch: int) -> int:
        await purge(account, batch)
        raise Interrupted

    store.clicktocalls.purge_account = one_batch_then_crash  # type: ignore[method-assign]
    with pytest.raises(Interrupted):
        await AccountAdmin(store, batch=2, pause=0).delete(account_id)
    store.clicktocalls.purge_account = purge  # type: ignore[method-assign]

    half = await store.accounts.summary(account_id)
    assert half is not None and half.account.deleting and half.account.disabled
    # The live count follows the removed rows (SQLite keeps it by trigger).
    assert half.live_clicktocalls == len(await store.clicktocalls.page(account_id, None, 100))
    # Half-deleted: it can be neither enabled nor given a new key.
    with pytest.raises(AccountBeingDeleted):
        await AccountAdmin(store).enable(account_id)
    with pytest.raises(AccountBeingDeleted):
        await AccountAdmin(store).rotate_key(account_id)
    assert await service.get(account_id) is None

    deleted = await AccountAdmin(store, batch=2, pause=0).delete(account_id)
    assert deleted.account
    assert deleted.removed["history"] == 0  # gone in the first run
    assert await store.accounts.summary(account_id) is None
    assert await store.clicktocalls.page(account_id, None, 100) == []
    assert await _snapshot(store, other_id, 2) == other_before


async def test_delete_waits_for_calls_in_flight(store: Store) -> None:
    service = AccountService(store.accounts, 3600)
    account_id, api_key, _ = await _fill(store, service, 1)
    call_id = f"c2c-{_c2c(1, 0)}-{99:016x}"
    await store.calls.put(ActiveCall(call_id, account_id, _c2c(1, 0), {"timestamp": NOW},
                                     [], owner="boot", node="node1"))
    before = await _snapshot(store, account_id, 1)
    with pytest.raises(CallsInFlight) as refused:
        await AccountAdmin(store).delete(account_id)
    assert refused.value.count == 1
    # Disabled from then on (no new call), nothing removed, the call left alone.
    after = await _snapshot(store, account_id, 1)
    assert after["summary"].account.deleting
    assert {**after, "summary": None} == {**before, "summary": None}
    assert await store.calls.get(call_id) is not None
    with pytest.raises(Unauthorized):
        await service.issue_token(api_key)

    await store.calls.record_outcome(ActiveCall(call_id, account_id, _c2c(1, 0),
                                                {"timestamp": NOW, "call_id": call_id}, []))
    assert (await AccountAdmin(store).delete(account_id)).account


async def test_accounts_are_listed_in_pages_with_their_live_counts(store: Store) -> None:
    service = AccountService(store.accounts, 3600)
    ids = sorted([(await _fill(store, service, n, docs=n + 1, history=0, tokens=0))[0]
                  for n in range(3)])
    await store.accounts.set_status(ids[1], DISABLED)
    first = await store.accounts.page(None, 2)
    rest = await store.accounts.page(first[-1].account.id, 2)
    listed = first + rest
    assert [s.account.id for s in listed] == ids
    counts = {s.account.name: s.live_clicktocalls for s in listed}
    assert counts == {"Acct 0": 0, "Acct 1": 1, "Acct 2": 2}  # the last doc is deleted
    assert [s.account.disabled for s in listed] == [False, True, False]
    admin = AccountAdmin(store)
    assert [s.account.id async for s in admin.summaries()] == ids
    acct2 = next(s.account.id for s in listed if s.account.name == "Acct 2")
    assert await admin.clicktocall_ids(acct2) == [_c2c(2, 0), _c2c(2, 1)]
    for bad in ("f" * 32, "not-an-id"):
        with pytest.raises(UnknownAccount):
            await admin.summary(bad)
        with pytest.raises(UnknownAccount):
            await admin.disable(bad)
        with pytest.raises(UnknownAccount):
            await admin.rotate_key(bad)


async def test_status_changes_keep_an_account_being_deleted(store: Store) -> None:
    service = AccountService(store.accounts, 3600)
    account_id, _, _ = await _fill(store, service, 1, history=0, tokens=0)
    for status in (DISABLED, ENABLED, DELETING, ENABLED, DISABLED):
        account = await store.accounts.set_status(account_id, status)
        assert account is not None
    assert account.deleting and account.disabled
    assert await store.accounts.rotate_key(account_id, "h" * 64) is None
    assert await store.accounts.set_status("f" * 32, DISABLED) is None
