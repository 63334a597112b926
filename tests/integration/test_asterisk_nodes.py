"""Several local Asterisk nodes from the one chroot (`c2c-ari asterisk up --nodes N`): a second
node answers on its own ports with its own identity, places calls through the same dialplan
and endpoints, and stops again without disturbing node 1."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from c2c_ari import localasterisk
from c2c_ari.localasterisk import AriInfo
from tests.helpers.sipp import Sipp
from tests.integration.test_asterisk_smoke import raw_ari

pytestmark = pytest.mark.asterisk


async def _info(info: AriInfo) -> dict[str, Any]:
    async with raw_ari(info, f"c2c-ari-nodes-{uuid.uuid4().hex[:8]}") as ari:
        status, body = await ari.request("GET", "/asterisk/info")
    assert status == 200, body
    return body


async def test_second_node_has_its_own_identity_ports_and_calls(
        asterisk: AriInfo, second_node: AriInfo, sipp: Callable[..., Sipp]) -> None:
    node2 = localasterisk.Node(2)
    assert (second_node.node, second_node.url) == (2, node2.url)
    assert second_node.url != asterisk.url
    first, second = await _info(asterisk), await _info(second_node)
    assert (first["config"]["name"], second["config"]["name"]) == ("node1", "node2")
    assert first["system"]["entity_id"] != second["system"]["entity_id"]
    assert second["system"]["entity_id"] == node2.entity_id
    assert [i.node for i in localasterisk.read_nodes()] == [1, 2]

    # The shipped endpoints work on node 2 as on node 1: agent 1001 is SIPp on 5071.
    peer = sipp("uas_answer.xml", 5071)
    async with raw_ari(second_node, f"c2c-ari-nodes-{uuid.uuid4().hex[:8]}") as ari, \
            raw_ari(asterisk, f"c2c-ari-nodes-{uuid.uuid4().hex[:8]}") as ari1:
        channel_id = await ari.originate("PJSIP/1001", timeout="10")
        start = await ari.event("StasisStart", channel_id)
        assert start["channel"]["state"] == "Up"
        invite = await asyncio.to_thread(peer.wait_for_invite)
        # Sent by node 2: its SIP port in Via, an RTP port of its own range in the offer.
        assert f"127.0.0.1:{node2.sip_port}" in (invite.header("Via") or ""), invite.raw
        media = re.search(r"(?m)^m=audio (\d+) ", invite.body)
        assert media and node2.rtp_range, invite.body
        assert node2.rtp_range[0] <= int(media[1]) <= node2.rtp_range[1]
        assert await ari1.ids() == set()  # node 1 never saw the call
        status, _ = await ari.request("DELETE", f"/channels/{channel_id}")
        assert status == 204
        await ari.event("ChannelDestroyed", channel_id)
        await asyncio.to_thread(peer.wait_for_request, "BYE")
        await ari.assert_nothing_left()

    # Stopping node 2 leaves node 1 running, as the test session expects.
    assert localasterisk.stop(node=2) is True
    assert localasterisk.running_pid(2) is None
    assert [i.node for i in localasterisk.read_nodes()] == [1]
    assert (await _info(asterisk))["config"]["name"] == "node1"
