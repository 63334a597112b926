"""Calls under stress: early media, channel variables, a graceful stop, a crash of the
service, and an Asterisk restart in the middle of a call."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from c2c_ari import localasterisk
from c2c_ari.app import STASIS, create_app
from c2c_ari.ari import AriClient, AriEvents
from c2c_ari.config import Settings
from c2c_ari.localasterisk import AriInfo
from tests.conftest import Api, sign_in
from tests.helpers.sipp import Sipp
from tests.integration.service import (
    CONTACT,
    EXTENSION_PORT,
    PHONE_PORT,
    TRUNK_PORT,
    ari_get,
    connect,
    history,
    nothing_left,
)
from tests.test_service_process import CLI, _free_port, _http, create_account

pytestmark = pytest.mark.asterisk


async def test_early_media_bridges_the_first_leg_before_dialling(
    service: Api, sipp: Callable[..., Sipp], asterisk: AriInfo
) -> None:
    sipp("uas_answer.xml", EXTENSION_PORT)
    trunk = sipp("uas_ring_no_answer.xml", TRUNK_PORT)
    c2c = await service.create(extension="1001", timeout=3,
                               media={"ignore_early_media": False})
    status, body, _ = await connect(service, c2c["id"])
    assert status == 202
    call_id = body["data"]["outbound_call_id"]
    await asyncio.to_thread(trunk.wait_for_invite, 10)
    # While the contact still rings, both legs already share the call's bridge, so the
    # extension hears whatever the far end plays before answering.
    bridges = await ari_get(asterisk, "/bridges")
    assert [sorted(b["channels"]) for b in bridges if b["id"] == f"{call_id}-bridge"] == [
        [f"{call_id}-contact", f"{call_id}-ext"]]
    ringing = await ari_get(asterisk, f"/channels/{call_id}-contact")
    assert ringing["state"] != "Up"
    (item,) = await history(service, c2c["id"])
    assert (item["result"], item["cause"], item["failed_leg"]) == (
        "error", "NO_ANSWER", "contact")


async def test_a_call_whose_legs_move_into_another_application_is_left_to_it(
    service: Api, sipp: Callable[..., Sipp], asterisk: AriInfo
) -> None:
    """What an instance cut off from the database sees when another one, taking it for
    gone, adopts its bridged call: the legs move into the other's application. It must let
    the call go without hanging anything up (it used to take the move for a hang-up)."""
    agent = sipp("uas_answer.xml", EXTENSION_PORT)
    sipp("uas_answer.xml", TRUNK_PORT)
    c2c = await service.create(extension="1001")
    status, body, _ = await connect(service, c2c["id"], blocking=True)
    assert (status, body["data"]["result"]) == (200, "success")
    call_id = body["data"]["call_id"]

    taker = AriClient(asterisk.url, asterisk.user, asterisk.password, app="c2c-test-taker")

    async def ignore(_event: dict) -> None:
        pass

    events = AriEvents(taker, on_event=ignore)
    await events.start()
    try:
        await asyncio.wait_for(events.wait_connected(), 10)
        for leg in ("contact", "ext"):
            assert await taker.move(f"{call_id}-{leg}", "c2c-test-taker")
        stasis = service.client.app[STASIS]
        for _ in range(100):  # the service lets the call go a moment after the move
            if stasis.calls.get(call_id) is None:
                break
            await asyncio.sleep(0.1)
        assert stasis.calls.get(call_id) is None
        # Both legs still up and bridged, the agent never hung up.
        bridge = await ari_get(asterisk, f"/bridges/{call_id}-bridge")
        assert sorted(bridge["channels"]) == [f"{call_id}-contact", f"{call_id}-ext"]
        # The agent's dialog got no BYE (others' BYEs may still be resent to this port).
        sip_call_id = (await taker.get_variable(f"{call_id}-ext", "CHANNEL(pjsip,call-id)"))
        assert sip_call_id in {invite.call_id for invite in agent.invites()}
        assert sip_call_id not in {bye.call_id for bye in agent.received("BYE")}
    finally:
        for leg in ("contact", "ext"):
            await taker.hangup(f"{call_id}-{leg}")
        await taker.destroy_bridge(f"{call_id}-bridge")
        await events.stop()
        await taker.close()


async def test_custom_application_vars_become_channel_variables(
    service: Api, sipp: Callable[..., Sipp], asterisk: AriInfo
) -> None:
    sipp("uas_answer.xml", EXTENSION_PORT)
    sipp("uas_answer.xml", TRUNK_PORT)
    c2c = await service.create(extension="1001", custom_application_vars={"campaign": "spring"})
    status, body, _ = await connect(service, c2c["id"], blocking=True,
                                    custom_application_vars={"ref": "42"})
    assert (status, body["data"]["result"]) == (200, "success")
    channel = f"{body['data']['call_id']}-contact"
    for name, value in (("CAV_campaign", "spring"), ("CAV_ref", "42"),
                        ("C2C_CALL_ID", body["data"]["call_id"])):
        answer = await ari_get(asterisk, f"/channels/{channel}/variable?variable={name}")
        assert answer["value"] == value
    # Both parties still talking; the fixture's teardown (a graceful stop) must hang up.


async def test_graceful_stop_hangs_up_and_records_calls_in_flight(
    aiohttp_client, asterisk: AriInfo, sipp: Callable[..., Sipp], tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    agent = sipp("uas_answer.xml", EXTENSION_PORT)
    sipp("uas_answer.xml", TRUNK_PORT)
    settings = Settings(data_dir=tmp_path, ari_url=asterisk.url, ari_user=asterisk.user,
                        ari_password=asterisk.password)
    client = await aiohttp_client(create_app(settings))
    await asyncio.wait_for(client.app[STASIS].events.wait_connected(), 20)
    api = await sign_in(client)
    c2c = await api.create(extension="1001")
    status, body, _ = await connect(api, c2c["id"], blocking=True)
    assert (status, body["data"]["result"]) == (200, "success")
    await client.close()

    assert await nothing_left(asterisk) == ([], [])
    await asyncio.to_thread(agent.wait_for_request, "BYE")
    restarted = await aiohttp_client(create_app(
        Settings(data_dir=tmp_path, ari_url="off")))
    api.client = restarted
    (item,) = await history(api, c2c["id"], wait=0)
    assert (item["result"], item["cause"]) == ("error", "SERVICE_STOPPED")
    assert "answered_at" in item and "ended_at" in item


@pytest.fixture
def service_process(asterisk: AriInfo, tmp_path: Path) -> Iterator[Callable[[], subprocess.Popen]]:
    """Start `c2c-ari serve` as its own process (as often as a test likes); all stopped after."""
    procs: list[subprocess.Popen] = []
    port = _free_port()
    env = {**os.environ, "C2C_ARI_URL": asterisk.url, "C2C_ARI_USER": asterisk.user,
           "C2C_ARI_PASSWORD": asterisk.password, "C2C_ARI_PORT": str(port),
           "C2C_ARI_DATA_DIR": str(tmp_path)}

    def start() -> subprocess.Popen:
        proc = subprocess.Popen([*CLI, "serve"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        procs.append(proc)
        deadline = time.monotonic() + 30
        while True:
            try:
                _http("GET", f"http://127.0.0.1:{port}/v2/schemas")
                return proc
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the service did not start") from None
                time.sleep(0.1)

    start.port = port  # type: ignore[attr-defined]
    start.env = env  # type: ignore[attr-defined]
    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=15)


def _started_with_a_clicktocall(
    service_process: Callable[[], subprocess.Popen]
) -> tuple[subprocess.Popen, str, str, str]:
    """An account made with the CLI, the service started, signed in, and a click-to-call to
    extension 1001: the process, the token, the collection's URL and the click-to-call id."""
    account = create_account(service_process.env)  # type: ignore[attr-defined]
    url = f"http://127.0.0.1:{service_process.port}"  # type: ignore[attr-defined]
    first = service_process()
    token = _http("PUT", f"{url}/v2/api_auth", {"api_key": account["api_key"]})[1]["auth_token"]
    base = f"{url}/v2/accounts/{account['account_id']}/clicktocall"
    c2c_id = _http("PUT", base, {"name": "S", "extension": "1001"}, token)[1]["data"]["id"]
    return first, token, base, c2c_id


