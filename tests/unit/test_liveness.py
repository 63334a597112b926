"""The heartbeat through Asterisk: an instance whose count moves in a node is alive, whatever
the database says, and the reaper leaves its calls alone."""

from __future__ import annotations

import asyncio
from collections.abc import Collection

from c2c_ari.ari import AriUnavailable
from c2c_ari.cluster.liveness import AsteriskBeat, variable
from c2c_ari.cluster.membership import Membership, new_instance
from c2c_ari.cluster.reaper import Reaper
from c2c_ari.store import ActiveCall, InstanceRecord


class Globals:
    """An Asterisk node's global variables, as ARI reads and writes them."""

    def __init__(self, reachable: bool = True) -> None:
        self.values: dict[str, str] = {}
        self.reachable = reachable

    async def set_global(self, name: str, value: str) -> None:
        if not self.reachable:
            raise AriUnavailable("POST", "/asterisk/variable", "connection refused")
        self.values[name] = value

    async def get_global(self, name: str) -> str:
        if not self.reachable:
            raise AriUnavailable("GET", "/asterisk/variable", "connection refused")
        return self.values.get(name, "")


async def test_a_moving_count_is_alive_a_still_or_cleared_one_is_not() -> None:
    node_1, node_2 = Globals(), Globals(reachable=False)
    nodes = [node_1, node_2]
    running = AsteriskBeat(nodes, "running", beat=0.01, check_gap=0.05)  # type: ignore[arg-type]
    frozen = AsteriskBeat(nodes, "frozen", beat=0.01)  # type: ignore[arg-type]
    stopped = AsteriskBeat(nodes, "stopped", beat=0.01)  # type: ignore[arg-type]
    for beat in (frozen, stopped):
        task = asyncio.create_task(beat.run())
        await asyncio.sleep(0.03)
        task.cancel()
    await stopped.clear()
    assert node_1.values[variable("frozen")] and node_1.values[variable("stopped")] == ""

    task = asyncio.create_task(running.run())
    try:
        # One node out of reach tells nothing; the other is enough.
        assert await running.alive({"running", "frozen", "stopped", "never"}) == {"running"}
    finally:
        task.cancel()


class Instances:
    def __init__(self) -> None:
        self.rows: dict[str, InstanceRecord] = {}

    async def heartbeat(self, instance: InstanceRecord) -> None:
        self.rows[instance.boot_id] = instance

    async def live(self, max_age: float) -> list[InstanceRecord]:
        return list(self.rows.values())


class Calls:
    """Calls in flight of two instances whose database heartbeats stopped."""

    def __init__(self) -> None:
        self.rows = [ActiveCall(f"call-{owner}", "acc", "c2c", {}, [], owner=owner)
                     for owner in ("cut-off", "dead")]

    async def owners(self) -> set[str]:
        return {row.owner for row in self.rows}

    async def claim_orphans(self, live: Collection[str], new_owner: str, limit: int
                            ) -> list[ActiveCall]:
        claimed = [row for row in self.rows if row.owner not in live]
        self.rows = [row for row in self.rows if row.owner in live]
        return claimed


async def test_the_reaper_takes_over_only_the_calls_of_owners_alive_nowhere() -> None:
    membership = Membership(Instances(), new_instance("a", "c2c-ari"))  # type: ignore[arg-type]
    await membership.beat()
    asked: list[set[str]] = []

    async def still_alive(boots: set[str]) -> set[str]:
        asked.append(boots)
        return boots & {"cut-off"}

    taken: list[str] = []

    async def take_over(call: ActiveCall) -> None:
        taken.append(call.call_id)

    reaper = Reaper(Calls(), membership, take_over,  # type: ignore[arg-type]
                    still_alive=still_alive)
    assert await reaper.run_once() == 1
    assert taken == ["call-dead"]
    assert asked == [{"cut-off", "dead"}]
