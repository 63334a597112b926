"""The Stasis app's call flow against a scripted stand-in for ARI and for the history store:
what is written when, relative to what Asterisk is asked to do."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from c2c_ari.domain.connect import ConnectAttempt
from c2c_ari.domain.errors import StoreUnavailable
from c2c_ari.stasis import app as stasis_app
from c2c_ari.stasis import call as call_module
from c2c_ari.stasis.app import StasisApp
from c2c_ari.store import AccountRecord, ActiveCall

ACCOUNT = AccountRecord(id="a" * 32, name="Acme", realm="acme.example", created=0.0)
CLICKTOCALL = {"id": "b" * 32, "name": "Sales", "extension": "1001"}


class Log:
    """One list of everything that happened, in order, across the fakes."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, Any]] = []
        self.changed = asyncio.Event()

    def add(self, name: str, data: Any) -> None:
        self.entries.append((name, data))
        self.changed.set()

    def names(self) -> list[str]:
        return [name for name, _ in self.entries]

    async def until(self, name: str, count: int = 1) -> None:
        async with asyncio.timeout(2):
            while self.names().count(name) < count:
                self.changed.clear()
                await self.changed.wait()


class FakeAri:
    """Answers every request; an originated leg answers at once (its StasisStart follows)."""

    app = "c2c-ari"

    def __init__(self, log: Log) -> None:
        self.log = log
        self.stasis: StasisApp | None = None

    def _event(self, kind: str, channel_id: str, **extra: Any) -> None:
        assert self.stasis is not None
        event = {"type": kind, "channel": {"id": channel_id, "state": "Up"}, **extra}
        node = self.stasis.nodes["asterisk"]
        asyncio.get_running_loop().call_soon(
            lambda: asyncio.ensure_future(self.stasis._on_event(node, event)))  # type: ignore[union-attr]

    async def originate(self, endpoint: str, *, channel_id: str, **_: Any) -> dict[str, Any]:
        self.log.add("originate", channel_id)
        self._event("StasisStart", channel_id)
        return {"id": channel_id}

    async def ring(self, channel_id: str) -> None:
        self.log.add("ring", channel_id)

    async def ring_stop(self, channel_id: str) -> None:
        self.log.add("ring_stop", channel_id)

    async def create_bridge(self, bridge_id: str, type: str = "mixing") -> dict[str, Any]:
        self.log.add("create_bridge", bridge_id)
        return {"id": bridge_id}

    async def add_channel(self, bridge_id: str, channel_ids: Any, **_: Any) -> None:
        self.log.add("add_channel", tuple(channel_ids))

    async def hangup(self, channel_id: str, reason: str | None = None) -> bool:
        self.log.add("hangup", channel_id)
        self._event("ChannelDestroyed", channel_id, cause=16)
        return True

    async def destroy_bridge(self, bridge_id: str) -> bool:
        self.log.add("destroy_bridge", bridge_id)
        return True


class FakeRecorder:
    """A history store whose writes take a few event-loop passes to become durable."""

    def __init__(self, log: Log) -> None:
        self.log = log

    async def started(self, call: ActiveCall) -> None:
        for _ in range(3):
            await asyncio.sleep(0)
        self.log.add("in-flight row durable", dict(call.item))

    async def bridged(self, call: ActiveCall) -> None:
        for _ in range(3):
            await asyncio.sleep(0)
        self.log.add("bridged item durable", dict(call.item))

    async def finished(self, call: ActiveCall) -> bool:
        self.log.add("history", dict(call.item))
        return True


def _stasis_with(recorder: FakeRecorder, ari: FakeAri) -> StasisApp:
    """The app on the fakes, as if its events websocket were connected."""
    stasis = StasisApp(ari, recorder,  # type: ignore[arg-type]
                       extension_endpoint="PJSIP/{extension}",
                       contact_endpoint="PJSIP/{contact}@trunk", owner="boot-1")
    ari.stasis = stasis
    stasis.events._ready.set()
    return stasis


R = TypeVar("R", bound=FakeRecorder)


def _app(recorder_type: Callable[[Log], R]) -> tuple[Log, FakeAri, R, StasisApp]:
    """The app on a FakeAri and a recorder of this type, sharing one log."""
    log = Log()
    ari = FakeAri(log)
    recorder = recorder_type(log)
    return log, ari, recorder, _stasis_with(recorder, ari)


async def _connect(stasis: StasisApp) -> str:
    result = await stasis.place(ConnectAttempt(
        account=ACCOUNT, clicktocall=CLICKTOCALL, contact="+15551234567", blocking=False,
        custom_application_vars={}, client_ip="127.0.0.1", authenticated=True,
    ))
    return str(result.data["outbound_call_id"])


