"""How a call's end is recorded: which leg failed and with which cause, for legs that end
before and after answering. `Call` runs against a stand-in for ARI that answers the legs a
case says answer and ends one leg with a given Q.850 cause, as Asterisk's events would."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest

from c2c_ari.ari import AriError
from c2c_ari.domain.plan import CallPlan, build_plan
from c2c_ari.stasis.call import Call


@dataclass(frozen=True)
class Case:
    """`answering` legs answer when dialled; `gone` is destroyed with cause `code`: when it
    is dialled if it does not answer, else once both are bridged, or, if the other leg does
    not answer, while that one rings."""

    dial_first: str
    answering: tuple[str, ...]
    gone: str
    code: int
    # what history records
    result: str
    failed_leg: str | None
    cause: str | None
    hangup_cause: str
    hangup_cause_code: int


class FakeAri:
    """Answers every request and plays a `Case`'s events. A dialled leg that answers enters
    Stasis (StasisStart, Up). A hangup destroys the channel, as in Asterisk."""

    app = "c2c-ari"

    def __init__(self, plan: CallPlan, case: Case) -> None:
        self.case = case
        self.roles = {leg.channel_id: leg.role for leg in (plan.first, plan.second)}
        self.channels: set[str] = set()  # in Asterisk now
        self.bridges: set[str] = set()
        self.call: Call | None = None

    def _send(self, kind: str, channel_id: str, **extra: Any) -> None:
        assert self.call is not None
        self.call.deliver(
            {"type": kind, "channel": {"id": channel_id, "state": "Up"}, **extra})

    def _destroy(self, channel_id: str, code: int) -> None:
        self.channels.discard(channel_id)
        self._send("ChannelDestroyed", channel_id, cause=code)

    async def originate(self, endpoint: str, *, channel_id: str, **_: Any) -> dict[str, Any]:
        self.channels.add(channel_id)
        role = self.roles[channel_id]
        if role in self.case.answering:
            self._send("StasisStart", channel_id)
        elif role == self.case.gone:  # rang out, was refused, ...
            self._destroy(channel_id, self.case.code)
        else:  # rings on, while the leg that answered hangs up
            self._destroy(self._gone_id(), self.case.code)
        return {"id": channel_id}

    def _gone_id(self) -> str:
        (gone,) = (c for c, role in self.roles.items() if role == self.case.gone)
        return gone

    async def add_channel(self, bridge_id: str, channel_ids: Any, **_: Any) -> None:
        if len(channel_ids) == 2:  # both legs bridged: the call is up, and now one leaves
            self._destroy(self._gone_id(), self.case.code)

    async def hangup(self, channel_id: str, reason: str | None = None) -> bool:
        existed = channel_id in self.channels
        if existed:
            self._destroy(channel_id, 16)
        return existed

    async def create_bridge(self, bridge_id: str, type: str = "mixing") -> dict[str, Any]:
        self.bridges.add(bridge_id)
        return {"id": bridge_id}

    async def destroy_bridge(self, bridge_id: str) -> bool:
        existed = bridge_id in self.bridges
        self.bridges.discard(bridge_id)
        return existed

    async def ring(self, channel_id: str) -> None:
        pass

    async def ring_stop(self, channel_id: str) -> None:
        pass


NOT_ANSWERED = [
    # A leg that vanishes with a "normal" cause before it answered was not answered.
    Case("extension", (), "extension", 16, "error", "extension", "NO_ANSWER",
         "NORMAL_CLEARING", 16),
    Case("extension", (), "extension", 0, "error", "extension", "NO_ANSWER", "UNSPECIFIED", 0),
    Case("extension", ("extension",), "contact", 16, "error", "contact", "NO_ANSWER",
         "NORMAL_CLEARING", 16),
    Case("extension", ("extension",), "contact", 0, "error", "contact", "NO_ANSWER",
         "UNSPECIFIED", 0),
    Case("contact", (), "contact", 16, "error", "contact", "NO_ANSWER", "NORMAL_CLEARING", 16),
    Case("contact", ("contact",), "extension", 16, "error", "extension", "NO_ANSWER",
         "NORMAL_CLEARING", 16),
    # Any other cause is recorded as it is.
    Case("extension", (), "extension", 19, "error", "extension", "NO_ANSWER", "NO_ANSWER", 19),
    Case("extension", (), "extension", 17, "error", "extension", "USER_BUSY", "USER_BUSY", 17),
    Case("extension", ("extension",), "contact", 17, "error", "contact", "USER_BUSY",
         "USER_BUSY", 17),
    Case("extension", ("extension",), "contact", 21, "error", "contact", "CALL_REJECTED",
         "CALL_REJECTED", 21),
    Case("contact", (), "contact", 1, "error", "contact", "UNALLOCATED_NUMBER",
         "UNALLOCATED_NUMBER", 1),
    # The first leg, answered, hangs up while the second rings: it gave up (it did answer).
    Case("extension", ("extension",), "extension", 16, "error", "extension",
         "ORIGINATOR_CANCEL", "NORMAL_CLEARING", 16),
    Case("contact", ("contact",), "contact", 0, "error", "contact", "ORIGINATOR_CANCEL",
         "UNSPECIFIED", 0),
    # The first leg, answered, is lost while the second rings: it is the one that failed.
    Case("extension", ("extension",), "extension", 38, "error", "extension",
         "NETWORK_OUT_OF_ORDER", "NETWORK_OUT_OF_ORDER", 38),
    Case("contact", ("contact",), "contact", 38, "error", "contact", "NETWORK_OUT_OF_ORDER",
         "NETWORK_OUT_OF_ORDER", 38),
]
BRIDGED = [
    # Once both answered, a hang-up is the normal end of a successful call; a plain BYE
    # comes as cause 0 and is recorded as NORMAL_CLEARING.
    Case("extension", ("extension", "contact"), "contact", 16, "success", None, None,
         "NORMAL_CLEARING", 16),
    Case("extension", ("extension", "contact"), "extension", 0, "success", None, None,
         "NORMAL_CLEARING", 16),
    Case("contact", ("contact", "extension"), "extension", 16, "success", None, None,
         "NORMAL_CLEARING", 16),
]


def _name(case: Case) -> str:
    answered = "+".join(case.answering) or "none"
    return f"first={case.dial_first}-answered={answered}-{case.gone}-gone-{case.code}"


@pytest.mark.parametrize("case", NOT_ANSWERED + BRIDGED, ids=_name)
async def test_which_leg_failed_and_why(case: Case) -> None:
    plan = build_plan(
        account_id="a" * 32,
        clicktocall={"id": "b" * 32, "name": "Sales", "extension": "1001",
                     "dial_first": case.dial_first},
        contact="+15551234567", custom_application_vars={},
        extension_endpoint="PJSIP/{extension}", contact_endpoint="PJSIP/{contact}@trunk",
    )
    ari = FakeAri(plan, case)
    call = Call(plan, ari)  # type: ignore[arg-type]
    ari.call = call
    async with asyncio.timeout(5):  # a stuck call fails here instead of hanging the suite
        item = await call.run()

    assert (item["result"], item.get("failed_leg"), item.get("cause")) == (
        case.result, case.failed_leg, case.cause)
    assert (item["hangup_cause"], item["hangup_cause_code"]) == (
        case.hangup_cause, case.hangup_cause_code)
    assert ("answered_at" in item) == (case.result == "success")
    assert (ari.channels, ari.bridges) == (set(), set())  # nothing left behind


class HangsUpBeforeBridge(FakeAri):
    """The contact answers, then hangs up just before the bridge: ARI refuses to bridge a
    channel that is gone, and the channel's destruction comes a moment later."""

    async def add_channel(self, bridge_id: str, channel_ids: Any, **_: Any) -> None:
        contact = next(c for c, role in self.roles.items() if role == "contact")
        self.channels.discard(contact)
        asyncio.get_running_loop().call_later(
            0.05, lambda: self._send("ChannelDestroyed", contact, cause=16))
        raise AriError(400, "POST", f"/bridges/{bridge_id}/addChannel",
                       {"message": "Channel not found"})


async def test_a_leg_gone_before_the_bridge_is_its_own_hang_up_not_an_ari_error() -> None:
    case = Case("extension", ("extension", "contact"), "contact", 16, "error", "contact",
                "NORMAL_CLEARING", "NORMAL_CLEARING", 16)
    plan = build_plan(
        account_id="a" * 32,
        clicktocall={"id": "b" * 32, "name": "Sales", "extension": "1001"},
        contact="+15551234567", custom_application_vars={},
        extension_endpoint="PJSIP/{extension}", contact_endpoint="PJSIP/{contact}@trunk",
    )
    ari = HangsUpBeforeBridge(plan, case)
    call = Call(plan, ari)  # type: ignore[arg-type]
    ari.call = call
    async with asyncio.timeout(5):
        item = await call.run()
    assert (item["result"], item["failed_leg"], item["cause"]) == (
        "error", "contact", "NORMAL_CLEARING")
    assert item["hangup_cause_code"] == 16
    assert (ari.channels, ari.bridges) == (set(), set())
