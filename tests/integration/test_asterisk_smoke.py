"""Smoke tests of the local Asterisk with raw ARI (aiohttp) and SIPp peers.

They check what the service builds on: an originate reaches the right SIP peer with custom
headers and caller ID, answered legs enter the Stasis app, failures carry Asterisk's cause
codes, the dialplan feature code hands calls to the app, tones play, and nothing is left behind.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from c2c_ari import localasterisk
from c2c_ari.localasterisk import AriInfo
from c2c_ari.localasterisk.ids import ids_in
from tests.helpers.sipp import Sipp

pytestmark = pytest.mark.asterisk

# The app the dialplan (asterisk/extensions.conf) hands calls to. Tests that originate use an
# app of their own, so that they never take calls from, or give calls to, another client of
# the same Asterisk (a second websocket on one app name replaces the first: ApplicationReplaced).
DIALPLAN_APP = "c2c-ari"


class RawAri:
    """Just enough ARI for these tests: REST calls and the events of one app."""

    def __init__(self, info: AriInfo, session: aiohttp.ClientSession, app: str) -> None:
        self.base = info.ari_url
        self.app = app
        self.session = session
        self.events: list[dict[str, Any]] = []
        self.channels: list[str] = []  # originated here: hung up at teardown
        self.baseline: set[str] = set()
        self._reader: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        ws = await self.session.ws_connect(
            f"{self.base}/events", params={"app": self.app, "subscribeAll": "false"})
        self._ws = ws

        async def read() -> None:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    self.events.append(json.loads(msg.data))

        self._reader = asyncio.create_task(read())

    async def close(self) -> None:
        for channel_id in self.channels:
            await self.request("DELETE", f"/channels/{channel_id}")  # 404 if gone: fine
        await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        async with self.session.request(method, self.base + path, **kwargs) as resp:
            text = await resp.text()
            return resp.status, (json.loads(text) if text else None)

    async def originate(self, endpoint: str, **params: str) -> str:
        channel_id = params.pop("channelId", f"smoke-{uuid.uuid4().hex}")
        variables = params.pop("variables", None)
        self.channels.append(channel_id)
        query = {"endpoint": endpoint, "app": self.app, "channelId": channel_id, **params}
        body = {"variables": variables} if variables else None
        status, data = await self.request("POST", "/channels", params=query, json=body)
        assert status == 200, data
        return channel_id

    async def event(self, kind: str, channel_id: str | None = None,
                    within: float = 10.0) -> dict[str, Any]:
        """The first event of this type (for this channel) received so far or `within` s."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            for ev in self.events:
                if ev.get("type") == kind and (
                        channel_id is None or ev.get("channel", {}).get("id") == channel_id):
                    return ev
            if loop.time() > deadline:
                seen = [(e.get("type"), e.get("channel", {}).get("id")) for e in self.events]
                raise AssertionError(f"no {kind} for {channel_id} within {within} s; saw {seen}")
            await asyncio.sleep(0.01)

    async def ids(self) -> set[str]:
        _, channels = await self.request("GET", "/channels")
        _, bridges = await self.request("GET", "/bridges")
        return {f"channel {c['id']}" for c in channels} | {f"bridge {b['id']}" for b in bridges}

    async def assert_nothing_left(self, within: float = 5.0) -> None:
        """GET /channels and /bridges hold nothing this test made.

        On an Asterisk of its own they are simply empty; `baseline` (what existed when the test
        began) only matters when an Asterisk from C2C_ARI_URL also serves something else.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            left = await self.ids() - self.baseline
            if not left:
                return
            if loop.time() > deadline:
                raise AssertionError(f"left behind: {sorted(left)}")
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def raw_ari(info: AriInfo, app: str) -> AsyncIterator[RawAri]:
    token = base64.b64encode(f"{info.user}:{info.password}".encode()).decode()
    async with aiohttp.ClientSession(headers={"Authorization": f"Basic {token}"}) as session:
        client = RawAri(info, session, app)
        client.baseline = await client.ids()
        await client.connect()
        try:
            yield client
        finally:
            await client.close()


@pytest.fixture
async def ari(asterisk: AriInfo) -> AsyncIterator[RawAri]:
    """ARI with the events of an app of this test's own."""
    async with raw_ari(asterisk, f"c2c-ari-smoke-{uuid.uuid4().hex[:8]}") as client:
        yield client


