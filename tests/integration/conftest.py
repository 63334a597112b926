"""A real Asterisk for the integration tests and SIPp peers (tests/guards.py makes a skip in CI
a failure).

The session fixture `asterisk` uses the Asterisk named by C2C_ARI_URL (with C2C_ARI_USER and
C2C_ARI_PASSWORD) when that is set; it must run the project's asterisk/ configuration on this
host, since the tests' SIPp peers listen on the loopback ports that configuration names.
Otherwise it builds (once, cached) and starts the project's local Asterisk with
c2c_ari.localasterisk, and stops it at the end of the session if it started it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from c2c_ari import localasterisk
from c2c_ari.app import STASIS, create_app
from c2c_ari.config import Settings
from c2c_ari.localasterisk import AriInfo, LocalAsteriskError
from tests.conftest import Api, sign_in
from tests.helpers.sipp import Sipp
from tests.integration.service import nothing_left


@pytest.fixture(scope="session")
def _one_session_at_a_time() -> Iterator[None]:
    with localasterisk.exclusive_use():
        yield


@pytest.fixture(scope="session")
def asterisk(_one_session_at_a_time: None) -> Iterator[AriInfo]:
    """How to reach ARI of a running Asterisk 22 with the project's configuration."""
    url = os.environ.get("C2C_ARI_URL", "").strip()
    if url:
        url = url.rstrip("/").removesuffix("/ari")
        if not shutil.which("sipp"):
            pytest.skip("sipp not found: install Debian's sip-tester package")
        yield AriInfo(url=url, user=os.environ.get("C2C_ARI_USER") or "c2c",
                      password=os.environ.get("C2C_ARI_PASSWORD", ""))
        return
    supported, why = localasterisk.host_supported()
    if not supported:
        pytest.skip(f"no local Asterisk: {why} (or set C2C_ARI_URL)")
    try:
        localasterisk.ensure_host_packages()
        info = localasterisk.ensure_running()
    except LocalAsteriskError as exc:
        pytest.fail(f"local Asterisk: {exc}", pytrace=False)
    try:
        yield info
    finally:
        if info.started:
            localasterisk.stop()


@pytest.fixture
def second_node(asterisk: AriInfo) -> Iterator[AriInfo]:
    """Node 2 beside the session's Asterisk (node 1). Stopped afterwards unless it ran
    before, whatever the test did to it (stopped, killed, restarted)."""
    if os.environ.get("C2C_ARI_URL", "").strip():
        pytest.skip("nodes are the local Asterisk's; C2C_ARI_URL names another one")
    ran_before = localasterisk.running_pid(2) is not None
    try:
        info = localasterisk.ensure_running(node=2)
    except LocalAsteriskError as exc:
        pytest.fail(f"local Asterisk node 2: {exc}", pytrace=False)
    try:
        yield info
    finally:
        if not ran_before:
            localasterisk.stop(node=2)


@pytest.fixture
def sipp(tmp_path: Path) -> Iterator[Callable[..., Sipp]]:
    """Start SIPp peers: `sipp("uas_answer.xml", 5071, duration_ms=...)`; all stopped after."""
    peers: list[Sipp] = []

    def start(scenario: str, port: int, **kwargs: object) -> Sipp:
        peer = Sipp(scenario, port, workdir=tmp_path / f"sipp-{port}-{len(peers)}",
                    **kwargs)  # type: ignore[arg-type]
        peers.append(peer)  # before start(), so that a half-started one is stopped too
        return peer.start()

    yield start
    for peer in peers:
        peer.stop()


@pytest.fixture
async def service(aiohttp_client, asterisk: AriInfo, tmp_path: Path) -> AsyncIterator[Api]:  # type: ignore[no-untyped-def]
    """The service connected to the real Asterisk, signed in; afterwards Asterisk must hold
    no channel and no bridge."""
    settings = Settings(data_dir=tmp_path, node="test", ari_url=asterisk.url,
                        ari_user=asterisk.user, ari_password=asterisk.password)
    client = await aiohttp_client(create_app(settings))
    await asyncio.wait_for(client.app[STASIS].events.wait_connected(), 20)
    yield await sign_in(client, realm="pbx.test")
    await client.close()
    assert await nothing_left(asterisk) == ([], [])


