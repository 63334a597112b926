"""Several service instances on one PostgreSQL database and one real Asterisk: a killed
instance's calls are taken over by another (exactly one history item each), a call placed
through one instance is followed and hung up through another, a restarted instance touches
nothing of the others', and phones' calls keep working while the instance holding the
dialplan application dies."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from c2c_ari.cluster.membership import MAX_AGE
from c2c_ari.localasterisk import AriInfo
from tests.helpers.postgres import Outage
from tests.helpers.sipp import Sipp
from tests.helpers.tcp_proxy import TcpProxy
from tests.integration.processes import Cluster, Instance, cluster, wait_for
from tests.integration.service import (
    CONTACT,
    EXTENSION_PORT,
    PHONE_PORT,
    TRUNK_PORT,
    nothing_left,
)

pytestmark = pytest.mark.asterisk


@pytest.fixture
def instances(postgres_url: str, asterisk: AriInfo, tmp_path: Path) -> Iterator[Cluster]:
    ari = {"C2C_ARI_URL": asterisk.url, "C2C_ARI_USER": asterisk.user,
           "C2C_ARI_PASSWORD": asterisk.password}
    yield from cluster(postgres_url, ari, tmp_path)
    assert asyncio.run(nothing_left(asterisk)) == ([], [])


def _history(found: Cluster, via_index: int, c2c_id: str) -> list[dict]:
    status, body = found.instances[via_index].api("GET", f"{found.base}/{c2c_id}/history",
                                                   token=found.token)
    assert status == 200, body
    return list(body["data"])


def _completed_item(found: Cluster, c2c_id: str) -> dict:
    """The click-to-call's one history item, once it is complete (its call ended)."""
    wait_for(lambda: any("ended_at" in i for i in _history(found, 0, c2c_id)),
             "the call's item completed", timeout=30)
    (item,) = _history(found, 0, c2c_id)  # exactly one
    return item


def _bridged_call(via: Instance, found: Cluster, c2c_id: str) -> str:
    """A blocking connect through `via` that ends bridged; the call's id."""
    status, body = via.api("POST", f"{found.base}/{c2c_id}/connect",
                           {"contact": CONTACT, "blocking": True}, found.token)
    assert (status, body["data"]["result"]) == (200, "success")
    return str(body["data"]["call_id"])


def _bridged_and_ringing(found: Cluster, via: Instance, ringing_agent: Sipp
                         ) -> tuple[tuple[str, str], tuple[str, str]]:
    """Through `via`: a call bridged to agent 1001, and one ringing agent 1002 (for 60 s);
    the click-to-call id and the call id of each."""
    token, base = found.token, found.base
    talking = via.api("PUT", base, {"name": "T", "extension": "1001"}, token)[1]["data"]["id"]
    ringing = via.api("PUT", base, {"name": "R", "extension": "1002", "timeout": 60},
                      token)[1]["data"]["id"]
    bridged_id = _bridged_call(via, found, talking)
    status, body = via.api("POST", f"{base}/{ringing}/connect", {"contact": CONTACT}, token)
    assert status == 202, body
    ringing_agent.wait_for_invite()
    return (talking, bridged_id), (ringing, body["data"]["outbound_call_id"])


def test_a_killed_instance_s_calls_are_taken_over(
    instances: Cluster, sipp: Callable[..., Sipp]
) -> None:
    sipp("uas_answer.xml", EXTENSION_PORT)
    trunk = sipp("uas_answer.xml", TRUNK_PORT)
    ringing_agent = sipp("uas_ring_no_answer.xml", 5072)
    a, b = instances.add("a").start(), instances.add("b").start()
    instances.sign_in(a)
    token, base = instances.token, instances.base
    (talking, bridged_id), (ringing, ringing_id) = _bridged_and_ringing(instances, a,
                                                                        ringing_agent)

    a.kill()
    # B takes both over within seconds: the ringing call is hung up and recorded, the
    # bridged one adopted (B reports its legs' own states, as for its own calls).
    (item,) = wait_for(lambda: [i for i in _history(instances, 1, ringing)
                                if i.get("cause")], "the ringing call's item")
    assert (item["call_id"], item["result"], item["cause"]) == (
        ringing_id, "error", "SERVICE_RESTART")
    ringing_agent.wait_for_request("CANCEL")
    call = f"{base}/{talking}/calls/{bridged_id}"
    adopted = wait_for(lambda: (s := b.api("GET", call, token=token))[0] == 200
                       and s[1]["data"].get("legs") and s[1]["data"], "the adoption")
    assert adopted["state"] == "bridged"

    # Restarting A touches nothing of B's: once A is ready (connected and re-synced) and its
    # reaper has looked around twice, the adopted call is still up, still B's.
    a.start()
    wait_for(lambda: a.metric("c2c_reaper_rounds_total") >= 2, "two reaper rounds on A")
    assert a.metric("c2c_calls_taken_over_total") == 0
    assert b.api("GET", call, token=token)[1]["data"]["state"] == "bridged"

    status, body = b.api("DELETE", call, token=token)
    assert status == 200
    assert (body["data"]["result"], body["data"]["hangup_cause"]) == (
        "success", "HANGUP_REQUESTED")
    trunk.wait_for_request("BYE")
    for c2c_id, call_id in ((talking, bridged_id), (ringing, ringing_id)):
        items = _history(instances, 0, c2c_id)
        assert [i["call_id"] for i in items] == [call_id]  # exactly one item each
        assert "ended_at" in items[0]


