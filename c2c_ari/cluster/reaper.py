"""Takes over the calls of instances that are gone: a bridged call is adopted (it goes on,
run by this instance), one still being set up is hung up and recorded. A call is claimed by
one statement (store.calls.claim_orphans), so no two reapers take the same call, and each
call still gets exactly one history item."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from c2c_ari import metrics
from c2c_ari.cluster.membership import Membership
from c2c_ari.store import ActiveCall, CallStore
from c2c_ari.store.errors import StoreUnavailable

log = logging.getLogger(__name__)

INTERVAL = 1.0
BATCH = 50


class Reaper:
    def __init__(self, calls: CallStore, membership: Membership,
                 take_over: Callable[[ActiveCall], Awaitable[None]], *,
                 ready: Callable[[], bool] = lambda: True,
                 still_alive: Callable[[set[str]], Awaitable[set[str]]] | None = None,
                 interval: float = INTERVAL) -> None:
        self.calls = calls
        self.membership = membership
        self.take_over = take_over
        # Only an instance that reaches Asterisk can adopt or hang up what it takes over.
        self.ready = ready
        # Of the owners whose heartbeats stopped, those still alive by another sign (their
        # beat in Asterisk, cluster/liveness.py); the last ones found, for the log.
        self.still_alive = still_alive
        self._spared: set[str] = set()
        self.interval = interval
        self._stopping = asyncio.Event()

    async def run_once(self) -> int:
        """Claim and take over orphaned calls; how many."""
        taken = 0
        live = await self.membership.live_boots()
        # Once a round: with a silent owner, the check takes seconds (liveness.CHECK_GAP).
        spared = await self._spared_owners(live)
        while True:
            claimed = await self.calls.claim_orphans(
                live | spared, self.membership.instance.boot_id, BATCH)
            for call in claimed:
                log.warning("taking over call %s of a gone instance", call.call_id)
                try:
                    await self.take_over(call)
                except Exception:
                    log.exception("taking over call %s failed", call.call_id)
            taken += len(claimed)
            metrics.CALLS_TAKEN_OVER.inc(len(claimed))
            if len(claimed) < BATCH:
                metrics.REAPER_ROUNDS.inc()
                return taken
            live = await self.membership.live_boots()

    async def _spared_owners(self, live: set[str]) -> set[str]:
        """The owners of calls in flight whose heartbeats stopped but who are still alive by
        another sign (their beat in Asterisk): cut off from the database, not gone."""
        if self.still_alive is None:
            return set()
        silent = await self.calls.owners() - live
        alive = await self.still_alive(silent) if silent else set()
        for boot in sorted(alive - self._spared):
            log.warning("instance %s beats in Asterisk but not in the database (cut off from"
                        " it?): its calls stay its own", boot)
        self._spared = alive
        return alive

    async def round(self) -> int:
        """One round, when this instance may take calls over: it reaches Asterisk, and its
        own heartbeats are steady enough to judge others' (Membership.settled)."""
        if not (self.ready() and self.membership.settled()):
            return 0
        return await self.run_once()

    async def run(self) -> None:
        """Rounds every `interval` seconds until stop()."""
        while not self._stopping.is_set():
            try:
                await self.round()
            except StoreUnavailable as exc:
                log.warning("reaper: the database is out of reach (%s)", exc)
            except Exception:
                log.exception("reaper failed; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval)

    def stop(self) -> None:
        """No more rounds; run() returns once the one in progress (if any) is done."""
        self._stopping.set()
