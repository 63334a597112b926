"""History items: one per call attempt, in Kazoo's shape plus what Kazoo users asked for.

The recorder writes an in-flight row when a call starts; the item goes into history as soon
as setup is over (bridged, or failed), as Kazoo does, and a bridged call's item is completed
(`ended_at`, `talk_duration`, the hang-up cause) when it ends. A crash at any point leaves an
in-flight row, which start-up (or another instance) turns into the final item.
"""

from __future__ import annotations

from typing import Any

from c2c_ari.domain.ids import GREGORIAN_OFFSET
from c2c_ari.store import ActiveCall, CallStore

# Q.850 causes by number, named as Kazoo (FreeSWITCH) names them.
CAUSES: dict[int, str] = {
    0: "UNSPECIFIED", 1: "UNALLOCATED_NUMBER", 3: "NO_ROUTE_DESTINATION",
    16: "NORMAL_CLEARING", 17: "USER_BUSY", 18: "NO_USER_RESPONSE", 19: "NO_ANSWER",
    20: "SUBSCRIBER_ABSENT", 21: "CALL_REJECTED", 22: "NUMBER_CHANGED",
    27: "DESTINATION_OUT_OF_ORDER", 28: "INVALID_NUMBER_FORMAT", 31: "NORMAL_UNSPECIFIED",
    34: "NORMAL_CIRCUIT_CONGESTION", 38: "NETWORK_OUT_OF_ORDER",
    41: "NORMAL_TEMPORARY_FAILURE", 42: "SWITCH_CONGESTION", 58: "BEARERCAPABILITY_NOTAVAIL",
    102: "RECOVERY_ON_TIMER_EXPIRE", 127: "INTERWORKING",
}


def cause_name(code: int | None) -> str:
    if code is None:
        return "UNSPECIFIED"
    return CAUSES.get(code, f"Q850_{code}")


def gregorian(unix_seconds: float) -> int:
    return int(unix_seconds) + GREGORIAN_OFFSET


class HistoryRecorder:
    def __init__(self, active: CallStore) -> None:
        self.active = active

    async def started(self, call: ActiveCall) -> None:
        await self.active.put(call)

    async def bridged(self, call: ActiveCall) -> None:
        await self.active.record_bridged(call)

    async def finished(self, call: ActiveCall) -> bool:
        """Record the final item once; False if this call's item was final already."""
        return await self.active.record_outcome(call)

    async def in_flight(self, call_id: str) -> ActiveCall | None:
        """The call's in-flight row; None once its item is final."""
        return await self.active.get(call_id)

    async def unfinished(self) -> list[ActiveCall]:
        return await self.active.all()

    async def load_by_node(self, exclude_owner: str = "") -> dict[str, int]:
        """Calls in flight on each Asterisk node, across all instances but `exclude_owner`."""
        return await self.active.count_by_node(exclude_owner)


def history_item(
    *,
    call_id: str,
    contact: str,
    started: float,
    answered: float | None,
    ended: float | None,
    result: str,
    cause: str | None,
    failed_leg: str | None,
    hangup_cause: str | None,
    hangup_cause_code: int | None,
    extra: dict[str, Any],
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "timestamp": gregorian(started),
        "call_id": call_id,
        "contact": contact,
        "result": result,
    }
    if result != "success":
        item["cause"] = cause or hangup_cause or "UNSPECIFIED"
        item["failed_leg"] = failed_leg
    if hangup_cause is not None:
        item["hangup_cause"] = hangup_cause
        item["hangup_cause_code"] = hangup_cause_code
    if answered is not None:
        item["answered_at"] = gregorian(answered)
    if ended is not None:
        item["ended_at"] = gregorian(ended)
        if answered is not None:
            item["talk_duration"] = round(ended - answered, 3)
    item.update(extra)
    return item


def cut_short(item: dict[str, Any], cause: str, now: float) -> dict[str, Any]:
    """The final item of a call whose end its service never saw (it stopped, or crashed,
    first): an error with `cause`. A bridged call is taken to end `now`; one still being set
    up is blamed on the leg it dials first, which is the one it was waiting for unless that
    leg had answered."""
    out = {**item, "result": "error", "cause": cause, "ended_at": gregorian(now)}
    if "answered_at" in out:
        out["talk_duration"] = max(0, out["ended_at"] - out["answered_at"])
    else:
        out["failed_leg"] = out.get("dial_first")
    return out
