"""This process as an instance among others: its identity and its heartbeat."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from dataclasses import dataclass

from c2c_ari.store import InstanceRecord, InstanceStore

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
                 interval: float = HEARTBEAT, max_age: float = MAX_AGE) -> None:
        self.store = store
        self.instance = instance
        self.interval = interval
        self.max_age = max_age
        # When the last heartbeat was written: a database that takes writes (readiness).
        self.last_beat: float | None = None

    @property
    def record(self) -> InstanceRecord:
        return InstanceRecord(self.instance.instance_id, self.instance.boot_id,
                              self.instance.app, time.time())

    async def beat(self) -> None:
        await self.store.heartbeat(self.record)
        self.last_beat = time.time()

    async def live_boots(self) -> set[str]:
        """The boots that beat recently, this one always included."""
        return {record.boot_id for record in await self.store.live(self.max_age)} | {
            self.instance.boot_id}

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.beat()
            except Exception:
                log.exception("heartbeat failed")

    async def leave(self) -> None:
        await self.store.leave(self.instance.boot_id)
