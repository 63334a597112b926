"""What must not cost more as data grows: long listings are streamed in bounded chunks,
history pages and time windows walk one index, accounts have limits, and the document
cache is bounded in bytes with a share per account."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from c2c_ari.api.context import CONTEXT
from c2c_ari.app import create_app
from c2c_ari.config import Settings
from c2c_ari.domain import clicktocalls as clicktocalls_module
from tests.conftest import Api, sign_in

BASE_TIME = 63_900_000_000


async def _record(api: Api, c2c_id: str, items: list[tuple[int, str]]) -> None:
    store = api.client.app[CONTEXT].clicktocalls.history_store
    for timestamp, suffix in items:
        call_id = f"c2c-{c2c_id}-{suffix}"
        await store.insert(api.account_id, c2c_id, call_id, timestamp,
                           {"timestamp": timestamp, "call_id": call_id, "result": "success",
                            "contact": "+4930123456"})


async def _pages(api: Api, path: str, query: str = "") -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    key = None
    while True:
        sep = "&" if query else ""
        start = "" if key is None else f"{sep}start_key={key}"
        status, body, _ = await api.call("GET", f"{path}?{query}{start}")
        assert status == 200, body
        items += body["data"]
        assert body["page_size"] == len(body["data"])
        key = body.get("next_start_key")
        if key is None:
            return items


async def test_history_pages_and_windows(api: Api) -> None:
    c2c = await api.create()
    path = f"{api.base}/{c2c['id']}/history"
    # several calls in the same second, recorded out of order of their start
    times = [BASE_TIME + t for t in (5, 1, 3, 3, 3, 9, 7, 3, 1, 8)]
    await _record(api, c2c["id"], [(t, f"{n:016x}") for n, t in enumerate(times)])
    everything = await _pages(api, path, "page_size=3")
    assert [item["timestamp"] for item in everything] == sorted(times, reverse=True)
    assert len({item["call_id"] for item in everything}) == len(times)
    window = await _pages(api, path, f"page_size=2&created_from={BASE_TIME + 3}"
                                     f"&created_to={BASE_TIME + 7}")
    assert [item["timestamp"] for item in window] == [BASE_TIME + t for t in (7, 5, 3, 3, 3, 3)]


async def test_paginate_false_streams_everything(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(clicktocalls_module, "CHUNK_ROWS", 3)
    made = [await api.create(name=f"N{n}") for n in range(8)]
    response = await api.client.get(f"{api.base}?paginate=false",
                                    headers={"X-Auth-Token": api.token})
    body = json.loads(await response.read())  # one valid JSON document
    assert response.status == 200
    assert body["status"] == "success" and body["page_size"] == 8
    assert sorted(item["id"] for item in body["data"]) == sorted(doc["id"] for doc in made)
    assert body["revision"]

    c2c = made[0]
    await _record(api, c2c["id"], [(BASE_TIME + n, f"{n:016x}") for n in range(10)])
    status, body, _ = await api.call(
        "GET", f"{api.base}/{c2c['id']}/history?paginate=false&created_from={BASE_TIME + 2}")
    assert status == 200
    assert [item["timestamp"] for item in body["data"]] == [BASE_TIME + n
                                                           for n in range(9, 1, -1)]
    # a missing click-to-call is still a plain Kazoo error, not a broken stream
    status, body, _ = await api.call("GET", f"{api.base}/{'e' * 32}/history?paginate=false")
    assert status == 404
    assert body["message"] == "bad_identifier"


async def test_an_account_has_a_click_to_call_limit(aiohttp_client, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    settings = dataclasses.replace(settings, max_clicktocalls_per_account=3)
    client = await aiohttp_client(create_app(settings))
    api, other = await sign_in(client), await sign_in(client, "Other")
    made = [await api.create() for _ in range(3)]
    status, body, _ = await api.call("PUT", api.base, {"name": "4th", "extension": "1"})
    assert status == 403
    assert body["data"]["limit"] == 3
    assert len((await api.call("GET", api.base))[1]["data"]) == 3
    await other.create()  # another account is not affected
    await api.call("DELETE", f"{api.base}/{made[0]['id']}")
    status, _, _ = await api.call("PUT", api.base, {"name": "again", "extension": "1"})
    assert status == 201


async def test_one_account_cannot_take_the_document_cache(
    aiohttp_client, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    # SQLite's own: a shared PostgreSQL database has no document cache.
    settings = Settings(data_dir=tmp_path, ari_url="off", document_cache_bytes=4_000_000)
    client = await aiohttp_client(create_app(settings))
    victim, hog = await sign_in(client), await sign_in(client, "Hog")
    kept = await victim.create()
    cache = client.app[CONTEXT].clicktocalls.store.cache
    wide = {f"k{n}": "v" * 10 for n in range(2_000)}  # ~40 KB of unknown keys
    for _ in range(40):
        await hog.create(extra=wide)
    assert cache.used <= cache.limit
    assert cache.account_bytes(hog.account_id) <= cache.limit // 8
    assert cache.get(victim.account_id, kept["id"]) is not None
    # evicted documents are read back from the database as they were
    for doc in (await hog.call("GET", hog.base))[1]["data"]:
        status, body, _ = await hog.call("GET", f"{hog.base}/{doc['id']}")
        assert status == 200 and body["data"]["extra"] == wide