def test_after_a_crash_the_next_start_takes_the_calls_over(
    service_process: Callable[[], subprocess.Popen], sipp: Callable[..., Sipp],
    asterisk: AriInfo,
) -> None:
    """SIGKILL with one call bridged and one still ringing: the next start adopts the
    bridged one (it goes on, and can be hung up through the API) and records the ringing
    one; each has exactly one history item."""
    sipp("uas_answer.xml", EXTENSION_PORT)
    sipp("uas_answer.xml", TRUNK_PORT)
    ringing_agent = sipp("uas_ring_no_answer.xml", 5072)
    first, token, base, c2c_id = _started_with_a_clicktocall(service_process)
    status, body = _http("POST", f"{base}/{c2c_id}/connect",
                         {"contact": CONTACT, "blocking": True}, token)
    assert (status, body["data"]["result"]) == (200, "success")
    call_id = body["data"]["call_id"]
    ringing_c2c = _http("PUT", base, {"name": "R", "extension": "1002", "timeout": 60},
                        token)[1]["data"]["id"]
    status, body = _http("POST", f"{base}/{ringing_c2c}/connect", {"contact": CONTACT}, token)
    assert status == 202
    ringing_id = body["data"]["outbound_call_id"]
    ringing_agent.wait_for_invite()
    # Bridged: the call is in history already, while it is up.
    (live,) = _http("GET", f"{base}/{c2c_id}/history", token=token)[1]["data"]
    assert (live["call_id"], live["result"]) == (call_id, "success")
    assert "ended_at" not in live and "answered_at" in live

    first.send_signal(signal.SIGKILL)
    first.wait()
    channels, _ = asyncio.run(nothing_left(asterisk))
    assert {c["id"] for c in channels} == {f"{call_id}-ext", f"{call_id}-contact",
                                           f"{ringing_id}-ext"}

    service_process()
    call_url = f"{base}/{c2c_id}/calls/{call_id}"
    deadline = time.monotonic() + 20
    while True:  # adopted: this instance reports the legs' own states again
        status, body = _http("GET", call_url, token=token)
        if (status == 200 and body["data"].get("legs")) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert body["data"]["state"] == "bridged", body
    (ringing,) = _http("GET", f"{base}/{ringing_c2c}/history", token=token)[1]["data"]
    assert (ringing["call_id"], ringing["result"], ringing["cause"]) == (
        ringing_id, "error", "SERVICE_RESTART")
    ringing_agent.wait_for_request("CANCEL")

    status, body = _http("DELETE", call_url, token=token)
    assert status == 200
    assert (body["data"]["result"], body["data"]["hangup_cause"]) == (
        "success", "HANGUP_REQUESTED")
    # Still exactly one item: the same one, completed.
    (item,) = _http("GET", f"{base}/{c2c_id}/history", token=token)[1]["data"]
    assert (item["call_id"], item["result"]) == (call_id, "success")
    assert item["ended_at"] >= item["answered_at"] == live["answered_at"]
    assert asyncio.run(nothing_left(asterisk)) == ([], [])