def test_an_instance_cut_off_from_the_database_alone_keeps_its_calls(
    instances: Cluster, sipp: Callable[..., Sipp], postgres_url: str
) -> None:
    """A's path to PostgreSQL breaks while B still reaches it: A's heartbeats stop, but A still
    beats in Asterisk, so B takes none of its calls (it used to hang up the ringing one and
    adopt the bridged one). Once A reaches the database again, it ends and records them."""
    sipp("uas_answer.xml", EXTENSION_PORT)
    trunk = sipp("uas_answer.xml", TRUNK_PORT)
    ringing_agent = sipp("uas_ring_no_answer.xml", 5072)
    database = urllib.parse.urlsplit(postgres_url)
    proxy = TcpProxy(database.hostname or "127.0.0.1", database.port or 5432)
    try:
        a = instances.add("a")
        a.env["C2C_ARI_DATABASE"] = postgres_url.replace(
            f":{database.port}/", f":{proxy.port}/")
        a.start()
        b = instances.add("b").start()
        instances.sign_in(b)
        token, base = instances.token, instances.base
        (talking, bridged_id), (ringing, ringing_id) = _bridged_and_ringing(instances, a,
                                                                            ringing_agent)

        proxy.cut()
        wait_for(lambda: a.api("GET", base, token=token)[0] == 503, "A cut off")
        # Well past MAX_AGE: B's reaper has judged A's heartbeat gone several times.
        time.sleep(MAX_AGE + 4)
        assert b.metric("c2c_calls_taken_over_total") == 0
        assert not ringing_agent.received("CANCEL")
        assert not trunk.received("BYE")

        proxy.restore()
        wait_for(lambda: a.api("GET", base, token=token)[0] == 200, "A serving again")
        for c2c_id, call_id in ((talking, bridged_id), (ringing, ringing_id)):
            status, body = a.api("DELETE", f"{base}/{c2c_id}/calls/{call_id}", token=token)
            assert status == 200, body
            # The ringing call was cancelled (its cause), the bridged one ended (its hang-up).
            assert "HANGUP_REQUESTED" in (body["data"].get("cause"),
                                          body["data"].get("hangup_cause")), body
            items = _history(instances, 1, c2c_id)
            assert [i["call_id"] for i in items] == [call_id]  # exactly one item each
        assert b.metric("c2c_calls_taken_over_total") == 0
    finally:
        proxy.close()


def test_a_stopping_instance_hands_its_bridged_calls_over(
    instances: Cluster, sipp: Callable[..., Sipp]
) -> None:
    agent = sipp("uas_answer.xml", EXTENSION_PORT)
    trunk = sipp("uas_answer.xml", TRUNK_PORT)
    a, b = instances.add("a").start(), instances.add("b").start()
    instances.sign_in(a)
    token, base = instances.token, instances.base
    c2c_id = a.api("PUT", base, {"name": "T", "extension": "1001"}, token)[1]["data"]["id"]
    call = f"{base}/{c2c_id}/calls/{_bridged_call(a, instances, c2c_id)}"

    a.stop()  # SIGTERM, as a rolling upgrade does
    # B adopted the call: still up, followed by B, and nobody was hung up.
    adopted = wait_for(lambda: (s := b.api("GET", call, token=token))[0] == 200
                       and s[1]["data"].get("legs") and s[1]["data"], "the adoption")
    assert adopted["state"] == "bridged"
    assert b.metric("c2c_calls_taken_over_total") == 1
    assert not agent.received("BYE") and not trunk.received("BYE")

    status, body = b.api("DELETE", call, token=token)
    assert (status, body["data"]["result"], body["data"]["hangup_cause"]) == (
        200, "success", "HANGUP_REQUESTED")
    (item,) = _history(instances, 1, c2c_id)  # exactly one item
    assert "ended_at" in item and item["talk_duration"] >= 0


