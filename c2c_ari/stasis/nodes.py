"""The Asterisk nodes this instance places calls on: for each, its ARI client (in this
instance's application), its events websockets, and whether it is fit for a new call.

A node takes new calls while its events websocket is up, its ARI answers a ping within a
couple of seconds, and it has not just failed a call's first request; a node that failed is
left alone for a while (capped exponential backoff), then tried again. Which fit node gets
a call is the placement's business (StasisApp.place: the fewest calls in flight, across all
instances)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from c2c_ari.ari import AriClient, AriEvents, Backoff

log = logging.getLogger(__name__)

# How often, and within how long, each node's ARI must answer a ping to count as healthy.
PROBE_INTERVAL = 2.0
PROBE_TIMEOUT = 2.0
# How long a node's events websocket may stay down before its calls count as lost (they
# cannot be followed, and Asterisk may be gone for good).
LOST_AFTER = 5.0

EventHandler = Callable[["Node", dict[str, Any]], Awaitable[None]]
Hook = Callable[["Node"], Awaitable[None]]


class Node:
    def __init__(
        self,
        name: str,
        ari: AriClient,
        *,
        on_event: EventHandler,
        on_connected: Hook,
        on_lost: Hook,
        event_types: Collection[str],
        dialplan_app: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.ari = ari
        self._on_event = on_event
        self._on_connected = on_connected
        self._on_lost = on_lost
        self._event_types = event_types
        self.dialplan_app = dialplan_app
        self._clock = clock
        self.events = AriEvents(ari, self._event, on_connected=self._connected,
                                on_disconnected=self._disconnected, event_types=event_types)
        self.dialplan_events: AriEvents | None = None
        self.healthy = True
        self._backoff = Backoff(initial=1.0, maximum=30.0)
        self._retry_at = 0.0
        self._watchdog: asyncio.Task[None] | None = None
        self._prober: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ state

    @property
    def up(self) -> bool:
        """Its events websocket is connected (its calls can be followed)."""
        return self.events.connected

    @property
    def available(self) -> bool:
        """Fit for a new call."""
        return self.up and self.healthy and self._clock() >= self._retry_at

    def failed(self) -> None:
        """A call's first request to it failed: no new calls for a while."""
        delay = self._backoff.next()
        self._retry_at = self._clock() + delay
        log.warning("node %s failed a request: no new calls on it for %.1f s", self.name,
                    delay)

    def websockets(self) -> dict[tuple[str, str], bool]:
        out = {(self.name, self.events.app): self.events.connected}
        if self.dialplan_events is not None:
            out[(self.name, self.dialplan_events.app)] = self.dialplan_events.connected
        return out

    # ------------------------------------------------------------------ life

    async def start(self) -> None:
        await self.events.start()
        self._prober = asyncio.create_task(self._probe_forever(), name=f"probe-{self.name}")

    async def stop(self) -> None:
        for task in (self._prober, self._watchdog):
            if task is not None:
                task.cancel()
        await self.detach_dialplan_app()
        await self.events.stop()
        await self.ari.close()

    async def attach_dialplan_app(self) -> None:
        """Read the shared dialplan application's events on this node too."""
        if self.dialplan_app is None or self.dialplan_events is not None:
            return
        self.dialplan_events = AriEvents(self.ari, self._event, app=self.dialplan_app,
                                         event_types=self._event_types)
        await self.dialplan_events.start()

    async def detach_dialplan_app(self) -> None:
        events, self.dialplan_events = self.dialplan_events, None
        if events is not None:
            await events.stop()

    async def _event(self, event: dict[str, Any]) -> None:
        await self._on_event(self, event)

    async def _connected(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        # A websocket just made (and re-synced over REST) proves ARI answers: no need to
        # wait for the next probe to take calls again.
        self.healthy = True
        self._backoff.reset()
        self._retry_at = 0.0
        await self._on_connected(self)

    async def _disconnected(self) -> None:
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = asyncio.create_task(self._lose_after(), name=f"lost-{self.name}")

    async def _lose_after(self) -> None:
        await asyncio.sleep(LOST_AFTER)
        if not self.up:
            log.warning("node %s: no events for %.0f s, its calls are lost", self.name,
                        LOST_AFTER)
            await self._on_lost(self)

    async def _probe_forever(self) -> None:
        while True:
            healthy = await self.ari.ping(PROBE_TIMEOUT)
            if healthy != self.healthy:
                log.warning("node %s %s", self.name,
                            "answers ARI again" if healthy else "does not answer ARI in time")
            self.healthy = healthy
            await asyncio.sleep(PROBE_INTERVAL)