@pytest.fixture
async def dialplan_ari(asterisk: AriInfo) -> AsyncIterator[RawAri]:
    """ARI with the events of the app the dialplan's feature code enters."""
    async with raw_ari(asterisk, DIALPLAN_APP) as client:
        yield client


async def test_originate_sends_custom_header_and_enters_stasis(
        ari: RawAri, sipp: Callable[..., Sipp]) -> None:
    peer = sipp("uas_answer.xml", 5071)  # agent 1001
    channel_id = await ari.originate(
        "PJSIP/1001", appArgs="smoke", callerId='"Alice Example" <5551234>', timeout="10",
        variables={"PJSIP_HEADER(add,X-C2C)": "hello"})

    start = await ari.event("StasisStart", channel_id)
    assert start["args"] == ["smoke"]
    assert start["channel"]["state"] == "Up"

    invite = await asyncio.to_thread(peer.wait_for_invite)
    assert invite.header("X-C2C") == "hello"
    assert invite.from_display == "Alice Example"
    assert invite.from_user == "5551234"
    assert invite.request_user == "1001"
    assert any("X-C2C:hello" in line.replace(" ", "") for line in peer.actions())

    status, _ = await ari.request("DELETE", f"/channels/{channel_id}")
    assert status == 204
    await ari.event("ChannelDestroyed", channel_id)
    await asyncio.to_thread(peer.wait_for_request, "BYE")
    await ari.assert_nothing_left()


async def test_busy_peer_gives_cause_17(ari: RawAri, sipp: Callable[..., Sipp]) -> None:
    sipp("uas_busy.xml", 5072)  # agent 1002
    channel_id = await ari.originate("PJSIP/1002", timeout="10")
    destroyed = await ari.event("ChannelDestroyed", channel_id)
    assert destroyed["cause"] == 17, destroyed  # USER_BUSY
    assert not [e for e in ari.events if e["type"] == "StasisStart"]
    await ari.assert_nothing_left()


async def test_unanswered_peer_is_cancelled_at_originate_timeout(
        ari: RawAri, sipp: Callable[..., Sipp]) -> None:
    peer = sipp("uas_ring_no_answer.xml", 5073)  # agent 1003
    channel_id = await ari.originate("PJSIP/1003", timeout="1")
    destroyed = await ari.event("ChannelDestroyed", channel_id, within=5)
    assert destroyed["cause"] == 19, destroyed  # NO_ANSWER
    await asyncio.to_thread(peer.wait_for_request, "CANCEL")
    await ari.assert_nothing_left()


async def test_reject_with_any_status(ari: RawAri, sipp: Callable[..., Sipp]) -> None:
    # The phone rings briefly before it rejects, as phones do. The originate's timeout is far
    # past the wait, so a final response that Asterisk did not act on fails here instead of
    # passing as a ring-out: 480 and a timeout are both cause 19 NO_ANSWER.
    for status_line, cause in (("480 Temporarily Unavailable", 19),  # NO_ANSWER
                               ("603 Decline", 21)):  # CALL_REJECTED
        peer = sipp("uas_reject.xml", 5074, duration_ms=200,  # agent 1004
                    replace={"480 Temporarily Unavailable": status_line})
        channel_id = await ari.originate("PJSIP/1004", timeout="30")
        await asyncio.to_thread(peer.wait_for_request, "ACK", 10)  # Asterisk took the answer
        destroyed = await ari.event("ChannelDestroyed", channel_id)
        assert destroyed["cause"] == cause, (status_line, destroyed)
        await ari.assert_nothing_left()
        peer.stop()


async def test_trunk_dials_the_number_and_tones_play(
        ari: RawAri, sipp: Callable[..., Sipp]) -> None:
    peer = sipp("uas_answer.xml", 5080)  # the trunk to the contacts
    channel_id = await ari.originate("PJSIP/+15551234567@trunk", callerId='"Sales" <1001>')
    await ari.event("StasisStart", channel_id)
    invite = await asyncio.to_thread(peer.wait_for_invite)
    assert invite.request_user == "+15551234567"
    assert invite.from_display == "Sales"

    # Ringback from indications.conf and music on hold from the shipped files.
    status, playback = await ari.request(
        "POST", f"/channels/{channel_id}/play", params={"media": "tone:ring"})
    assert status == 201, playback
    started = await ari.event("PlaybackStarted")
    assert started["playback"]["media_uri"] == "tone:ring"
    status, _ = await ari.request("DELETE", f"/playbacks/{playback['id']}")
    assert status == 204
    finished = await ari.event("PlaybackFinished")
    assert finished["playback"]["state"] == "done"  # "failed" when there is no tone zone
    status, _ = await ari.request("POST", f"/channels/{channel_id}/moh")
    assert status == 204
    status, _ = await ari.request("DELETE", f"/channels/{channel_id}/moh")
    assert status == 204

    await ari.request("DELETE", f"/channels/{channel_id}")
    await ari.event("ChannelDestroyed", channel_id)
    await ari.assert_nothing_left()


