"""The PostgreSQL database out of reach (connections refused and cut) while the service runs:
requests get a prompt Kazoo 503 with Retry-After, not a 500 or a stall; readiness says why;
nothing half-done is left; and once the database is back the service serves again by itself,
with everything written before still there."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from c2c_ari.api.operations import READINESS
from c2c_ari.app import create_app
from c2c_ari.config import Settings
from c2c_ari.store.postgres import db as postgres_db
from tests.conftest import Api, sign_in
from tests.helpers.postgres import Outage


@pytest.fixture
async def api(postgres_url: str, outage: Outage, aiohttp_client, tmp_path: Path,  # type: ignore[no-untyped-def]
              monkeypatch: pytest.MonkeyPatch) -> Api:
    # A request waits at most this long for a connection (5 s in production).
    monkeypatch.setattr(postgres_db, "CONNECTION_WAIT", 0.5)
    settings = Settings(data_dir=tmp_path, ari_url="off", database=postgres_url,
                        instance_id="a")
    client = await aiohttp_client(create_app(settings))
    client.app[READINESS].max_write_age = 2.0
    return await sign_in(client)


async def test_requests_get_503_while_the_database_is_away_and_work_again_after(
    api: Api, outage: Outage
) -> None:
    kept = await api.create(name="Before")
    outage.begin()

    # Every kind of request that needs the database: 503, Retry-After, Kazoo's envelope.
    for method, path, data in (("GET", api.base, None),
                               ("GET", f"{api.base}/{kept['id']}", None),
                               ("PUT", api.base, {"name": "During", "extension": "1001"}),
                               ("DELETE", f"{api.base}/{kept['id']}", None)):
        status, body, headers = await api.call(method, path, data)
        assert status == 503, (method, path, body)
        assert (body["error"], body["status"]) == ("503", "error"), body
        assert "database" in body["data"]["message"]
        assert headers.headers["Retry-After"] == "1"
    # Many at once are all answered (none waits for another's connection attempt).
    answers = await asyncio.gather(*(api.call("GET", api.base) for _ in range(20)))
    assert {status for status, _, _ in answers} == {503}
    # Readiness tells the load balancer to look elsewhere, and why.
    deadline = time.monotonic() + 15
    while True:
        response = await api.client.get("/readyz")
        ready = await response.json()
        if "the database took no write recently" in ready["problems"]:
            break
        assert time.monotonic() < deadline, ready
        await asyncio.sleep(0.2)
    assert response.status == 503

    outage.end()
    deadline = time.monotonic() + 15
    while (status := (await api.call("GET", api.base))[0]) != 200:
        assert status == 503 and time.monotonic() < deadline
        await asyncio.sleep(0.2)
    # What was written before is there; what was refused was not half-written.
    status, body, _ = await api.call("GET", api.base)
    assert [d["name"] for d in body["data"]] == ["Before"]
    assert (await api.call("GET", f"{api.base}/{kept['id']}"))[0] == 200
    await api.create(name="After")
    # Readiness recovers too (no Asterisk here, which it still reports).
    while "the database took no write recently" in (
            await (await api.client.get("/readyz")).json())["problems"]:
        assert time.monotonic() < deadline + 15
        await asyncio.sleep(0.2)
