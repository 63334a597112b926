"""What every storage backend promises (c2c_ari/store/base.py), checked the same way on each:
exactly-once history items, claims that no two claimers share, leases with one holder, an
exact sliding-window throttle, and the bus."""

from __future__ import annotations

import asyncio
import time

from c2c_ari.domain.ids import GREGORIAN_OFFSET
from c2c_ari.store import AccountRecord, ActiveCall, InstanceRecord, Store

ACCOUNT = "a" * 32
C2C = "c" * 32
NOW = int(time.time()) + GREGORIAN_OFFSET


def _call(n: int, owner: str = "boot-1", *, c2c: str = C2C) -> ActiveCall:
    call_id = f"c2c-{c2c}-{n:016x}"
    return ActiveCall(call_id, ACCOUNT, c2c,
                      {"timestamp": NOW, "call_id": call_id, "result": "error"},
                      [f"{call_id}-ext", f"{call_id}-contact", f"{call_id}-bridge"],
                      owner=owner, node="node1")


async def _account(store: Store) -> None:
    await store.accounts.insert(AccountRecord(ACCOUNT, "A", "a.example", 0.0), "hash")


async def test_a_call_has_exactly_one_history_item_through_its_life(store: Store) -> None:
    await _account(store)
    call = _call(1)
    await store.calls.put(call)
    assert await store.calls.get(call.call_id) == call
    assert await store.history.get(ACCOUNT, call.call_id) is None
    bridged = {**call.item, "result": "success", "answered_at": NOW + 1}
    await store.calls.record_bridged(ActiveCall(**{**call.__dict__, "item": bridged,
                                                   "bridged": True}))
    assert (await store.history.get(ACCOUNT, call.call_id)) == bridged  # listed while up
    assert (await store.calls.get(call.call_id)).bridged  # type: ignore[union-attr]
    final = {**bridged, "ended_at": NOW + 9, "talk_duration": 8}
    assert await store.calls.record_outcome(ActiveCall(**{**call.__dict__, "item": final}))
    assert await store.history.get(ACCOUNT, call.call_id) == final
    assert await store.calls.get(call.call_id) is None
    # a second final item for the same call changes nothing
    late = {**final, "cause": "SERVICE_RESTART"}
    assert not await store.calls.record_outcome(ActiveCall(**{**call.__dict__, "item": late}))
    assert await store.history.get(ACCOUNT, call.call_id) == final
    rows = await store.history.page(ACCOUNT, C2C, before=None, created_from=None,
                                    created_to=None, limit=10)
    assert len(rows) == 1


async def test_a_call_that_fails_in_setup_goes_to_history_at_once(store: Store) -> None:
    await _account(store)
    call = _call(2)
    await store.calls.put(call)
    failed = {**call.item, "cause": "USER_BUSY", "failed_leg": "contact"}
    assert await store.calls.record_outcome(ActiveCall(**{**call.__dict__, "item": failed}))
    assert await store.history.get(ACCOUNT, call.call_id) == failed
    assert await store.calls.all() == []


async def test_orphans_are_claimed_once(store: Store) -> None:
    await _account(store)
    for n in range(6):
        await store.calls.put(_call(n, owner="dead" if n % 2 else "alive"))
    # Four live instances reap at once; the calls of the dead one go to one of them each.
    live = {"alive", *(f"claimer-{n}" for n in range(4))}
    claims = await asyncio.gather(*(store.calls.claim_orphans(live, f"claimer-{n}", 2)
                                    for n in range(4)))
    claimed = [call.call_id for batch in claims for call in batch]
    assert len(claimed) == len(set(claimed)) == 3
    owners = {call.call_id: call.owner for call in await store.calls.all()}
    assert sorted(set(owners.values())) == ["alive", *sorted(
        {f"claimer-{n}" for n, batch in enumerate(claims) if batch})]
    assert await store.calls.claim_orphans(live, "claimer-0", 10) == []
    assert len(await store.calls.of_clicktocall(ACCOUNT, C2C)) == 6
    assert await store.calls.of_clicktocall(ACCOUNT, "d" * 32) == []


async def test_calls_by_node_count_every_owner_but_the_one_left_out(store: Store) -> None:
    await _account(store)
    for n, (owner, node) in enumerate([("a", "node1"), ("a", "node2"), ("b", "node1"),
                                       ("b", "node1"), ("c", "node2")]):
        await store.calls.put(ActiveCall(**{**_call(n, owner).__dict__, "node": node}))
    assert await store.calls.count_by_node() == {"node1": 3, "node2": 2}
    assert await store.calls.count_by_node(exclude_owner="b") == {"node1": 1, "node2": 2}
    assert await store.calls.count_by_node(exclude_owner="a") == {"node1": 2, "node2": 1}


