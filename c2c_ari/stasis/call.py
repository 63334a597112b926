"""One click-to-call, from the first originate to the history item, read top to bottom.

`Call.run()` is the state machine: each `await` waits for the event that moves the call on,
and a leg that ends at any point raises `LegEnded`, which jumps to the clean-up. Events reach
the call through its queue, in the order Asterisk sent them.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from c2c_ari.ari import AriClient, AriException
from c2c_ari.domain.history import cause_name, gregorian, history_item
from c2c_ari.domain.plan import CallPlan, Leg

log = logging.getLogger(__name__)


# Causes of our own making: a bridged call that ends by one of these was cut, not finished.
_INTERRUPTIONS = frozenset({"CHANNEL_LOST", "SERVICE_STOPPED", "ARI_ERROR", "INTERNAL_ERROR",
                            "ASTERISK_SHUTDOWN"})
# ChannelHangupRequest's `cause` on a soft hangup is Asterisk's reason flag; 4 is
# AST_SOFTHANGUP_SHUTDOWN: Asterisk itself is stopping and takes the call down with it.
_SOFTHANGUP_SHUTDOWN = 4

# Every ARI event type a call (or the app, for StasisStart) reacts to. The app asks Asterisk
# for these only: a call also causes some forty others (ChannelVarset, Dial, bridge entries
# and exits...) that nothing here reads. A step that waits for a new type must add it here.
EVENT_TYPES = frozenset({"StasisStart", "StasisEnd", "ChannelStateChange",
                         "ChannelHangupRequest", "ChannelDestroyed"})


class State(enum.Enum):
    DIALING_FIRST = "dialing_first"
    DIALING_SECOND = "dialing_second"
    BRIDGED = "bridged"
    ENDED = "ended"


class LegEnded(Exception):
    """A leg is gone: hung up, refused, unanswered, or lost with Asterisk."""

    def __init__(self, role: str, cause: str, code: int | None) -> None:
        super().__init__(f"{role} leg ended: {cause}")
        self.role, self.cause, self.code = role, cause, code


@dataclass
class Outcome:
    started: float = field(default_factory=time.time)
    answered: float | None = None
    ended: float | None = None
    failed_leg: str | None = None
    cause: str | None = None
    hangup_cause: str | None = None
    hangup_cause_code: int | None = None


class Call:
    """A call in flight. `entered` is the channel id when the call came in from the dialplan
    (that channel is already the extension leg and needs no originate)."""

    def __init__(
        self,
        plan: CallPlan,
        ari: AriClient,
        *,
        extra: dict[str, Any],
        entered: str | None = None,
    ) -> None:
        self.plan = plan
        self.ari = ari
        self.extra = extra
        self.entered = entered
        self.state = State.DIALING_FIRST
        self.outcome = Outcome()
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        # Resolved once the outcome is known: bridged (success so far) or failed.
        self.decided: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._live: set[str] = set()  # our channels that Asterisk has not destroyed yet
        self._bridge_made = False
        self._asterisk_stopping = False
        self._leg_states: dict[str, str] = {}  # role -> Asterisk's channel state
        self._watchers: list[asyncio.Queue[dict[str, Any]]] = []
        self.on_state: Callable[[Call], Awaitable[None]] | None = None

    @property
    def channel_ids(self) -> tuple[str, str]:
        return self.plan.first.channel_id, self.plan.second.channel_id

    def resources(self) -> list[str]:
        return [*self.channel_ids, self.plan.bridge_id]

    def stop(self) -> None:
        """Ask the call to end (graceful stop of the service); it cleans up and records."""
        self.events.put_nowait({"type": "C2CStop"})

    def hang_up(self) -> None:
        """Ask the call to end because a user said so (DELETE on the call)."""
        self.events.put_nowait({"type": "C2CHangup"})

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
                  "timestamp": gregorian(self.outcome.started), "state": self.state.value,
                  "legs": legs}
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

    async def run(self) -> dict[str, Any]:
        """Place, bridge and end the call; returns its history item."""
        first, second = self.plan.first, self.plan.second
        try:
            if self.entered is None:
                await self._originate(first)
                await self._until_answered(first)
            else:
                self._live.add(first.channel_id)
                await self.ari.answer(first.channel_id)
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
            if self.plan.ignore_early_media:
                await self._stop_waiting_sound(first)
                await self._bridge(first, second)
            else:
                await self._bridge(second)
            self.state = State.BRIDGED
            self._publish()
            self.outcome.answered = time.time()
            self._decide(self._item("success", ended=False))
            # The in-flight row written before the first originate changes only here (answered
            # at, success so far): until now it already held everything a restart needs.
            await self._notify()
            while True:
                await self._next_event()
        except LegEnded as ended:
            self._ended(ended)
        except AriException as exc:
            log.warning("call %s: ARI refused a step: %s", self.plan.call_id, exc)
            self._ended(LegEnded(self._pending_role(), "ARI_ERROR", None))
        except Exception:
            # A bug must still leave nothing behind in Asterisk and a line in history.
            log.exception("call %s failed", self.plan.call_id)
            self._ended(LegEnded(self._pending_role(), "INTERNAL_ERROR", None))
        finally:
            self.state = State.ENDED
        await self._clean_up()
        item = self._item(self._result(), ended=True)
        self._decide(item)
        self._publish({"state": State.ENDED.value, **item})
        return item

    # ------------------------------------------------------------------ steps

    async def _originate(self, leg: Leg) -> None:
        self._live.add(leg.channel_id)
        await self.ari.originate(
            leg.endpoint,
            channel_id=leg.channel_id,
            app_args=["c2c", self.plan.call_id, leg.role],
            caller_id=leg.caller_id,
            timeout=self.plan.timeout,
            variables=leg.variables,
        )

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

    async def _next_event(self) -> dict[str, Any]:
        """The next event for this call; raises LegEnded when it says a leg is gone."""
        event = await self.events.get()
        kind = event.get("type")
        channel = event.get("channel", {})
        log.debug("call %s %s: %s %s", self.plan.call_id, self.state.value, kind,
                  channel.get("id"))
        role = self._role_of(channel.get("id", ""))
        if role is not None and "state" in channel:
            self._leg_states[role] = channel["state"]
        if kind == "ChannelHangupRequest" and event.get("soft") and (
                event.get("cause") == _SOFTHANGUP_SHUTDOWN):
            self._asterisk_stopping = True
        if kind == "ChannelDestroyed" and role is not None:
            self._live.discard(channel["id"])
            code = event.get("cause")
            if not code and self.state is State.BRIDGED:
                code = 16  # a plain BYE arrives as cause 0 ("Unknown"): a normal hang-up
            raise LegEnded(role, self._stopping_or(cause_name(code)), code)
        if kind == "StasisEnd" and role is not None and self.state is State.BRIDGED:
            raise LegEnded(role, self._stopping_or("NORMAL_CLEARING"), 16)
        if kind == "C2CLost":
            # Synthesised by the app after a reconnect: the channel vanished meanwhile.
            self._live.discard(channel.get("id", ""))
            raise LegEnded(role or self._pending_role(), "CHANNEL_LOST", None)
        if kind == "C2CStop":
            # Synthesised by the app on a graceful stop: end the call now, recorded as such.
            raise LegEnded(self._pending_role(), "SERVICE_STOPPED", None)
        if kind == "C2CHangup":
            # Synthesised by the app for DELETE on the call: connected, it ends normally;
            # before that, it is cancelled.
            raise LegEnded(self._pending_role(), "HANGUP_REQUESTED", None)
        return event

    async def _clean_up(self) -> None:
        """Nothing is left behind: hang up what is still up, destroy the bridge."""
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
        if self.outcome.ended is not None:
            return
        self.outcome.ended = time.time()
        self.outcome.hangup_cause = ended.cause
        self.outcome.hangup_cause_code = ended.code
        if self.state is not State.BRIDGED:
            self.outcome.failed_leg = ended.role
            # A leg that vanished with a "normal" cause before answering was not answered.
            self.outcome.cause = "NO_ANSWER" if ended.cause in (
                "NORMAL_CLEARING", "UNSPECIFIED") else ended.cause
        elif ended.cause in _INTERRUPTIONS:
            self.outcome.cause = ended.cause

    def _result(self) -> str:
        if self.outcome.answered is not None and self.outcome.cause is None:
            return "success"
        return "error"

    def _item(self, result: str, *, ended: bool) -> dict[str, Any]:
        o = self.outcome
        return history_item(
            call_id=self.plan.call_id, contact=self.plan.contact, started=o.started,
            answered=o.answered, ended=o.ended if ended else None, result=result,
            cause=o.cause, failed_leg=o.failed_leg,
            hangup_cause=o.hangup_cause if ended else None,
            hangup_cause_code=o.hangup_cause_code if ended else None,
            extra={**self.extra, "dial_first": self.plan.first.role,
                   "extension": self.plan.extension},
        )

    def _decide(self, item: dict[str, Any]) -> None:
        if not self.decided.done():
            self.decided.set_result(item)

    async def _notify(self) -> None:
        if self.on_state is not None:
            await self.on_state(self)