async def test_peer_hangs_up(ari: RawAri, sipp: Callable[..., Sipp]) -> None:
    peer = sipp("uas_answer_then_bye.xml", 5071, duration_ms=300)
    channel_id = await ari.originate("PJSIP/1001")
    await ari.event("StasisStart", channel_id)
    destroyed = await ari.event("ChannelDestroyed", channel_id)
    # A plain BYE from the peer (no Reason header): Asterisk 22.10 reports cause 0 "Unknown",
    # not 16 NORMAL_CLEARING, and ChannelHangupRequest carries no cause. Count both as normal.
    assert destroyed["cause"] in (0, 16), destroyed
    await asyncio.to_thread(peer.wait_for_response, 200)
    await ari.assert_nothing_left()


async def test_feature_code_hands_the_call_to_the_app(
        dialplan_ari: RawAri, sipp: Callable[..., Sipp]) -> None:
    ari = dialplan_ari
    c2c_id = uuid.uuid4().hex
    phone = sipp("uac_call.xml", 5090, remote="127.0.0.1:5060", service=f"*77*{c2c_id}*5551234",
                 keys={"from_user": "1003"}, max_calls=1, duration_ms=300)
    start = await ari.event("StasisStart")
    assert start["args"] == ["dialplan", c2c_id, "5551234"]
    assert start["channel"]["caller"]["number"] == "1003"
    status, _ = await ari.request("POST", f"/channels/{start['channel']['id']}/answer")
    assert status == 204
    assert await asyncio.to_thread(phone.wait, 10) == 0, phone.errors()
    # Leaving Stasis, the channel goes back to the dialplan (Hangup): the app sees StasisEnd.
    await ari.event("StasisEnd", start["channel"]["id"])
    await ari.assert_nothing_left()


@pytest.mark.parametrize("dialled", ["*77*abc*555,1234", "*77*abc", "*77*ab-c*5551234"])
async def test_feature_code_rejects_malformed_input(
        dialplan_ari: RawAri, sipp: Callable[..., Sipp], dialled: str) -> None:
    ari = dialplan_ari
    phone = sipp("uac_call.xml", 5091, remote="127.0.0.1:5060", service=dialled,
                 keys={"from_user": "1004"}, max_calls=1)
    await asyncio.to_thread(phone.wait, 10)
    final = await asyncio.to_thread(phone.wait_for, lambda m: (m.status or 0) >= 400)
    assert final.status == 484, final.start_line  # cause 28, INVALID_NUMBER_FORMAT
    assert not [e for e in ari.events if e["type"] == "StasisStart"]
    await ari.assert_nothing_left()


def test_asterisk_runs_as_no_user_or_group_of_the_host(asterisk: AriInfo) -> None:
    """The chroot's asterisk user has ids of its own: `ps` shows no host user (such as
    postgres) as Asterisk, and Asterisk cannot signal that user's processes."""
    if os.environ.get("C2C_ARI_URL", "").strip():
        pytest.skip("C2C_ARI_URL's Asterisk is not the local one")
    pid = localasterisk.running_pid()
    assert pid is not None
    status = Path(f"/proc/{pid}/status").read_text()
    ids = {kind: {int(n) for n in re.search(rf"(?m)^{kind}:\s+(.*)$", status)[1].split()}
           for kind in ("Uid", "Gid")}
    with open("/etc/passwd") as passwd, open("/etc/group") as group:
        host_uids, host_gids = ids_in(passwd.read()), ids_in(group.read())
    assert ids["Uid"] and not ids["Uid"] & host_uids, (ids, sorted(host_uids))
    assert ids["Gid"] and not ids["Gid"] & host_gids, (ids, sorted(host_gids))
