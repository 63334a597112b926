"""Calls in flight seen from any instance: a call this instance runs is answered from its
Stasis application; one another instance runs is reached over the store's bus (PostgreSQL's
LISTEN/NOTIFY, or in-process with SQLite).

The messages, all on one channel, each a small JSON object with an `op`:
- `status?` {call_id, reply_to}: the owner answers with `status` (to reply_to);
- `watch` {call_id}: the owner publishes the call's `status` at every change until it ends;
- `hangup` {call_id}: the owner hangs the call up (its final `status` follows if watched);
- `status` {call_id, status, to?}: a call's status, to whoever waits for it.
Nothing polls: a watcher that hears nothing for a while asks again (the call may have been
taken over by another instance, which then starts publishing) and looks for the final item
in history (the call may have ended while its owner was going away).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from c2c_ari.domain.calls import ended
from c2c_ari.store import ActiveCall, Store
from c2c_ari.store.local_bus import messages, put_dropping_oldest

if TYPE_CHECKING:
    from c2c_ari.stasis.app import StasisApp

log = logging.getLogger(__name__)

CHANNEL = "c2c_calls"
# How long a question to another instance may take before the row's own facts answer.
ASK_TIMEOUT = 1.0
# How long a watcher waits for news before asking again and looking in history.
WATCH_RETRY = 5.0
HANG_UP_TIMEOUT = 10.0
# Statuses one watcher may fall behind by (a stalled browser): older ones are dropped.
QUEUE_LIMIT = 64


def row_status(row: ActiveCall) -> dict[str, Any]:
    """A call's status from its in-flight row alone: when its owner cannot say more."""
    item = row.item
    status = {key: item[key] for key in ("call_id", "contact", "extension", "dial_first",
                                         "timestamp", "answered_at") if key in item}
    status["state"] = "bridged" if row.bridged else "dialing"
    status["legs"] = {}
    return status


class ClusterCalls:
    """The `LiveCalls` of the API (domain/calls.py), over every instance."""

    def __init__(self, store: Store, boot_id: str, local: StasisApp | None) -> None:
        self.store = store
        self.boot_id = boot_id
        self.local = local
        self._waiters: dict[str, set[asyncio.Queue[dict[str, Any]]]] = {}
        self._pumps: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------------ serving the others

    async def run(self) -> None:
        """Answer the other instances' questions about this one's calls and deliver their
        statuses to whoever here waits for them (runs until cancelled)."""
        try:
            async with self.store.bus.subscribe(CHANNEL) as messages:
                async for message in messages:
                    try:
                        await self._handle(message)
                    except Exception:
                        log.exception("calls bus: cannot handle %.200r", message)
        finally:
            for task in [*self._pumps.values(), *self._tasks]:
                task.cancel()

    async def _handle(self, message: dict[str, Any]) -> None:
        op, call_id = message.get("op"), str(message.get("call_id", ""))
        if op == "status":
            for queue in self._waiters.get(call_id, ()):
                put_dropping_oldest(queue, message.get("status") or {})
            return
        status = self.local.status(call_id) if self.local is not None else None
        if status is None:
            return  # not ours
        if op == "status?":
            await self._publish_status(call_id, status, to=message.get("reply_to"))
        elif op == "watch" and call_id not in self._pumps:
            task = asyncio.create_task(self._pump(call_id))
            self._pumps[call_id] = task
            task.add_done_callback(lambda _t: self._pumps.pop(call_id, None))
        elif op == "hangup" and self.local is not None:
            task = asyncio.create_task(self.local.hang_up(call_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, call_id: str) -> None:
        """Publish a call's statuses for the other instances' watchers until it ends."""
        watched = self.local.watch(call_id) if self.local is not None else None
        if watched is None:
            return
        call, queue = watched
        try:
            while True:
                status = await queue.get()
                await self._publish_status(call_id, status)
                if status.get("state") == "ended":
                    return
        finally:
            call.unwatch(queue)

    async def _publish_status(self, call_id: str, status: dict[str, Any],
                              to: str | None = None) -> None:
        message: dict[str, Any] = {"op": "status", "call_id": call_id, "status": status}
        if to:
            message["to"] = to
        await self.store.bus.publish(CHANNEL, message)

    # ------------------------------------------------------------------ LiveCalls

    @contextlib.contextmanager
    def _waiting(self, call_id: str) -> Any:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_LIMIT)
        self._waiters.setdefault(call_id, set()).add(queue)
        try:
            yield queue
        finally:
            waiters = self._waiters.get(call_id, set())
            waiters.discard(queue)
            if not waiters:
                self._waiters.pop(call_id, None)

    async def _remote_row(self, call_id: str, account_id: str | None = None
                          ) -> ActiveCall | None:
        row = await self.store.calls.get(call_id)
        if row is None or (account_id is not None and row.account_id != account_id):
            return None
        return row

    async def status(self, account_id: str, call_id: str) -> dict[str, Any] | None:
        if self.local is not None:
            status = self.local.status(call_id)
            if status is not None:
                return status
        row = await self._remote_row(call_id, account_id)
        if row is None:
            return None
        with self._waiting(call_id) as queue:
            await self.store.bus.publish(CHANNEL, {"op": "status?", "call_id": call_id,
                                                   "reply_to": self.boot_id})
            try:
                async with asyncio.timeout(ASK_TIMEOUT):
                    return await queue.get()
            except TimeoutError:
                return row_status(row)

    async def in_flight(self, account_id: str, c2c_id: str) -> list[dict[str, Any]]:
        out = []
        for row in await self.store.calls.of_clicktocall(account_id, c2c_id):
            status = self.local.status(row.call_id) if self.local is not None else None
            out.append(status if status is not None else row_status(row))
        return out

    @contextlib.asynccontextmanager
    async def watch(self, call_id: str) -> AsyncIterator[AsyncIterator[dict[str, Any]] | None]:
        watched = self.local.watch(call_id) if self.local is not None else None
        if watched is not None:
            call, queue = watched
            try:
                yield messages(queue)
            finally:
                call.unwatch(queue)
            return
        row = await self._remote_row(call_id)
        if row is None:
            yield None
            return
        with self._waiting(call_id) as queue:
            yield self._remote_updates(row, queue)

    async def _remote_updates(self, row: ActiveCall, queue: asyncio.Queue[dict[str, Any]]
                              ) -> AsyncIterator[dict[str, Any]]:
        call_id = row.call_id
        yield row_status(row)
        while True:
            await self.store.bus.publish(CHANNEL, {"op": "watch", "call_id": call_id})
            try:
                async with asyncio.timeout(WATCH_RETRY):
                    while True:
                        status = await queue.get()
                        yield status
                        if status.get("state") == "ended":
                            return
            except TimeoutError:
                pass
            if await self.store.calls.get(call_id) is None:
                item = await self.store.history.get(row.account_id, call_id)
                if item is not None:
                    yield ended(item)
                return

    async def hang_up(self, call_id: str) -> dict[str, Any] | None:
        if self.local is not None and self.local.status(call_id) is not None:
            return await self.local.hang_up(call_id)
        row = await self._remote_row(call_id)
        if row is None:
            return None
        with self._waiting(call_id) as queue:
            await self.store.bus.publish(CHANNEL, {"op": "watch", "call_id": call_id})
            await self.store.bus.publish(CHANNEL, {"op": "hangup", "call_id": call_id})
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HANG_UP_TIMEOUT):
                    while True:
                        status = await queue.get()
                        if status.get("state") == "ended":
                            return {k: v for k, v in status.items() if k != "state"}
        return await self.store.history.get(row.account_id, call_id)
