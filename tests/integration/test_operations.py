"""Operating the service with real calls: Prometheus metrics that move with what happens,
readiness that follows Asterisk, and JSON log lines that name the call."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from c2c_ari import localasterisk
from c2c_ari.app import STASIS, create_app
from c2c_ari.config import Settings
from c2c_ari.localasterisk import AriInfo
from tests.conftest import Api, sign_in
from tests.helpers.sipp import Sipp
from tests.integration.service import (
    CONTACT,
    EXTENSION_PORT,
    TRUNK_PORT,
    connect,
    history,
    nothing_left,
)
from tests.test_service_process import CLI, _free_port, _http, create_account

pytestmark = pytest.mark.asterisk

TOKEN = "metrics-" + "9" * 24


@pytest.fixture
async def operated(aiohttp_client, asterisk: AriInfo, tmp_path: Path) -> AsyncIterator[Api]:  # type: ignore[no-untyped-def]
    """The service on the real Asterisk with /metrics open to the metrics token."""
    settings = Settings(data_dir=tmp_path, node="test", ari_url=asterisk.url,
                        ari_user=asterisk.user, ari_password=asterisk.password,
                        metrics_token=TOKEN)
    client = await aiohttp_client(create_app(settings))
    await asyncio.wait_for(client.app[STASIS].events.wait_connected(), 20)
    yield await sign_in(client, realm="pbx.test")
    await client.close()
    assert await nothing_left(asterisk) == ([], [])


async def _scrape(api: Api) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await api.client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status == 200
    samples = {}
    for family in text_string_to_metric_families(await response.text()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _total(samples: dict, name: str, **labels: str) -> float:
    return sum(value for (sample, found), value in samples.items()
               if sample == name and set(labels.items()) <= set(found))


async def test_metrics_move_with_real_calls(operated: Api, sipp: Callable[..., Sipp]) -> None:
    api = operated
    # An API token is not the metrics token: tenants never read them.
    response = await api.client.get("/metrics", headers={"Authorization": f"Bearer {api.token}",
                                                          "X-Auth-Token": api.token})
    assert response.status == 401
    before = await _scrape(api)
    sipp("uas_answer.xml", EXTENSION_PORT)
    trunk = sipp("uas_answer_then_bye.xml", TRUNK_PORT, duration_ms=300)
    c2c = await api.create(extension="1001", throttle=2)
    status, body, _ = await connect(api, c2c["id"], blocking=True)
    assert (status, body["data"]["result"]) == (200, "success")
    (item,) = await history(api, c2c["id"])
    deadline = time.monotonic() + 10
    while "ended_at" not in item:  # the contact hangs up after 0.3 s
        assert time.monotonic() < deadline, "the first call did not end"
        await asyncio.sleep(0.1)
        (item,) = await history(api, c2c["id"])
    trunk.stop()
    sipp("uas_busy.xml", TRUNK_PORT)
    status, body, _ = await connect(api, c2c["id"], blocking=True)
    assert (status, body["data"]["cause"]) == (200, "USER_BUSY")
    status, _, _ = await connect(api, c2c["id"])  # a third within the minute
    assert status == 429
    after = await _scrape(api)
    assert _total(after, "c2c_calls_total", result="success") - _total(
        before, "c2c_calls_total", result="success") == 1
    assert _total(after, "c2c_calls_total", result="error", cause="USER_BUSY",
                  trigger="api") - _total(before, "c2c_calls_total", cause="USER_BUSY") == 1
    assert _total(after, "c2c_connect_refused_total", reason="throttle") - _total(
        before, "c2c_connect_refused_total", reason="throttle") == 1
    assert _total(after, "c2c_call_setup_seconds_count") - _total(
        before, "c2c_call_setup_seconds_count") == 1
    assert _total(after, "c2c_call_first_dial_seconds_count") - _total(
        before, "c2c_call_first_dial_seconds_count") == 2
    # ARI requests by operation (ids never make a series of their own), HTTP by route
    assert _total(after, "c2c_ari_request_seconds_count", operation="POST /channels",
                  status="200") - _total(before, "c2c_ari_request_seconds_count",
                                         operation="POST /channels") == 4  # originates
    assert _total(after, "c2c_ari_request_seconds_count",
                  operation="POST /bridges/{id}/addChannel") >= 1
    assert not any("c2c-" in str(labels) for (name, labels) in after
                   if name.startswith("c2c_ari_request"))
    route = "/v2/accounts/{account_id}/clicktocall/{c2c_id}/connect"
    assert _total(after, "c2c_http_request_seconds_count", route=route, status="429") >= 1
    assert _total(after, "c2c_db_write_seconds_count", backend="sqlite") > _total(
        before, "c2c_db_write_seconds_count", backend="sqlite")
    assert _total(after, "c2c_ari_websocket_up") >= 1
    assert ("c2c_calls_in_flight", (("state", "setup"),)) in after


async def test_readiness_follows_asterisk(operated: Api) -> None:
    if os.environ.get("C2C_ARI_URL"):
        pytest.skip("needs the local Asterisk, which the test stops")
    client = operated.client

    async def ready() -> tuple[int, dict]:
        response = await client.get("/readyz")
        return response.status, await response.json()

    assert (await ready())[0] == 200
    assert (await client.get("/healthz")).status == 200
    await asyncio.to_thread(localasterisk.stop)
    try:
        deadline = time.monotonic() + 20
        while (answer := await ready())[0] == 200:
            assert time.monotonic() < deadline, "still ready without Asterisk"
            await asyncio.sleep(0.1)
        status, body = answer
        assert status == 503
        assert "ARI" in " ".join(body["problems"])
        assert (await client.get("/healthz")).status == 200  # alive all the same
    finally:
        await asyncio.to_thread(localasterisk.ensure_running)
    deadline = time.monotonic() + 30
    while (await ready())[0] != 200:
        assert time.monotonic() < deadline, "not ready again after Asterisk came back"
        await asyncio.sleep(0.1)


def test_json_log_lines_name_the_call(
    asterisk: AriInfo, sipp: Callable[..., Sipp], tmp_path: Path
) -> None:
    sipp("uas_answer.xml", EXTENSION_PORT)
    sipp("uas_answer_then_bye.xml", TRUNK_PORT, duration_ms=200)
    port = _free_port()
    env = {**os.environ, "C2C_ARI_URL": asterisk.url, "C2C_ARI_USER": asterisk.user,
           "C2C_ARI_PASSWORD": asterisk.password, "C2C_ARI_DATA_DIR": str(tmp_path),
           "C2C_ARI_ACCESS_LOG": "on"}
    account = create_account(env)
    log_path = tmp_path / "service.log"
    with open(log_path, "wb") as log_file:  # a file: an unread pipe would stall the service
        proc = subprocess.Popen([*CLI, "serve", "--port", str(port), "--log-format", "json"],
                                env=env, stdout=subprocess.DEVNULL, stderr=log_file)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if _http("GET", url + "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the service never became ready"
            time.sleep(0.1)
        token = _http("PUT", f"{url}/v2/api_auth", {"api_key": account["api_key"]})[1][
            "auth_token"]
        base = f"{url}/v2/accounts/{account['account_id']}/clicktocall"
        c2c_id = _http("PUT", base, {"name": "S", "extension": "1001"}, token)[1]["data"]["id"]
        status, body = _http("POST", f"{base}/{c2c_id}/connect",
                             {"contact": CONTACT, "blocking": True}, token)
        assert (status, body["data"]["result"]) == (200, "success")
        call_id = body["data"]["call_id"]
        deadline = time.monotonic() + 10
        while "ended_at" not in _http("GET", f"{base}/{c2c_id}/history", token=token)[1][
                "data"][0]:  # the contact hangs up after 0.2 s; the call's last line follows
            assert time.monotonic() < deadline, "the call did not end"
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    errors = log_path.read_text()
    lines = [json.loads(line) for line in errors.splitlines() if line.startswith("{")]
    assert lines and all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    assert len(lines) == len(errors.splitlines())  # every line is JSON
    about_the_call = [line for line in lines if line.get("call_id") == call_id]
    assert about_the_call, "no line names the call"
    assert all(line.get("account_id") == account["account_id"] for line in about_the_call)
    access = [line for line in lines if line["logger"] == "c2c_ari.access"
              and line.get("route") == "/v2/accounts/{account_id}/clicktocall/{c2c_id}/connect"]
    assert access and access[0]["status"] == 200 and access[0]["duration_ms"] > 0
    assert access[0]["request_id"]