async def test_in_flight_row_is_durable_before_any_originate_and_the_item_once_bridged(
) -> None:
    log, ari, _, stasis = _app(FakeRecorder)

    result = await stasis.place(ConnectAttempt(
        account=ACCOUNT, clicktocall=CLICKTOCALL, contact="+15551234567", blocking=False,
        custom_application_vars={}, client_ip="127.0.0.1", authenticated=True,
    ))
    assert result.status == 202
    call_id = result.data["outbound_call_id"]
    # The row came first; by the time the connect is answered, the first leg is being dialled.
    assert log.names() == ["in-flight row durable", "originate"]

    await log.until("bridged item durable")
    run = stasis.calls.task(call_id)
    assert run is not None
    ari._event("ChannelDestroyed", f"{call_id}-contact", cause=16)  # the contact hangs up
    await log.until("history")
    await run  # the call is let go once its item is recorded

    assert log.names() == [
        "in-flight row durable", "originate", "ring", "originate", "ring_stop",
        "create_bridge", "add_channel", "bridged item durable", "hangup", "destroy_bridge",
        "history",
    ]
    (row,) = [item for name, item in log.entries if name == "in-flight row durable"]
    assert row["result"] == "error" and "answered_at" not in row  # not answered yet
    (bridged,) = [item for name, item in log.entries if name == "bridged item durable"]
    assert bridged["result"] == "success" and "answered_at" in bridged
    assert "ended_at" not in bridged
    history = log.entries[-1][1]
    assert (history["call_id"], history["result"]) == (call_id, "success")
    assert len(stasis.calls) == 0


class OutageRecorder(FakeRecorder):
    """The database out of reach for the first two attempts of each write at the bridge
    and at the end."""

    def __init__(self, log: Log) -> None:
        super().__init__(log)
        self.refusals = {"bridged": 2, "finished": 2}

    def _refuse(self, write: str) -> None:
        if self.refusals[write]:
            self.refusals[write] -= 1
            self.log.add(f"{write} refused", None)
            raise StoreUnavailable("database out of reach")

    async def bridged(self, call: ActiveCall) -> None:
        self._refuse("bridged")
        await super().bridged(call)

    async def finished(self, call: ActiveCall) -> bool:
        self._refuse("finished")
        return await super().finished(call)


async def test_a_database_outage_delays_the_items_of_a_call_but_loses_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stasis_app, "STORE_RETRY_FIRST", 0.01)
    log, ari, _, stasis = _app(OutageRecorder)

    async with asyncio.timeout(5):  # no answer at all would hang the test
        result = await stasis.place(ConnectAttempt(
            account=ACCOUNT, clicktocall=CLICKTOCALL, contact="+15551234567", blocking=True,
            custom_application_vars={}, client_ip="127.0.0.1", authenticated=True,
        ))
    # A blocking connect answers once the bridged item is durable, outage or not.
    assert (result.status, result.data["result"]) == (200, "success")
    call_id = result.data["call_id"]
    run = stasis.calls.task(call_id)
    assert run is not None
    ari._event("ChannelDestroyed", f"{call_id}-contact", cause=16)
    async with asyncio.timeout(5):
        await run

    names = log.names()
    # Nothing hung up at the bridge for want of the database; each item written once.
    assert names[names.index("add_channel"):] == [
        "add_channel", "bridged refused", "bridged refused", "bridged item durable",
        "hangup", "destroy_bridge", "finished refused", "finished refused", "history",
    ]
    history = log.entries[-1][1]
    assert (history["call_id"], history["result"]) == (call_id, "success")
    assert "ended_at" in history


class SlowBridgeRecorder(FakeRecorder):
    """The item at the bridge is written only once `back` is set (a database out of reach)."""

    def __init__(self, log: Log) -> None:
        super().__init__(log)
        self.back = asyncio.Event()

    async def bridged(self, call: ActiveCall) -> None:
        await self.back.wait()
        await super().bridged(call)


async def test_a_party_who_hangs_up_while_the_database_is_out_is_not_left_connected() -> None:
    log, ari, recorder, stasis = _app(SlowBridgeRecorder)

    call_id = await _connect(stasis)
    await log.until("add_channel")
    run = stasis.calls.task(call_id)
    assert run is not None
    ari._event("ChannelDestroyed", f"{call_id}-contact", cause=16)  # the contact hangs up
    # The agent is hung up at once, though the item at the bridge is not written yet...
    await log.until("destroy_bridge")
    assert "bridged item durable" not in log.names()
    assert not run.done()  # ...and the call is not let go before its items are written.

    recorder.back.set()
    async with asyncio.timeout(5):
        await run
    names = log.names()
    assert names[names.index("add_channel"):] == [
        "add_channel", "hangup", "destroy_bridge", "bridged item durable", "history"]
    history = log.entries[-1][1]
    assert (history["call_id"], history["result"], history["hangup_cause"]) == (
        call_id, "success", "NORMAL_CLEARING")
    assert "ended_at" in history


class MovableAri(FakeAri):
    """Channels still in Asterisk unless hung up (get_channel), so that a leg leaving the
    application can be told moved (still there) from gone."""

    def __init__(self, log: Log) -> None:
        super().__init__(log)
        self.gone: set[str] = set()

    async def get_channel(self, channel_id: str) -> dict[str, Any] | None:
        self.log.add("get_channel", channel_id)
        return None if channel_id in self.gone else {"id": channel_id, "state": "Up"}


