"""The service under test in bench/calls.py: the real service on the local Asterisk with one
click-to-call, its connect, its history and the warnings it logged."""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from pathlib import Path
from typing import Any, NamedTuple

from aiohttp import ClientSession
from calls_sipp import EXTENSION, AgentLog, contact_number
from common import BenchError, Server, Service, http, start_service

from c2c_ari import localasterisk

SERVICE_PREFIX = "c2c-"  # the service's ids: c2c-{c2c id}-{random}
CREATE_BODY = {"data": {"name": "Bench", "extension": EXTENSION}}


class ConnectAnswer(NamedTuple):
    """A connect's answer: its status, its body (or its first bytes), and the seconds of its
    Retry-After header (None without one, or when it is not a number of seconds)."""

    status: int
    body: dict[str, Any]
    retry_after: float | None

    @property
    def admission_refused(self) -> bool:
        """Refused by the service's admission control (503 with Retry-After: nothing was
        dialled, no history item). A 503 without Retry-After (Asterisk not connected) is
        not: nothing says when to try again."""
        return self.status == 503 and self.retry_after is not None


def _seconds(header: str | None) -> float | None:
    """Retry-After as delay-seconds; the HTTP-date form is not something the service sends."""
    if header is None:
        return None
    try:
        seconds = float(header)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def service_env(
    info: localasterisk.AriInfo, max_calls_in_setup: int | None = None
) -> dict[str, str]:
    """The bench's environment without other C2C_ARI_* settings, plus the ARI to use and,
    when given, the admission limit (otherwise the service's default holds)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("C2C_ARI_") or k == "C2C_ARI_CACHE_DIR"}
    env.update(C2C_ARI_URL=info.url, C2C_ARI_USER=info.user, C2C_ARI_PASSWORD=info.password)
    if max_calls_in_setup is not None:
        env["C2C_ARI_MAX_CALLS_IN_SETUP"] = str(max_calls_in_setup)
    return env


class CallService:
    """The service with an account, a token and one click-to-call `{"name": "Bench",
    "extension": "1001"}` (no throttle). It keeps the call id of every connect answered 202:
    its history must show exactly those."""

    def __init__(self, service: Service, c2c_id: str) -> None:
        self.service = service
        self.c2c_id = c2c_id
        self.attempts: list[str] = []

    @classmethod
    def start(
        cls, data_dir: Path, log_path: Path, info: localasterisk.AriInfo, started: list[Server],
        max_calls_in_setup: int | None = None,
    ) -> CallService:
        """Start it (`started` gets its process at once, for the clean-up) and create the
        click-to-call. The log lives outside `data_dir`, so --keep-logs can skip the data."""
        service = start_service("the service", data_dir, log_path,
                                env=service_env(info, max_calls_in_setup), started=started)
        created = json.loads(http("PUT", service.collection, CREATE_BODY, service.token, 201))
        return cls(service, created["data"]["id"])

    @property
    def server(self) -> Server:
        return self.service.server

    @property
    def pid(self) -> int:
        return self.service.server.pid

    @property
    def base(self) -> str:
        return self.service.base

    @property
    def c2c_url(self) -> str:
        return f"{self.service.collection}/{self.c2c_id}"

    async def connect(self, session: ClientSession, contact: str) -> ConnectAnswer:
        """A non-blocking connect to `contact`."""
        async with session.post(
            f"{self.c2c_url}/connect", json={"data": {"contact": contact}},
            headers={"X-Auth-Token": self.service.token},
        ) as resp:
            raw = await resp.read()
            retry_after = _seconds(resp.headers.get("Retry-After"))
        try:
            body = json.loads(raw)
        except ValueError:
            body = {"raw": raw[:300].decode(errors="replace")}
        if resp.status == 202:
            self.attempts.append(body["data"]["outbound_call_id"])
        return ConnectAnswer(resp.status, body, retry_after)

    async def wait_ready(self, session: ClientSession, agent_log: AgentLog) -> None:
        """Connect answers 503 until the service's events websocket is up: retry a warm-up
        call until one is placed, then wait for it to end."""
        deadline = time.monotonic() + 30
        contact = contact_number(5, 0, 0)
        while True:
            answer = await self.connect(session, contact)
            if answer.status == 202:
                break
            if answer.status != 503 or time.monotonic() > deadline:
                raise BenchError(f"warm-up connect answered {answer.status}: {answer.body}")
            await asyncio.sleep(0.2)
        await asyncio.wait_for(agent_log.wait("end", contact), 15)

    def history(self) -> list[dict[str, Any]]:
        """The click-to-call's whole history, once it holds a row per attempt (history is
        written as calls end) or after 30 s."""
        url = f"{self.c2c_url}/history?paginate=false"
        deadline = time.monotonic() + 30
        while True:
            rows: list[dict[str, Any]] = json.loads(
                http("GET", url, token=self.service.token))["data"]
            if len(rows) >= len(self.attempts) or time.monotonic() > deadline:
                return rows
            time.sleep(0.5)

    def log_problems(self) -> list[str]:
        """Warnings, errors and tracebacks in the service's output."""
        return [line for line in self.server.log_lines()
                if re.search(r"\b(WARNING|ERROR|CRITICAL)\b|Traceback", line)]

    def stop(self) -> None:
        self.server.stop()
