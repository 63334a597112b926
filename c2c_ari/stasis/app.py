"""The Stasis application: places calls for connect, routes ARI events to them, records every
outcome, and keeps Asterisk and its own memory in agreement after reconnects and restarts."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from typing import Any

from c2c_ari.ari import AriClient, AriEvents, AriException
from c2c_ari.domain.accounts import AccountService
from c2c_ari.domain.clicktocalls import ClickToCallService
from c2c_ari.domain.connect import ConnectAttempt, ConnectRequest, ConnectResult, ConnectService
from c2c_ari.domain.errors import CallsUnavailable, DomainError, NotFound
from c2c_ari.domain.history import HistoryRecorder, cut_short
from c2c_ari.domain.plan import build_plan
from c2c_ari.stasis.call import EVENT_TYPES, Call, CallOrigin, ChannelLost, HangUp, Stop
from c2c_ari.stasis.registry import CallRegistry
from c2c_ari.store import ActiveCall

log = logging.getLogger(__name__)

# Every id this application creates starts with this (Kazoo's call id form, c2c-{id}-{rand}),
# so channels and bridges left by an earlier run can be told apart from others'.
PREFIX = "c2c-"


class StasisApp:
    def __init__(
        self,
        ari: AriClient,
        recorder: HistoryRecorder,
        *,
        extension_endpoint: str,
        contact_endpoint: str,
        contact_uri_endpoint: str = "PJSIP/trunk/{contact}",
        max_calls_in_setup: int = 0,
    ) -> None:
        self.ari = ari
        self.recorder = recorder
        self.extension_endpoint = extension_endpoint
        self.contact_endpoint = contact_endpoint
        self.contact_uri_endpoint = contact_uri_endpoint
        # Admission control: calls dialling but not bridged yet, at most this many (0: no
        # limit). Bridged calls cost the service almost nothing; setup is where it works.
        self.max_calls_in_setup = max_calls_in_setup
        self._in_setup = 0
        self.events = AriEvents(ari, self._on_event, on_connected=self._resync,
                                event_types=EVENT_TYPES)
        # Calls in flight, each with the task that runs it to its history item.
        self.calls = CallRegistry()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._dialplan: tuple[ConnectService, ClickToCallService, AccountService] | None = None

    def accept_dialplan_calls(
        self, connect: ConnectService, clicktocalls: ClickToCallService, accounts: AccountService
    ) -> None:
        """Calls from phones (Stasis args `dialplan,<c2c id>,<number>`) go through the same
        rules as the API's connect, so the app needs the domain services for them."""
        self._dialplan = (connect, clicktocalls, accounts)

    async def start(self) -> None:
        await self.events.start()

    async def stop(self, grace: float = 10.0) -> None:
        """Graceful stop: calls in flight are hung up and recorded (cause SERVICE_STOPPED).

        Calls get `grace` seconds to clean up in Asterisk; what is still running then is
        cancelled, and the next start records it from its in-flight row."""
        for call in self.calls:
            call.command(Stop())
        if self._tasks:
            _done, pending = await asyncio.wait(self._tasks, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        await self.events.stop()
        await self.ari.close()

    # ------------------------------------------------------------------ CallPlacer

    async def place(self, attempt: ConnectAttempt) -> ConnectResult:
        if not self.events.connected:
            raise CallsUnavailable("calls cannot be placed: Asterisk (ARI) is not connected")
        if self.max_calls_in_setup and self._in_setup >= self.max_calls_in_setup:
            # Refused before anything is dialled: a call accepted now would wait behind the
            # others and could fail by our own lag (a contact that answered and hung up
            # before we got round to bridging it).
            raise CallsUnavailable(
                f"too many calls being set up ({self._in_setup}): try again shortly",
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
        call = Call(
            plan, self.ari, incoming_channel=attempt.incoming_channel,
            origin=CallOrigin(client_ip=attempt.client_ip, authenticated=attempt.authenticated,
                              trigger=attempt.trigger),
        )
        await self._launch(call)
        if attempt.blocking:
            return ConnectResult(200, await asyncio.shield(call.outcome_known))
        return ConnectResult(202, plan.kazoo_view(attempt.account.realm))

    async def _launch(self, call: Call) -> None:
        call.on_bridged = self._bridged
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

    async def _bridged(self, call: Call) -> None:
        self._in_setup -= 1
        await self.recorder.bridged(self._active(call, call.provisional_item(), bridged=True))

    async def _run(self, call: Call) -> dict[str, Any]:
        # The call stays registered until its item is final, so that its status can always
        # be read: live from here, or ended from history.
        try:
            try:
                item = await call.run()
            except Exception:
                log.exception("call %s: no outcome", call.plan.call_id)
                item = {**call.provisional_item(), "result": "error",
                        "cause": "INTERNAL_ERROR"}
            await asyncio.shield(self.recorder.finished(self._active(call, item)))
            call.settle(item)
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

    @staticmethod
    def _active(call: Call, item: dict[str, Any], *, bridged: bool = False) -> ActiveCall:
        return ActiveCall(call.plan.call_id, call.plan.account_id, call.plan.clicktocall_id,
                          item, call.resources(), bridged)

    # ------------------------------------------------------------------ events

    async def _on_event(self, event: dict[str, Any]) -> None:
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
            self._spawn(self._dialplan_call(channel_id, args[1], args[2], caller))
        elif channel_id.startswith(PREFIX):
            # Ours, but no call knows it (its call already ended): never leave it up.
            self._spawn(self.ari.hangup(channel_id))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _dialplan_call(
        self, channel_id: str, c2c_id: str, number: str, caller: str | None
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
                               incoming_caller=caller),
                authenticated=account,
            )
        except DomainError as exc:
            log.info("dialplan click-to-call %s refused: %r", c2c_id, exc)
            with contextlib.suppress(AriException):
                await self.ari.hangup(channel_id, reason="normal")
        except Exception:
            log.exception("dialplan click-to-call %s failed", c2c_id)
            with contextlib.suppress(AriException):
                await self.ari.hangup(channel_id, reason="normal")

    # ------------------------------------------------------------------ re-sync

    async def _resync(self) -> None:
        """After every (re)connect: calls whose channels vanished meanwhile end, channels and
        bridges of ours that no call owns are removed, and calls a crashed run left
        unrecorded are recorded."""
        channels = {c["id"] for c in await self.ari.list_channels()}
        for call in self.calls:
            for channel_id in call.channel_ids:
                if channel_id not in channels and call.is_live(channel_id):
                    call.command(ChannelLost(channel_id))
        for channel_id in channels:
            if channel_id.startswith(PREFIX) and not self.calls.owns_channel(channel_id):
                await self.ari.hangup(channel_id)
        owned = self.calls.bridge_ids()
        for bridge in await self.ari.list_bridges():
            if bridge["id"].startswith(PREFIX) and bridge["id"] not in owned:
                await self.ari.destroy_bridge(bridge["id"])
        await self._record_unfinished()

    async def _record_unfinished(self) -> None:
        running = {call.plan.call_id for call in self.calls}
        for active in await self.recorder.unfinished():
            if active.call_id in running:
                continue
            for resource in active.resources:
                with contextlib.suppress(AriException):
                    if resource.endswith("-bridge"):
                        await self.ari.destroy_bridge(resource)
                    else:
                        await self.ari.hangup(resource)
            # The outcome was never seen: the service stopped without recording it.
            item = cut_short(active.item, "SERVICE_RESTART", time.time())
            await self.recorder.finished(dataclasses.replace(active, item=item))
