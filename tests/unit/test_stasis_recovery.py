"""After a crash: the next start (or, with a shared database, another instance) finds the
calls of the gone run in the store, claims them, and takes each over: one still being set
up is hung up and recorded as SERVICE_RESTART; a bridged one is adopted (its channels moved
into this instance's application) and followed to its end.

The Stasis application runs with the real ARI client against a fake ARI (an aiohttp server
that keeps channels and bridges, serves the events websocket and logs every request) and
with the real store on a SQLite file written by an earlier run."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from c2c_ari.ari import AriClient
from c2c_ari.cluster.membership import Membership, new_instance
from c2c_ari.cluster.reaper import Reaper
from c2c_ari.domain.history import HistoryRecorder, gregorian
from c2c_ari.domain.plan import build_plan
from c2c_ari.stasis.app import StasisApp
from c2c_ari.store import ActiveCall
from c2c_ari.store.sqlite import open_sqlite

ACCOUNT_ID, C2C_ID = "a" * 32, "b" * 32
USER, PASSWORD, APP = "c2c", "secret", "c2c-ari"
STARTED = 1_700_000_000.0
CONTACT = "+15551234567"


@dataclass
class FakeAsterisk:
    """ARI over HTTP with what a crashed run left behind: channels and bridges by id."""

    channels: set[str] = field(default_factory=set)
    bridges: set[str] = field(default_factory=set)
    requests: list[tuple[str, str]] = field(default_factory=list)
    moved: list[tuple[str, str]] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/ari/events", self.events)
        app.router.add_route("*", "/ari/{tail:.*}", self.rest)
        return app

    async def events(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for _message in ws:  # no events: nothing is happening in this Asterisk
            pass
        return ws

    async def rest(self, request: web.Request) -> web.Response:
        self.requests.append((request.method, request.path))
        kind, _, name = request.match_info["tail"].partition("/")
        things = {"channels": self.channels, "bridges": self.bridges}.get(kind)
        if request.method == "GET" and things is not None and not name:
            return web.json_response([{"id": thing} for thing in sorted(things)])
        if request.method == "DELETE" and things is not None and name:
            if name not in things:
                return web.json_response({"message": "not found"}, status=404)
            things.discard(name)
            return web.Response(status=204)
        if request.method == "PUT" and request.path.endswith("/eventFilter"):
            return web.json_response({"name": name})
        if request.method == "GET" and kind == "applications":
            return web.json_response({"name": name, "channel_ids": [], "bridge_ids": []})
        if request.method == "POST" and kind == "channels" and name.endswith("/move"):
            channel = name.removesuffix("/move")
            if channel not in self.channels:
                return web.json_response({"message": "not found"}, status=404)
            self.moved.append((channel, request.query.get("app", "")))
            return web.Response(status=204)
        return web.json_response({"message": "not in this fake"}, status=501)


@dataclass(frozen=True)
class Case:
    """One call in flight when the service died: how far it got and what was left of it."""

    dial_first: str
    answered: bool
    trigger: str
    # the roles ("extension", "contact") and "bridge" that still existed in Asterisk
    left_in_asterisk: tuple[str, ...]
    failed_leg: str | None
    cause: str


CASES = {
    # Dialling the extension first, still ringing: the extension did not answer.
    "extension-ringing": Case("extension", False, "api", ("extension",), "extension",
                              "SERVICE_RESTART"),
    # Dialling the contact first: it is the contact that did not answer.
    "contact-ringing": Case("contact", False, "api", ("contact",), "contact",
                            "SERVICE_RESTART"),
    # Bridged, from a phone (whose own channel, not named by the app, is the extension leg):
    # adopted, it goes on until this instance stops gracefully and hangs it up.
    "bridged-from-a-phone": Case("extension", True, "dialplan",
                                 ("extension", "contact", "bridge"), None, "SERVICE_STOPPED"),
    # Bridged, but a leg hung up while nobody was following: cut short at the take-over.
    "bridged-leg-gone": Case("extension", True, "api", ("extension", "bridge"), None,
                             "CHANNEL_LOST"),
}


def in_flight_row(case: Case) -> tuple[ActiveCall, dict[str, str]]:
    """The in-flight row a run writes for such a call, and its Asterisk ids by role."""
    plan = build_plan(
        account_id=ACCOUNT_ID,
        clicktocall={"id": C2C_ID, "name": "Sales", "extension": "1001",
                     "dial_first": case.dial_first},
        contact=CONTACT, custom_application_vars={},
        extension_endpoint="PJSIP/{extension}", contact_endpoint="PJSIP/{contact}@trunk",
        trigger=case.trigger,
    )
    ids = {"extension": plan.leg("extension").channel_id,
           "contact": plan.leg("contact").channel_id, "bridge": plan.bridge_id}
    if case.trigger == "dialplan":
        ids["extension"] = "1700000000.42"  # the calling phone's channel, as Asterisk named it
    item: dict[str, Any] = {
        "timestamp": gregorian(STARTED), "call_id": plan.call_id, "contact": CONTACT,
        "client_ip": None, "authenticated": True, "trigger": case.trigger,
        "dial_first": case.dial_first, "extension": "1001",
    }
    if case.answered:
        item.update(result="success", answered_at=gregorian(STARTED + 5))
    else:
        item.update(result="error", cause="UNSPECIFIED", failed_leg=None)
    resources = [ids[plan.first.role], ids[plan.second.role], ids["bridge"]]
    return ActiveCall(plan.call_id, ACCOUNT_ID, C2C_ID, item, resources, bridged=case.answered,
                      owner="boot-of-the-run-that-crashed"), ids


@pytest.mark.parametrize("name", CASES)
async def test_the_calls_of_a_gone_run_are_taken_over(
    name: str, tmp_path: Path, aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> None:
    case = CASES[name]
    row, ids = in_flight_row(case)
    database = tmp_path / "c2c-ari.sqlite3"
    crashed = await open_sqlite(database)  # the run that crashed
    await crashed.calls.put(row)
    if case.answered:
        await crashed.calls.record_bridged(row)
    await crashed.close()
    asterisk = FakeAsterisk(channels={ids[role] for role in case.left_in_asterisk
                                      if role != "bridge"},
                            bridges={ids["bridge"]} & {ids[r] for r in case.left_in_asterisk})
    asterisk.channels.add("1700000000.7")  # someone else's call, not ours to touch
    server = await aiohttp_server(asterisk.app())

    store = await open_sqlite(database)  # the next start
    instance = new_instance("test", APP)
    membership = Membership(store.instances, instance)
    await membership.beat()
    stasis = StasisApp(AriClient(str(server.make_url("/")), USER, PASSWORD, instance.app),
                       HistoryRecorder(store.calls), owner=instance.boot_id,
                       extension_endpoint="PJSIP/{extension}",
                       contact_endpoint="PJSIP/{contact}@trunk")
    await stasis.start()
    try:
        async with asyncio.timeout(10):  # connected once the re-sync is done
            await stasis.events.wait_connected()
        assert await Reaper(store.calls, membership, stasis.take_over).run_once() == 1
        if case.cause == "SERVICE_STOPPED":  # adopted: still up, now this instance's
            assert stasis.status(row.call_id)["state"] == "bridged"  # type: ignore[index]
            assert sorted(asterisk.moved) == sorted(
                (ids[role], instance.app) for role in ("extension", "contact"))
            assert await store.history.get(ACCOUNT_ID, row.call_id) == row.item  # not final
    finally:
        await stasis.stop()
    item = await store.history.get(ACCOUNT_ID, row.call_id)
    left_in_flight = await store.calls.all()
    await store.close()

    assert item is not None
    assert (item["result"], item["cause"], item.get("failed_leg")) == (
        "error", case.cause, case.failed_leg)
    assert ("answered_at" in item) == case.answered
    assert (item["call_id"], item["contact"], item["trigger"]) == (
        row.call_id, CONTACT, case.trigger)
    assert left_in_flight == []
    # What was left of the call is gone; the other call is untouched.
    assert asterisk.channels == {"1700000000.7"}
    assert asterisk.bridges == set()
    for role in case.left_in_asterisk:
        kind = "bridges" if role == "bridge" else "channels"
        assert ("DELETE", f"/ari/{kind}/{ids[role]}") in asterisk.requests
    assert ("DELETE", "/ari/channels/1700000000.7") not in asterisk.requests
