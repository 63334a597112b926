"""The ARI client and events websocket against a fake ARI (aiohttp test server).

The fake checks what a real Asterisk would see on the wire: method, path, query, JSON body
and Basic auth. Retry and backoff timing use an injected clock and sleep: nothing waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer, unused_port

from c2c_ari.ari import (
    AriClient,
    AriError,
    AriEvents,
    AriUnavailable,
    Backoff,
)

USER, PASSWORD, APP = "c2c", "s3cret:with:colons", "c2c-ari"
AUTH = aiohttp.encode_basic_auth(USER, PASSWORD)

# A scripted answer: (status, JSON body), or DROP to close the connection without answering
# (the request reached "Asterisk" but the answer was lost).
DROP = "drop"
Answer = tuple[int, Any] | str


@dataclass
class Seen:
    """One request as the fake ARI received it."""

    method: str
    path: str  # decoded path
    raw_path: str  # as sent, still percent-encoded
    query: dict[str, str]
    body: Any
    auth: str | None


@dataclass
class FakeAri:
    """Answers like ARI with canned bodies; a test scripts exceptions per (method, path)."""

    requests: list[Seen] = field(default_factory=list)
    script: dict[tuple[str, str], deque[Answer]] = field(default_factory=dict)
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)
    sockets: list[web.WebSocketResponse] = field(default_factory=list)
    ws_requests: list[Seen] = field(default_factory=list)
    ws_refusals: deque[int] = field(default_factory=deque)  # statuses for the next handshakes

    def then(self, method: str, path: str, *answers: Answer) -> None:
        self.script.setdefault((method, path), deque()).extend(answers)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/ari/events", self.events)
        app.router.add_route("*", "/ari/{tail:.*}", self.rest)
        return app

    async def rest(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        seen = Seen(
            method=request.method,
            path=request.path,
            raw_path=request.raw_path.split("?")[0],
            query=dict(request.query),
            body=json.loads(raw) if raw else None,
            auth=request.headers.get("Authorization"),
        )
        self.requests.append(seen)
        if seen.auth != AUTH:
            return web.json_response({"message": "Authentication required"}, status=401)
        queue = self.script.get((seen.method, seen.path))
        answer = queue.popleft() if queue else self.default(seen)
        if answer == DROP:
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        status, body = answer
        if body is None:
            return web.Response(status=status)
        return web.json_response(body, status=status)

    def default(self, seen: Seen) -> Answer:
        """What ARI would answer to a valid request (enough for the client's needs)."""
        method, path = seen.method, seen.path
        if method == "POST" and path in ("/ari/channels", "/ari/channels/create"):
            channel_id = seen.query["channelId"]
            if channel_id in self.channels:
                return 409, {"message": "Channel with given unique ID already exists"}
            self.channels[channel_id] = {"id": channel_id, "state": "Down"}
            return 200, self.channels[channel_id]
        if path.endswith("/variable") and method == "GET":
            return 200, {"value": "v"}
        if method == "GET" and path.startswith("/ari/channels/"):
            channel = self.channels.get(path.rsplit("/", 1)[1])
            return (200, channel) if channel else (404, {"message": "Channel not found"})
        if method == "GET" and path in ("/ari/channels", "/ari/bridges"):
            return 200, list(self.channels.values()) if path == "/ari/channels" else []
        if method == "DELETE":
            return 204, None
        if path.endswith("/play"):
            return 201, {"id": "pb-1", "state": "queued"}
        if method == "POST" and path.startswith("/ari/bridges/") and path.count("/") == 3:
            return 200, {"id": path.rsplit("/", 1)[1], "bridge_type": "mixing"}
        if path == "/ari/asterisk/info":
            return 200, {"system": {"version": "22.10.1"}}
        return 204, None

    async def events(self, request: web.Request) -> web.StreamResponse:
        self.ws_requests.append(Seen(
            request.method, request.path, request.raw_path, dict(request.query), None,
            request.headers.get("Authorization"),
        ))
        if request.headers.get("Authorization") != AUTH:
            return web.json_response({"message": "Authentication required"}, status=401)
        if self.ws_refusals:
            return web.json_response({"message": "no"}, status=self.ws_refusals.popleft())
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets.append(ws)
        async for _ in ws:  # the client never sends; this waits for the close
            pass
        return ws

    async def send(self, *frames: dict[str, Any] | str | bytes) -> None:
        """Send frames on the newest websocket (dicts as JSON text)."""
        ws = self.sockets[-1]
        for frame in frames:
            if isinstance(frame, bytes):
                await ws.send_bytes(frame)
            elif isinstance(frame, str):
                await ws.send_str(frame)
            else:
                await ws.send_str(json.dumps(frame))

    async def drop_websockets(self) -> None:
        for ws in self.sockets:
            await ws.close()


class FakeTime:
    """A clock that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        self.now += delay
        await asyncio.sleep(0)


@pytest.fixture
async def fake(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> Any:
    ari = FakeAri()
    ari.server = await aiohttp_server(ari.app())  # type: ignore[attr-defined]
    return ari


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
async def client(fake: Any, fake_time: FakeTime) -> Any:
    ari = AriClient(
        str(fake.server.make_url("/")), USER, PASSWORD, APP,
        sleep=fake_time.sleep, clock=fake_time.clock, rand=lambda: 0.0,
    )
    yield ari
    await ari.close()


# ---------------------------------------------------------------------------- request shapes


async def test_originate_request_shape(fake: FakeAri, client: AriClient) -> None:
    channel = await client.originate(
        "PJSIP/+15551234567@trunk",
        channel_id="c2c-abc-1",
        app_args=["c2c", "leg-a"],
        caller_id='"Sales" <+15550001111>',
        timeout=30,
        variables={"PJSIP_HEADER(add,X-C2C)": "hello world & more"},
        originator="c2c-abc-0",
        other_channel_id="c2c-abc-2",
        formats="ulaw,alaw",
    )
    assert channel == {"id": "c2c-abc-1", "state": "Down"}
    [seen] = fake.requests
    assert (seen.method, seen.path) == ("POST", "/ari/channels")
    assert seen.auth == AUTH
    # `+`, spaces, quotes and `<>` arrive intact: they are percent-encoded, not concatenated.
    assert seen.query == {
        "endpoint": "PJSIP/+15551234567@trunk",
        "app": APP,
        "appArgs": "c2c,leg-a",
        "callerId": '"Sales" <+15550001111>',
        "timeout": "30",
        "channelId": "c2c-abc-1",
        "otherChannelId": "c2c-abc-2",
        "originator": "c2c-abc-0",
        "formats": "ulaw,alaw",
    }
    assert seen.body == {"variables": {"PJSIP_HEADER(add,X-C2C)": "hello world & more"}}


async def test_originate_minimal_sends_no_body(fake: FakeAri, client: AriClient) -> None:
    await client.originate("PJSIP/1001", channel_id="x1", app="other-app")
    [seen] = fake.requests
    assert seen.query == {"endpoint": "PJSIP/1001", "app": "other-app", "channelId": "x1"}
    assert seen.body is None


@pytest.mark.parametrize(
    ("call", "method", "path", "query"),
    [
        (lambda c: c.asterisk_info(), "GET", "/ari/asterisk/info", {}),
        (lambda c: c.create_channel("PJSIP/1001", channel_id="c1", app_args="a,b"),
         "POST", "/ari/channels/create",
         {"endpoint": "PJSIP/1001", "app": APP, "appArgs": "a,b", "channelId": "c1"}),
        (lambda c: c.dial("c1", caller="c0", timeout=20), "POST", "/ari/channels/c1/dial",
         {"caller": "c0", "timeout": "20"}),
        (lambda c: c.dial("c1"), "POST", "/ari/channels/c1/dial", {}),
        (lambda c: c.hangup("c1"), "DELETE", "/ari/channels/c1", {}),
        (lambda c: c.hangup("c1", "busy"), "DELETE", "/ari/channels/c1", {"reason": "busy"}),
        (lambda c: c.hangup("c1", reason_code=17), "DELETE", "/ari/channels/c1",
         {"reason_code": "17"}),
        (lambda c: c.answer("c1"), "POST", "/ari/channels/c1/answer", {}),
        (lambda c: c.ring("c1"), "POST", "/ari/channels/c1/ring", {}),
        (lambda c: c.ring_stop("c1"), "DELETE", "/ari/channels/c1/ring", {}),
        (lambda c: c.start_moh("c1"), "POST", "/ari/channels/c1/moh", {}),
        (lambda c: c.start_moh("c1", "default"), "POST", "/ari/channels/c1/moh",
         {"mohClass": "default"}),
        (lambda c: c.stop_moh("c1"), "DELETE", "/ari/channels/c1/moh", {}),
        (lambda c: c.play("c1", "tone:ring"), "POST", "/ari/channels/c1/play",
         {"media": "tone:ring"}),
        (lambda c: c.play("c1", ["sound:a", "sound:b"], "pb1", lang="en"), "POST",
         "/ari/channels/c1/play", {"media": "sound:a,sound:b", "playbackId": "pb1", "lang": "en"}),
        (lambda c: c.stop_playback("pb1"), "DELETE", "/ari/playbacks/pb1", {}),
        (lambda c: c.set_variable("c1", "CALLERID(name)", "A B"), "POST",
         "/ari/channels/c1/variable", {"variable": "CALLERID(name)", "value": "A B"}),
        (lambda c: c.get_variable("c1", "FOO"), "GET", "/ari/channels/c1/variable",
         {"variable": "FOO"}),
        (lambda c: c.list_channels(), "GET", "/ari/channels", {}),
        (lambda c: c.get_channel("c1"), "GET", "/ari/channels/c1", {}),
        (lambda c: c.continue_in_dialplan("c1", context="c2c", extension="s", priority=1),
         "POST", "/ari/channels/c1/continue",
         {"context": "c2c", "extension": "s", "priority": "1"}),
        (lambda c: c.create_bridge("b1"), "POST", "/ari/bridges/b1", {"type": "mixing"}),
        (lambda c: c.create_bridge("b1", "mixing,proxy_media", name="call"), "POST",
         "/ari/bridges/b1", {"type": "mixing,proxy_media", "name": "call"}),
        (lambda c: c.get_bridge("b1"), "GET", "/ari/bridges/b1", {}),
        (lambda c: c.add_channel("b1", ["c1", "c2"]), "POST", "/ari/bridges/b1/addChannel",
         {"channel": "c1,c2"}),
        (lambda c: c.add_channel("b1", "c1", role="agent", absorb_dtmf=True, mute=False,
                                 inhibit_connected_line_updates=True),
         "POST", "/ari/bridges/b1/addChannel",
         {"channel": "c1", "role": "agent", "absorbDTMF": "true", "mute": "false",
          "inhibitConnectedLineUpdates": "true"}),
        (lambda c: c.remove_channel("b1", "c1"), "POST", "/ari/bridges/b1/removeChannel",
         {"channel": "c1"}),
        (lambda c: c.destroy_bridge("b1"), "DELETE", "/ari/bridges/b1", {}),
        (lambda c: c.list_bridges(), "GET", "/ari/bridges", {}),
    ],
)
async def test_request_shapes(
    fake: FakeAri, client: AriClient, call: Any, method: str, path: str, query: dict[str, str]
) -> None:
    if path == "/ari/channels/c1" and method == "GET":
        fake.channels["c1"] = {"id": "c1"}
    await call(client)
    [seen] = fake.requests
    assert (seen.method, seen.path, seen.query) == (method, path, query)
    assert seen.auth == AUTH
    assert seen.body is None


async def test_results_are_parsed(fake: FakeAri, client: AriClient) -> None:
    fake.channels["c1"] = {"id": "c1", "state": "Up"}
    assert await client.asterisk_info() == {"system": {"version": "22.10.1"}}
    assert await client.list_channels() == [{"id": "c1", "state": "Up"}]
    assert await client.get_channel("c1") == {"id": "c1", "state": "Up"}
    assert await client.get_variable("c1", "FOO") == "v"
    assert await client.play("c1", "tone:ring") == {"id": "pb-1", "state": "queued"}
    assert await client.list_bridges() == []
    assert await client.answer("c1") is None


async def test_ids_are_quoted_as_one_path_segment(fake: FakeAri, client: AriClient) -> None:
    await client.answer("a/b?c#d %")
    [seen] = fake.requests
    assert seen.raw_path == "/ari/channels/a%2Fb%3Fc%23d%20%25/answer"
    assert seen.path == "/ari/channels/a/b?c#d %/answer"


@pytest.mark.parametrize("bad", ["", ".", ".."])
async def test_empty_or_dot_ids_are_refused(fake: FakeAri, client: AriClient, bad: str) -> None:
    with pytest.raises(ValueError):
        await client.hangup(bad)
    with pytest.raises(ValueError):
        await client.originate("PJSIP/1001", channel_id=bad)
    assert fake.requests == []


async def test_list_arguments_may_not_smuggle_commas(fake: FakeAri, client: AriClient) -> None:
    with pytest.raises(ValueError):
        await client.add_channel("b1", ["c1,c2"])
    with pytest.raises(ValueError):
        await client.originate("PJSIP/1001", channel_id="x", app_args=["a,b"])
    with pytest.raises(ValueError):
        await client.play("c1", ["sound:a,sound:b"])
    assert fake.requests == []


def test_base_url_forms() -> None:
    for base in ("http://127.0.0.1:8088", "http://127.0.0.1:8088/", "http://127.0.0.1:8088/ari/"):
        ari = AriClient(base, USER, PASSWORD, APP)
        assert str(ari._url("channels")) == "http://127.0.0.1:8088/ari/channels"
        assert str(ari.events_url) == (
            "ws://127.0.0.1:8088/ari/events?app=c2c-ari&subscribeAll=false"
        )
    assert str(AriClient("https://pbx:8089", USER, PASSWORD, "a b").events_url) == (
        "wss://pbx:8089/ari/events?app=a+b&subscribeAll=false"
    )
    with pytest.raises(ValueError):
        AriClient("127.0.0.1:8088", USER, PASSWORD, APP)


# ---------------------------------------------------------------------------- 404 and errors


async def test_hangup_of_a_gone_channel_is_done(fake: FakeAri, client: AriClient) -> None:
    fake.then("DELETE", "/ari/channels/gone", (404, {"message": "Channel not found"}))
    assert await client.hangup("gone") is False
    assert await client.hangup("here") is True


async def test_destroy_of_a_gone_bridge_is_done(fake: FakeAri, client: AriClient) -> None:
    fake.then("DELETE", "/ari/bridges/gone", (404, {"message": "Bridge not found"}))
    assert await client.destroy_bridge("gone") is False
    assert await client.destroy_bridge("here") is True
    # What Asterisk answers for a moment while a just-destroyed bridge is torn down.
    fake.then("DELETE", "/ari/bridges/dying", (409, {"message": "Bridge not in Stasis app"}))
    assert await client.destroy_bridge("dying") is False


async def test_stopping_a_finished_playback_is_done(fake: FakeAri, client: AriClient) -> None:
    fake.then("DELETE", "/ari/playbacks/over", (404, {"message": "Playback not found"}))
    assert await client.stop_playback("over") is False
    assert await client.stop_playback("playing") is True


async def test_missing_channel_or_variable_reads_as_none(fake: FakeAri, client: AriClient) -> None:
    assert await client.get_channel("nope") is None
    fake.then("GET", "/ari/channels/c1/variable", (404, {"message": "Variable not found"}))
    assert await client.get_variable("c1", "UNSET") is None


async def test_other_errors_raise_ari_error(fake: FakeAri, client: AriClient) -> None:
    fake.then("POST", "/ari/channels/c1/answer", (409, {"message": "Channel not in Stasis"}))
    with pytest.raises(AriError) as caught:
        await client.answer("c1")
    error = caught.value
    assert (error.status, error.method, error.path) == (409, "POST", "/channels/c1/answer")
    assert error.message == "Channel not in Stasis"
    assert "409" in str(error) and "Channel not in Stasis" in str(error)
    # Any 404 other than the documented "done" cases is an error too.
    fake.then("POST", "/ari/channels/c2/ring", (404, {"message": "Channel not found"}))
    with pytest.raises(AriError) as caught:
        await client.ring("c2")
    assert caught.value.not_found
    assert len(fake.requests) == 2  # neither was retried


async def test_wrong_password_is_an_ari_error(fake: FakeAri, fake_time: FakeTime) -> None:
    ari = AriClient(str(fake.server.make_url("/")), USER, "wrong", APP, sleep=fake_time.sleep)
    try:
        with pytest.raises(AriError) as caught:
            await ari.list_channels()
        assert caught.value.status == 401
    finally:
        await ari.close()


# ---------------------------------------------------------------------------- 503 and retries


async def test_503_while_booting_is_retried(
    fake: FakeAri, client: AriClient, fake_time: FakeTime
) -> None:
    booting = (503, {"message": "Asterisk not booted"})
    fake.then("GET", "/ari/asterisk/info", booting, booting, booting)
    assert await client.asterisk_info() == {"system": {"version": "22.10.1"}}
    assert len(fake.requests) == 4
    assert fake_time.sleeps == [0.1, 0.2, 0.4]  # rand() = 0: the un-jittered ceiling


async def test_503_retry_also_covers_originate(fake: FakeAri, client: AriClient) -> None:
    fake.then("POST", "/ari/channels", (503, {"message": "Asterisk not booted"}))
    channel = await client.originate("PJSIP/1001", channel_id="c1")
    assert channel["id"] == "c1"
    assert [r.query["channelId"] for r in fake.requests] == ["c1", "c1"]


async def test_503_past_the_deadline_raises(
    fake: FakeAri, client: AriClient, fake_time: FakeTime
) -> None:
    fake.then("GET", "/ari/channels", *[(503, {"message": "Asterisk not booted"})] * 100)
    with pytest.raises(AriError) as caught:
        await client.list_channels()
    assert caught.value.status == 503
    # Backoff 0.1, 0.2, 0.4, 0.8, then capped at 1.0; the deadline (5 s) bounds the total.
    assert fake_time.sleeps[:6] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert sum(fake_time.sleeps) <= client.retry_deadline
    assert len(fake.requests) == len(fake_time.sleeps) + 1


async def test_retry_deadline_zero_means_one_attempt(fake: FakeAri, fake_time: FakeTime) -> None:
    ari = AriClient(str(fake.server.make_url("/")), USER, PASSWORD, APP, retry_deadline=0,
                    sleep=fake_time.sleep, clock=fake_time.clock)
    fake.then("GET", "/ari/bridges", (503, {"message": "Asterisk not booted"}))
    try:
        with pytest.raises(AriError):
            await ari.list_bridges()
    finally:
        await ari.close()
    assert len(fake.requests) == 1


async def test_other_5xx_is_not_retried(fake: FakeAri, client: AriClient) -> None:
    fake.then("GET", "/ari/channels", (500, {"message": "Allocation failed"}))
    with pytest.raises(AriError) as caught:
        await client.list_channels()
    assert caught.value.status == 500
    assert len(fake.requests) == 1


async def test_connection_refused_raises_ari_unavailable(fake_time: FakeTime) -> None:
    ari = AriClient(f"http://127.0.0.1:{unused_port()}", USER, PASSWORD, APP,
                    sleep=fake_time.sleep, clock=fake_time.clock, rand=lambda: 0.0)
    try:
        with pytest.raises(AriUnavailable) as caught:
            await ari.hangup("c1")
    finally:
        await ari.close()
    assert caught.value.method == "DELETE" and caught.value.path == "/channels/c1"
    assert "unavailable" in str(caught.value)
    # A refused connection never carried the request, so it was retried up to the deadline.
    assert len(fake_time.sleeps) >= 5 and sum(fake_time.sleeps) <= 5.0


async def test_originate_retried_after_lost_answer_is_not_placed_twice(
    fake: FakeAri, client: AriClient
) -> None:
    # The first originate reaches "Asterisk" (the channel exists) but the answer is lost.
    fake.channels["c2c-1"] = {"id": "c2c-1", "state": "Ring"}
    fake.then("POST", "/ari/channels", DROP)
    channel = await client.originate("PJSIP/1001", channel_id="c2c-1")
    # The repeat answered 409 (id exists); the client read the channel instead of failing.
    assert channel == {"id": "c2c-1", "state": "Ring"}
    assert [(r.method, r.path) for r in fake.requests] == [
        ("POST", "/ari/channels"), ("POST", "/ari/channels"), ("GET", "/ari/channels/c2c-1"),
    ]


async def test_originate_lost_answer_then_channel_already_gone(
    fake: FakeAri, client: AriClient
) -> None:
    fake.then("POST", "/ari/channels", DROP, (409, {"message": "exists"}))
    assert await client.originate("PJSIP/1001", channel_id="short") == {"id": "short"}


async def test_originate_409_without_lost_answer_is_a_real_conflict(
    fake: FakeAri, client: AriClient
) -> None:
    fake.channels["taken"] = {"id": "taken"}
    with pytest.raises(AriError) as caught:
        await client.originate("PJSIP/1001", channel_id="taken")
    assert caught.value.status == 409
    assert len(fake.requests) == 1


async def test_create_bridge_retried_after_lost_answer(fake: FakeAri, client: AriClient) -> None:
    fake.then("POST", "/ari/bridges/b1", DROP, (409, {"message": "exists"}))
    fake.then("GET", "/ari/bridges/b1", (200, {"id": "b1", "bridge_type": "mixing"}))
    assert await client.create_bridge("b1") == {"id": "b1", "bridge_type": "mixing"}


async def test_non_idempotent_call_is_not_repeated_after_lost_answer(
    fake: FakeAri, client: AriClient
) -> None:
    fake.then("POST", "/ari/channels/c1/dial", DROP)
    with pytest.raises(AriUnavailable):
        await client.dial("c1")
    assert len(fake.requests) == 1


async def test_request_timeout(fake: FakeAri) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response()

    app = web.Application()
    app.router.add_route("*", "/ari/{tail:.*}", slow)
    server = TestServer(app)
    await server.start_server()
    ari = AriClient(str(server.make_url("/")), USER, PASSWORD, APP, request_timeout=0.05,
                    retry_deadline=0)
    try:
        with pytest.raises(AriUnavailable):
            await ari.play("c1", "tone:ring")
    finally:
        await ari.close()
        await server.close()


# ---------------------------------------------------------------------------- backoff


def test_backoff_grows_and_is_capped() -> None:
    backoff = Backoff(initial=0.2, maximum=5.0, rand=lambda: 0.0)
    assert [backoff.next() for _ in range(8)] == pytest.approx(
        [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0]
    )
    backoff.reset()
    assert backoff.next() == pytest.approx(0.2)


def test_backoff_jitter_stays_within_bounds() -> None:
    low = Backoff(initial=1.0, maximum=4.0, jitter=0.5, rand=lambda: 1.0)
    assert [low.next() for _ in range(4)] == pytest.approx([0.5, 1.0, 2.0, 2.0])
    real = Backoff(initial=1.0, maximum=4.0)
    for ceiling in (1.0, 2.0, 4.0, 4.0):
        assert ceiling / 2 <= real.next() <= ceiling
    with pytest.raises(ValueError):
        Backoff(initial=0)


# ---------------------------------------------------------------------------- events


class Recorder:
    """Handler and hooks that remember what happened, in order."""

    def __init__(self) -> None:
        self.log: list[Any] = []
        self.changed = asyncio.Event()

    async def on_event(self, event: dict[str, Any]) -> None:
        self.log.append(event.get("type"))
        self.changed.set()

    async def on_connected(self) -> None:
        self.log.append("connected")
        self.changed.set()

    async def on_disconnected(self) -> None:
        self.log.append("disconnected")
        self.changed.set()

    async def until(self, check: Callable[[], bool]) -> None:
        async with asyncio.timeout(3.0):
            while not check():
                self.changed.clear()
                await self.changed.wait()


def make_events(client: AriClient, rec: Recorder, fake_time: FakeTime, **kw: Any) -> AriEvents:
    return AriEvents(
        client, rec.on_event, on_connected=rec.on_connected,
        on_disconnected=rec.on_disconnected, sleep=fake_time.sleep, clock=fake_time.clock,
        backoff=Backoff(initial=0.2, maximum=5.0, rand=lambda: 0.0), **kw,
    )


@contextlib.asynccontextmanager
async def running(events: AriEvents) -> AsyncIterator[AriEvents]:
    """The events loop, started for the block and stopped after it, whatever happens."""
    await events.start()
    try:
        yield events
    finally:
        await events.stop()


async def test_events_are_delivered_in_order(
    fake: FakeAri, client: AriClient, fake_time: FakeTime
) -> None:
    rec = Recorder()
    events = make_events(client, rec, fake_time)
    async with running(events):
        async with asyncio.timeout(3):
            await events.wait_connected()
        assert events.connected
        await fake.send({"type": "StasisStart", "channel": {"id": "c1"}}, {"type": "StasisEnd"})
        await rec.until(lambda: len(rec.log) == 3)
        assert rec.log == ["connected", "StasisStart", "StasisEnd"]
    [ws] = fake.ws_requests
    assert ws.auth == AUTH
    assert ws.query == {"app": APP, "subscribeAll": "false"}
    assert rec.log[-1] == "disconnected"
    assert not events.connected


async def test_events_reconnect_after_the_server_drops(
    fake: FakeAri, client: AriClient, fake_time: FakeTime
) -> None:
    rec = Recorder()
    events = make_events(client, rec, fake_time)
    async with running(events):
        await rec.until(lambda: rec.log == ["connected"])
        await fake.send({"type": "A"})
        await rec.until(lambda: "A" in rec.log)
        await fake.drop_websockets()
        await rec.until(lambda: rec.log.count("connected") == 2)
        await fake.send({"type": "B"})
        await rec.until(lambda: "B" in rec.log)
    assert rec.log == ["connected", "A", "disconnected", "connected", "B", "disconnected"]
    assert events.connections == 2
    assert fake_time.sleeps == [0.2]  # one backoff step before reconnecting


async def test_reconnect_on_request(
    fake: FakeAri, client: AriClient, fake_time: FakeTime
) -> None:
    rec = Recorder()
    events = make_events(client, rec, fake_time)
    await events.reconnect()  # not connected: nothing to do
    async with running(events):
        await rec.until(lambda: rec.log == ["connected"])
        await events.reconnect()
        await rec.until(lambda: rec.log.count("connected") == 2)
        await fake.send({"type": "After"})
        await rec.until(lambda: "After" in rec.log)
    assert rec.log == ["connected", "disconnected", "connected", "After", "disconnected"]
    assert len(fake.ws_requests) == 2


async def test_events_wait_for_asterisk_to_come_up(
    fake: FakeAri, client: AriClient, fake_time: FakeTime
) -> None:
    # Booting: the handshake answers 503 a few times, then the websocket opens.
    fake.ws_refusals.extend([503, 503, 503])
    rec = Recorder()
    events = make_events(client, rec, fake_time)
    async with running(events):
        await rec.until(lambda: rec.log == ["connected"])
    assert len(fake.ws_requests) == 4
    assert fake_time.sleeps == pytest.approx([0.2, 0.4, 0.8])


async def test_events_backoff_grows_and_is_capped(fake_time: FakeTime) -> None:
    ari = AriClient(f"http://127.0.0.1:{unused_port()}", USER, PASSWORD, APP)
    rec = Recorder()
    enough = asyncio.Event()

    async def sleep(delay: float) -> None:
        await fake_time.sleep(delay)
        if len(fake_time.sleeps) >= 9:
            enough.set()

    events = AriEvents(ari, rec.on_event, on_connected=rec.on_connected, sleep=sleep,
                       backoff=Backoff(initial=0.2, maximum=5.0, rand=lambda: 0.0))
    async with running(events):
        async with asyncio.timeout(5):
            await enough.wait()
        await ari.close()
    assert fake_time.sleeps[:9] == pytest.approx([0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0, 5.0])
    assert rec.log == []


async def test_backoff_resets_after_a_connection_that_lasted(
    fake: FakeAri, client: AriClient, fake_time: FakeTime
) -> None:
    fake.ws_refusals.extend([503, 503])
    rec = Recorder()
    events = make_events(client, rec, fake_time)
    async with running(events):
        await rec.until(lambda: rec.log == ["connected"])
        fake_time.now += 60  # the connection stays up a minute
        await fake.drop_websockets()
        await rec.until(lambda: rec.log.count("connected") == 2)
    assert fake_time.sleeps == pytest.approx([0.2, 0.4, 0.2])


async def test_malformed_frames_are_skipped(
    fake: FakeAri, client: AriClient, fake_time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    rec = Recorder()
    events = make_events(client, rec, fake_time)
    async with running(events):
        await rec.until(lambda: rec.log == ["connected"])
        await fake.send("not json {", "[1, 2]", '{"no": "type"}', b"\x00\x01",
                        {"type": "Good"})
        await rec.until(lambda: "Good" in rec.log)
    assert rec.log == ["connected", "Good", "disconnected"]
    assert events.connections == 1
    assert caplog.text.count("skipping") == 4


async def test_handler_exceptions_do_not_stop_the_loop(
    fake: FakeAri, client: AriClient, fake_time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []
    done = asyncio.Event()

    async def on_event(event: dict[str, Any]) -> None:
        seen.append(event["type"])
        if event["type"] == "Bad":
            raise RuntimeError("handler bug")
        done.set()

    events = AriEvents(client, on_event, sleep=fake_time.sleep)
    async with running(events):
        async with asyncio.timeout(3):
            await events.wait_connected()
            await fake.send({"type": "Bad"}, {"type": "Good"})
            await done.wait()
    assert seen == ["Bad", "Good"]
    assert "handler bug" in caplog.text


async def test_failed_resync_reconnects_and_tries_again(
    fake: FakeAri, client: AriClient, fake_time: FakeTime
) -> None:
    calls: list[str] = []
    events: AriEvents

    async def on_connected() -> None:
        calls.append("connected")
        if len(calls) == 1:
            raise RuntimeError("re-sync failed")
        # The owner re-syncs with the client; this one works.
        assert await client.list_channels() == []

    events = AriEvents(client, _ignore, on_connected=on_connected, sleep=fake_time.sleep)
    async with running(events):
        async with asyncio.timeout(3):
            await events.wait_connected()
    assert calls == ["connected", "connected"]
    assert len(fake.ws_requests) == 2


async def _ignore(event: dict[str, Any]) -> None:
    return None


def ours(tasks: set[asyncio.Task[Any]]) -> list[asyncio.Task[Any]]:
    """Unfinished tasks running code of the ARI package (the fake server has its own)."""
    return [
        t for t in tasks
        if not t.done() and "c2c_ari" in t.get_coro().cr_code.co_filename  # type: ignore[union-attr]
    ]


async def test_stop_leaves_no_task_behind(
    fake: FakeAri, client: AriClient, fake_time: FakeTime
) -> None:
    before = asyncio.all_tasks()
    rec = Recorder()
    events = make_events(client, rec, fake_time)
    await events.start()
    await events.start()  # a second start does not add a loop
    assert len(asyncio.all_tasks() - before) == 1
    await rec.until(lambda: rec.log == ["connected"])
    await events.stop()
    await events.stop()  # idempotent
    assert ours(asyncio.all_tasks() - before) == []
    assert rec.log == ["connected", "disconnected"]


async def test_stop_while_asterisk_is_down_leaves_no_task(fake_time: FakeTime) -> None:
    ari = AriClient(f"http://127.0.0.1:{unused_port()}", USER, PASSWORD, APP)
    before = asyncio.all_tasks()
    events = AriEvents(ari, _ignore)  # real sleep: stop() must cancel it
    await events.start()
    await asyncio.sleep(0.05)
    await events.stop()
    await ari.close()
    assert ours(asyncio.all_tasks() - before) == []
    assert events.connections == 0


async def test_stop_from_inside_a_handler(
    fake: FakeAri, client: AriClient, fake_time: FakeTime
) -> None:
    events: AriEvents
    handled: list[str] = []

    async def on_event(event: dict[str, Any]) -> None:
        handled.append(event["type"])
        await events.stop()

    events = AriEvents(client, on_event, sleep=fake_time.sleep)
    await events.start()
    task = events._task
    assert task is not None
    async with asyncio.timeout(3):
        await events.wait_connected()
        await fake.send({"type": "Quit"}, {"type": "NotDelivered"})
        await asyncio.wait({task})
    assert task.cancelled()
    assert handled == ["Quit"]


# ---------------------------------------------------------------------------- event filter

FILTER_PATH = f"/ari/applications/{APP}/eventFilter"


async def test_event_filter_is_set_after_every_connect_before_the_resync(
    fake: FakeAri, client: AriClient, fake_time: FakeTime
) -> None:
    rec = Recorder()
    filters_at_resync: list[int] = []

    async def on_connected() -> None:
        filters_at_resync.append(sum(r.path == FILTER_PATH for r in fake.requests))
        await rec.on_connected()

    events = AriEvents(client, rec.on_event, on_connected=on_connected, sleep=fake_time.sleep,
                       event_types=["StasisStart", "ChannelDestroyed", "StasisStart"])
    async with running(events):
        await rec.until(lambda: rec.log == ["connected"])
        await fake.drop_websockets()
        await rec.until(lambda: rec.log.count("connected") == 2)
    assert filters_at_resync == [1, 2]
    for seen in fake.requests:
        assert (seen.method, seen.path, seen.auth) == ("PUT", FILTER_PATH, AUTH)
        # Both lists, so that a disallowed list set by someone else does not linger.
        assert seen.body == {"allowed": [{"type": "ChannelDestroyed"}, {"type": "StasisStart"}],
                             "disallowed": []}


async def test_refused_event_filter_still_delivers_every_event(
    fake: FakeAri, client: AriClient, fake_time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    fake.then("PUT", FILTER_PATH, (404, {"message": "Application not found"}))
    rec = Recorder()
    events = make_events(client, rec, fake_time, event_types=["StasisStart"])
    async with running(events):
        await rec.until(lambda: rec.log == ["connected"])
        await fake.send({"type": "ChannelVarset"}, {"type": "StasisStart"})
        await rec.until(lambda: "StasisStart" in rec.log)
    assert rec.log[:3] == ["connected", "ChannelVarset", "StasisStart"]
    assert "event filter failed" in caplog.text


async def test_no_event_filter_unless_asked(
    fake: FakeAri, client: AriClient, fake_time: FakeTime
) -> None:
    rec = Recorder()
    events = make_events(client, rec, fake_time)
    async with running(events):
        await rec.until(lambda: rec.log == ["connected"])
    assert fake.requests == []
