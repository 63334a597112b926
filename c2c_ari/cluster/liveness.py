"""A second heartbeat, through Asterisk, for the one case the database cannot judge.

An instance cut off from the database alone (it still reaches Asterisk, the others still
reach the database) stops beating in the database and looks gone to the others, who would
take its calls over: adopt the bridged ones, hang up those still ringing, while it still runs
them. So each instance also counts up a global variable of its own in every Asterisk node it
reaches, and before a reaper takes over an owner's calls it reads that count twice: one that
moves is alive, its calls stay its own (it records them once the database is back). A dead,
frozen or stopped instance's count stands still, and its calls are taken over as before.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection, Sequence

from c2c_ari.ari import AriClient, AriException

# Seconds between counts, and between the two readings that tell a live count from a still
# one: more than two counts apart, so one late count does not make a live instance look gone.
BEAT = 0.5
CHECK_GAP = 1.2
# How long one node may take to answer a count or a reading: a node that hangs (frozen, or
# overloaded) must not hold up the counts on the others, nor a reaper's round.
NODE_WAIT = 1.0


def variable(boot_id: str) -> str:
    return f"C2C_ALIVE_{boot_id}"


class AsteriskBeat:
    def __init__(self, nodes: Sequence[AriClient], boot_id: str, *, beat: float = BEAT,
                 check_gap: float = CHECK_GAP) -> None:
        self.nodes = nodes
        self.boot_id = boot_id
        self.beat = beat
        self.check_gap = check_gap

    async def run(self) -> None:
        """Count up on every node, every `beat` seconds (a node out of reach is skipped)."""
        count = 0
        while True:
            count += 1
            await asyncio.gather(*(self._set(ari, str(count)) for ari in self.nodes))
            await asyncio.sleep(self.beat)

    async def clear(self) -> None:
        """Take this instance's count out of every node (a graceful stop)."""
        await asyncio.gather(*(self._set(ari, "") for ari in self.nodes))

    async def alive(self, boot_ids: Collection[str]) -> set[str]:
        """Those of `boot_ids` whose count moves in at least one node."""
        if not boot_ids:
            return set()
        before = await self._read(boot_ids)
        await asyncio.sleep(self.check_gap)
        after = await self._read(boot_ids)
        return {boot for (node, boot), value in after.items()
                if value and value != before.get((node, boot))}

    async def _read(self, boot_ids: Collection[str]) -> dict[tuple[int, str], str]:
        async def one(index: int, ari: AriClient, boot: str) -> tuple[tuple[int, str], str]:
            try:
                async with asyncio.timeout(NODE_WAIT):
                    return (index, boot), await ari.get_global(variable(boot))
            except (AriException, TimeoutError):
                return (index, boot), ""  # a node out of reach tells nothing
        pairs = await asyncio.gather(*(one(index, ari, boot)
                                       for index, ari in enumerate(self.nodes)
                                       for boot in boot_ids))
        return dict(pairs)

    async def _set(self, ari: AriClient, value: str) -> None:
        with contextlib.suppress(AriException, TimeoutError):
            async with asyncio.timeout(NODE_WAIT):
                await ari.set_global(variable(self.boot_id), value)
