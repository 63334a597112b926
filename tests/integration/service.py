"""Helpers for tests that drive the service against the real Asterisk and SIPp peers."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from c2c_ari.localasterisk import AriInfo
from tests.conftest import Api

EXTENSION_PORT, TRUNK_PORT, PHONE_PORT = 5071, 5080, 5092
CONTACT = "+4930123456"


async def ari_get(info: AriInfo, path: str) -> Any:
    auth = {"Authorization": aiohttp.encode_basic_auth(info.user, info.password)}
    async with aiohttp.ClientSession(headers=auth) as session, session.get(
        f"{info.ari_url}{path}"
    ) as response:
        return await response.json()


async def nothing_left(info: AriInfo) -> tuple[list[Any], list[Any]]:
    """Channels and bridges still in Asterisk, after giving hangups a moment to land."""
    deadline = time.monotonic() + 5
    while True:
        channels = await ari_get(info, "/channels")
        bridges = await ari_get(info, "/bridges")
        if (not channels and not bridges) or time.monotonic() > deadline:
            return channels, bridges
        await asyncio.sleep(0.1)


async def history(api: Api, c2c_id: str, count: int = 1, wait: float = 15) -> list[dict]:
    deadline = time.monotonic() + wait
    while True:
        _, body, _ = await api.call("GET", f"{api.base}/{c2c_id}/history")
        if len(body["data"]) >= count or time.monotonic() > deadline:
            return body["data"]
        await asyncio.sleep(0.1)


async def connect(api: Api, c2c_id: str, contact: str = CONTACT, **data: Any):
    return await api.call("POST", f"{api.base}/{c2c_id}/connect", {"contact": contact, **data})