def test_a_phone_call_while_the_service_restarts_waits_for_it(
    service_process: Callable[[], subprocess.Popen], sipp: Callable[..., Sipp],
    asterisk: AriInfo,
) -> None:
    """The dialplan retries entering the application for a few seconds: a phone that dials
    the feature code while no service instance reads it (a restart, or another instance
    taking the name over) is connected once one does."""
    trunk = sipp("uas_answer_then_bye.xml", TRUNK_PORT, duration_ms=500)
    first, token, base, c2c_id = _started_with_a_clicktocall(service_process)
    first.send_signal(signal.SIGKILL)
    first.wait()

    phone = sipp("uac_call.xml", PHONE_PORT, remote="127.0.0.1:5060",
                 service=f"*77*{c2c_id}*{CONTACT}", duration_ms=3000, max_calls=1,
                 keys={"from_user": "1001"})
    deadline = time.monotonic() + 10
    while not asyncio.run(ari_get(asterisk, "/channels")):  # the phone is in the dialplan
        assert time.monotonic() < deadline, "the phone's call never reached Asterisk"
        time.sleep(0.05)
    service_process()
    invite = trunk.wait_for_invite(15)
    assert invite.request_user == CONTACT
    deadline = time.monotonic() + 15
    while True:
        items = _http("GET", f"{base}/{c2c_id}/history", token=token)[1]["data"]
        if items or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert [(i["trigger"], i["result"]) for i in items] == [("dialplan", "success")]
    phone.stop()


async def _asterisk_goes_away_during_a_call(
    service: Api, sipp: Callable[..., Sipp], take_asterisk_away: Callable[[], None]
) -> dict:
    """Bridge a call, let `take_asterisk_away` (in a thread) stop or kill and start Asterisk
    again, wait until the service has reconnected by itself, and check that the next connect
    works. Returns the interrupted call's history item."""
    if os.environ.get("C2C_ARI_URL"):
        pytest.skip("needs the local Asterisk, which the test stops")
    sipp("uas_answer.xml", EXTENSION_PORT)
    sipp("uas_answer.xml", TRUNK_PORT)
    c2c = await service.create(extension="1001")
    status, body, _ = await connect(service, c2c["id"], blocking=True)
    assert (status, body["data"]["result"]) == (200, "success")
    events = service.client.app[STASIS].events
    before = events.connections

    await asyncio.to_thread(take_asterisk_away)

    deadline = time.monotonic() + 30
    while events.connections == before or not events.connected:
        assert time.monotonic() < deadline, "the service did not reconnect to ARI"
        await asyncio.sleep(0.1)
    (item,) = await history(service, c2c["id"])
    assert item["call_id"] == body["data"]["call_id"]
    status, body, _ = await connect(service, c2c["id"], blocking=True)
    assert (status, body["data"]["result"]) == (200, "success")
    return item


async def test_asterisk_restart_during_a_call(
    service: Api, sipp: Callable[..., Sipp]
) -> None:
    item = await _asterisk_goes_away_during_a_call(
        service, sipp, lambda: localasterisk.ensure_running(restart=True))
    assert (item["result"], item["cause"]) == ("error", "ASTERISK_SHUTDOWN")


def _kill_and_start_asterisk() -> None:
    pid = localasterisk.running_pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while localasterisk.running_pid() is not None:
        assert time.monotonic() < deadline, "Asterisk survived SIGKILL"
        time.sleep(0.05)
    localasterisk.ensure_running()


async def test_asterisk_crash_during_a_call_is_found_by_the_resync(
    service: Api, sipp: Callable[..., Sipp]
) -> None:
    # A killed Asterisk sends no events at all: only the re-sync after reconnecting can tell.
    item = await _asterisk_goes_away_during_a_call(service, sipp, _kill_and_start_asterisk)
    assert (item["result"], item["cause"]) == ("error", "CHANNEL_LOST")
