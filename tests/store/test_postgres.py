"""What only the PostgreSQL backend has: migrations shared by instances starting together,
history's monthly partitions (made ahead, items moved out of DEFAULT, whole months dropped by
retention), no cache between instances, the throttle and the limit across instances, and the
LISTEN/NOTIFY bus (between instances, reconnecting, bounded messages)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from pytest_postgresql.janitor import DatabaseJanitor

from c2c_ari.domain.ids import GREGORIAN_OFFSET
from c2c_ari.domain.retention import Housekeeper, RetentionPolicy
from c2c_ari.store import AccountRecord, ActiveCall, InstanceRecord, Store, open_store
from c2c_ari.store.errors import StoreUnavailable
from c2c_ari.store.postgres import SchemaTooNew, migrate_database, schema
from c2c_ari.store.postgres.bus import MessageTooLarge
from c2c_ari.store.postgres.throttle import PostgresThrottle
from tests.conftest import PostgresServer
from tests.helpers.postgres import Outage

ACCOUNT = "a" * 32
C2C = "c" * 32
DAY = 86_400


def _now() -> int:
    return int(time.time()) + GREGORIAN_OFFSET


def _months_back(count: int) -> schema.Month:
    month = schema.month_of(_now())
    for _ in range(count):
        year, number = month
        month = (year - 1, 12) if number == 1 else (year, number - 1)
    return month


async def _rows(store: Store, query: str, *params: Any) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = await store.backend.db.fetchall(query, params)
    return rows


@pytest.fixture
async def pg(postgres_url: str) -> AsyncIterator[Store]:
    store = await open_store(postgres_url)
    await store.accounts.insert(AccountRecord(ACCOUNT, "A", "a.example", 0.0), "hash")
    yield store
    await store.close()


@pytest.fixture
async def second(pg: Store, postgres_url: str) -> AsyncIterator[Store]:
    """Another instance on the same database."""
    store = await open_store(postgres_url)
    yield store
    await store.close()


@pytest.fixture
def empty_postgres_url(postgres_cluster: PostgresServer) -> Iterator[str]:
    """A database with nothing in it (not cloned from the migrated template)."""
    name = f"empty_{uuid.uuid4().hex[:12]}"
    with DatabaseJanitor(user=postgres_cluster.user, host=postgres_cluster.host,
                         port=postgres_cluster.port, dbname=name):
        yield (f"postgresql://{postgres_cluster.user}@{postgres_cluster.host}:"
               f"{postgres_cluster.port}/{name}")


# --- migrations ------------------------------------------------------------------------------


async def test_instances_starting_together_migrate_once(empty_postgres_url: str) -> None:
    versions = await asyncio.gather(*(migrate_database(empty_postgres_url) for _ in range(4)))
    assert versions == [len(schema.MIGRATIONS)] * 4
    store = await open_store(empty_postgres_url)
    try:
        assert await _rows(store, "SELECT version FROM c2c_schema_version") == [
            (len(schema.MIGRATIONS),)]
    finally:
        await store.close()


async def test_a_schema_newer_than_the_code_is_refused(pg: Store, postgres_url: str) -> None:
    await pg.backend.db.execute("UPDATE c2c_schema_version SET version = 999")
    with pytest.raises(SchemaTooNew, match="999"):
        await open_store(postgres_url)


# --- history partitions ----------------------------------------------------------------------


async def _partition_of(store: Store, call_id: str) -> str:
    rows = await _rows(store, "SELECT tableoid::regclass::text FROM history WHERE call_id = %s",
                       call_id)
    assert len(rows) == 1
    return str(rows[0][0])


async def test_open_makes_this_month_and_the_next_two(pg: Store) -> None:
    async with pg.backend.db.pool.connection() as conn:
        names = {p.name for p in await schema.partitions(conn)}
    this = schema.month_of(_now())
    ahead = [this, schema.next_month(this), schema.next_month(schema.next_month(this))]
    assert {schema.partition_name(month) for month in ahead} | {"history_default"} <= names
    await pg.history.insert(ACCOUNT, C2C, "now", _now(), {"n": 0})
    assert await _partition_of(pg, "now") == schema.partition_name(this)


async def test_an_item_two_months_old_lands_in_its_months_partition(pg: Store) -> None:
    month = _months_back(2)
    timestamp = schema.month_start(month) + 3 * DAY
    assert await pg.history.ensure_partitions(since=timestamp) == [
        schema.partition_name(month), schema.partition_name(_months_back(1))]
    assert await pg.history.ensure_partitions(since=timestamp) == []  # made once
    await pg.history.insert(ACCOUNT, C2C, "old", timestamp, {"n": 1})
    assert await _partition_of(pg, "old") == schema.partition_name(month)


async def test_instances_making_partitions_together_make_each_once(pg: Store,
                                                                     second: Store) -> None:
    since = schema.month_start(_months_back(6))
    made = await asyncio.gather(*(store.history.ensure_partitions(since=since)
                                  for store in (pg, second, pg, second)))
    names = [name for batch in made for name in batch]
    assert sorted(names) == sorted({schema.partition_name(_months_back(k))
                                    for k in range(1, 7)})


async def test_items_in_default_move_into_their_months_new_partition(pg: Store) -> None:
    month = _months_back(5)
    timestamp = schema.month_start(month) + DAY
    # A bridged call of that month (e.g. copied from SQLite): its item waits in DEFAULT.
    call = ActiveCall(f"c2c-{C2C}-1", ACCOUNT, C2C, {"timestamp": timestamp, "n": 1}, [])
    await pg.calls.put(call)
    await pg.calls.record_bridged(ActiveCall(**{**call.__dict__, "bridged": True}))
    assert await _partition_of(pg, call.call_id) == "history_default"
    await pg.history.ensure_partitions(since=timestamp)
    assert await _partition_of(pg, call.call_id) == schema.partition_name(month)
    # still one item per call, completed once, wherever it moved
    final = {"timestamp": timestamp, "n": 2}
    assert await pg.calls.record_outcome(ActiveCall(**{**call.__dict__, "item": final}))
    assert not await pg.calls.record_outcome(ActiveCall(**{**call.__dict__, "item": final}))
    assert await pg.history.get(ACCOUNT, call.call_id) == final
    assert not await pg.history.insert(ACCOUNT, C2C, call.call_id, timestamp, {"n": 3})
    rows = await pg.history.page(ACCOUNT, C2C, before=None, created_from=None,
                                 created_to=None, limit=10)
    assert [row[0] for row in rows] == [timestamp]


async def test_prune_drops_whole_old_months_then_deletes_in_batches(pg: Store) -> None:
    oldest, older, boundary = _months_back(14), _months_back(13), _months_back(12)
    await pg.history.ensure_partitions(since=schema.month_start(oldest))
    cutoff = schema.month_start(boundary) + 10 * DAY
    items = {
        "a1": schema.month_start(oldest) + DAY, "a2": schema.month_start(oldest) + 2 * DAY,
        "a3": schema.month_start(oldest) + 3 * DAY, "b1": schema.month_start(older) + DAY,
        "c1": cutoff - 2 * DAY, "c2": cutoff - DAY, "c3": cutoff + DAY,  # boundary month
        "d1": _now() - DAY,
    }
    for call_id, timestamp in items.items():
        await pg.history.insert(ACCOUNT, C2C, call_id, timestamp, {"id": call_id})
    await pg.history.insert(ACCOUNT, C2C, "default", 1000, {"id": "default"})  # year 0

    assert await pg.history.prune(cutoff, 2) == 3  # oldest month dropped whole: its 3 rows
    async with pg.backend.db.pool.connection() as conn:
        names = {p.name for p in await schema.partitions(conn)}
    assert schema.partition_name(oldest) not in names
    assert await pg.history.prune(cutoff, 2) == 2  # one row, but at least the batch
    assert schema.partition_name(older) not in {
        p.name for p in await _partitions(pg)}
    # then batches in the month the cutoff falls in, and in DEFAULT
    assert await pg.history.prune(cutoff, 2) == 2
    assert await pg.history.prune(cutoff, 2) == 1
    assert await pg.history.prune(cutoff, 2) == 0
    left = {row[0] for row in await _rows(pg, "SELECT call_id FROM history")}
    assert left == {"c3", "d1"}


async def test_housekeeping_on_postgresql(pg: Store) -> None:
    """The service's housekeeper, unchanged, on this backend: old months dropped, the rest of
    old history, expired tokens and long-deleted click-to-calls (with their history) go."""
    await pg.history.ensure_partitions(since=schema.month_start(_months_back(15)))
    now = _now()
    for n, days in enumerate((450, 440, 420, 400, 380, 366, 360, 10, 0)):
        await pg.history.insert(ACCOUNT, C2C, f"call-{n}", now - days * DAY, {"n": n})
    for n in range(5):
        await pg.accounts.insert_token(f"old{n}", ACCOUNT, time.time() - 1)
    await pg.accounts.insert_token("live", ACCOUNT, time.time() + 60)
    gone = await pg.clicktocalls.insert(ACCOUNT, "d" * 32, "{}", "1-a", 1.0, limit=10)
    assert gone is not None
    await pg.clicktocalls.compare_and_swap(ACCOUNT, gone, "{}", "2-b", time.time() - 40 * DAY,
                                           delete=True)
    await pg.history.insert(ACCOUNT, "d" * 32, "of-deleted", now, {})
    keeper = Housekeeper(pg.accounts, pg.clicktocalls, pg.history,
                         RetentionPolicy(history_days=365, deleted_days=30, batch=3, pause=0))
    removed = await keeper.run_once()
    assert removed["tokens"] == 5 and removed["deleted_clicktocalls"] == 1
    assert removed["history"] >= 6
    left = {row[0] for row in await _rows(pg, "SELECT call_id FROM history")}
    assert left == {"call-6", "call-7", "call-8"}
    assert await _rows(pg, "SELECT token_hash FROM auth_tokens") == [("live",)]
    assert await _rows(pg, "SELECT id FROM clicktocalls") == []


async def _partitions(store: Store) -> list[schema.Partition]:
    async with store.backend.db.pool.connection() as conn:
        return await schema.partitions(conn)


# --- several instances -----------------------------------------------------------------------


async def test_no_instance_reads_a_stale_document(pg: Store, second: Store) -> None:
    made = await pg.clicktocalls.insert(ACCOUNT, C2C, '{"v":1}', "1-a", 1.0, limit=10)
    assert made is not None
    assert await pg.clicktocalls.get(ACCOUNT, C2C) == made
    changed = await second.clicktocalls.compare_and_swap(ACCOUNT, made, '{"v":2}', "2-b", 2.0)
    assert changed is not None
    assert await pg.clicktocalls.get(ACCOUNT, C2C) == changed  # not the copy read before
    # a write from the first instance with the old revision loses
    assert await pg.clicktocalls.compare_and_swap(ACCOUNT, made, '{"v":3}', "2-c", 3.0) is None


async def test_the_limit_and_the_throttle_hold_across_instances(pg: Store,
                                                                second: Store) -> None:
    made = await asyncio.gather(*(
        store.clicktocalls.insert(ACCOUNT, f"{n:032x}", "{}", "1-a", 1.0, limit=4)
        for n in range(24) for store in ((pg, second)[n % 2],)))
    assert sum(stored is not None for stored in made) == 4
    answers = await asyncio.gather(*(
        (pg, second)[n % 2].throttle.hit("clicktocall", C2C, 5, 60.0) for n in range(40)))
    assert sum(answer is None for answer in answers) == 5


async def test_heartbeats_and_leases_do_not_queue_behind_a_busy_instance(pg: Store) -> None:
    """Every connection of the pool taken (an instance busy with calls): its heartbeat still
    goes through at once, so others do not take it for gone and take its calls over; and so
    does the renewal of the lease it holds."""
    db = pg.backend.db
    size = db.pool.max_size
    taken = 0
    all_taken, release = asyncio.Event(), asyncio.Event()

    async def busy() -> None:
        nonlocal taken
        async with db.connection():
            taken += 1
            if taken == size:
                all_taken.set()
            await release.wait()

    holders = [asyncio.create_task(busy()) for _ in range(size)]
    try:
        await all_taken.wait()
        await pg.instances.heartbeat(InstanceRecord("busy", "boot-busy", "c2c-ari-busy"))
        assert [i.boot_id for i in await pg.instances.live(5.0)] == ["boot-busy"]
        assert await pg.leases.acquire("dialplan-app:c2c-ari", "boot-busy", 10.0)
        assert await pg.leases.acquire("dialplan-app:c2c-ari", "boot-busy", 10.0)  # renewed
    finally:
        release.set()
        await asyncio.gather(*holders)


async def test_heartbeats_resume_at_the_first_beat_once_the_database_is_back(
    pg: Store, outage: Outage
) -> None:
    """Instances judge each other by their heartbeats after an outage: one whose heartbeats
    came back seconds after another's (a pool's reconnection backs off 1, 2, 4 s...) would
    be counted gone and have its calls taken over."""
    beat = InstanceRecord("i", "boot-i", "c2c-ari-i")
    await pg.instances.heartbeat(beat)
    outage.begin()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 6  # long enough for a pool to back off past 4 s
    failures = 0
    while loop.time() < deadline:
        with pytest.raises(StoreUnavailable):
            await pg.instances.heartbeat(beat)
        failures += 1
        await asyncio.sleep(0.5)
    outage.end()

    await pg.instances.heartbeat(beat)  # the very next beat goes through
    assert [i.boot_id for i in await pg.instances.live(1.0)] == ["boot-i"]
    assert failures >= 6  # each failed promptly: a beat never waits for a connection


async def test_stale_throttle_rows_are_pruned(pg: Store) -> None:
    for n in range(5):
        await pg.throttle.hit("client", f"198.51.100.{n}", 3, 0.05)
    await pg.throttle.hit("client", "kept", 3, 60.0)
    await asyncio.sleep(0.1)
    throttle = pg.throttle
    assert isinstance(throttle, PostgresThrottle)
    assert await throttle.prune() == 5
    assert await _rows(pg, "SELECT key FROM throttle") == [("kept",)]
    # and this process prunes by itself, in the background, every `sweep_every` attempts
    sweeping = PostgresThrottle(pg.backend.db, sweep_every=3)
    for n in range(2):
        await sweeping.hit("client", f"203.0.113.{n}", 3, 0.05)
    await asyncio.sleep(0.1)
    await sweeping.hit("client", "third", 3, 60.0)  # the third attempt starts a sweep
    await sweeping.close()
    assert sorted(await _rows(pg, "SELECT key FROM throttle")) == [("kept",), ("third",)]


# --- the bus ---------------------------------------------------------------------------------


async def _next(messages: AsyncIterator[dict[str, Any]]) -> dict[str, Any]:
    async with asyncio.timeout(5):
        return await anext(messages)


async def test_the_bus_reaches_every_instance(pg: Store, second: Store) -> None:
    async with pg.bus.subscribe("calls") as mine, second.bus.subscribe("calls") as theirs:
        await second.bus.publish("calls", {"n": 1})
        assert await _next(mine) == {"n": 1}
        assert await _next(theirs) == {"n": 1}  # its own message too
        async with pg.bus.subscribe("other") as other:
            await pg.bus.publish("other", {"n": 2})
            assert await _next(other) == {"n": 2}
        await pg.bus.publish("calls", {"n": 3})
        assert await _next(theirs) == {"n": 3}


async def test_the_bus_listens_again_after_its_connection_drops(pg: Store,
                                                                 second: Store) -> None:
    async with pg.bus.subscribe("calls") as messages:
        listener = pg.backend.bus._conn.info.backend_pid
        await second.backend.db.execute("SELECT pg_terminate_backend(%s)", (listener,))
        # Messages published while it reconnects are lost (NOTIFY keeps nothing): publish
        # until one arrives.
        arrived = asyncio.ensure_future(anext(messages))
        async with asyncio.timeout(10):
            while not arrived.done():
                await second.bus.publish("calls", {"again": True})
                await asyncio.wait({arrived}, timeout=0.2)
        assert arrived.result() == {"again": True}
        assert pg.backend.bus._conn.info.backend_pid != listener


async def test_the_bus_refuses_what_notify_cannot_carry(pg: Store) -> None:
    with pytest.raises(MessageTooLarge):
        await pg.bus.publish("calls", {"blob": "x" * 8000})
    await pg.bus.publish("calls", {"blob": "x" * 7000})  # within the limit
    for channel in ("", "has space", "x" * 64, 'quote"'):
        with pytest.raises(ValueError, match="channel"):
            await pg.bus.publish(channel, {})