def test_calls_of_instances_stopping_together_are_ended_not_left_unfollowed(
    instances: Cluster, sipp: Callable[..., Sipp]
) -> None:
    """Each sees the other alive and may hand its calls over, but neither stays to adopt
    them: the calls are hung up and recorded once each, and nothing is left in Asterisk."""
    agent = sipp("uas_answer.xml", EXTENSION_PORT)
    sipp("uas_answer.xml", TRUNK_PORT)
    a, b = instances.add("a").start(), instances.add("b").start()
    instances.sign_in(a)
    token, base = instances.token, instances.base
    c2c_id = a.api("PUT", base, {"name": "T", "extension": "1001"}, token)[1]["data"]["id"]
    call_ids = [_bridged_call(via, instances, c2c_id) for via in (a, b)]

    for instance in (a, b):
        assert instance.proc is not None
        instance.proc.send_signal(signal.SIGTERM)
    a.stop(), b.stop()
    wait_for(lambda: len(agent.received("BYE")) == 2, "both agents' legs hung up")
    a.start()
    items = _history(instances, 0, c2c_id)
    assert sorted(i["call_id"] for i in items) == sorted(call_ids)
    assert {(i["result"], i["cause"]) for i in items} == {("error", "SERVICE_STOPPED")}


def test_a_call_through_one_instance_is_followed_through_another(
    instances: Cluster, sipp: Callable[..., Sipp]
) -> None:
    sipp("uas_answer.xml", EXTENSION_PORT)
    sipp("uas_answer_then_bye.xml", TRUNK_PORT, duration_ms=1500)
    a, b = instances.add("a").start(), instances.add("b").start()
    instances.sign_in(a)
    token, base = instances.token, instances.base
    c2c_id = a.api("PUT", base, {"name": "S", "extension": "1001"}, token)[1]["data"]["id"]
    status, body = a.api("POST", f"{base}/{c2c_id}/connect", {"contact": CONTACT}, token)
    assert status == 202
    call_id, call_token = body["data"]["outbound_call_id"], body["data"]["call_token"]
    # The event stream, opened on B, of a call A runs: status after status to its end.
    url = (f"{b.url}{base}/{c2c_id}/calls/{call_id}/events"
           f"?call_token={call_token}")
    states = []
    with urllib.request.urlopen(url, timeout=20) as stream:
        for raw in stream:
            line = raw.decode().strip()
            if line.startswith("data: "):
                states.append(json.loads(line[6:])["state"])
                if states[-1] == "ended":
                    break
    assert "bridged" in states and states[-1] == "ended"
    (item,) = _history(instances, 1, c2c_id)
    assert (item["call_id"], item["result"]) == (call_id, "success")


def _dialplan_holder(database: str) -> str:
    with psycopg.connect(database) as conn:
        row = conn.execute("SELECT holder FROM leases WHERE name LIKE 'dialplan-app:%'"
                           ).fetchone()
    return str(row[0]) if row else ""


def test_phones_calls_survive_the_death_of_the_dialplan_holder(
    instances: Cluster, sipp: Callable[..., Sipp], postgres_url: str
) -> None:
    trunk = sipp("uas_answer_then_bye.xml", TRUNK_PORT, duration_ms=500)
    a, b = instances.add("a").start(), instances.add("b").start()
    instances.sign_in(a)
    token, base = instances.token, instances.base
    c2c_id = a.api("PUT", base, {"name": "S", "extension": "1001"}, token)[1]["data"]["id"]
    holder = wait_for(lambda: _dialplan_holder(postgres_url), "a dialplan holder")
    boots = {inst.name: inst for inst in (a, b)}
    # Which instance holds it: its boot id is in its heartbeat row.
    with psycopg.connect(postgres_url) as conn:
        name = conn.execute("SELECT instance_id FROM instances WHERE boot_id = %s",
                            (holder,)).fetchone()[0]
    boots[name].kill()
    phone = sipp("uac_call.xml", PHONE_PORT, remote="127.0.0.1:5060",
                 service=f"*77*{c2c_id}*{CONTACT}", duration_ms=3000, max_calls=1,
                 keys={"from_user": "1001"})
    survivor = b if name == "a" else a
    invite = trunk.wait_for_invite(20)
    assert invite.request_user == CONTACT
    items = wait_for(lambda: _history(instances, (survivor is b and 1) or 0, c2c_id),
                     "the phone's call in history")
    assert [(i["trigger"], i["result"]) for i in items] == [("dialplan", "success")]
    phone.stop()


