"""This process as an instance among others: its identity and its heartbeat."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from c2c_ari.store import InstanceRecord, InstanceStore
from c2c_ari.store.errors import StoreUnavailable

log = logging.getLogger(__name__)

# Seconds between heartbeats, and how old the last one may be before an instance counts as
# gone (its calls are then taken over). Generous against a slow moment of the database, short
# enough that a dead instance's calls are taken over within seconds.
HEARTBEAT = 1.0
MAX_AGE = 5.0

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Instance:
    instance_id: str  # the same across restarts
    boot_id: str  # new at every start: what owns calls
    app: str  # this instance's own ARI application: its calls live there
    dialplan_app: str  # the shared application the dialplan enters (one holder at a time)


def new_instance(instance_id: str, ari_app: str) -> Instance:
    safe = _UNSAFE.sub("-", instance_id).strip("-") or "instance"
    return Instance(instance_id=safe, boot_id=secrets.token_hex(8),
                    app=f"{ari_app}-{safe}", dialplan_app=ari_app)


class Membership:
    """Beats every HEARTBEAT seconds and knows which boots are alive."""

    def __init__(self, store: InstanceStore, instance: Instance, *,
                 interval: float = HEARTBEAT, max_age: float = MAX_AGE,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.instance = instance
        self.interval = interval
        self.max_age = max_age
        self._clock = clock
        # When the last heartbeat was written: a database that takes writes (readiness).
        self.last_beat: float | None = None
        # When this instance's heartbeats last resumed after a gap (failed writes, or a
        # process that did not run); 0.0: no gap since the start.
        self.resumed_at = 0.0
        self._failing = False

    @property
    def record(self) -> InstanceRecord:
        return InstanceRecord(self.instance.instance_id, self.instance.boot_id,
                              self.instance.app, time.time())

    async def beat(self) -> None:
        try:
            await self.store.heartbeat(self.record)
        except Exception:
            self._failing = True
            raise
        now = self._clock()
        if self._failing or (self.last_beat is not None
                             and now - self.last_beat > self.max_age):
            self.resumed_at = now
            self._failing = False
        self.last_beat = now

    def settled(self) -> bool:
        """Whether this instance may judge others dead by their heartbeats' age. Not while
        its own heartbeats fail, nor for a while after they resume: when the database comes
        back after an outage (or this process after a freeze), every heartbeat in it is old,
        and the other instances need one more max_age to write theirs before it is fair to
        count them gone (otherwise the first instance back would take over everyone's
        calls)."""
        if self._failing:
            return False
        return self.resumed_at == 0.0 or self._clock() - self.resumed_at > self.max_age + \
            self.interval

    async def live_boots(self) -> set[str]:
        """The boots that beat recently, this one always included."""
        return {record.boot_id for record in await self.store.live(self.max_age)} | {
            self.instance.boot_id}

    async def others_alive(self) -> bool:
        """Whether another instance beats now (False when the database cannot say)."""
        try:
            return bool(await self.live_boots() - {self.instance.boot_id})
        except StoreUnavailable:
            return False

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.beat()
            except StoreUnavailable as exc:
                log.warning("heartbeat: the database is out of reach (%s)", exc)
            except Exception:
                log.exception("heartbeat failed")

    async def leave(self) -> None:
        await self.store.leave(self.instance.boot_id)
