"""The ARI events websocket, kept connected.

Asterisk deactivates a Stasis app while no websocket is connected for it: a call that should
enter the app in that gap cannot. So this loop reconnects for as long as it runs (capped
exponential backoff with jitter), and after EVERY connect it awaits `on_connected` before
delivering events, so the owner can re-read `list_channels()` / `list_bridges()` and bring its
state up to date. Events that arrive meanwhile wait in the socket and follow in order.

Events are delivered one at a time, in order, to `on_event`; a slow handler delays the next
event, so a handler that has long work to do should start a task.

`event_types` narrows the stream to the types the owner reacts to, with ARI's per-application
event filter (`PUT /applications/{app}/eventFilter`, Asterisk 13.26/16.3 and later). Asterisk
sends a call through Stasis dozens of events that a click-to-call never reads (a ChannelVarset
for every variable Asterisk sets itself, Dial, bridge membership...); a filtered one costs
neither side the encoding, the socket and the decoding. The filter belongs to the application
in Asterisk, so it is set again after every connect, before `on_connected`. It only saves
work: events of other types that arrive anyway (before it is set, or when Asterisk refuses it)
are delivered as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any

import aiohttp

from .backoff import Backoff
from .client import AriClient
from .errors import AriException

log = logging.getLogger(__name__)

EventHandler = Callable[[dict[str, Any]], Awaitable[None]]
Hook = Callable[[], Awaitable[None]]


class AriEvents:
    """`GET /ari/events?app=NAME&subscribeAll=false` as a self-healing stream of event dicts.

    Hooks: `on_connected()` after each (re)connect, before any event of that connection;
    if it raises, the connection is dropped and retried, so a failed re-sync is retried too.
    `on_disconnected()` when a connection that was up ends (also on `stop()`).
    Exceptions of `on_event` are logged and the event is skipped.
    """

    def __init__(
        self,
        client: AriClient,
        on_event: EventHandler,
        *,
        on_connected: Hook | None = None,
        on_disconnected: Hook | None = None,
        backoff: Backoff | None = None,
        heartbeat: float | None = 20.0,
        connect_timeout: float = 10.0,
        event_types: Collection[str] | None = None,
        app: str | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        # The application whose events this socket carries (the client's own by default).
        self.app = app or client.app
        self._on_event = on_event
        self._on_connected = on_connected
        self._on_disconnected = on_disconnected
        self._backoff = backoff or Backoff(initial=0.2, maximum=5.0)
        # Pings find a dead peer (e.g. Asterisk's host vanished) that TCP alone would not.
        self._heartbeat = heartbeat
        self._connect_timeout = connect_timeout
        self._event_types = None if event_types is None else sorted(set(event_types))
        self._sleep = sleep
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._stopping = False
        self._ready = asyncio.Event()
        self.connections = 0  # successful connects so far, for logs and tests

    @property
    def connected(self) -> bool:
        """True while a websocket is up and its `on_connected` has finished."""
        return self._ready.is_set()

    async def start(self) -> None:
        """Start the connect/read loop in the background (no-op if it runs already)."""
        if self._task is None or self._task.done():
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name="ari-events")

    async def stop(self) -> None:
        """Close the websocket and end the loop; returns once nothing of it is left running."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        task.cancel()
        if task is asyncio.current_task():
            return  # called from a handler: the cancellation ends the loop right after
        # wait() rather than awaiting the task: a cancellation of stop() itself still
        # propagates, and the task's own end (cancelled) is not raised here.
        await asyncio.wait({task})
        if not task.cancelled() and task.exception() is not None:
            log.error("ARI events loop had failed", exc_info=task.exception())

    async def reconnect(self) -> None:
        """Drop the current connection; the loop connects again and calls `on_connected`."""
        if self._ws is not None:
            await self._ws.close()

    async def wait_connected(self) -> None:
        """Wait until connected and re-synced (bound it with `asyncio.timeout`)."""
        await self._ready.wait()

    # ------------------------------------------------------------------ loop

    async def _run(self) -> None:
        failures = 0
        while True:
            ws = await self._connect(quiet=failures > 0)
            if ws is None:
                failures += 1
                await self._sleep(self._backoff.next())
                continue
            failures = 0
            self._ws = ws
            self.connections += 1
            connected_at = self._clock()
            log.info("ARI events websocket connected (app %s)", self.app)
            try:
                await self._filter_events()
                if await self._call_hook("on_connected", self._on_connected):
                    self._ready.set()
                    await self._read(ws)
            finally:
                self._ready.clear()
                self._ws = None
                with contextlib.suppress(Exception):
                    await ws.close()
                # Only an unplanned close is worth a warning: the app is inactive until
                # the reconnect, and calls meant for it fail meanwhile.
                level = logging.INFO if self._stopping else logging.WARNING
                log.log(level, "ARI events websocket closed (app %s)", self.app)
                await self._call_hook("on_disconnected", self._on_disconnected)
            # A connection that stayed up a while earns a quick reconnect; one that is dropped
            # straight away (e.g. a proxy refusing it) keeps backing off.
            if self._clock() - connected_at >= self._backoff.maximum:
                self._backoff.reset()
            await self._sleep(self._backoff.next())

    async def _connect(self, quiet: bool) -> aiohttp.ClientWebSocketResponse | None:
        try:
            async with asyncio.timeout(self._connect_timeout):
                return await self._client.session.ws_connect(
                    self._client.events_url_for(self.app),
                    heartbeat=self._heartbeat,
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=2.0),
                )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            # Asterisk not up yet (refused), still booting (503), or wrong credentials (401):
            # keep trying, but say it loudly only once per outage.
            level = logging.DEBUG if quiet else logging.WARNING
            log.log(level, "ARI events websocket: cannot connect: %s", exc or type(exc).__name__)
            return None

    async def _filter_events(self) -> None:
        """Ask Asterisk for `event_types` only (both lists set, so no older filter lingers)."""
        if self._event_types is None:
            return
        try:
            await self._client.set_event_filter(self._event_types, self.app)
        except AriException as exc:
            log.warning("ARI events: Asterisk sends every event type, its event filter "
                        "failed: %s", exc)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            if self._stopping:
                return  # stop() from a handler: buffered frames must not be delivered
            if message.type is aiohttp.WSMsgType.TEXT:
                event = _decode(message.data)
                if event is not None:
                    await self._deliver(event)
            elif message.type is aiohttp.WSMsgType.ERROR:
                log.warning("ARI events websocket error: %s", ws.exception())
                return
            else:
                log.warning("ARI events websocket: skipping a %s frame", message.type.name)

    async def _deliver(self, event: dict[str, Any]) -> None:
        try:
            await self._on_event(event)
        except Exception:
            log.exception("ARI event handler failed on %s", event.get("type"))

    async def _call_hook(self, name: str, hook: Hook | None) -> bool:
        if hook is None:
            return True
        try:
            await hook()
        except Exception:
            log.exception("ARI events %s hook failed", name)
            return False
        return True


def _decode(data: str) -> dict[str, Any] | None:
    """An event dict, or None (logged) for anything that is not a JSON object with a type."""
    try:
        event = json.loads(data)
    except ValueError:
        log.warning("ARI events: skipping a frame that is not JSON: %.200r", data)
        return None
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        log.warning("ARI events: skipping a frame that is not an event: %.200r", data)
        return None
    return event