def test_a_call_that_ends_during_a_database_outage_is_recorded_once_it_is_back(
    instances: Cluster, sipp: Callable[..., Sipp], outage: Outage
) -> None:
    agent = sipp("uas_answer.xml", EXTENSION_PORT)
    sipp("uas_answer_then_bye.xml", TRUNK_PORT, duration_ms=3000)
    a = instances.add("a").start()
    instances.sign_in(a)
    token, base = instances.token, instances.base
    c2c_id = a.api("PUT", base, {"name": "T", "extension": "1001"}, token)[1]["data"]["id"]
    call_id = _bridged_call(a, instances, c2c_id)

    outage.begin()
    # The contact hangs up 3 s after answering: the service hangs up the agent and ends the
    # call with no database to write its item to.
    wait_for(lambda: bool(agent.received("BYE")), "the agent's leg hung up", timeout=30)
    assert a.api("GET", base, token=token)[0] == 503  # still out of reach
    outage.end()

    item = _completed_item(instances, c2c_id)
    assert (item["call_id"], item["result"], item["hangup_cause"]) == (
        call_id, "success", "NORMAL_CLEARING")
    assert item["talk_duration"] > 0


def test_a_call_bridged_during_a_database_outage_follows_its_parties(
    instances: Cluster, sipp: Callable[..., Sipp], outage: Outage
) -> None:
    """The item at the bridge cannot be written, and the call goes on regardless: when the
    contact hangs up, the agent is hung up then, not once the database is back."""
    agent = sipp("uas_answer.xml", EXTENSION_PORT, duration_ms=2000)  # rings 2 s
    sipp("uas_answer_then_bye.xml", TRUNK_PORT, duration_ms=1000)  # hangs up after 1 s
    a = instances.add("a").start()
    instances.sign_in(a)
    token, base = instances.token, instances.base
    c2c_id = a.api("PUT", base, {"name": "T", "extension": "1001"}, token)[1]["data"]["id"]
    status, body = a.api("POST", f"{base}/{c2c_id}/connect", {"contact": CONTACT}, token)
    assert status == 202, body
    outage.begin()  # while the agent's phone rings

    wait_for(lambda: bool(agent.received("BYE")), "the agent's leg hung up", timeout=20)
    assert a.api("GET", base, token=token)[0] == 503  # the database is still out of reach
    outage.end()

    item = _completed_item(instances, c2c_id)
    assert (item["call_id"], item["result"], item["hangup_cause"]) == (
        body["data"]["outbound_call_id"], "success", "NORMAL_CLEARING")
    assert "answered_at" in item


def test_a_database_outage_takes_no_call_from_its_instance(
    instances: Cluster, sipp: Callable[..., Sipp], outage: Outage
) -> None:
    """All heartbeats are old when the database comes back: whichever instance gets there
    first must not count the other dead and take its calls."""
    sipp("uas_answer.xml", EXTENSION_PORT)
    trunk = sipp("uas_answer.xml", TRUNK_PORT)
    a, b = instances.add("a").start(), instances.add("b").start()
    instances.sign_in(a)
    token, base = instances.token, instances.base
    c2c_id = a.api("PUT", base, {"name": "T", "extension": "1001"}, token)[1]["data"]["id"]
    calls = {_bridged_call(via, instances, c2c_id): via for via in (a, b)}

    outage.begin()
    wait_for(lambda: all(i.api("GET", base, token=token)[0] == 503 for i in (a, b)),
             "both instances answering 503", timeout=30)
    time.sleep(MAX_AGE + 2)  # every heartbeat in the database is now older than MAX_AGE
    outage.end()
    wait_for(lambda: all(i.api("GET", base, token=token)[0] == 200 for i in (a, b)),
             "both instances serving again", timeout=30)
    # Long enough for either reaper to have judged the other, had it been allowed to.
    wait_for(lambda: all(i.metric("c2c_reaper_rounds_total") >= 3 for i in (a, b)),
             "three reaper rounds on each instance after the outage", timeout=30)
    rounds = {i.name: i.metric("c2c_reaper_rounds_total") for i in (a, b)}
    wait_for(lambda: all(i.metric("c2c_reaper_rounds_total") > rounds[i.name] + 2
                         for i in (a, b)), "more reaper rounds", timeout=30)
    assert [i.metric("c2c_calls_taken_over_total") for i in (a, b)] == [0, 0]
    for call_id, via in calls.items():
        status, body = via.api("GET", f"{base}/{c2c_id}/calls/{call_id}", token=token)
        assert (status, body["data"]["state"]) == (200, "bridged"), body
        status, body = via.api("DELETE", f"{base}/{c2c_id}/calls/{call_id}", token=token)
        assert (status, body["data"]["hangup_cause"]) == (200, "HANGUP_REQUESTED"), body
    # Both contact legs hung up (a previous test's unanswered BYE may still be resent here).
    invited = {invite.call_id for invite in trunk.invites()}
    assert len(invited) == 2
    assert invited <= {bye.call_id for bye in trunk.received("BYE")}
    items = _history(instances, 0, c2c_id)
    assert sorted(i["call_id"] for i in items) == sorted(calls)
    assert {i["result"] for i in items} == {"success"}