async def test_a_lease_has_one_holder_until_it_lapses(store: Store) -> None:
    assert await store.leases.acquire("dialplan", "x", ttl=60)
    assert not await store.leases.acquire("dialplan", "y", ttl=60)
    assert await store.leases.acquire("dialplan", "x", ttl=60)  # renewed
    await store.leases.release("dialplan", "y")  # not the holder: nothing happens
    assert not await store.leases.acquire("dialplan", "y", ttl=60)
    await store.leases.release("dialplan", "x")
    assert await store.leases.acquire("dialplan", "y", ttl=0.01)
    await asyncio.sleep(0.05)
    assert await store.leases.acquire("dialplan", "x", ttl=60)  # y's lapsed


async def test_instances_are_live_while_they_beat(store: Store) -> None:
    await store.instances.heartbeat(InstanceRecord("a", "boot-a", "c2c-ari-a"))
    await store.instances.heartbeat(InstanceRecord("b", "boot-b", "c2c-ari-b"))
    assert {i.boot_id for i in await store.instances.live(5)} == {"boot-a", "boot-b"}
    await store.instances.leave("boot-a")
    assert {i.boot_id for i in await store.instances.live(5)} == {"boot-b"}
    await store.instances.heartbeat(InstanceRecord("b", "boot-b2", "c2c-ari-b"))  # restarted
    assert {i.boot_id for i in await store.instances.live(5)} == {"boot-b2"}


async def test_the_throttle_is_exact_under_concurrency(store: Store) -> None:
    answers = await asyncio.gather(*(store.throttle.hit("clicktocall", "k", 5, 60.0)
                                     for _ in range(40)))
    assert sum(answer is None for answer in answers) == 5
    assert all(0 < answer <= 60 for answer in answers if answer is not None)
    # buckets and keys are independent
    assert await store.throttle.hit("client", "k", 1, 60.0) is None
    assert await store.throttle.hit("clicktocall", "other", 1, 60.0) is None


async def test_history_prune_takes_the_oldest(store: Store) -> None:
    await _account(store)
    for n, age_days in enumerate((400, 380, 10, 1)):
        timestamp = NOW - age_days * 86_400
        await store.history.insert(ACCOUNT, C2C, f"call-{n}", timestamp, {"n": n})
    assert await store.history.prune(NOW - 365 * 86_400, 10) == 2
    assert await store.history.get(ACCOUNT, "call-0") is None
    assert await store.history.get(ACCOUNT, "call-2") == {"n": 2}


async def test_the_bus_delivers_to_subscribers(store: Store) -> None:
    async with store.bus.subscribe("calls") as messages:
        await store.bus.publish("calls", {"call_id": "x", "state": "bridged"})
        async with asyncio.timeout(5):
            assert await anext(messages) == {"call_id": "x", "state": "bridged"}


async def test_an_account_limit_holds_under_concurrent_creates(store: Store) -> None:
    await _account(store)
    made = await asyncio.gather(*(
        store.clicktocalls.insert(ACCOUNT, f"{n:032x}", "{}", "1-x", 0.0, limit=5)
        for n in range(20)))
    kept = [doc for doc in made if doc is not None]
    assert len(kept) == 5
    # a deleted one makes room for exactly one more
    await store.clicktocalls.compare_and_swap(ACCOUNT, kept[0], "{}", "2-x", 0.0, delete=True)
    again = await asyncio.gather(*(
        store.clicktocalls.insert(ACCOUNT, f"{n:032x}", "{}", "1-x", 0.0, limit=5)
        for n in range(100, 110)))
    assert sum(doc is not None for doc in again) == 1
    assert len(await store.clicktocalls.page(ACCOUNT, None, 100)) == 5


# --- concurrency: what several instances (here, concurrent calls) must never break ---------


async def test_concurrent_creates_never_pass_the_account_limit(store: Store) -> None:
    await _account(store)
    results = await asyncio.gather(*(
        store.clicktocalls.insert(ACCOUNT, f"{n:032x}", f'{{"n":{n}}}', f"1-{n}", 1.0, limit=5)
        for n in range(30)))
    made = [stored for stored in results if stored is not None]
    assert len(made) == 5
    assert len(await store.clicktocalls.page(ACCOUNT, None, 100)) == 5
    # a deleted one frees its place
    gone = made[0]
    assert await store.clicktocalls.compare_and_swap(ACCOUNT, gone, gone.body, "2-x", 2.0,
                                                     delete=True)
    assert await store.clicktocalls.get(ACCOUNT, gone.id) is None
    results = await asyncio.gather(*(
        store.clicktocalls.insert(ACCOUNT, f"{n:032x}", "{}", "1-y", 3.0, limit=5)
        for n in range(100, 110)))
    assert sum(stored is not None for stored in results) == 1


