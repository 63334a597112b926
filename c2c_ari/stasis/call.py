"""One click-to-call, from the first originate to the history item, read top to bottom.

`Call.run()` is the state machine: each `await` waits for the event that moves the call on,
and a leg that ends at any point raises `LegEnded`, which jumps to the clean-up. ARI events and
the commands the application sends a call (stop, hang up, a channel lost) reach it through one
inbox, in the order they happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from c2c_ari import metrics
from c2c_ari.ari import AriClient, AriError, AriException, AriUnavailable
from c2c_ari.domain.history import cause_name, gregorian, history_item
from c2c_ari.domain.ids import GREGORIAN_OFFSET
from c2c_ari.domain.plan import CallPlan, Leg
from c2c_ari.stasis.state import LegEnded, Outcome, State

log = logging.getLogger(__name__)

# How long a refused ARI step waits for the event that explains it (a leg that hung up just
# before the step reached Asterisk), before blaming ARI itself.
_EXPLANATION_WAIT = 2.0

# ChannelHangupRequest's `cause` on a soft hangup is Asterisk's reason flag; 4 is
# AST_SOFTHANGUP_SHUTDOWN: Asterisk itself is stopping and takes the call down with it.
_SOFTHANGUP_SHUTDOWN = 4

# Every ARI event type a call (or the app, for StasisStart) reacts to. The app asks Asterisk
# for these only: a call also causes some forty others (ChannelVarset, Dial, bridge entries
# and exits...) that nothing here reads. A step that waits for a new type must add it here.
EVENT_TYPES = frozenset({"StasisStart", "StasisEnd", "ChannelStateChange",
                         "ChannelHangupRequest", "ChannelDestroyed"})


# How long a first originate may retry a node that refuses connections before the call goes
# to the next node (when there is one).
FAILOVER_DEADLINE = 0.5

# A bridged leg that left the application with no hang-up asked of it and is still in
# Asterisk this long afterwards was moved into another application, not hung up.
MOVED_CHECK = 1.0


RELEASED = "let go as the service stops, for another instance to adopt"


class HandedOver(Exception):
    """The call is another instance's now: its channels were moved into another application
    (another instance judged this one gone, e.g. cut off from the database), or this
    instance let it go when stopping (Release) for another one to take over."""


@dataclass(frozen=True)
class Fallback:
    """Another node a call may start on: its name, its ARI, and whether it is up."""

    name: str
    ari: AriClient
    up: Callable[[], bool]


@dataclass(frozen=True)
class CallOrigin:
    """Who asked for the call, as its history item records it."""

    client_ip: str | None = None
    authenticated: bool = True
    trigger: str = "api"  # "api" or "dialplan"


# Commands the application sends a call, through the same inbox as its ARI events.
@dataclass(frozen=True)
class Stop:
    """The service is stopping gracefully: end the call now (SERVICE_STOPPED)."""


@dataclass(frozen=True)
class HangUp:
    """A user asked to end the call (DELETE on it): normal once bridged, else cancelled."""


@dataclass(frozen=True)
class ChannelLost:
    """The channel vanished while ARI was disconnected (found by the re-sync)."""

    channel_id: str


@dataclass(frozen=True)
class Release:
    """The service is stopping and another instance will take its calls over: let the call go
    untouched once it is bridged and its item at the bridge is durable (the taker adopts it
    from its in-flight row). A call being set up goes on until then, or ends as it would."""


Ending = Stop | HangUp | ChannelLost  # commands that end the call
Command = Ending | Release


class Call:
    """A call in flight. `incoming_channel` is the channel that dialled in when the call came
    from the dialplan (it is already the extension leg and needs no originate)."""

    def __init__(
        self,
        plan: CallPlan,
        ari: AriClient,
        *,
        origin: CallOrigin | None = None,
        incoming_channel: str | None = None,
        node: str = "asterisk",
        node_up: Callable[[], bool] = lambda: True,
        fallbacks: Sequence[Fallback] = (),
    ) -> None:
        self.plan = plan
        self.ari = ari
        # The Asterisk node the call is on: its name, and whether it can be reached (a call
        # on a node that is gone leaves nothing behind to clean up).
        self.node = node
        self._node_up = node_up
        # Other nodes the first leg may be originated on if this one never receives it.
        self._fallbacks = list(fallbacks)
        # Called when the call moved to another node before anything was dialled (its
        # in-flight row must say where it is), and when a node failed its first request.
        self.on_moved: Callable[[Call], Awaitable[None]] | None = None
        self.on_node_failed: Callable[[str], None] | None = None
        self.origin = origin or CallOrigin()
        self.incoming_channel = incoming_channel
        self.state = State.DIALING_FIRST
        self.outcome = Outcome()
        self.inbox: asyncio.Queue[dict[str, Any] | Command] = asyncio.Queue()
        # Resolved once the outcome is known: bridged (success so far) or failed.
        self.outcome_known: asyncio.Future[dict[str, Any]] = (
            asyncio.get_running_loop().create_future())
        self._answered: set[str] = set()  # roles of the legs that answered
        self._live: set[str] = set()  # our channels that Asterisk has not destroyed yet
        self._hanging_up: set[str] = set()  # our channels with a hang-up requested
        self._bridge_made = False
        self._asterisk_stopping = False
        self._releasing = False  # a Release came: let go once bridged
        self._leg_states: dict[str, str] = {}  # role -> Asterisk's channel state
        self._watchers: list[asyncio.Queue[dict[str, Any]]] = []
        # Called once both legs are bridged: it starts writing the item at the bridge and
        # returns that write (see StasisApp), which the outcome waits for.
        self.on_bridged: Callable[[Call], asyncio.Future[Any]] | None = None
        self._bridge_recorded: asyncio.Future[Any] | None = None

    @property
    def channel_ids(self) -> tuple[str, str]:
        return self.plan.first.channel_id, self.plan.second.channel_id

    def resources(self) -> list[str]:
        return [*self.channel_ids, self.plan.bridge_id]

    def deliver(self, event: dict[str, Any]) -> None:
        """An ARI event about one of this call's channels."""
        self.inbox.put_nowait(event)

    def command(self, command: Command) -> None:
        """Tell the call to end, or to let go (see the Command types)."""
        self.inbox.put_nowait(command)

    def watch(self) -> asyncio.Queue[dict[str, Any]]:
        """A queue of this call's status: now, at every change of state, and the ended item
        last. Give it back with `unwatch`."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        queue.put_nowait(self.status())
        self._watchers.append(queue)
        return queue

    def unwatch(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        with contextlib.suppress(ValueError):
            self._watchers.remove(queue)

    def _publish(self, status: dict[str, Any] | None = None) -> None:
        status = status or self.status()
        for queue in self._watchers:
            queue.put_nowait(status)

    def status(self) -> dict[str, Any]:
        """The call as it stands: its state and each leg's channel state."""
        legs = {
            leg.role: {"channel_id": leg.channel_id,
                       "state": self._leg_states.get(leg.role, "Down")}
            for leg in (self.plan.first, self.plan.second)
        }
        status = {"call_id": self.plan.call_id, "contact": self.plan.contact,
                  "extension": self.plan.extension, "dial_first": self.plan.first.role,
                  "node": self.node, "timestamp": gregorian(self.outcome.started),
                  "state": self.state.value, "legs": legs}
        if self.outcome.answered is not None:
            status["answered_at"] = gregorian(self.outcome.answered)
        return status

    def is_live(self, channel_id: str) -> bool:
        """True for a leg that was dialled and has not been destroyed yet."""
        return channel_id in self._live

    def provisional_item(self) -> dict[str, Any]:
        """The history item as far as it is known now (for the in-flight record)."""
        return self._item("success" if self.state is State.BRIDGED else "error", ended=False)

    # ------------------------------------------------------------------ the call's life

    async def run(self, *, adopted: dict[str, Any] | None = None) -> dict[str, Any]:
        """Place, bridge and end the call; returns its history item. With `adopted` (the
        item a gone instance recorded at the bridge), the call is already bridged in
        Asterisk and is only followed to its end."""
        try:
            if adopted is None:
                await self._set_up()
            else:
                self._resume(adopted)
            if self._releasing:
                raise HandedOver(RELEASED)
            while True:
                await self._next_event()
        except HandedOver as handed:
            if self._releasing and self._bridge_recorded is not None:
                # The taker adopts only a call whose in-flight row says it is bridged.
                await asyncio.wait([self._bridge_recorded])
            log.warning("call %s: %s; left to it", self.plan.call_id, handed)
            raise  # nothing to clean up or record: the call is the other instance's now
        except LegEnded as ended:
            self._ended(ended)
        except AriException as exc:
            self._ended(await self._explain(exc))
        except Exception:
            # A bug must still leave nothing behind in Asterisk and a line in history.
            log.exception("call %s failed", self.plan.call_id)
            self._ended(LegEnded(self._pending_role(), "INTERNAL_ERROR", None))
        finally:
            self.state = State.ENDED
        await self._clean_up()
        item = self._item(self.outcome.result, ended=True)
        self._publish({"state": State.ENDED.value, **item})
        if self._bridge_recorded is not None:
            # The final item is written after the one at the bridge, never before it.
            await asyncio.wait([self._bridge_recorded])
        return item

    async def _set_up(self) -> None:
        first, second = self.plan.first, self.plan.second
        if self.incoming_channel is None:
            await self._originate_first()
            await self._until_answered(first)
        else:
            self._live.add(first.channel_id)
            await self.ari.answer(first.channel_id)
        self._answered.add(first.role)
        self.state = State.DIALING_SECOND
        self._publish()
        if self.plan.ignore_early_media:
            await self._waiting_sound(first)
            await self._originate(second)
        else:
            # Early media: the first leg joins the bridge before the second is dialled,
            # so it hears whatever the far end plays before answering.
            await self._bridge(first)
            await self._create_and_dial(second)
        await self._until_answered(second, created=not self.plan.ignore_early_media)
        self._answered.add(second.role)
        if self.plan.ignore_early_media:
            await self._stop_waiting_sound(first)
            await self._bridge(first, second)
        else:
            await self._bridge(second)
        self.state = State.BRIDGED
        self.outcome.answered = time.time()
        metrics.CALL_SETUP.observe(self.outcome.answered - self.outcome.started)
        self._publish()
        item = self._item("success", ended=False)
        if self.on_bridged is None:
            self.settle(item)
            return
        # The call follows its legs while its item at the bridge is written: a database that
        # is slow or out of reach must not keep a party who hangs up connected to nobody.
        # Whoever waits for the outcome (a blocking connect) is told once the item is durable.
        self._bridge_recorded = self.on_bridged(self)
        self._bridge_recorded.add_done_callback(
            lambda write: None if write.cancelled() or write.exception() else self.settle(item))

    def _resume(self, item: dict[str, Any]) -> None:
        """Take up a bridged call where a gone instance left it."""
        self.state = State.BRIDGED
        self._live.update(self.channel_ids)
        self._bridge_made = True
        self._answered.update((self.plan.first.role, self.plan.second.role))
        self.outcome.started = item["timestamp"] - GREGORIAN_OFFSET
        self.outcome.answered = item.get("answered_at", item["timestamp"]) - GREGORIAN_OFFSET
        self._leg_states = {"extension": "Up", "contact": "Up"}
        self.settle(item)
        self._publish()

    # ------------------------------------------------------------------ steps

    async def _originate_first(self) -> None:
        """The first leg, on this node or, if it never receives the request (refused
        connection, or an error answer: no channel was made), on the next fallback node.
        Never after a request that may have reached Asterisk: that could dial twice."""
        while True:
            try:
                await self._originate(self.plan.first,
                                      retry_deadline=FAILOVER_DEADLINE if self._fallbacks
                                      else None)
                return
            except (AriUnavailable, AriError) as exc:
                unreached = ((isinstance(exc, AriUnavailable) and not exc.reached)
                             or (isinstance(exc, AriError) and exc.status >= 500))
                if not unreached or not self._fallbacks:
                    raise
                if self.on_node_failed is not None:
                    self.on_node_failed(self.node)
                self._live.discard(self.plan.first.channel_id)
                fallback = self._fallbacks.pop(0)
                log.warning("call %s: node %s did not take the first leg (%s); trying %s",
                            self.plan.call_id, self.node, exc, fallback.name)
                self.ari, self.node, self._node_up = fallback.ari, fallback.name, fallback.up
                if self.on_moved is not None:
                    await self.on_moved(self)

    async def _originate(self, leg: Leg, *, retry_deadline: float | None = None) -> None:
        self._live.add(leg.channel_id)
        await self.ari.originate(
            leg.endpoint,
            channel_id=leg.channel_id,
            app_args=["c2c", self.plan.call_id, leg.role],
            caller_id=leg.caller_id,
            timeout=self.plan.timeout,
            variables=leg.variables,
            retry_deadline=retry_deadline,
        )
        if leg is self.plan.first:
            metrics.CALL_FIRST_DIAL.observe(time.time() - self.outcome.started)

    async def _create_and_dial(self, leg: Leg) -> None:
        self._live.add(leg.channel_id)
        await self.ari.create_channel(
            leg.endpoint,
            channel_id=leg.channel_id,
            app_args=["c2c", self.plan.call_id, leg.role],
            variables={**leg.variables, "CALLERID(name)": leg.caller_id_name,
                       "CALLERID(num)": leg.caller_id_number},
        )
        # The created channel joins the application a moment after ARI answers; a bridge
        # refuses it until then.
        await self._until_event(leg, "StasisStart")
        await self.ari.add_channel(self.plan.bridge_id, leg.channel_id,
                                   inhibit_connected_line_updates=True)
        await self.ari.dial(leg.channel_id, timeout=self.plan.timeout)

    async def _until_event(self, leg: Leg, kind: str, state: str | None = None) -> None:
        while True:
            event = await self._next_event()
            channel = event.get("channel", {})
            if (event.get("type") == kind and channel.get("id") == leg.channel_id
                    and (state is None or channel.get("state") == state)):
                return

    async def _until_answered(self, leg: Leg, *, created: bool = False) -> None:
        """Wait until the leg's far end answers.

        An originated leg enters Stasis only once answered, and its StasisStart is the signal:
        its earlier state change to Up comes before it is in the application, when ARI still
        refuses to ring or bridge it. A created-then-dialled leg is in Stasis from the start,
        so there the state change to Up is the answer."""
        await self._until_event(leg, "ChannelStateChange" if created else "StasisStart", "Up")

    async def _waiting_sound(self, leg: Leg) -> None:
        """What the first leg hears while the second rings: music on hold, a ringback tone,
        or the default ring tone."""
        if self.plan.moh_class:
            await self.ari.start_moh(leg.channel_id, self.plan.moh_class)
        elif self.plan.ringback:
            await self.ari.play(leg.channel_id, f"tone:{self.plan.ringback}",
                                playback_id=f"{self.plan.call_id}-ringback")
        else:
            await self.ari.ring(leg.channel_id)

    async def _stop_waiting_sound(self, leg: Leg) -> None:
        try:
            if self.plan.moh_class:
                await self.ari.stop_moh(leg.channel_id)
            elif self.plan.ringback:
                await self.ari.stop_playback(f"{self.plan.call_id}-ringback")
            else:
                await self.ari.ring_stop(leg.channel_id)
        except AriException as exc:
            # Not worth failing a call that is about to be bridged anyway.
            log.info("call %s: stopping the waiting sound: %s", self.plan.call_id, exc)

    async def _bridge(self, *legs: Leg) -> None:
        if not self._bridge_made:
            await self.ari.create_bridge(self.plan.bridge_id, type=self.plan.bridge_type)
            self._bridge_made = True
        # Without inhibiting, joining the bridge sends each phone a connected-line update (a
        # re-INVITE) that would replace the caller IDs the click-to-call chose for it.
        await self.ari.add_channel(self.plan.bridge_id, [leg.channel_id for leg in legs],
                                   inhibit_connected_line_updates=True)

    async def _explain(self, exc: AriException) -> LegEnded:
        """Why ARI refused a step. Usually a leg hung up just before the step reached
        Asterisk (a contact that hangs up before being bridged makes ARI answer 400 "Channel
        not found"): its destruction is then in the inbox or on its way, and that leg's real
        hang-up is what happened. Only when no such event comes is ARI itself to blame."""
        try:
            async with asyncio.timeout(_EXPLANATION_WAIT):
                while True:
                    await self._next_event()
        except LegEnded as ended:
            return ended
        except TimeoutError:
            pass
        log.warning("call %s: ARI refused a step: %s", self.plan.call_id, exc)
        return LegEnded(self._pending_role(), "ARI_ERROR", None)

    async def _next_event(self) -> dict[str, Any]:
        """The next ARI event for this call; raises LegEnded when it (or a command) says a
        leg is gone."""
        message = await self.inbox.get()
        while isinstance(message, Release):
            self._releasing = True
            if self.state is State.BRIDGED:
                raise HandedOver(RELEASED)
            message = await self.inbox.get()
        if not isinstance(message, dict):
            raise self._command_end(message)
        event = message
        kind = event.get("type")
        channel = event.get("channel", {})
        log.debug("call %s %s: %s %s", self.plan.call_id, self.state.value, kind,
                  channel.get("id"))
        role = self._role_of(channel.get("id", ""))
        if role is not None and "state" in channel:
            self._leg_states[role] = channel["state"]
        if kind == "ChannelHangupRequest":
            if role is not None:
                self._hanging_up.add(channel["id"])
            if event.get("soft") and event.get("cause") == _SOFTHANGUP_SHUTDOWN:
                self._asterisk_stopping = True
        if kind == "ChannelDestroyed" and role is not None:
            self._live.discard(channel["id"])
            code = event.get("cause")
            if not code and self.state is State.BRIDGED:
                code = 16  # a plain BYE arrives as cause 0 ("Unknown"): a normal hang-up
            raise LegEnded(role, self._stopping_or(cause_name(code)), code)
        if kind == "StasisEnd" and role is not None and self.state is State.BRIDGED:
            if channel["id"] not in self._hanging_up and await self._moved_away(channel["id"]):
                raise HandedOver(f"its channel {channel['id']} was moved into another"
                                 " application (another instance took the call over)")
            raise LegEnded(role, self._stopping_or("NORMAL_CLEARING"), 16)
        return event

    async def _moved_away(self, channel_id: str) -> bool:
        """A bridged leg left the application although nobody asked for its hang-up (a
        remote BYE, a hang-up through ARI, Asterisk stopping: each asks first): moved into
        another instance's application, if it is still in Asterisk a moment later. Not
        known for sure (ARI not answering): not moved, so the call ends as it would have."""
        if not await self._in_asterisk(channel_id):
            return False
        await asyncio.sleep(MOVED_CHECK)
        return await self._in_asterisk(channel_id)

    async def _in_asterisk(self, channel_id: str) -> bool:
        try:
            return await self.ari.get_channel(channel_id) is not None
        except AriException:
            return False

    def _command_end(self, command: Ending) -> LegEnded:
        match command:
            case ChannelLost(channel_id=channel_id):
                self._live.discard(channel_id)
                return LegEnded(self._role_of(channel_id) or self._pending_role(),
                                "CHANNEL_LOST", None)
            case Stop():
                return LegEnded(self._pending_role(), "SERVICE_STOPPED", None)
            case HangUp():
                # Connected, the call ends normally; before that, it is cancelled.
                return LegEnded(self._pending_role(), "HANGUP_REQUESTED", None)

    async def _clean_up(self) -> None:
        """Nothing is left behind: hang up what is still up, destroy the bridge."""
        if not self._node_up():
            return  # its Asterisk is gone, and what was in it with it
        for channel_id in list(self._live):
            try:
                await self.ari.hangup(channel_id)
            except AriException as exc:
                log.warning("call %s: hangup %s: %s", self.plan.call_id, channel_id, exc)
        if self._bridge_made:
            try:
                await self.ari.destroy_bridge(self.plan.bridge_id)
            except AriException as exc:
                log.warning("call %s: destroy bridge: %s", self.plan.call_id, exc)

    # ------------------------------------------------------------------ outcome

    def _stopping_or(self, cause: str) -> str:
        return "ASTERISK_SHUTDOWN" if self._asterisk_stopping else cause

    def _role_of(self, channel_id: str) -> str | None:
        for leg in (self.plan.first, self.plan.second):
            if leg.channel_id == channel_id:
                return leg.role
        return None

    def _pending_role(self) -> str:
        return (self.plan.first if self.state is State.DIALING_FIRST else self.plan.second).role

    def _ended(self, ended: LegEnded) -> None:
        self.outcome.end(self.state, ended, frozenset(self._answered), self.plan.first.role)

    def _item(self, result: str, *, ended: bool) -> dict[str, Any]:
        o = self.outcome
        return history_item(
            call_id=self.plan.call_id, contact=self.plan.contact, started=o.started,
            answered=o.answered, ended=o.ended if ended else None, result=result,
            cause=o.cause, failed_leg=o.failed_leg,
            hangup_cause=o.hangup_cause if ended else None,
            hangup_cause_code=o.hangup_cause_code if ended else None,
            extra={"client_ip": self.origin.client_ip,
                   "authenticated": self.origin.authenticated,
                   "trigger": self.origin.trigger, "dial_first": self.plan.first.role,
                   "extension": self.plan.extension, "node": self.node},
        )

    def settle(self, item: dict[str, Any]) -> None:
        """The outcome is known and durable (bridged, or the final item recorded): whoever
        waits for it (a blocking connect) gets `item`."""
        if not self.outcome_known.done():
            self.outcome_known.set_result(item)
