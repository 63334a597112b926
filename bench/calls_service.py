"""The service under test in bench/calls.py: the real service on the local Asterisk nodes, one
instance on SQLite or several sharing a PostgreSQL database, with one click-to-call; its
connect, its history, its CPU time and the warnings it logged."""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote

from aiohttp import ClientSession
from calls_sipp import EXTENSION, AgentLog, contact_number
from common import (
    BenchError,
    Server,
    Service,
    cpu_seconds,
    http,
    memory_mb,
    serve,
    start_service,
)
from pgcluster import Postgres

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


def node_url(info: localasterisk.AriInfo) -> str:
    """One entry of C2C_ARI_NODES: `name=http://user:password@host:port`."""
    scheme, _, host = info.url.partition("://")
    return (f"{info.name or f'node{info.node}'}={scheme}://{quote(info.user, safe='')}:"
            f"{quote(info.password, safe='')}@{host}")


def service_env(
    infos: list[localasterisk.AriInfo], max_calls_in_setup: int | None = None,
    database: str | None = None, instance_id: str | None = None,
) -> dict[str, str]:
    """The bench's environment without other C2C_ARI_* settings, plus the Asterisk to use:
    one node as C2C_ARI_URL, C2C_ARI_USER and C2C_ARI_PASSWORD, several as C2C_ARI_NODES
    (named as the local nodes are, node1..nodeN). When given: the admission limit
    (otherwise the service's default holds), the database (otherwise SQLite in the data
    dir) and the instance id (otherwise the service's default)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("C2C_ARI_") or k == "C2C_ARI_CACHE_DIR"}
    if len(infos) == 1:
        info = infos[0]
        env.update(C2C_ARI_URL=info.url, C2C_ARI_USER=info.user,
                   C2C_ARI_PASSWORD=info.password)
    else:
        env["C2C_ARI_NODES"] = ",".join(node_url(info) for info in infos)
    if max_calls_in_setup is not None:
        env["C2C_ARI_MAX_CALLS_IN_SETUP"] = str(max_calls_in_setup)
    if database is not None:
        env["C2C_ARI_DATABASE"] = database
    if instance_id is not None:
        env["C2C_ARI_INSTANCE_ID"] = instance_id
    return env


@dataclass
class Instance:
    """One service process: its name in the report and where it listens."""

    name: str
    server: Server
    base: str

    @property
    def pid(self) -> int:
        return self.server.pid


class CallService:
    """The service under test, one or several instances sharing one database, with an
    account, a token and one click-to-call `{"name": "Bench", "extension": "1001"}` (no
    throttle). Connects go to the instances in turn (round-robin, as a load balancer in front
    of them would). It keeps the call id of every connect answered 202, whichever instance
    answered: the history, which every instance reads from the shared database, must show
    exactly those."""

    def __init__(self, instances: list[Instance], service: Service, c2c_id: str,
                 nodes: list[str], postgres: Postgres | None = None) -> None:
        self.instances = instances
        self.service = service  # the first instance's account and token: all of them take it
        self.c2c_id = c2c_id
        self.nodes = nodes  # the node names each instance must be connected to (several)
        self.postgres = postgres
        self.attempts: list[str] = []
        self._turn = 0

    @classmethod
    def start(
        cls, workdir: Path, infos: list[localasterisk.AriInfo], started: list[Server], *,
        max_calls_in_setup: int | None = None, instances: int = 1,
        postgres: Postgres | None = None, tag: str = "",
    ) -> CallService:
        """Start the instances (`started` gets each process at once, for the clean-up) and
        create the click-to-call. Without `postgres` it is one instance on SQLite in its data
        dir; with it, `instances` instances on a new database of that cluster, each with an
        instance id of its own (`bench1`, `bench2`, ...). Data dirs live under
        `workdir/data`, logs outside it (so --keep-logs can skip the data); `tag` names a
        setup's files apart from another's."""
        if instances > 1 and postgres is None:
            raise BenchError("several instances need a shared database: PostgreSQL")
        database = None
        if postgres is not None:
            database = postgres.database(f"c2c_{tag or 'bench'}".replace("-", "_"))
        suffix = f"-{tag}" if tag else ""
        found: list[Instance] = []
        first: Service | None = None
        for k in range(1, instances + 1):
            name = "service" if instances == 1 else f"bench{k}"
            data_dir = workdir / "data"
            if tag or instances > 1:
                data_dir = data_dir / f"{tag or 'service'}-{k}"
            log_path = workdir / (f"service{suffix}" + (f"-{k}" if instances > 1 else "")
                                  + ".log")
            env = service_env(infos, max_calls_in_setup, database,
                              instance_id=None if postgres is None else f"bench{k}")
            label = "the service" if instances == 1 else f"instance {name}"
            if first is None:
                first = start_service(label, data_dir, log_path, env=env, started=started)
                server = first.server
            else:
                data_dir.mkdir(parents=True, exist_ok=True)
                server = serve(label, ["--data-dir", str(data_dir)], log_path, env=env,
                               started=started)
            found.append(Instance(name, server, f"http://127.0.0.1:{server.port}"))
        assert first is not None
        nodes = [info.name or f"node{info.node}" for info in infos] if len(infos) > 1 else []
        this = cls(found, first, "", nodes, postgres)
        this.wait_nodes()
        created = json.loads(http("PUT", first.collection, CREATE_BODY, first.token, 201))
        this.c2c_id = created["data"]["id"]
        return this

    @property
    def server(self) -> Server:
        return self.instances[0].server

    @property
    def pid(self) -> int:
        return self.instances[0].pid

    @property
    def base(self) -> str:
        return self.instances[0].base

    def c2c_url(self, instance: Instance | None = None) -> str:
        path = self.service.collection.removeprefix(self.service.base)
        return f"{(instance or self.instances[0]).base}{path}/{self.c2c_id}"

    def wait_nodes(self, timeout: float = 30.0) -> None:
        """With several nodes, until every instance has its events websocket up on each (its
        /readyz names them), so that none starts the run with a node it cannot use yet."""
        if not self.nodes:
            return
        deadline = time.monotonic() + timeout
        for instance in self.instances:
            while True:
                try:
                    ready = json.loads(http("GET", f"{instance.base}/readyz"))
                except BenchError:
                    ready = {}
                up = {key.split("/", 1)[0] for key, on in
                      ready.get("ari_websockets", {}).items() if on}
                if set(self.nodes) <= up:
                    break
                if time.monotonic() > deadline:
                    raise BenchError(f"instance {instance.name} did not connect to every node "
                                     f"in {timeout:.0f} s: {ready}")
                time.sleep(0.2)

    async def connect(
        self, session: ClientSession, contact: str, via: Instance | None = None,
    ) -> ConnectAnswer:
        """A non-blocking connect to `contact`, through `via` or the next instance in turn."""
        if via is None:
            via = self.instances[self._turn % len(self.instances)]
            self._turn += 1
        async with session.post(
            f"{self.c2c_url(via)}/connect", json={"data": {"contact": contact}},
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
        """Connect answers 503 until an instance's events websocket is up: through each
        instance, retry a warm-up call until one is placed, then wait for it to end."""
        for k, instance in enumerate(self.instances):
            deadline = time.monotonic() + 30
            contact = contact_number(5, 0, k)
            while True:
                answer = await self.connect(session, contact, instance)
                if answer.status == 202:
                    break
                if answer.status != 503 or time.monotonic() > deadline:
                    raise BenchError(f"warm-up connect through {instance.name} answered "
                                     f"{answer.status}: {answer.body}")
                await asyncio.sleep(0.2)
            await asyncio.wait_for(agent_log.wait("end", contact), 15)

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time so far: `instances` (all of them), `database` (PostgreSQL's cluster, 0
        on SQLite, whose work is the instance's own) and `total`, what the service costs."""
        instances = sum(cpu_seconds(instance.pid) for instance in self.instances)
        database = self.postgres.cpu_seconds() if self.postgres is not None else 0.0
        return {"instances": instances, "database": database, "total": instances + database}

    def memory(self) -> dict[str, dict[str, float]]:
        """Each instance's VmRSS and VmHWM."""
        return {instance.name: memory_mb(instance.pid) for instance in self.instances}

    def history(self) -> list[dict[str, Any]]:
        """The click-to-call's whole history, read through the first instance (the database
        is shared), once it holds a row per attempt (history is written as calls end) or
        after 30 s."""
        url = f"{self.c2c_url()}/history?paginate=false"
        deadline = time.monotonic() + 30
        while True:
            rows: list[dict[str, Any]] = json.loads(
                http("GET", url, token=self.service.token))["data"]
            if len(rows) >= len(self.attempts) or time.monotonic() > deadline:
                return rows
            time.sleep(0.5)

    def log_problems(self) -> list[str]:
        """Warnings, errors and tracebacks in the instances' output (named when several)."""
        several = len(self.instances) > 1
        return [f"{instance.name}: {line}" if several else line
                for instance in self.instances for line in instance.server.log_lines()
                if re.search(r"\b(WARNING|ERROR|CRITICAL)\b|Traceback", line)]

    def stop(self) -> None:
        for instance in self.instances:
            instance.server.stop()
