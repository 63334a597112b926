"""The ARI client against a real Asterisk 22: its Swagger documents, calls and events.

1. Every request the client can make is recorded (against a recording fake, with every
   optional parameter set) and checked against the Swagger documents the running Asterisk
   serves at /ari/api-docs/: path, method, query parameter names, body keys.
2. Live: originate to PJSIP/1001 (a SIPp UAS), StasisStart on the events websocket, bridge,
   hang up, destroy; create + dial; a busy leg; reconnect and re-sync.

Each test uses its own Stasis app name, so a service or another test connected to the
project's app on the same Asterisk neither steals these events nor sees these calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import re
import secrets
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from c2c_ari.ari import AriClient, AriError, AriEvents, AriException
from tests.helpers.sipp import SippError

pytestmark = pytest.mark.asterisk

AGENT = "PJSIP/1001"  # its contact is a SIPp UAS on 127.0.0.1:5071 (asterisk/pjsip.conf)
AGENT_PORT = 5071
BUSY_AGENT, BUSY_PORT = "PJSIP/1002", 5072


# ---------------------------------------------------------------------------- Swagger


@dataclass
class Operation:
    method: str
    template: str  # e.g. /channels/{channelId}/dial
    query: set[str]
    required_query: set[str]
    body: set[str]
    # A body parameter of type "object" is the whole body, not one key of it (e.g.
    # eventFilter's `filter` is `{"allowed": [...], "disallowed": [...]}` as sent).
    whole_body: bool = False

    def matches(self, method: str, path: str) -> bool:
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(self.template))
        return method == self.method and re.fullmatch(pattern, path) is not None

    @property
    def literal_segments(self) -> int:
        return sum(1 for seg in self.template.split("/") if seg and "{" not in seg)


def _get_json(url: str, user: str, password: str) -> Any:
    request = urllib.request.Request(
        url, headers={"Authorization": aiohttp.encode_basic_auth(user, password)}
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as response:
        return json.load(response)


@pytest.fixture(scope="module")
def swagger(asterisk: Any) -> list[Operation]:
    """All ARI operations, from the Swagger documents the running Asterisk serves."""
    base = asterisk.url.rstrip("/") + "/ari"
    resources = _get_json(base + "/api-docs/resources.json", asterisk.user, asterisk.password)
    operations = []
    for api in resources["apis"]:
        doc_path = api["path"].replace("{format}", "json")
        doc = _get_json(base + doc_path, asterisk.user, asterisk.password)
        for entry in doc["apis"]:
            for op in entry["operations"]:
                params = op.get("parameters", [])
                operations.append(Operation(
                    method=op["httpMethod"],
                    template=entry["path"],
                    query={p["name"] for p in params if p["paramType"] == "query"},
                    required_query={
                        p["name"] for p in params
                        if p["paramType"] == "query" and p.get("required")
                    },
                    body={p["name"] for p in params if p["paramType"] == "body"},
                    whole_body=any(p["paramType"] == "body" and p.get("dataType") == "object"
                                   for p in params),
                ))
    assert len(operations) > 50, "Asterisk's Swagger documents look incomplete"
    return operations


@dataclass
class Recorded:
    method: str
    path: str
    query: set[str]
    body: set[str]


@dataclass
class Recorder:
    """A stand-in ARI that records each request and answers a plausible body."""

    seen: list[Recorded] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        body = json.loads(raw) if raw else {}
        path = request.path.removeprefix("/ari")
        self.seen.append(Recorded(request.method, path, set(request.query), set(body)))
        if request.method == "GET" and path in ("/channels", "/bridges"):
            return web.json_response([])
        if request.method == "DELETE":
            return web.Response(status=204)
        return web.json_response({"id": "x", "value": "v"})


# Every public call of the client, with every optional parameter it has set.
ALL_CALLS: dict[str, Callable[[AriClient], Any]] = {
    "asterisk_info": lambda c: c.asterisk_info(),
    "ping": lambda c: c.ping(),
    "originate": lambda c: c.originate(
        AGENT, channel_id="c1", app="app", app_args=["a", "b"], caller_id="A <1>", timeout=5,
        variables={"V": "1"}, originator="c0", other_channel_id="c2", formats="ulaw"),
    "create_channel": lambda c: c.create_channel(
        AGENT, channel_id="c1", app="app", app_args="a", variables={"V": "1"},
        originator="c0", other_channel_id="c2", formats="ulaw"),
    "dial": lambda c: c.dial("c1", caller="c0", timeout=5),
    "hangup": lambda c: c.hangup("c1", "busy"),
    "answer": lambda c: c.answer("c1"),
    "ring": lambda c: c.ring("c1"),
    "ring_stop": lambda c: c.ring_stop("c1"),
    "start_moh": lambda c: c.start_moh("c1", "default"),
    "stop_moh": lambda c: c.stop_moh("c1"),
    "play": lambda c: c.play("c1", ["sound:a", "tone:ring"], "pb1", lang="en"),
    "stop_playback": lambda c: c.stop_playback("pb1"),
    "set_variable": lambda c: c.set_variable("c1", "V", "1"),
    "get_variable": lambda c: c.get_variable("c1", "V"),
    "set_global": lambda c: c.set_global("V", "1"),
    "get_global": lambda c: c.get_global("V"),
    "list_channels": lambda c: c.list_channels(),
    "get_channel": lambda c: c.get_channel("c1"),
    "continue_in_dialplan": lambda c: c.continue_in_dialplan(
        "c1", context="c2c", extension="s", priority=1, label="l"),
    "create_bridge": lambda c: c.create_bridge("b1", "mixing,proxy_media", name="n"),
    "get_bridge": lambda c: c.get_bridge("b1"),
    "add_channel": lambda c: c.add_channel(
        "b1", ["c1", "c2"], role="r", absorb_dtmf=True, mute=False,
        inhibit_connected_line_updates=True),
    "remove_channel": lambda c: c.remove_channel("b1", "c1"),
    "destroy_bridge": lambda c: c.destroy_bridge("b1"),
    "list_bridges": lambda c: c.list_bridges(),
    "set_event_filter": lambda c: c.set_event_filter(["StasisStart"], app="app"),
    "get_application": lambda c: c.get_application("app"),
    "move": lambda c: c.move("c1", "other-app", app_args=["a"]),
}
EXTRA_REQUESTS = {
    # hangup's other spelling of the reason
    "hangup(reason_code)": lambda c: c.hangup("c1", reason_code=17),
}


def test_every_public_call_is_covered() -> None:
    public = {
        name for name, member in inspect.getmembers(AriClient)
        if inspect.iscoroutinefunction(member) and not name.startswith("_")
    } - {"close", "__aenter__", "__aexit__"}
    assert public == set(ALL_CALLS)


async def test_every_request_is_in_asterisks_swagger(swagger: list[Operation]) -> None:
    recorder = Recorder()
    app = web.Application()
    app.router.add_route("*", "/ari/{tail:.*}", recorder.handle)
    server = TestServer(app)
    await server.start_server()
    client = AriClient(str(server.make_url("/")), "u", "p", "app")
    try:
        for call in [*ALL_CALLS.values(), *EXTRA_REQUESTS.values()]:
            await call(client)
    finally:
        await client.close()
        await server.close()
    assert len(recorder.seen) == len(ALL_CALLS) + len(EXTRA_REQUESTS)
    for request in recorder.seen:
        candidates = [op for op in swagger if op.matches(request.method, request.path)]
        assert candidates, f"{request.method} {request.path} is not an ARI operation"
        # /channels/create also matches /channels/{channelId}: the literal path wins, as in
        # Asterisk's own router.
        op = max(candidates, key=lambda o: o.literal_segments)
        where = f"{request.method} {op.template}"
        assert request.query <= op.query, f"{where}: unknown {request.query - op.query}"
        assert op.required_query <= request.query, f"{where}: missing {op.required_query}"
        if not op.whole_body:
            assert request.body <= op.body, f"{where}: unknown body keys {request.body - op.body}"


# ---------------------------------------------------------------------------- live


class EventLog:
    """Collects events of one app; tests wait for the one they expect."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.connects = 0
        self.resync_channels: list[list[str]] = []
        self.changed = asyncio.Event()
        self.client: AriClient | None = None

    async def on_event(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        self.changed.set()

    async def on_connected(self) -> None:
        self.connects += 1
        if self.client is not None:  # re-sync, as the owner of AriEvents does
            channels = await self.client.list_channels()
            self.resync_channels.append([c["id"] for c in channels])
        self.changed.set()

    async def wait_for(
        self, kind: str, channel_id: str | None = None, seconds: float = 10.0,
        where: Callable[[dict[str, Any]], bool] = lambda event: True,
    ) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            for event in self.events:
                if event.get("type") == kind and where(event) and (
                    channel_id is None or _channel_of(event) == channel_id
                ):
                    return event
            return None

        async with asyncio.timeout(seconds):
            while (event := found()) is None:
                self.changed.clear()
                await self.changed.wait()
        return event

    def types(self, channel_id: str) -> list[str]:
        return [e["type"] for e in self.events if _channel_of(e) == channel_id]


def _channel_of(event: dict[str, Any]) -> str | None:
    """The channel an event is about (a Dial event names the dialled one `peer`)."""
    channel = event.get("channel") or event.get("peer") or {}
    return channel.get("id")


@dataclass
class Live:
    client: AriClient
    events: AriEvents
    log: EventLog
    made: list[str] = field(default_factory=list)  # ids to clean up, even after a failure

    def new_id(self, prefix: str) -> str:
        made = f"{prefix}-{secrets.token_hex(6)}"
        self.made.append(made)
        return made

    async def clean_up(self) -> None:
        """Hang up and destroy whatever a test made, so that no call outlives it."""
        for made in self.made:
            with contextlib.suppress(AriException):
                if made.startswith("bridge"):
                    await self.client.destroy_bridge(made)
                elif made.startswith("playback"):
                    await self.client.stop_playback(made)
                else:
                    await self.client.hangup(made)


@pytest.fixture
async def live(asterisk: Any) -> AsyncIterator[Live]:
    app = f"c2c-ari-test-{secrets.token_hex(4)}"
    client = AriClient(asterisk.url, asterisk.user, asterisk.password, app)
    log = EventLog()
    log.client = client
    events = AriEvents(client, log.on_event, on_connected=log.on_connected)
    live: Live | None = None
    await events.start()
    try:
        async with asyncio.timeout(10):
            await events.wait_connected()
        live = Live(client, events, log)
        yield live
    finally:
        if live is not None:
            await live.clean_up()
        await events.stop()
        await client.close()


async def start_peer(sipp: Callable[..., Any], scenario: str, port: int, **kwargs: Any) -> Any:
    """Start a SIPp peer; wait while another test run on this machine holds the port."""
    deadline = time.monotonic() + 120
    while True:
        try:
            return sipp(scenario, port, **kwargs)
        except SippError as exc:
            if "already in use" not in str(exc) or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def test_asterisk_info(live: Live) -> None:
    info = await live.client.asterisk_info()
    assert info["system"]["version"].startswith("22.")


async def test_event_filter_is_applied_by_asterisk(live: Live) -> None:
    await live.client.set_event_filter(["StasisStart", "ChannelDestroyed"])
    app = await live.client._request("GET", ("applications", live.client.app), idempotent=True)
    assert sorted(e["type"] for e in app.body["events_allowed"]) == [
        "ChannelDestroyed", "StasisStart"]
    assert app.body["events_disallowed"] == []


async def test_originate_bridge_hangup(live: Live, sipp: Callable[..., Any]) -> None:
    client, log = live.client, live.log
    agent = await start_peer(sipp, "uas_answer.xml", AGENT_PORT)
    channel_id, bridge_id = live.new_id("chan"), live.new_id("bridge")

    channel = await client.originate(
        AGENT, channel_id=channel_id, app_args=["test", "leg a"], timeout=10,
        caller_id='"Click To Call" <+15550001111>',
        variables={"PJSIP_HEADER(add,X-C2C)": channel_id},
    )
    assert channel["id"] == channel_id
    start = await log.wait_for("StasisStart", channel_id)
    assert start["args"] == ["test", "leg a"]
    assert start["channel"]["state"] == "Up"
    # The variables body reached the INVITE (found by its value: the peer is shared).
    agent.wait_for(lambda m: m.method == "INVITE" and m.header("X-C2C") == channel_id,
                   what="our INVITE")

    # The same id again is refused with 409: what makes a repeated originate safe.
    with pytest.raises(AriError) as caught:
        await client.originate(AGENT, channel_id=channel_id)
    assert caught.value.status == 409

    # Query values with spaces, `+`, `&`, `=` and non-ASCII survive the trip both ways.
    value = "a b+c&d=e/é"
    await client.set_variable(channel_id, "C2C_TEST", value)
    assert await client.get_variable(channel_id, "C2C_TEST") == value
    assert await client.get_variable(channel_id, "C2C_NEVER_SET") is None  # ARI: 404
    await client.set_variable(channel_id, "C2C_EMPTY", "")
    assert await client.get_variable(channel_id, "C2C_EMPTY") == ""
    # Global variables (the instances' heartbeat through Asterisk): unset reads as "".
    name = f"C2C_TEST_{channel_id.replace('-', '_')}"
    assert await client.get_global(name) == ""
    await client.set_global(name, value)
    assert await client.get_global(name) == value
    await client.set_global(name, "")
    assert await client.get_global(name) == ""

    bridge = await client.create_bridge(bridge_id, "mixing", name="c2c test")
    assert bridge["id"] == bridge_id
    await client.add_channel(bridge_id, channel_id)
    await log.wait_for("ChannelEnteredBridge", channel_id)
    assert (await client.get_bridge(bridge_id) or {})["channels"] == [channel_id]
    assert any(b["id"] == bridge_id for b in await client.list_bridges())
    assert any(c["id"] == channel_id for c in await client.list_channels())

    await client.start_moh(channel_id)
    await client.stop_moh(channel_id)
    playback_id = live.new_id("playback")
    playback = await client.play(channel_id, "tone:ring", playback_id)
    assert playback["id"] == playback_id
    await log.wait_for("PlaybackStarted", where=lambda e: e["playback"]["id"] == playback_id)
    assert await client.stop_playback(playback_id) is True
    await log.wait_for("PlaybackFinished", where=lambda e: e["playback"]["id"] == playback_id)
    # Asterisk may still know a finished playback for a moment: either answer is fine, an
    # error is not. One it never knew is 404, i.e. False.
    assert await client.stop_playback(playback_id) in (True, False)
    assert await client.stop_playback(live.new_id("playback")) is False
    await client.remove_channel(bridge_id, channel_id)
    await log.wait_for("ChannelLeftBridge", channel_id)

    assert await client.hangup(channel_id) is True
    await log.wait_for("StasisEnd", channel_id)
    await log.wait_for("ChannelDestroyed", channel_id)
    assert await client.hangup(channel_id) is False  # gone: 404 counts as done
    assert await client.get_channel(channel_id) is None

    assert await client.destroy_bridge(bridge_id) is True
    assert await client.destroy_bridge(bridge_id) is False
    assert await client.get_bridge(bridge_id) is None
    assert channel_id not in [c["id"] for c in await client.list_channels()]
    assert bridge_id not in [b["id"] for b in await client.list_bridges()]
    await asyncio.to_thread(agent.wait_for_request, "BYE")  # the hangup reached the phone


async def test_create_then_dial(live: Live, sipp: Callable[..., Any]) -> None:
    """The early-media path: create the channel in Stasis, bridge it, then dial."""
    client, log = live.client, live.log
    # The phone rings 0.2 s, then answers.
    await start_peer(sipp, "uas_answer.xml", AGENT_PORT, duration_ms=200)
    channel_id, bridge_id = live.new_id("chan"), live.new_id("bridge")

    channel = await client.create_channel(AGENT, channel_id=channel_id, app_args="created")
    assert channel["id"] == channel_id
    await log.wait_for("StasisStart", channel_id)
    await client.create_bridge(bridge_id, "mixing,proxy_media")
    await client.add_channel(bridge_id, channel_id)
    await client.dial(channel_id, timeout=10)
    await log.wait_for("Dial", channel_id)
    await log.wait_for("ChannelStateChange", channel_id,
                       where=lambda event: event["channel"]["state"] == "Up")
    assert (await client.get_channel(channel_id) or {}).get("state") == "Up"
    assert await client.hangup(channel_id) is True
    await log.wait_for("ChannelDestroyed", channel_id)
    assert await client.destroy_bridge(bridge_id) is True


async def test_unanswered_leg_never_enters_stasis(live: Live, sipp: Callable[..., Any]) -> None:
    client, log = live.client, live.log
    await start_peer(sipp, "uas_busy.xml", BUSY_PORT)
    channel_id = live.new_id("busy")
    await client.originate(BUSY_AGENT, channel_id=channel_id, timeout=10)
    destroyed = await log.wait_for("ChannelDestroyed", channel_id)
    assert destroyed["cause"] == 17  # SIP 486 -> USER_BUSY
    assert "StasisStart" not in log.types(channel_id)
    assert await client.hangup(channel_id) is False


async def test_events_reconnect_and_resync(live: Live, sipp: Callable[..., Any]) -> None:
    client, events, log = live.client, live.events, live.log
    await start_peer(sipp, "uas_answer.xml", AGENT_PORT)
    assert log.connects == 1

    # stop() and start() again: a fresh connection, on_connected again, events still arrive.
    await events.stop()
    assert not events.connected
    await events.start()
    async with asyncio.timeout(10):
        await events.wait_connected()
    assert log.connects == 2
    channel_id = live.new_id("chan")
    await client.originate(AGENT, channel_id=channel_id, timeout=10)
    await log.wait_for("StasisStart", channel_id)

    # Drop the websocket under a live call: the loop reconnects by itself, the re-sync in
    # on_connected sees the call, and the call's later events arrive on the new connection.
    await events.reconnect()
    async with asyncio.timeout(10):
        while log.connects < 3 or not events.connected:
            log.changed.clear()
            await log.changed.wait()
    assert channel_id in log.resync_channels[-1]
    assert await client.hangup(channel_id) is True
    await log.wait_for("StasisEnd", channel_id)