async def test_documents_come_back_byte_for_byte(store: Store) -> None:
    await _account(store)
    body = '{"name":"Caf\u00e9 \u2603","extension":"1001","z":{"b":1,"a":[1.5,"\\u0000"]}}'
    stored = await store.clicktocalls.insert(ACCOUNT, "d" * 32, body, "1-abc", 1.0, limit=10)
    assert stored is not None
    read = await store.clicktocalls.get(ACCOUNT, "d" * 32)
    assert read is not None and (read.body, read.rev, read.revision) == (body, 1, "1-abc")
    assert await store.clicktocalls.find("d" * 32) == (ACCOUNT, read)
    assert await store.clicktocalls.page(ACCOUNT, None, 10) == [
        ("d" * 32, "Caf\u00e9 \u2603", "1001")]


async def test_concurrent_writers_of_one_revision_have_one_winner(store: Store) -> None:
    await _account(store)
    first = await store.clicktocalls.insert(ACCOUNT, C2C, "{}", "1-a", 1.0, limit=10)
    assert first is not None
    results = await asyncio.gather(*(
        store.clicktocalls.compare_and_swap(ACCOUNT, first, f'{{"w":{n}}}', f"2-{n}", 2.0)
        for n in range(10)))
    winners = [stored for stored in results if stored is not None]
    assert len(winners) == 1
    assert await store.clicktocalls.get(ACCOUNT, C2C) == winners[0]


async def test_one_history_item_per_call_whoever_writes_it(store: Store) -> None:
    await _account(store)
    inserted = await asyncio.gather(*(
        store.history.insert(ACCOUNT, C2C, "call-x", NOW, {"n": n}) for n in range(10)))
    assert sum(inserted) == 1
    # Two processes completing the same bridged call at once (its owner, and an instance
    # that thought it dead): one final item.
    call = _call(7)
    await store.calls.put(call)
    await store.calls.record_bridged(ActiveCall(**{**call.__dict__, "bridged": True}))
    done = await asyncio.gather(*(
        store.calls.record_outcome(ActiveCall(**{**call.__dict__,
                                                 "item": {**call.item, "n": n}}))
        for n in range(6)))
    assert sum(done) == 1
    final = await store.history.get(ACCOUNT, call.call_id)
    assert final is not None and final["n"] == done.index(True)


async def test_one_lease_holder_among_concurrent_claimers(store: Store) -> None:
    won = await asyncio.gather(*(store.leases.acquire("reaper", f"h{n}", ttl=60)
                                 for n in range(12)))
    assert sum(won) == 1


async def test_service_keys_first_writer_wins(store: Store) -> None:
    keys = await asyncio.gather(*(store.keys.get_or_create("call_tokens") for _ in range(10)))
    assert len(set(keys)) == 1 and len(keys[0]) == 64
    assert await store.keys.get_or_create("other") != keys[0]


async def test_the_throttle_window_slides(store: Store) -> None:
    assert await store.throttle.hit("b", "k", 2, 0.3) is None
    assert await store.throttle.hit("b", "k", 2, 0.3) is None
    wait = await store.throttle.hit("b", "k", 2, 0.3)
    assert wait is not None and 0 < wait <= 0.3
    await asyncio.sleep(wait + 0.05)
    assert await store.throttle.hit("b", "k", 2, 0.3) is None
    # a lowered limit counts only the newest attempts
    assert await store.throttle.hit("b", "k", 1, 0.3) is not None
    assert await store.throttle.hit("b", "k", 0, 0.3) == 0.3  # below 1 refuses all


async def test_claims_of_many_orphans_are_disjoint(store: Store) -> None:
    await _account(store)
    for n in range(40):
        await store.calls.put(_call(n, owner=f"dead-{n % 3}"))
    live = {"x", *(f"claimer-{n}" for n in range(8))}  # the claimers are alive themselves
    claims = await asyncio.gather(*(store.calls.claim_orphans(live, f"claimer-{n}", 7)
                                    for n in range(8)))
    claimed = [call.call_id for batch in claims for call in batch]
    assert len(claimed) == len(set(claimed)) == 40
    assert all(len(batch) <= 7 for batch in claims)
    assert {call.owner for call in await store.calls.all()} <= {f"claimer-{n}"
                                                                 for n in range(8)}
