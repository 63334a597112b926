"""What an operator does to accounts (`c2c-ari accounts ...`): list and show them, rotate an
API key, disable and enable, delete for good.

Every change takes effect at once on every instance sharing the store: a rotation bumps the
account's key generation and a disable its `disabled` column, both of which every
authentication checks (SQLite's one serving process caches tokens, and drops its cache when
the store's revocation mark moves; see AccountService.authenticate).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from c2c_ari.domain.ids import hash_secret, is_valid_id, new_secret
from c2c_ari.store import (
    DELETING,
    DISABLED,
    ENABLED,
    AccountRecord,
    AccountSummary,
    Store,
)

# Rows of an account that one transaction of `delete` removes, and the pause between two:
# a big account's history never holds the database for long, and the service's own writes
# get their turn in between.
DELETE_BATCH = 500
DELETE_PAUSE = 0.01
PAGE = 500


class AdminError(Exception):
    """An operator's command that cannot be done; the message says why, in a sentence."""


class UnknownAccount(AdminError):
    def __init__(self, account_id: str) -> None:
        super().__init__(f"no account {account_id}")
        self.account_id = account_id


class AccountBeingDeleted(AdminError):
    def __init__(self, account_id: str) -> None:
        super().__init__(f"account {account_id} is being deleted: run `accounts delete` "
                         "again to finish")


class CallsInFlight(AdminError):
    def __init__(self, account_id: str, count: int) -> None:
        super().__init__(
            f"account {account_id} has {count} call(s) in flight; it is disabled now, so no "
            "new call starts: run `accounts delete` again once they have ended")
        self.count = count


@dataclass
class Deleted:
    """What `delete` removed: rows per table, and whether the account row was there."""

    account_id: str
    account: bool = False
    removed: dict[str, int] = field(default_factory=lambda: {
        "history": 0, "auth_tokens": 0, "clicktocalls": 0})


class AccountAdmin:
    def __init__(self, store: Store, *, batch: int = DELETE_BATCH,
                 pause: float = DELETE_PAUSE) -> None:
        self.store = store
        self.batch = batch
        self.pause = pause

    async def summaries(self) -> AsyncIterator[AccountSummary]:
        """Every account, ordered by id, read a page at a time."""
        start: str | None = None
        while True:
            page = await self.store.accounts.page(start, PAGE)
            for summary in page:
                yield summary
            if len(page) < PAGE:
                return
            start = page[-1].account.id

    async def summary(self, account_id: str) -> AccountSummary:
        found = await self.store.accounts.summary(account_id) if is_valid_id(
            account_id) else None
        if found is None:
            raise UnknownAccount(account_id)
        return found

    async def clicktocall_ids(self, account_id: str) -> list[str]:
        """The ids of the account's live click-to-calls, in order."""
        ids: list[str] = []
        start = ""
        while True:
            rows = await self.store.clicktocalls.page(account_id, start, PAGE + 1, bulk=True)
            ids += [row[0] for row in rows[:PAGE]]
            if len(rows) <= PAGE:
                return ids
            start = rows[PAGE][0]

    async def rotate_key(self, account_id: str) -> tuple[AccountRecord, str]:
        """A new API key (returned once; only its hash is stored). The old key, and every
        token issued from it, are refused from the moment this returns."""
        await self.summary(account_id)
        api_key = new_secret()
        account = await self.store.accounts.rotate_key(account_id, hash_secret(api_key))
        if account is None:
            raise AccountBeingDeleted(account_id)
        return account, api_key

    async def disable(self, account_id: str) -> AccountRecord:
        """Its key, tokens and public click-to-calls are refused; nothing is deleted, and
        calls in flight go on."""
        return await self._set(account_id, DISABLED)

    async def enable(self, account_id: str) -> AccountRecord:
        return await self._set(account_id, ENABLED)

    async def _set(self, account_id: str, status: int) -> AccountRecord:
        account = await self.store.accounts.set_status(account_id, status) if is_valid_id(
            account_id) else None
        if account is None:
            raise UnknownAccount(account_id)
        if account.deleting:
            raise AccountBeingDeleted(account_id)
        return account

    async def delete(self, account_id: str) -> Deleted:
        """The account, its tokens, its click-to-calls (soft-deleted ones too) and their
        history, for good; other accounts are not touched.

        First the account is marked as being deleted (so it is refused everywhere from then
        on, and cannot be enabled again), then its rows go in short batches, history first
        and the account row last: interrupted, it is run again and goes on where it
        stopped. Refused while the account has calls in flight (their outcome would be
        written to history after it went): they end on their own, as for a disable.
        Leftovers of an account whose row is gone already are removed too."""
        if not is_valid_id(account_id):
            raise UnknownAccount(account_id)
        done = Deleted(account_id)
        account = await self.store.accounts.set_status(account_id, DELETING)
        calls = await self.store.calls.count_of_account(account_id)
        if calls:
            raise CallsInFlight(account_id, calls)
        steps = (("history", self.store.history.delete_of_account),
                 ("auth_tokens", self.store.accounts.delete_tokens),
                 ("clicktocalls", self.store.clicktocalls.purge_account))
        for table, step in steps:
            while True:
                count = await step(account_id, self.batch)
                done.removed[table] += count
                if count < self.batch:
                    break
                await asyncio.sleep(self.pause)
        done.account = await self.store.accounts.delete(account_id)
        if account is None and not any(done.removed.values()):
            raise UnknownAccount(account_id)
        return done