async def _bridged_call(log: Log, ari: FakeAri) -> tuple[StasisApp, str, asyncio.Task[Any]]:
    stasis = _stasis_with(FakeRecorder(log), ari)
    result = await stasis.place(ConnectAttempt(
        account=ACCOUNT, clicktocall=CLICKTOCALL, contact="+15551234567", blocking=False,
        custom_application_vars={}, client_ip="127.0.0.1", authenticated=True,
    ))
    call_id = result.data["outbound_call_id"]
    await log.until("bridged item durable")
    run = stasis.calls.task(call_id)
    assert run is not None
    return stasis, call_id, run


async def test_a_call_whose_channels_another_instance_moved_away_is_left_to_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(call_module, "MOVED_CHECK", 0.0)
    log = Log()
    ari = MovableAri(log)
    stasis, call_id, run = await _bridged_call(log, ari)
    # Another instance, taking this one for gone, moves the legs into its application.
    ari._event("StasisEnd", f"{call_id}-contact")
    ari._event("StasisEnd", f"{call_id}-ext")
    async with asyncio.timeout(5):
        assert await run is None
    names = log.names()
    # Neither leg hung up, the bridge kept, no item written: the call is the other's now.
    assert names[names.index("bridged item durable"):] == [
        "bridged item durable", "get_channel", "get_channel"]
    assert len(stasis.calls) == 0


@pytest.mark.parametrize("hang_up_asked", [True, False],
                         ids=["hang-up asked (a remote BYE)", "none asked, but gone"])
async def test_a_leg_that_leaves_the_application_hung_up_ends_the_call(
    hang_up_asked: bool,
) -> None:
    log = Log()
    ari = MovableAri(log)
    _, call_id, run = await _bridged_call(log, ari)
    if hang_up_asked:  # Asterisk asks for the hang-up, then the leg leaves the application
        ari._event("ChannelHangupRequest", f"{call_id}-contact")
    else:
        ari.gone.add(f"{call_id}-contact")
    ari._event("StasisEnd", f"{call_id}-contact")
    async with asyncio.timeout(5):
        item = await run
    assert item is not None and item["result"] == "success"
    names = log.names()
    checked = [] if hang_up_asked else ["get_channel"]  # asked Asterisk: gone, not moved
    assert names[names.index("bridged item durable"):] == [
        "bridged item durable", *checked, "hangup", "hangup", "destroy_bridge", "history"]


class RowsRecorder(FakeRecorder):
    """Keeps the in-flight rows, as the store would, so that a stop can look them up."""

    def __init__(self, log: Log) -> None:
        super().__init__(log)
        self.rows: dict[str, ActiveCall] = {}

    async def started(self, call: ActiveCall) -> None:
        await super().started(call)
        self.rows[call.call_id] = call

    async def bridged(self, call: ActiveCall) -> None:
        await super().bridged(call)
        self.rows[call.call_id] = call

    async def finished(self, call: ActiveCall) -> bool:
        self.rows.pop(call.call_id, None)
        return await super().finished(call)

    async def in_flight(self, call_id: str) -> ActiveCall | None:
        return self.rows.get(call_id)


async def test_a_stopping_instance_lets_its_calls_go_once_bridged_and_durable() -> None:
    log, _, recorder, stasis = _app(RowsRecorder)
    bridged = await _connect(stasis)
    await log.until("bridged item durable")
    ringing = await _connect(stasis)  # being set up when the stop begins

    released = await stasis.release(grace=5)

    # Both let go, the one being set up once bridged and its item at the bridge written:
    # nothing hung up, no final item; their rows stay, bridged, for another to adopt.
    assert sorted(released) == sorted([bridged, ringing])
    assert log.names().count("bridged item durable") == 2
    assert not {"hangup", "destroy_bridge", "history"} & set(log.names())
    assert len(stasis.calls) == 0
    assert all(recorder.rows[call_id].bridged for call_id in released)


async def test_released_calls_that_no_one_adopts_are_ended_by_the_stopping_instance(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stasis_app, "END_UNCLAIMED_POLL", 0.01)
    log, _, recorder, stasis = _app(RowsRecorder)
    adopted, orphaned = await _connect(stasis), await _connect(stasis)
    await log.until("bridged item durable", 2)
    assert sorted(await stasis.release(grace=5)) == sorted([adopted, orphaned])
    # Another instance takes one over (its row now names that instance)...
    recorder.rows[adopted] = ActiveCall(**{**recorder.rows[adopted].__dict__,
                                           "owner": "boot-2"})

    assert await stasis.end_unclaimed([adopted, orphaned], wait=0.1) == 1

    # ...the other is hung up and recorded here, as cut by the stop; the adopted one is
    # left alone.
    hung_up = [data for name, data in log.entries if name == "hangup"]
    assert sorted(hung_up) == [f"{orphaned}-contact", f"{orphaned}-ext"]
    (history,) = [data for name, data in log.entries if name == "history"]
    assert (history["call_id"], history["result"], history["cause"]) == (
        orphaned, "error", "SERVICE_STOPPED")
    assert list(recorder.rows) == [adopted]
