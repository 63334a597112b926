"""Holding a named lease (one holder among the instances) for as long as this one can."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from c2c_ari.store import LeaseStore
from c2c_ari.store.errors import StoreUnavailable

log = logging.getLogger(__name__)

Hook = Callable[[], Awaitable[None]]


class LeaseKeeper:
    """Tries to take `name` every `ttl / 3` seconds and renews it while held; `on_acquired`
    runs when it is taken, `on_lost` when a renewal fails (another holder, or the database
    out of reach: then this instance must behave as if it had lost it)."""

    def __init__(self, store: LeaseStore, name: str, holder: str, *, ttl: float,
                 on_acquired: Hook, on_lost: Hook,
                 ready: Callable[[], bool] = lambda: True) -> None:
        self.store = store
        self.name = name
        self.holder = holder
        self.ttl = ttl
        self.on_acquired = on_acquired
        self.on_lost = on_lost
        # Only an instance able to serve what the lease stands for may hold it (one whose
        # Asterisk connection is down lets another take it).
        self.ready = ready
        self.held = False

    async def step(self) -> None:
        if not self.ready():
            if self.held:
                self.held = False
                log.warning("lease %s given up: not ready to serve it", self.name)
                await self.on_lost()
                await self.store.release(self.name, self.holder)
            return
        try:
            holds = await self.store.acquire(self.name, self.holder, self.ttl)
        except StoreUnavailable as exc:
            log.warning("lease %s: the database is out of reach (%s)", self.name, exc)
            holds = False
        except Exception:
            log.exception("lease %s: cannot renew it", self.name)
            holds = False
        if holds and not self.held:
            self.held = True
            log.info("lease %s taken", self.name)
            await self.on_acquired()
        elif not holds and self.held:
            self.held = False
            log.warning("lease %s lost", self.name)
            await self.on_lost()

    async def run(self) -> None:
        try:
            while True:
                await self.step()
                await asyncio.sleep(self.ttl / 3)
        finally:
            if self.held:
                self.held = False
                await self.on_lost()
                try:
                    await asyncio.shield(self.store.release(self.name, self.holder))
                except Exception:
                    log.warning("lease %s: could not release it", self.name)
