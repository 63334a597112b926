"""The Stasis application: places calls for connect, routes ARI events to them, records every
outcome, takes over the calls of gone instances, and keeps Asterisk and its own memory in
agreement after reconnects and restarts.

Each instance has an ARI application of its own, so the events of its calls come to it and to
no other instance; calls that phones start enter the shared dialplan application, whose
events this instance reads only while it holds that name's lease (`attach_dialplan_app`).
It reaches every Asterisk node (stasis/nodes.py) and places each new call on the fit one with
the fewest calls in flight across all instances."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any, TypeVar

from c2c_ari import logs, metrics
from c2c_ari.ari import AriClient, AriEvents, AriException
from c2c_ari.domain.accounts import AccountService
from c2c_ari.domain.clicktocalls import ClickToCallService
from c2c_ari.domain.connect import ConnectAttempt, ConnectRequest, ConnectResult, ConnectService
from c2c_ari.domain.errors import CallsUnavailable, DomainError, NotFound, StoreUnavailable
from c2c_ari.domain.history import HistoryRecorder, cut_short
from c2c_ari.domain.plan import adopted_plan, build_plan
from c2c_ari.stasis.call import (
    EVENT_TYPES,
    Call,
    CallOrigin,
    ChannelLost,
    Fallback,
    HandedOver,
    HangUp,
    Release,
    Stop,
)
from c2c_ari.stasis.nodes import Node
from c2c_ari.stasis.registry import CallRegistry
from c2c_ari.store import ActiveCall

log = logging.getLogger(__name__)

# Every id this application creates starts with this (Kazoo's call id form, c2c-{id}-{rand}),
# so channels and bridges left by an earlier run can be told apart from others'.
PREFIX = "c2c-"
# How old the other instances' calls-by-node figures may be when placing a call.
OTHERS_MAX_AGE = 0.5
# Seconds between attempts at a call's history write while the database is out of reach:
# doubling from the first to the last.
STORE_RETRY_FIRST = 0.5
STORE_RETRY_MAX = 5.0
# How often a stopping instance looks whether its released calls were taken over.
END_UNCLAIMED_POLL = 0.25

T = TypeVar("T")


class StasisApp:
    def __init__(
        self,
        nodes: Mapping[str, AriClient] | AriClient,
        recorder: HistoryRecorder,
        *,
        extension_endpoint: str,
        contact_endpoint: str,
        contact_uri_endpoint: str = "PJSIP/trunk/{contact}",
        max_calls_in_setup: int = 0,
        owner: str = "",
        dialplan_app: str | None = None,
    ) -> None:
        """`nodes`: the ARI client of each Asterisk node by name (one client alone is one node
        called "asterisk"), each in this instance's own application."""
        if not isinstance(nodes, Mapping):
            nodes = {"asterisk": nodes}
        self.recorder = recorder
        # This process's boot id: the owner recorded with every call it runs.
        self.owner = owner
        self.dialplan_app = dialplan_app
        self.nodes = {
            name: Node(name, client, on_event=self._on_event, on_connected=self._resync,
                       on_lost=self._node_lost, event_types=EVENT_TYPES,
                       dialplan_app=dialplan_app)
            for name, client in nodes.items()
        }
        self.extension_endpoint = extension_endpoint
        self.contact_endpoint = contact_endpoint
        self.contact_uri_endpoint = contact_uri_endpoint
        # Admission control: calls dialling but not bridged yet, at most this many (0: no
        # limit). Bridged calls cost the service almost nothing; setup is where it works.
        self.max_calls_in_setup = max_calls_in_setup
        self._in_setup = 0
        # Calls in flight, each with the task that runs it to its history item.
        self.calls = CallRegistry()
        self._tasks: set[asyncio.Task[Any]] = set()
        # Placement's view of the load: this instance's own calls exactly (the registry, plus
        # calls placed but not registered yet), the other instances' from the store at most
        # OTHERS_MAX_AGE old. Each instance spreading its own calls evenly keeps the total
        # even, where all reading one shared count would pile a burst onto one node.
        self._placing: Counter[str] = Counter()
        self._others: dict[str, int] = {}
        self._others_read_at = -math.inf
        self._dialplan: tuple[ConnectService, ClickToCallService, AccountService] | None = None
        # Set once stop() has given the calls their grace: history writes stop retrying.
        self._closed = asyncio.Event()

    @property
    def events(self) -> AriEvents:
        """The first node's events websocket (with one node, the only one)."""
        return next(iter(self.nodes.values())).events

    @property
    def connected(self) -> bool:
        """At least one node's events websocket is up."""
        return any(node.up for node in self.nodes.values())

    async def wait_connected(self) -> None:
        """Until a node's events websocket is up (bound it with asyncio.timeout)."""
        waits = [asyncio.ensure_future(node.events.wait_connected())
                 for node in self.nodes.values()]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    def accept_dialplan_calls(
        self, connect: ConnectService, clicktocalls: ClickToCallService, accounts: AccountService
    ) -> None:
        """Calls from phones (Stasis args `dialplan,<c2c id>,<number>`) go through the same
        rules as the API's connect, so the app needs the domain services for them."""
        self._dialplan = (connect, clicktocalls, accounts)

    async def start(self) -> None:
        for node in self.nodes.values():
            await node.start()

    async def stop(self, grace: float = 10.0) -> None:
        """Graceful stop: calls in flight are hung up and recorded (cause SERVICE_STOPPED),
        then the connections to Asterisk close."""
        await self.end_calls(grace)
        await self.close()

    async def release(self, grace: float = 10.0) -> list[str]:
        """Let the calls go for another instance to take over (Release): bridged ones at
        once, those being set up once bridged, for up to `grace` seconds. Returns the ids of
        the calls let go; the others are still this instance's (end_calls ends them)."""
        running = self.calls.tasks()
        for call in self.calls:
            call.command(Release())
        if running:
            await asyncio.wait(running.values(), timeout=grace)
        return _handed_over(running)

    async def end_calls(self, grace: float = 10.0) -> list[str]:
        """Hang up and record the calls in flight (cause SERVICE_STOPPED). They get `grace`
        seconds to clean up in Asterisk; what is still running then is cancelled, and the
        next start records it from its in-flight row. Returns the ids of calls let go
        instead (released earlier, they were bridged just now)."""
        running = self.calls.tasks()
        for call in self.calls:
            call.command(Stop())
        if self._tasks:
            _done, pending = await asyncio.wait(self._tasks, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        return _handed_over(running)

    async def end_unclaimed(self, call_ids: Collection[str], wait: float) -> int:
        """Released calls that no instance took over within `wait` seconds (the others are
        stopping too, say) are hung up and recorded (SERVICE_STOPPED), as a stop without a
        hand-over would have. One taken over at that very moment still gets one item: the
        first final item written wins. Returns how many were ended here."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        unclaimed = list(call_ids)
        while True:
            rows = [await self.recorder.in_flight(call_id) for call_id in unclaimed]
            left = [row for row in rows if row is not None and row.owner == self.owner]
            unclaimed = [row.call_id for row in left]
            if not left or loop.time() >= deadline:
                break
            await asyncio.sleep(END_UNCLAIMED_POLL)
        for row in left:
            log.warning("call %s: no instance took it over; ending it", row.call_id)
            await self._end_orphan(row, "SERVICE_STOPPED")
        return len(left)

    async def close(self) -> None:
        # A final item still waiting for the database is left to the next start.
        self._closed.set()
        for node in self.nodes.values():
            await node.stop()

    async def attach_dialplan_app(self) -> None:
        """Read the shared dialplan application's events on every node (this instance holds
        its lease): calls that phones start come here from now on."""
        for node in self.nodes.values():
            await node.attach_dialplan_app()

    async def detach_dialplan_app(self) -> None:
        for node in self.nodes.values():
            await node.detach_dialplan_app()

    # ------------------------------------------------------------------ CallPlacer

    async def _placement(self, attempt: ConnectAttempt) -> list[Node]:
        """The nodes to try, best first: the node a phone's call came in on, or the fit nodes
        by their calls in flight across all instances (ties broken at random, so that
        instances placing at the same moment spread)."""
        if attempt.incoming_node is not None:
            node = self.nodes.get(attempt.incoming_node)
            return [node] if node is not None and node.up else []
        fit = [node for node in self.nodes.values() if node.available]
        if len(fit) > 1:
            load = Counter(call.node for call in self.calls)
            load.update(self._placing)
            load.update(await self._others_load())
            fit.sort(key=lambda node: (load[node.name], random.random()))
        return fit

    async def _others_load(self) -> dict[str, int]:
        """Calls in flight by node of every other instance, read again when older than
        OTHERS_MAX_AGE (not at every connect: a query each, and no better for it)."""
        now = time.monotonic()
        if now - self._others_read_at > OTHERS_MAX_AGE:
            self._others_read_at = now  # concurrent placements use the last figures meanwhile
            self._others = await self.recorder.load_by_node(exclude_owner=self.owner)
        return self._others

    async def place(self, attempt: ConnectAttempt) -> ConnectResult:
        if not self.connected:
            raise CallsUnavailable("calls cannot be placed: Asterisk (ARI) is not connected")
        if self.max_calls_in_setup and self._in_setup >= self.max_calls_in_setup:
            # Refused before anything is dialled: a call accepted now would wait behind the
            # others and could fail by our own lag (a contact that answered and hung up
            # before we got round to bridging it).
            raise CallsUnavailable(
                f"too many calls being set up ({self._in_setup}): try again shortly",
                retry_after=1)
        nodes = await self._placement(attempt)
        if not nodes:
            raise CallsUnavailable("calls cannot be placed: no Asterisk node is fit for one",
                                   retry_after=1)
        plan = build_plan(
            account_id=attempt.account.id,
            clicktocall=attempt.clicktocall,
            contact=attempt.contact,
            custom_application_vars=attempt.custom_application_vars,
            extension_endpoint=self.extension_endpoint,
            contact_endpoint=self.contact_endpoint,
            contact_uri_endpoint=self.contact_uri_endpoint,
            trigger=attempt.trigger,
            extension=attempt.incoming_caller,
        )
        if attempt.incoming_channel is not None:
            plan = dataclasses.replace(
                plan, first=dataclasses.replace(plan.leg("extension"),
                                                channel_id=attempt.incoming_channel),
                second=plan.leg("contact"),
            )
        first, *others = nodes
        call = Call(
            plan, first.ari, incoming_channel=attempt.incoming_channel,
            origin=CallOrigin(client_ip=attempt.client_ip, authenticated=attempt.authenticated,
                              trigger=attempt.trigger),
            node=first.name, node_up=lambda: first.up,
            fallbacks=[Fallback(n.name, n.ari, _up_of(n)) for n in others],
        )
        self._placing[first.name] += 1  # until the registry has it, a few awaits from here
        try:
            await self._launch(call)
        finally:
            self._placing[first.name] -= 1
        if attempt.blocking:
            return ConnectResult(200, await asyncio.shield(call.outcome_known))
        return ConnectResult(202, plan.kazoo_view(attempt.account.realm))

    async def _launch(self, call: Call) -> None:
        call.on_bridged = self._bridged
        call.on_moved = self._moved
        call.on_node_failed = lambda name: self.nodes[name].failed()
        self._in_setup += 1
        try:
            # Durable before the call can exist in Asterisk: a crash from here on leaves a
            # row that the next start turns into history.
            await self.recorder.started(self._active(call, call.provisional_item()))
        except BaseException:
            self._in_setup -= 1
            raise
        task = asyncio.create_task(self._run(call), name=call.plan.call_id)
        # Registered before the first request to Asterisk, whose events may beat its answer.
        self.calls.add(call, task)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        # One pass of the event loop: the call sends its first request to Asterisk now, ahead
        # of the answer to this connect, which the caller waits for less than for the call.
        await asyncio.sleep(0)

    async def _durably(self, what: str, call_id: str, write: Callable[[], Awaitable[T]]) -> T:
        """`write()` again until the database takes it. A call goes on, or has ended, while
        the database is out of reach; its item must be written once it is back, not lost
        (an instance that lives on is never taken over, so no one else would write it).
        Given up only when the service stops: its next start records the call from its
        in-flight row."""
        delay = STORE_RETRY_FIRST
        while True:
            try:
                return await write()
            except StoreUnavailable as exc:
                if self._closed.is_set():
                    raise
                log.warning("call %s: %s not written (%s); again in %.1f s", call_id, what,
                            exc, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), delay)
            delay = min(delay * 2, STORE_RETRY_MAX)

    async def _finished(self, call: Call | None, item: dict[str, Any],
                        active: ActiveCall | None = None) -> None:
        """Record a call's final item, once, and count it."""
        record = active or self._active(call, item)  # type: ignore[arg-type]
        if await self._durably("its final item", record.call_id,
                               lambda: self.recorder.finished(record)):
            metrics.CALLS.labels(item.get("result", "error"), item.get("cause", ""),
                                 item.get("trigger", "api"), record.node).inc()

    def load(self) -> dict[str, int]:
        """Calls this instance runs, by state (for metrics)."""
        setting_up = self._in_setup
        return {"setup": setting_up, "bridged": max(0, len(self.calls) - setting_up)}

    def websockets(self) -> dict[tuple[str, str], bool]:
        """Whether each events websocket is up, by node and application (for metrics and
        readiness)."""
        out: dict[tuple[str, str], bool] = {}
        for node in self.nodes.values():
            out.update(node.websockets())
        return out

    def availability(self) -> dict[str, bool]:
        """Whether each node takes new calls (for metrics)."""
        return {name: node.available for name, node in self.nodes.items()}

    async def _moved(self, call: Call) -> None:
        await self.recorder.started(self._active(call, call.provisional_item()))

    def _bridged(self, call: Call) -> asyncio.Task[None]:
        """The call is bridged: out of setup at once (admission counts it no more), and its
        item at the bridge written by a task of its own, which is returned."""
        self._in_setup -= 1
        active = self._active(call, call.provisional_item(), bridged=True)
        write = asyncio.create_task(self._durably(
            "its item at the bridge", active.call_id, lambda: self.recorder.bridged(active)))
        self._tasks.add(write)
        write.add_done_callback(self._tasks.discard)
        return write

    async def _run(self, call: Call, adopted: dict[str, Any] | None = None
                   ) -> dict[str, Any] | None:
        # The call's task has a context of its own: every line it logs names the call.
        logs.CALL_ID.set(call.plan.call_id)
        logs.ACCOUNT_ID.set(call.plan.account_id)
        # The call stays registered until its item is final, so that its status can always
        # be read: live from here, or ended from history.
        plan = call.plan
        if adopted is None:
            log.info("call %s on node %s: %s first, to contact %s and extension %s",
                     plan.call_id, call.node, plan.first.role, plan.contact, plan.extension)
        try:
            try:
                item = await call.run(adopted=adopted)
            except HandedOver:
                return None  # the instance that took it over records it
            except Exception:
                log.exception("call %s: no outcome", call.plan.call_id)
                item = {**call.provisional_item(), "result": "error",
                        "cause": "INTERNAL_ERROR"}
            await asyncio.shield(self._finished(call, item))
            call.settle(item)
            log.info("call %s ended: %s%s", plan.call_id, item.get("result"),
                     f", {item['cause']} ({item.get('failed_leg')} leg)"
                     if item.get("cause") else f", talked {item.get('talk_duration', 0)} s")
        finally:
            if call.outcome.answered is None:
                self._in_setup -= 1  # never bridged: its setup ended here
            self.calls.remove(call)
        return item

    # ------------------------------------------------------------------ LiveCalls

    def status(self, call_id: str) -> dict[str, Any] | None:
        call = self.calls.get(call_id)
        return None if call is None else call.status()

    def in_flight(self, c2c_id: str) -> list[dict[str, Any]]:
        return [call.status() for call in self.calls.of_clicktocall(c2c_id)]

    def watch(self, call_id: str) -> tuple[Call, asyncio.Queue[dict[str, Any]]] | None:
        call = self.calls.get(call_id)
        return None if call is None else (call, call.watch())

    async def hang_up(self, call_id: str, wait: float = 10.0) -> dict[str, Any] | None:
        """End a call in flight; its history item once recorded (None: no such live call)."""
        call, task = self.calls.get(call_id), self.calls.task(call_id)
        if call is None or task is None:
            return None
        call.command(HangUp())
        async with asyncio.timeout(wait):
            return await asyncio.shield(task)

    def _active(self, call: Call, item: dict[str, Any], *, bridged: bool = False
                ) -> ActiveCall:
        return ActiveCall(call.plan.call_id, call.plan.account_id, call.plan.clicktocall_id,
                          item, call.resources(), bridged, owner=self.owner, node=call.node)

    # ------------------------------------------------------------------ taking over

    async def take_over(self, active: ActiveCall) -> None:
        """A call of a gone instance, now this one's (claimed in the store): a bridged call
        is adopted and followed to its end; one still being set up is hung up and recorded.
        Either way it gets exactly one final item."""
        node = self._node_of(active)
        if node is not None and node.up and active.bridged and len(active.resources) == 3:
            try:
                await self._adopt(active, node)
                return
            except Exception:
                log.exception("call %s: adopting it failed", active.call_id)
        # The outcome was never seen: the service that ran it stopped without recording it.
        await self._end_orphan(active, "SERVICE_RESTART")

    def _node_of(self, active: ActiveCall) -> Node | None:
        return self.nodes.get(active.node) if active.node else next(iter(self.nodes.values()))

    async def _end_orphan(self, active: ActiveCall, cause: str) -> None:
        """A call no one follows: hang up what is left of it, record it as cut by `cause`."""
        node = self._node_of(active)
        if node is not None and node.up:
            for resource in active.resources:
                with contextlib.suppress(AriException):
                    if resource.endswith("-bridge"):
                        await node.ari.destroy_bridge(resource)
                    else:
                        await node.ari.hangup(resource)
        item = cut_short(active.item, cause, time.time())
        await self._finished(None, item, dataclasses.replace(active, item=item,
                                                              owner=self.owner))

    async def _adopt(self, active: ActiveCall, node: Node) -> None:
        """Move the call's channels into this instance's application and follow it (a leg
        that is gone already ends it, recorded as lost)."""
        plan = adopted_plan(call_id=active.call_id, account_id=active.account_id,
                            clicktocall_id=active.clicktocall_id, item=active.item,
                            resources=active.resources)
        item = active.item
        call = Call(plan, node.ari, origin=CallOrigin(
            client_ip=item.get("client_ip"), authenticated=item.get("authenticated", True),
            trigger=item.get("trigger", "api")), node=node.name, node_up=_up_of(node))
        task = asyncio.create_task(self._run(call, adopted=item), name=plan.call_id)
        # Registered before the move, whose StasisStart may beat its answer.
        self.calls.add(call, task)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        mine = await node.ari.get_application(node.ari.app) or {}
        already = set(mine.get("channel_ids") or [])
        for channel_id in call.channel_ids:
            if channel_id not in already and not await node.ari.move(channel_id,
                                                                      node.ari.app):
                call.command(ChannelLost(channel_id))
        log.info("call %s adopted on node %s", plan.call_id, node.name)

    # ------------------------------------------------------------------ events

    async def _on_event(self, node: Node, event: dict[str, Any]) -> None:
        channel_id = event.get("channel", {}).get("id", "")
        log.debug("event %s %s", event.get("type"), channel_id)
        call = self.calls.by_channel(channel_id)
        if call is not None:
            call.deliver(event)
            return
        if event.get("type") != "StasisStart":
            return
        args = event.get("args") or []
        if args[:1] == ["dialplan"] and len(args) == 3:
            caller = (event.get("channel", {}).get("caller") or {}).get("number")
            self._spawn(self._dialplan_call(node, channel_id, args[1], args[2], caller))
        elif channel_id.startswith(PREFIX):
            # Ours, but no call knows it (its call already ended): never leave it up.
            self._spawn(node.ari.hangup(channel_id))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _dialplan_call(
        self, node: Node, channel_id: str, c2c_id: str, number: str, caller: str | None
    ) -> None:
        """A phone dialled the feature code: the same rules as connect, then the same call."""
        try:
            if self._dialplan is None:
                raise CallsUnavailable("dialplan calls are not enabled")
            connect, clicktocalls, accounts = self._dialplan
            account_id, _doc = await clicktocalls.find(c2c_id)
            account = await accounts.get(account_id)
            if account is None:
                raise NotFound(c2c_id)
            await connect.connect(
                account_id, c2c_id,
                ConnectRequest(contact=number, trigger="dialplan", incoming_channel=channel_id,
                               incoming_caller=caller, incoming_node=node.name),
                authenticated=account,
            )
        except DomainError as exc:
            log.info("dialplan click-to-call %s refused: %r", c2c_id, exc)
            with contextlib.suppress(AriException):
                await node.ari.hangup(channel_id, reason="normal")
        except Exception:
            log.exception("dialplan click-to-call %s failed", c2c_id)
            with contextlib.suppress(AriException):
                await node.ari.hangup(channel_id, reason="normal")

    # ------------------------------------------------------------------ re-sync

    async def _resync(self, node: Node) -> None:
        """After every (re)connect to a node: its calls whose channels vanished meanwhile
        end, and channels and bridges of ours that no call knows are removed. "Ours" is
        what is in this instance's application, and bridges of calls that no instance has
        in flight: the calls of other instances, and of a previous run that the reaper has
        yet to take over, are never touched."""
        metrics.ARI_RECONNECTS.labels(node.name, node.events.app).inc()
        ari = node.ari
        channels = {c["id"] for c in await ari.list_channels()}
        for call in self.calls:
            if call.node != node.name:
                continue
            for channel_id in call.channel_ids:
                if channel_id not in channels and call.is_live(channel_id):
                    call.command(ChannelLost(channel_id))
        known = {resource for active in await self.recorder.unfinished()
                 for resource in active.resources}
        known |= {channel for call in self.calls for channel in call.channel_ids}
        known |= self.calls.bridge_ids()
        mine = await ari.get_application(ari.app) or {}
        for channel_id in mine.get("channel_ids") or []:
            if channel_id not in known:
                with contextlib.suppress(AriException):
                    await ari.hangup(channel_id)
        for bridge in await ari.list_bridges():
            if bridge["id"].startswith(PREFIX) and bridge["id"] not in known:
                with contextlib.suppress(AriException):
                    await ari.destroy_bridge(bridge["id"])

    async def _node_lost(self, node: Node) -> None:
        """A node's events stayed away: its calls cannot be followed any more, and end (as
        lost; those Asterisk hung up on its way down already ended as ASTERISK_SHUTDOWN)."""
        for call in self.calls:
            if call.node == node.name:
                for channel_id in call.channel_ids:
                    if call.is_live(channel_id):
                        call.command(ChannelLost(channel_id))


def _handed_over(tasks: Mapping[str, asyncio.Task[Any]]) -> list[str]:
    """The calls, of those whose tasks these are, that were let go to another instance (their
    task returned no item)."""
    return [call_id for call_id, task in tasks.items()
            if task.done() and not task.cancelled() and task.exception() is None
            and task.result() is None]


def _up_of(node: Node):  # type: ignore[no-untyped-def]
    return lambda: node.up
