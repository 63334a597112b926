"""Calls of a click-to-call, live or ended: their status, and hanging one up."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from c2c_ari.domain.clicktocalls import ClickToCallService
from c2c_ari.domain.errors import NotFound


class LiveCalls(Protocol):
    """What is known of calls in flight, whichever instance runs them."""

    async def status(self, account_id: str, call_id: str) -> dict[str, Any] | None: ...

    async def in_flight(self, account_id: str, c2c_id: str) -> list[dict[str, Any]]: ...

    def watch(self, call_id: str) -> AbstractAsyncContextManager[
        AsyncIterator[dict[str, Any]] | None]:
        """The call's status now and at every change, the last with state "ended"; None
        inside when no instance runs it."""
        ...

    async def hang_up(self, call_id: str) -> dict[str, Any] | None: ...


class NoLiveCalls:
    """Without a Stasis application no call is ever in flight."""

    async def status(self, account_id: str, call_id: str) -> dict[str, Any] | None:
        return None

    async def in_flight(self, account_id: str, c2c_id: str) -> list[dict[str, Any]]:
        return []

    @contextlib.asynccontextmanager
    async def watch(self, call_id: str) -> AsyncIterator[None]:
        yield None

    async def hang_up(self, call_id: str) -> dict[str, Any] | None:
        return None


def ended(item: dict[str, Any]) -> dict[str, Any]:
    """The status of a call that is over, from its history item."""
    return {"state": "ended", **item}


class CallsService:
    def __init__(self, clicktocalls: ClickToCallService, live: LiveCalls) -> None:
        self.clicktocalls = clicktocalls
        self.live = live

    async def _check(self, account_id: str, c2c_id: str, call_id: str) -> None:
        # Call ids are c2c-{C2C_ID}-{random}: one of another click-to-call (or of another
        # account, whose click-to-call is unknown here) answers as if it did not exist.
        await self.clicktocalls.get(account_id, c2c_id)
        if not call_id.startswith(f"c2c-{c2c_id}-") or len(call_id) > 80:
            raise NotFound(call_id[:80])

    async def in_flight(self, account_id: str, c2c_id: str) -> list[dict[str, Any]]:
        """The click-to-call's calls that have not ended yet, oldest first."""
        await self.clicktocalls.get(account_id, c2c_id)
        return sorted(await self.live.in_flight(account_id, c2c_id),
                      key=lambda status: status["timestamp"])

    async def status(self, account_id: str, c2c_id: str, call_id: str) -> dict[str, Any]:
        await self._check(account_id, c2c_id, call_id)
        live = await self.live.status(account_id, call_id)
        if live is not None:
            return live
        item = await self.clicktocalls.history_store.get(account_id, call_id)
        if item is None:
            raise NotFound(call_id)
        return ended(item)

    async def updates(
        self, account_id: str, c2c_id: str, call_id: str
    ) -> AsyncIterator[dict[str, Any]]:
        """The call's status now and at every change, ending with its outcome."""
        await self._check(account_id, c2c_id, call_id)
        async with self.live.watch(call_id) as watched:
            if watched is None:
                yield await self.status(account_id, c2c_id, call_id)
                return
            async for status in watched:
                yield status
                if status.get("state") == "ended":
                    return

    async def hang_up(self, account_id: str, c2c_id: str, call_id: str) -> dict[str, Any]:
        """Hang a call up; a call that is already over answers its final status."""
        await self._check(account_id, c2c_id, call_id)
        item = await self.live.hang_up(call_id)
        if item is None:
            item = await self.clicktocalls.history_store.get(account_id, call_id)
        if item is None:
            raise NotFound(call_id)
        return ended(item)
