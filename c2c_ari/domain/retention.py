"""Housekeeping off the request path: expired tokens, history past its retention, and
soft-deleted click-to-calls (with their history) past theirs.

Every job deletes in small batches, each its own short transaction, with a pause between
them: a backlog of a million rows never holds the database (or the event loop) for long, and
the space they took is reused by the rows that come next. Running it on several instances at
once is harmless: each batch deletes what is still there.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from c2c_ari.domain.ids import GREGORIAN_OFFSET
from c2c_ari.store import AccountStore, ClickToCallStore, HistoryStore

log = logging.getLogger(__name__)

DAY = 86_400.0


@dataclass(frozen=True)
class RetentionPolicy:
    history_days: int = 365  # 0 keeps history forever
    deleted_days: int = 30  # 0 keeps soft-deleted click-to-calls forever
    batch: int = 500
    pause: float = 0.05  # seconds between batches


class Housekeeper:
    def __init__(
        self,
        accounts: AccountStore,
        clicktocalls: ClickToCallStore,
        history: HistoryStore,
        policy: RetentionPolicy,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.accounts = accounts
        self.clicktocalls = clicktocalls
        self.history = history
        self.policy = policy
        self.clock = clock

    async def run_once(self) -> dict[str, int]:
        """One round of every job; the number of rows each removed."""
        return {
            "tokens": await self.purge_tokens(),
            "history": await self.prune_history(),
            "deleted_clicktocalls": await self.purge_deleted(),
        }

    async def run_forever(self, interval: float = 60.0) -> None:
        while True:
            try:
                removed = await self.run_once()
                if any(removed.values()):
                    log.info("housekeeping removed %s", removed)
            except Exception:
                log.exception("housekeeping failed; trying again in %.0f s", interval)
            await asyncio.sleep(interval)

    async def _pause(self) -> None:
        await asyncio.sleep(self.policy.pause)

    async def purge_tokens(self) -> int:
        removed = 0
        while True:
            count = await self.accounts.purge_tokens(self.clock(), self.policy.batch)
            removed += count
            if count < self.policy.batch:
                return removed
            await self._pause()

    async def prune_history(self) -> int:
        """Items whose call started more than `history_days` ago."""
        if self.policy.history_days <= 0:
            return 0
        cutoff = int(self.clock() - self.policy.history_days * DAY) + GREGORIAN_OFFSET
        removed = 0
        while True:
            count = await self.history.prune(cutoff, self.policy.batch)
            removed += count
            if count < self.policy.batch:
                return removed
            await self._pause()

    async def purge_deleted(self) -> int:
        """Soft-deleted click-to-calls older than `deleted_days`, their history first."""
        if self.policy.deleted_days <= 0:
            return 0
        cutoff = self.clock() - self.policy.deleted_days * DAY
        removed = 0
        while True:
            found = await self.clicktocalls.deleted_before(cutoff, self.policy.batch)
            for account_id, doc_id in found:
                while await self.history.delete_of(account_id, doc_id, self.policy.batch):
                    await self._pause()
                await self.clicktocalls.purge(account_id, doc_id)
                removed += 1
            if len(found) < self.policy.batch:
                return removed
            await self._pause()
