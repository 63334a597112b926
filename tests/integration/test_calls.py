"""Click-to-calls placed by the service through a real Asterisk 22, with SIPp as the agent's
phone (extension 1001 on 127.0.0.1:5071) and as the carrier trunk (127.0.0.1:5080)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from c2c_ari.api import clicktocall as clicktocall_api
from c2c_ari.app import STASIS, create_app
from c2c_ari.config import Settings
from c2c_ari.localasterisk import AriInfo
from tests.conftest import Api, sign_in
from tests.helpers.sipp import Sipp
from tests.integration.service import (
    CONTACT,
    EXTENSION_PORT,
    PHONE_PORT,
    TRUNK_PORT,
    connect,
    history,
    nothing_left,
)

pytestmark = pytest.mark.asterisk

async def test_extension_first_success(service: Api, sipp: Callable[..., Sipp]) -> None:
    agent = sipp("uas_answer.xml", EXTENSION_PORT, duration_ms=200)
    trunk = sipp("uas_answer_then_bye.xml", TRUNK_PORT, duration_ms=1000)
    c2c = await service.create(
        name="Sales Line", extension="1001",
        custom_sip_headers={"X-C2C": "hello-world"},
        outbound_callee_id_name="ACME Sales", outbound_callee_id_number="+15550001111",
    )
    status, body, _ = await connect(service, c2c["id"], blocking=True)
    assert status == 200, body
    assert body["data"]["result"] == "success"
    call_id = body["data"]["call_id"]
    assert call_id.startswith(f"c2c-{c2c['id']}-")

    to_agent = agent.wait_for_invite()
    to_contact = trunk.wait_for_invite()
    assert to_agent.timestamp <= to_contact.timestamp
    # Kazoo's caller ID rules: the agent sees the contact and the click-to-call's name...
    assert to_agent.from_user == CONTACT
    assert to_agent.from_display == "Sales Line"
    # ...the contact sees outbound_callee_id_*.
    assert to_contact.from_user == "+15550001111"
    assert to_contact.from_display == "ACME Sales"
    assert to_contact.request_user == CONTACT
    for invite in (to_agent, to_contact):
        assert invite.header("X-C2C") == "hello-world"

    # Listed as soon as it is bridged (Kazoo records setup's outcome), while it is up...
    (item,) = await history(service, c2c["id"])
    assert (item["call_id"], item["result"]) == (call_id, "success")
    assert "ended_at" not in item and "talk_duration" not in item
    # ...and the same item gains the end once the contact hangs up.
    deadline = time.monotonic() + 10
    while "ended_at" not in item and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        (item,) = await history(service, c2c["id"])
    assert item["call_id"] == call_id
    assert item["result"] == "success"
    assert item["contact"] == CONTACT
    assert item["trigger"] == "api" and item["authenticated"] is True
    assert item["talk_duration"] > 0.5
    assert item["ended_at"] >= item["answered_at"] >= item["timestamp"]


async def test_contact_first(service: Api, sipp: Callable[..., Sipp]) -> None:
    agent = sipp("uas_answer_then_bye.xml", EXTENSION_PORT, duration_ms=500)
    trunk = sipp("uas_answer.xml", TRUNK_PORT, duration_ms=100)
    c2c = await service.create(extension="1001", dial_first="contact")
    status, body, _ = await connect(service, c2c["id"], blocking="true")
    assert (status, body["data"]["result"]) == (200, "success"), body
    assert trunk.wait_for_invite().timestamp <= agent.wait_for_invite().timestamp
    (item,) = await history(service, c2c["id"])
    assert item["dial_first"] == "contact"


async def test_extension_not_answering(service: Api, sipp: Callable[..., Sipp]) -> None:
    agent = sipp("uas_ring_no_answer.xml", EXTENSION_PORT)
    trunk = sipp("uas_answer.xml", TRUNK_PORT)
    c2c = await service.create(extension="1001", timeout=2)
    status, body, _ = await connect(service, c2c["id"], blocking=True)
    assert status == 200
    item = body["data"]
    assert (item["result"], item["cause"], item["failed_leg"]) == (
        "error", "NO_ANSWER", "extension")
    agent.wait_for_request("CANCEL")
    assert trunk.invites() == []
    (stored,) = await history(service, c2c["id"])
    assert stored["call_id"] == item["call_id"]


async def test_contact_busy(service: Api, sipp: Callable[..., Sipp]) -> None:
    agent = sipp("uas_answer.xml", EXTENSION_PORT)
    sipp("uas_busy.xml", TRUNK_PORT)
    c2c = await service.create(extension="1001")
    status, body, _ = await connect(service, c2c["id"], blocking=True)
    item = body["data"]
    assert (status, item["result"], item["cause"], item["failed_leg"]) == (
        200, "error", "USER_BUSY", "contact")
    agent.wait_for_request("BYE")


async def test_refused_contacts_place_no_call(service: Api, sipp: Callable[..., Sipp]) -> None:
    agent = sipp("uas_answer.xml", EXTENSION_PORT)
    trunk = sipp("uas_answer_then_bye.xml", TRUNK_PORT, duration_ms=200)
    c2c = await service.create(extension="1001", whitelist=["^\\+1"])
    for contact in (CONTACT, "+1415&PJSIP/1002", "+1415555\r\n1234", "sip:x@evil"):
        status, _, _ = await connect(service, c2c["id"], contact)
        assert status == 400
    # Then a contact the whitelist allows. Had a refused connect placed a call, it would have
    # been dialled before this one: once this call has ended and is in history, the phones
    # and history have seen everything the refused ones could have caused.
    allowed = "+14155550100"
    status, body, _ = await connect(service, c2c["id"], allowed, blocking=True)
    assert (status, body["data"]["result"]) == (200, "success"), body
    items = await history(service, c2c["id"])
    assert [(item["call_id"], item["contact"]) for item in items] == [
        (body["data"]["call_id"], allowed)]
    for phone, dialled in ((agent, "from_user"), (trunk, "request_user")):
        invites = phone.invites()
        assert len({invite.call_id for invite in invites}) == 1, invites
        assert {getattr(invite, dialled) for invite in invites} == {allowed}


async def test_non_blocking_answers_202_with_plan(
    service: Api, sipp: Callable[..., Sipp]
) -> None:
    sipp("uas_answer.xml", EXTENSION_PORT, duration_ms=100)
    sipp("uas_answer_then_bye.xml", TRUNK_PORT, duration_ms=300)
    c2c = await service.create(extension="1001")
    status, body, _ = await connect(service, c2c["id"])
    assert status == 202
    plan = body["data"]
    assert plan["outbound_call_id"].startswith(f"c2c-{c2c['id']}-")
    assert plan["custom_channel_vars"]["from_uri"] == "1001@pbx.test"
    (item,) = await history(service, c2c["id"])
    assert item["call_id"] == plan["outbound_call_id"]


async def test_call_from_the_dialplan(service: Api, sipp: Callable[..., Sipp]) -> None:
    trunk = sipp("uas_answer_then_bye.xml", TRUNK_PORT, duration_ms=500)
    c2c = await service.create(
        extension="1001",
        custom_sip_headers={"in": {"X-From-Phone": "yes"}, "out": {"X-C2C": "out"}},
    )
    # Another phone than the click-to-call's extension uses its feature code: that phone is
    # the call's extension, in what the contact sees and in history.
    phone = sipp("uac_call.xml", PHONE_PORT, remote="127.0.0.1:5060",
                 service=f"*77*{c2c['id']}*{CONTACT}", duration_ms=5000, max_calls=1,
                 keys={"from_user": "1003"})
    # SIPp's waits block: in a thread, so the service (on this event loop) keeps running.
    invite = await asyncio.to_thread(trunk.wait_for_invite, 10)
    assert invite.request_user == CONTACT
    assert invite.from_user == "1003"
    # A call that came in from a phone carries the `in` headers as well as `out`.
    assert invite.header("X-From-Phone") == "yes"
    assert invite.header("X-C2C") == "out"
    (item,) = await history(service, c2c["id"])
    assert (item["trigger"], item["result"]) == ("dialplan", "success")
    assert item["contact"] == CONTACT
    assert item["extension"] == "1003"
    phone.stop()


async def test_dialplan_call_refused_by_the_whitelist(
    service: Api, sipp: Callable[..., Sipp]
) -> None:
    trunk = sipp("uas_answer.xml", TRUNK_PORT)
    c2c = await service.create(extension="1002", whitelist=["^\\+1"])
    phone = sipp("uac_call.xml", PHONE_PORT, remote="127.0.0.1:5060",
                 service=f"*77*{c2c['id']}*{CONTACT}", duration_ms=1000, max_calls=1,
                 keys={"from_user": "1002"})
    await asyncio.to_thread(phone.wait, 15)
    assert trunk.invites() == []
    assert await history(service, c2c["id"], wait=0) == []


async def test_live_status_and_hang_up_of_a_bridged_call(
    service: Api, sipp: Callable[..., Sipp]
) -> None:
    agent = sipp("uas_answer.xml", EXTENSION_PORT)
    contact = sipp("uas_answer.xml", TRUNK_PORT)
    c2c = await service.create(extension="1001")
    status, body, _ = await connect(service, c2c["id"], blocking=True)
    assert (status, body["data"]["result"]) == (200, "success")
    call = f"{service.base}/{c2c['id']}/calls/{body['data']['call_id']}"

    status, body, _ = await service.call("GET", call)
    assert status == 200
    assert body["data"]["state"] == "bridged"
    assert {role: leg["state"] for role, leg in body["data"]["legs"].items()} == {
        "extension": "Up", "contact": "Up"}

    status, body, _ = await service.call("DELETE", call)
    assert status == 200
    item = body["data"]
    assert (item["state"], item["result"], item["hangup_cause"]) == (
        "ended", "success", "HANGUP_REQUESTED")
    await asyncio.to_thread(agent.wait_for_request, "BYE")
    await asyncio.to_thread(contact.wait_for_request, "BYE")
    status, body, _ = await service.call("GET", call)
    assert (status, body["data"]["state"]) == (200, "ended")
    (stored,) = await history(service, c2c["id"])
    assert stored["call_id"] == item["call_id"]


async def test_hang_up_while_the_extension_rings(
    service: Api, sipp: Callable[..., Sipp]
) -> None:
    agent = sipp("uas_ring_no_answer.xml", EXTENSION_PORT)
    trunk = sipp("uas_answer.xml", TRUNK_PORT)
    c2c = await service.create(extension="1001", timeout=20)
    status, body, _ = await connect(service, c2c["id"])
    assert status == 202
    call = f"{service.base}/{c2c['id']}/calls/{body['data']['outbound_call_id']}"
    await asyncio.to_thread(agent.wait_for_invite, 10)
    status, body, _ = await service.call("GET", call)
    assert body["data"]["state"] == "dialing_first"

    status, body, _ = await service.call("DELETE", call)
    item = body["data"]
    assert (status, item["result"], item["cause"], item["failed_leg"]) == (
        200, "error", "HANGUP_REQUESTED", "extension")
    await asyncio.to_thread(agent.wait_for_request, "CANCEL")
    assert trunk.invites() == []


async def test_event_stream_follows_a_call_to_its_end(
    service: Api, sipp: Callable[..., Sipp]
) -> None:
    sipp("uas_answer.xml", EXTENSION_PORT, duration_ms=300)
    sipp("uas_answer_then_bye.xml", TRUNK_PORT, duration_ms=500)
    c2c = await service.create(extension="1001")
    status, body, _ = await connect(service, c2c["id"])
    assert status == 202
    call_id = body["data"]["outbound_call_id"]
    response = await service.client.get(
        f"{service.base}/{c2c['id']}/calls/{call_id}/events",
        headers={"X-Auth-Token": service.token})
    assert response.status == 200
    states = []
    async with asyncio.timeout(20):
        async for line in response.content:
            if line.startswith(b"data: "):
                states.append(json.loads(line[len(b"data: "):])["state"])
    # The stream may open after the first change of state; then every change, in order.
    assert states[-3:] == ["dialing_second", "bridged", "ended"]
    assert states == sorted(states, key=["dialing_first", "dialing_second", "bridged",
                                         "ended"].index)


async def test_event_stream_keeps_an_idle_connection_alive(
    service: Api, sipp: Callable[..., Sipp], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(clicktocall_api, "SSE_HEARTBEAT_SECONDS", 0.2)
    sipp("uas_answer.xml", EXTENSION_PORT)
    sipp("uas_answer_then_bye.xml", TRUNK_PORT, duration_ms=1500)
    c2c = await service.create(extension="1001")
    status, body, _ = await connect(service, c2c["id"], blocking=True)
    assert (status, body["data"]["result"]) == (200, "success")
    response = await service.client.get(
        f"{service.base}/{c2c['id']}/calls/{body['data']['call_id']}/events",
        headers={"X-Auth-Token": service.token})
    lines = []
    async with asyncio.timeout(20):
        async for line in response.content:
            lines.append(line.decode().rstrip("\n"))
    assert lines[0] == "retry: 2000"
    data = [json.loads(line[len("data: "):]) for line in lines if line.startswith("data: ")]
    assert [d["state"] for d in data] == ["bridged", "ended"]
    # While the call stayed bridged (about 1.5 s), comment lines kept the stream busy.
    between = lines[lines.index(next(x for x in lines if '"bridged"' in x)):]
    assert between.count(": keep-alive") >= 2


async def test_anonymous_connect_gets_a_token_for_its_call_only(
    service: Api, sipp: Callable[..., Sipp]
) -> None:
    sipp("uas_answer.xml", EXTENSION_PORT)
    sipp("uas_answer_then_bye.xml", TRUNK_PORT, duration_ms=300)
    c2c = await service.create(extension="1001", auth_required=False)
    status, body, _ = await service.call(
        "POST", f"{service.base}/{c2c['id']}/connect", {"contact": CONTACT}, token="")
    assert status == 202
    call_id, call_token = body["data"]["outbound_call_id"], body["data"]["call_token"]
    call = f"{service.base}/{c2c['id']}/calls/{call_id}"
    status, body, _ = await service.call("GET", call, token="",
                                         headers={"X-Call-Token": call_token})
    assert (status, body["data"]["call_id"]) == (200, call_id)
    status, _, _ = await service.call("GET", call, token="")
    assert status == 401
    (item,) = await history(service, c2c["id"])
    assert item["authenticated"] is False


async def test_above_the_admission_limit_nothing_is_dialled(
    aiohttp_client, asterisk: AriInfo, sipp: Callable[..., Sipp], tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    settings = Settings(data_dir=tmp_path, node="test", ari_url=asterisk.url,
                        ari_user=asterisk.user, ari_password=asterisk.password,
                        max_calls_in_setup=1)
    client = await aiohttp_client(create_app(settings))
    await asyncio.wait_for(client.app[STASIS].events.wait_connected(), 20)
    service = await sign_in(client, realm="pbx.test")
    agent = sipp("uas_ring_no_answer.xml", EXTENSION_PORT)
    trunk = sipp("uas_answer.xml", TRUNK_PORT)
    c2c = await service.create(extension="1001", timeout=30)
    status, body, _ = await connect(service, c2c["id"])
    assert status == 202
    first = body["data"]["outbound_call_id"]
    await asyncio.to_thread(agent.wait_for_invite, 10)  # the first call rings the agent
    # One call in setup is the limit: the next is refused before anything is dialled.
    status, body, response = await connect(service, c2c["id"])
    assert status == 503
    assert response.headers["Retry-After"] == "1"
    assert body["data"]["retry_after"] == 1
    status, _, _ = await service.call("DELETE", f"{service.base}/{c2c['id']}/calls/{first}")
    assert status == 200
    items = await history(service, c2c["id"])
    assert [item["call_id"] for item in items] == [first]  # the refused one is no attempt
    assert len(agent.invites()) == 1 and trunk.invites() == []
    # Its setup over, the next call is accepted.
    status, _, _ = await connect(service, c2c["id"])
    assert status == 202
    await client.close()
    assert await nothing_left(asterisk) == ([], [])
