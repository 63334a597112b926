"""An instance judges others dead by their heartbeats' age only while its own heartbeats are
steady: after a database outage (or a freeze of its own) every heartbeat is old, and the
first instance back must not take over everyone's calls."""

from __future__ import annotations

import contextlib

from c2c_ari.cluster.membership import Membership, new_instance
from c2c_ari.cluster.reaper import Reaper
from c2c_ari.store import ActiveCall, InstanceRecord
from c2c_ari.store.errors import StoreUnavailable


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Instances:
    """An instance store whose database can be made unreachable."""

    def __init__(self) -> None:
        self.down = False
        self.rows: dict[str, InstanceRecord] = {}

    async def heartbeat(self, instance: InstanceRecord) -> None:
        if self.down:
            raise StoreUnavailable("connection refused")
        self.rows[instance.boot_id] = instance

    async def live(self, max_age: float) -> list[InstanceRecord]:
        return list(self.rows.values())

    async def leave(self, boot_id: str) -> None:
        self.rows.pop(boot_id, None)


class Calls:
    def __init__(self) -> None:
        self.claims = 0

    async def claim_orphans(self, live: object, new_owner: str, limit: int
                            ) -> list[ActiveCall]:
        self.claims += 1
        return []


async def _beat_for(membership: Membership, clock: Clock, seconds: int) -> None:
    """Heartbeats every second, as the instance's loop writes them."""
    for _ in range(seconds):
        clock.now += 1
        await membership.beat()


async def _membership() -> tuple[Membership, Instances, Clock]:
    clock, store = Clock(), Instances()
    membership = Membership(store, new_instance("a", "c2c-ari"), interval=1.0, max_age=5.0,
                            clock=clock)
    await membership.beat()
    return membership, store, clock


async def test_steady_heartbeats_from_the_start_are_settled() -> None:
    membership, _, clock = await _membership()
    assert membership.settled()  # a fresh start takes over a previous run's calls at once
    clock.now += 1
    await membership.beat()
    assert membership.settled()


async def test_not_settled_during_an_outage_nor_for_max_age_after_it() -> None:
    membership, store, clock = await _membership()
    store.down = True
    for _ in range(10):
        clock.now += 1
        with contextlib.suppress(StoreUnavailable):
            await membership.beat()
        assert not membership.settled()
    store.down = False
    clock.now += 1
    await membership.beat()
    for _ in range(6):  # max_age + interval after the first heartbeat that got through
        assert not membership.settled()
        await _beat_for(membership, clock, 1)
    assert not membership.settled()
    await _beat_for(membership, clock, 1)
    assert membership.settled()


async def test_a_freeze_of_its_own_counts_as_a_gap() -> None:
    membership, _, clock = await _membership()
    clock.now += 30  # the process did not run (SIGSTOP, a stalled host)
    await membership.beat()
    assert not membership.settled()
    await _beat_for(membership, clock, 6)
    assert not membership.settled()
    await _beat_for(membership, clock, 1)
    assert membership.settled()


async def test_the_reaper_claims_nothing_until_settled() -> None:
    membership, store, clock = await _membership()
    calls = Calls()

    async def take_over(call: ActiveCall) -> None:
        raise AssertionError("nothing to take over")

    reaper = Reaper(calls, membership, take_over, interval=0.0)  # type: ignore[arg-type]
    store.down = True
    clock.now += 1
    with contextlib.suppress(StoreUnavailable):
        await membership.beat()
    store.down = False
    clock.now += 1
    await membership.beat()
    await reaper.round()
    assert calls.claims == 0
    await _beat_for(membership, clock, 7)
    await reaper.round()
    assert calls.claims == 1
