"""Two instances of the service sharing one PostgreSQL database: whatever one writes, the
other reads at once and exactly (revisions, If-Match, tokens, the throttle, the per-call
token key). No Asterisk here: a connect that passes every check answers 503."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from c2c_ari.api.context import CONTEXT
from c2c_ari.app import create_app
from c2c_ari.config import Settings
from tests.conftest import Api, sign_in


@pytest.fixture
async def two(postgres_url: str, aiohttp_client, tmp_path: Path) -> tuple[Api, Api]:  # type: ignore[no-untyped-def]
    """Instance A (signed in) and instance B (the same account, a token of its own). The
    database is named first: it must outlive the services (set up first, torn down last)."""
    clients: list[TestClient] = []
    for name in ("a", "b"):
        settings = Settings(data_dir=tmp_path / name, node=name, ari_url="off",
                            database=postgres_url, instance_id=name)
        clients.append(await aiohttp_client(create_app(settings)))
    on_a = await sign_in(clients[0])
    response = await clients[1].put("/v2/api_auth", json={"data": {"api_key": on_a.api_key}})
    assert response.status == 201  # the account A made is B's too
    on_b = Api(clients[1], on_a.account_id, on_a.api_key, (await response.json())["auth_token"])
    return on_a, on_b


async def test_what_one_instance_writes_the_other_reads_exactly(two: tuple[Api, Api]) -> None:
    a, b = two
    made = await a.create(name="From A")
    item = f"{b.base}/{made['id']}"
    status, read, _ = await b.call("GET", item)
    assert (status, read["data"]["name"]) == (200, "From A")
    revision = read["revision"]
    status, patched, _ = await b.call("PATCH", item, {"name": "Patched on B"},
                                      headers={"If-Match": revision})
    assert status == 200
    # A sees B's write at once (no cache of its own when the database is shared)...
    status, again, _ = await a.call("GET", f"{a.base}/{made['id']}")
    assert (again["data"]["name"], again["revision"]) == ("Patched on B", patched["revision"])
    # ...and A's write with the old revision is refused, whichever instance read it
    status, body, _ = await a.call("PATCH", f"{a.base}/{made['id']}", {"name": "Stale"},
                                   headers={"If-Match": revision})
    assert status == 412
    assert body["data"]["cause"] == patched["revision"]
    status, _, _ = await a.call("DELETE", f"{a.base}/{made['id']}")
    assert status == 200
    assert (await b.call("GET", item))[0] == 404
    # a token issued by one instance works on the other (and the tokens' key is shared)
    status, _, _ = await b.call("GET", b.base, token=a.token)
    assert status == 200
    tokens_a = a.client.app[CONTEXT].call_tokens
    tokens_b = b.client.app[CONTEXT].call_tokens
    assert tokens_a.issue("c2c-x-1") == tokens_b.issue("c2c-x-1")


async def test_the_throttle_is_exact_across_instances(two: tuple[Api, Api]) -> None:
    a, b = two
    made = await a.create(throttle=5)

    async def connect(api: Api) -> int:
        status, _, _ = await api.call("POST", f"{api.base}/{made['id']}/connect",
                                      {"contact": "+4930123456"})
        return status

    statuses = await asyncio.gather(*(connect(a if n % 2 else b) for n in range(40)))
    # The five within the limit pass every check and meet no Asterisk (503); the others
    # are throttled (429), however the 40 were spread over the two instances.
    assert sorted(statuses) == [429] * 35 + [503] * 5
