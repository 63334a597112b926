"""What is accepted at save is what Asterisk dials and plays: a whitelisted SIP URI contact
reaches that URI, and every stored form of `ringback` is played to the first leg."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from c2c_ari.localasterisk import AriInfo
from tests.conftest import Api
from tests.helpers.sipp import Sipp
from tests.integration.service import (
    EXTENSION_PORT,
    TRUNK_PORT,
    ari_get,
    connect,
    history,
)

pytestmark = pytest.mark.asterisk

URI_PORT = 5081


async def test_a_sip_uri_contact_reaches_that_uri(
    service: Api, sipp: Callable[..., Sipp]
) -> None:
    agent = sipp("uas_answer.xml", EXTENSION_PORT, duration_ms=200)
    trunk = sipp("uas_answer.xml", TRUNK_PORT)
    far_end = sipp("uas_answer_then_bye.xml", URI_PORT, duration_ms=300)
    uri = f"sip:alice@127.0.0.1:{URI_PORT}"
    c2c = await service.create(whitelist=[f"^sip:alice@127\\.0\\.0\\.1:{URI_PORT}$"])
    status, body, _ = await connect(service, c2c["id"], uri, blocking=True)
    assert (status, body["data"]["result"]) == (200, "success"), body
    invite = far_end.wait_for_invite()
    assert invite.request_uri == uri
    assert agent.wait_for_invite().from_user == "alice"
    assert trunk.invites() == []
    (item,) = await history(service, c2c["id"])
    assert item["contact"] == uri


async def _playback_state(asterisk: AriInfo, playback_id: str, wait: float = 5) -> str:
    deadline = time.monotonic() + wait
    while True:
        found = await ari_get(asterisk, f"/playbacks/{playback_id}")
        if isinstance(found, dict) and found.get("state"):
            return str(found["state"])
        if time.monotonic() > deadline:
            return f"not found: {found}"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("ringback", ["%(2000,4000,440,480)", "440+480/2000,0/4000", "ring"])
async def test_each_ringback_form_is_played(
    service: Api, asterisk: AriInfo, sipp: Callable[..., Sipp], ringback: str
) -> None:
    sipp("uas_answer.xml", EXTENSION_PORT)
    trunk = sipp("uas_ring_no_answer.xml", TRUNK_PORT)
    c2c = await service.create(ringback=ringback, timeout=3)
    status, body, _ = await connect(service, c2c["id"])
    assert status == 202, body
    call_id = body["data"]["outbound_call_id"]
    # while the contact rings, the agent hears the tone (a playback Asterisk accepted)
    assert await _playback_state(asterisk, f"{call_id}-ringback") == "playing"
    (item,) = await history(service, c2c["id"])
    assert (item["result"], item["cause"], item["failed_leg"]) == (
        "error", "NO_ANSWER", "contact")
    assert len(trunk.invites()) == 1

