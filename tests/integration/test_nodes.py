"""One service instance placing calls on two real Asterisk nodes (local nodes 1 and 2, their
own SIP ports and identities): calls spread over both; a node that stops, dies or freezes
gets no new calls and its calls end with a cause that says what happened; a node that
comes back gets calls again; a phone's call stays on the node it came in on."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from c2c_ari import localasterisk
from c2c_ari.localasterisk import AriInfo
from tests.helpers.sipp import Sipp
from tests.integration.processes import Cluster, Instance, cluster, wait_for
from tests.integration.service import CONTACT, PHONE_PORT, TRUNK_PORT, nothing_left

pytestmark = pytest.mark.asterisk

RINGING_AGENT_PORT = 5072  # extension 1002
NODE1_SIP, NODE2_SIP = localasterisk.Node(1).sip_port, localasterisk.Node(2).sip_port


def _node_url(name: str, info: AriInfo) -> str:
    scheme, _, host = info.url.partition("://")
    return f"{name}={scheme}://{info.user}:{info.password}@{host}"


@pytest.fixture
def nodes(asterisk: AriInfo, second_node: AriInfo, tmp_path: Path) -> Iterator[Cluster]:
    """A cluster of one instance's worth on SQLite, reaching node1 and node2; when the
    test is over, nothing of its calls is left in either node that still runs."""
    env = {"C2C_ARI_NODES": ",".join([_node_url("node1", asterisk),
                                      _node_url("node2", second_node)])}
    yield from cluster(str(tmp_path / "c2c.sqlite3"), env, tmp_path)
    for info in (asterisk, second_node):
        if localasterisk.running_pid(info.node) is not None:
            assert asyncio.run(nothing_left(info)) == ([], []), f"node {info.node}"


def _start(found: Cluster) -> tuple[Instance, str]:
    service = found.add("one").start()
    found.sign_in(service)
    status, body = service.api("PUT", found.base, {"name": "R", "extension": "1002",
                                                   "timeout": 60}, found.token)
    assert status == 201, body
    wait_for(lambda: _available(service) == {"node1": 1.0, "node2": 1.0}, "both nodes fit")
    return service, body["data"]["id"]


def _available(service: Instance) -> dict[str, float]:
    return {node: service.metric_labelled("c2c_node_available", "node", node)
            for node in ("node1", "node2")}


def _connect(found: Cluster, service: Instance, c2c_id: str) -> str:
    status, body = service.api("POST", f"{found.base}/{c2c_id}/connect",
                               {"contact": CONTACT}, found.token)
    assert status == 202, body
    return str(body["data"]["outbound_call_id"])


def _status(found: Cluster, service: Instance, c2c_id: str, call_id: str) -> dict:
    status, body = service.api("GET", f"{found.base}/{c2c_id}/calls/{call_id}",
                               token=found.token)
    assert status == 200, body
    return dict(body["data"])


def _items(found: Cluster, service: Instance, c2c_id: str) -> dict[str, dict]:
    status, body = service.api("GET", f"{found.base}/{c2c_id}/history", token=found.token)
    assert status == 200, body
    items = list(body["data"])
    assert len({i["call_id"] for i in items}) == len(items), "one item per call"
    return {i["call_id"]: i for i in items}


def _sent_by(invite_via: str | None) -> str:
    """Which node sent an INVITE, from the SIP port in its Via."""
    via = invite_via or ""
    return ("node1" if f":{NODE1_SIP}" in via else "node2" if f":{NODE2_SIP}" in via
            else f"unknown ({via})")


def _ring(found: Cluster, service: Instance, c2c_id: str, agent: Sipp,
          count: int) -> dict[str, str]:
    """`count` calls, each left ringing the agent; their nodes by call id."""
    before = len(agent.invites())
    calls = [_connect(found, service, c2c_id) for _ in range(count)]
    wait_for(lambda: len(agent.invites()) >= before + count, f"{count} INVITEs to the agent")
    return {call_id: _status(found, service, c2c_id, call_id)["node"] for call_id in calls}


def _hang_up_all(found: Cluster, service: Instance, c2c_id: str, calls: list[str]) -> None:
    for call_id in calls:
        status, body = service.api("DELETE", f"{found.base}/{c2c_id}/calls/{call_id}",
                                   token=found.token)
        assert status in (200, 404), body


def test_calls_spread_over_both_nodes_and_avoid_a_stopped_one(
    nodes: Cluster, sipp: Callable[..., Sipp]
) -> None:
    agent = sipp("uas_ring_no_answer.xml", RINGING_AGENT_PORT)
    service, c2c_id = _start(nodes)

    # Four calls at once: two on each node, each node sending its own INVITEs.
    first = _ring(nodes, service, c2c_id, agent, 4)
    assert Counter(first.values()) == {"node1": 2, "node2": 2}
    assert Counter(_sent_by(i.header("Via")) for i in agent.invites()) == {
        "node1": 2, "node2": 2}

    # Node 2 shuts down: its calls end as ASTERISK_SHUTDOWN, naming node 2; node 1's ring on.
    assert localasterisk.stop(node=2)
    on_node2 = [c for c, node in first.items() if node == "node2"]
    items = wait_for(lambda: (found := _items(nodes, service, c2c_id))
                     and all(c in found for c in on_node2) and found, "node 2's items")
    for call_id in on_node2:
        assert (items[call_id]["result"], items[call_id]["cause"], items[call_id]["node"]) == (
            "error", "ASTERISK_SHUTDOWN", "node2")
    assert not set(first) - set(on_node2) & set(items)

    # New calls go to node 1 only, although it has more calls in flight.
    wait_for(lambda: _available(service)["node2"] == 0.0, "node 2 reported unfit")
    second = _ring(nodes, service, c2c_id, agent, 2)
    assert set(second.values()) == {"node1"}

    # Node 2 back: it is the one with fewer calls, so it gets the next two.
    localasterisk.ensure_running(node=2)
    wait_for(lambda: _available(service)["node2"] == 1.0, "node 2 fit again")
    third = _ring(nodes, service, c2c_id, agent, 2)
    assert set(third.values()) == {"node2"}

    live = [c for c in [*first, *second, *third] if c not in on_node2]
    _hang_up_all(nodes, service, c2c_id, live)
    items = wait_for(lambda: (found := _items(nodes, service, c2c_id))
                     and len(found) == 8 and found, "eight items")
    assert Counter(i["cause"] for i in items.values()) == {
        "ASTERISK_SHUTDOWN": 2, "HANGUP_REQUESTED": 6}
    assert Counter(i["node"] for i in items.values()) == {"node1": 4, "node2": 4}


def test_a_killed_node_s_calls_end_as_lost_and_a_frozen_node_gets_no_new_calls(
    nodes: Cluster, sipp: Callable[..., Sipp], second_node: AriInfo
) -> None:
    agent = sipp("uas_ring_no_answer.xml", RINGING_AGENT_PORT)
    service, c2c_id = _start(nodes)

    # Frozen (SIGSTOP): its ARI stops answering, so it gets no new calls, though its
    # websocket's connection is still open; thawed, it takes calls again.
    pid = localasterisk.running_pid(2)
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_for(lambda: _available(service)["node2"] == 0.0, "the frozen node unfit")
        frozen = _ring(nodes, service, c2c_id, agent, 2)
        assert set(frozen.values()) == {"node1"}
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_for(lambda: _available(service)["node2"] == 1.0, "the thawed node fit")
    thawed = _ring(nodes, service, c2c_id, agent, 2)
    assert set(thawed.values()) == {"node2"}

    # Killed (SIGKILL): no shutdown to see, its events just stop; its calls end as lost
    # once it has been gone 5 s, and new calls go to node 1.
    os.kill(pid, signal.SIGKILL)
    items = wait_for(lambda: (found := _items(nodes, service, c2c_id))
                     and all(c in found for c in thawed) and found, "the lost calls' items",
                     timeout=30)
    for call_id in thawed:
        assert (items[call_id]["cause"], items[call_id]["node"]) == ("CHANNEL_LOST", "node2")
    after = _ring(nodes, service, c2c_id, agent, 1)
    assert set(after.values()) == {"node1"}
    _hang_up_all(nodes, service, c2c_id, [*frozen, *after])
    items = wait_for(lambda: (found := _items(nodes, service, c2c_id))
                     and len(found) == 5 and found, "five items")
    assert Counter(i["cause"] for i in items.values()) == {
        "CHANNEL_LOST": 2, "HANGUP_REQUESTED": 3}
    localasterisk.stop(node=2)  # the killed node's leftovers (pid file) cleared


def test_a_phone_s_call_stays_on_the_node_it_came_in_on(
    nodes: Cluster, sipp: Callable[..., Sipp]
) -> None:
    trunk = sipp("uas_answer_then_bye.xml", TRUNK_PORT, duration_ms=500)
    service, c2c_id = _start(nodes)
    for count, (node, port) in enumerate((("node2", NODE2_SIP), ("node1", NODE1_SIP)), 1):
        phone = sipp("uac_call.xml", PHONE_PORT, remote=f"127.0.0.1:{port}",
                     service=f"*77*{c2c_id}*{CONTACT}", duration_ms=1500, max_calls=1,
                     keys={"from_user": "1001"})
        invite = trunk.wait_for_invite(20, index=count - 1)
        assert invite.request_user == CONTACT
        assert _sent_by(invite.header("Via")) == node
        wait_for(lambda n=count: len(_items(nodes, service, c2c_id)) == n,  # type: ignore[misc]
                 f"the call from the phone on {node} in history")
        phone.stop()
    items = _items(nodes, service, c2c_id)
    assert sorted((i["trigger"], i["result"], i["node"]) for i in items.values()) == [
        ("dialplan", "success", "node1"), ("dialplan", "success", "node2")]


@pytest.fixture
def instances_on_nodes(postgres_url: str, asterisk: AriInfo, second_node: AriInfo,
                       tmp_path: Path) -> Iterator[Cluster]:
    env = {"C2C_ARI_NODES": ",".join([_node_url("node1", asterisk),
                                      _node_url("node2", second_node)])}
    yield from cluster(postgres_url, env, tmp_path)
    for info in (asterisk, second_node):
        assert asyncio.run(nothing_left(info)) == ([], []), f"node {info.node}"


def test_two_instances_share_two_nodes_and_adopt_each_other_s_calls_on_both(
    instances_on_nodes: Cluster, sipp: Callable[..., Sipp]
) -> None:
    found = instances_on_nodes
    sipp("uas_answer.xml", 5071)
    trunk = sipp("uas_answer.xml", TRUNK_PORT)
    a, b = found.add("a").start(), found.add("b").start()
    found.sign_in(a)
    status, body = a.api("PUT", found.base, {"name": "T", "extension": "1001"}, found.token)
    assert status == 201, body
    c2c_id = body["data"]["id"]
    for instance in (a, b):
        wait_for(lambda i=instance: _available(i) == {"node1": 1.0, "node2": 1.0},  # type: ignore[misc]
                 f"both nodes fit on {instance.name}")

    # Bridged calls, two through each instance: placement counts every instance's calls,
    # so the nodes end up with two each.
    placed: dict[str, tuple[Instance, str]] = {}
    for via in (a, a, b, b):
        status, body = via.api("POST", f"{found.base}/{c2c_id}/connect",
                               {"contact": CONTACT, "blocking": True}, found.token)
        assert (status, body["data"]["result"]) == (200, "success"), body
        call_id = body["data"]["call_id"]
        placed[call_id] = (via, _status(found, via, c2c_id, call_id)["node"])
    assert Counter(node for _, node in placed.values()) == {"node1": 2, "node2": 2}
    assert Counter(_sent_by(i.header("Via")) for i in trunk.invites()) == {
        "node1": 2, "node2": 2}

    # A dies; B adopts A's calls on whichever node each is, and reports them there.
    a.kill()
    for call_id, (via, node) in placed.items():
        if via is a:
            adopted = wait_for(lambda c=call_id: (s := _status(found, b, c2c_id, c)).get(  # type: ignore[misc]
                "legs") and s, f"the adoption of {call_id}")
            assert (adopted["state"], adopted["node"]) == ("bridged", node)
    for call_id in placed:
        status, body = b.api("DELETE", f"{found.base}/{c2c_id}/calls/{call_id}",
                             token=found.token)
        assert (status, body["data"]["hangup_cause"]) == (200, "HANGUP_REQUESTED"), body
    items = _items(found, b, c2c_id)
    assert {c: (i["result"], i["node"]) for c, i in items.items()} == {
        c: ("success", node) for c, (_, node) in placed.items()}
