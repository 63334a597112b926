"""The local Asterisk nodes as bench/calls.py sees them: started if not running (and then
stopped at the end, each by its node number, only those), each one's pid for CPU readings,
the channels and bridges its ARI shows, and the warnings it logged during the run."""

from __future__ import annotations

import contextlib
import json
import re
import time
import urllib.request
from typing import Any

from aiohttp import encode_basic_auth
from common import BenchError, cpu_seconds, log

from c2c_ari import localasterisk


class Asterisk:
    """One local node (`localasterisk`, node 1 unless told), for one run."""

    def __init__(self, info: localasterisk.AriInfo) -> None:
        self.info = info
        self.number = info.node
        self.pid = 0
        self.version = ""
        self._log_start = 0  # where this run's lines begin in the node's log

    @property
    def name(self) -> str:
        """Its name in the service's C2C_ARI_NODES and in the report (its systemname)."""
        return self.info.name or f"node{self.number}"

    @property
    def started(self) -> bool:
        """Whether this run started it (and so stops it)."""
        return self.info.started

    def _inspect(self) -> None:
        pid = localasterisk.running_pid(self.number)
        if pid is None:
            raise BenchError(f"Asterisk node {self.number} answers but its pid is unknown "
                             "(not the local Asterisk?)")
        self.pid = pid
        self.version = localasterisk.asterisk_rx(
            "core show version", node=self.number).strip().split(" built")[0]
        log(f"{self.name}: {self.version}, pid {pid}, "
            f"{'started by this run' if self.started else 'already running'}")
        with contextlib.suppress(OSError):
            self._log_start = localasterisk.asterisk_log_file(self.number).stat().st_size

    def stop_if_started(self) -> None:
        """Stop it only if this run started it: another user's node stays up."""
        if self.started:
            log(f"stopping {self.name}, which this run started")
            with contextlib.suppress(Exception):
                localasterisk.stop(node=self.number)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def ari_get(self, what: str) -> list[dict[str, Any]]:
        """GET /ari/{what} (channels, bridges) with the standard library, outside any loop."""
        token = encode_basic_auth(self.info.user, self.info.password)
        request = urllib.request.Request(f"{self.info.ari_url}/{what}",
                                         headers={"Authorization": token})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=10) as response:
            return list(json.loads(response.read()))

    def leftovers(self, prefixes: tuple[str, ...], wait: float = 10.0) -> dict[str, list[str]]:
        """Channels and bridges whose ids start with one of `prefixes` (all if empty), after
        giving hangups up to `wait` seconds to land."""
        deadline = time.monotonic() + wait
        while True:
            left = {
                what: [item["id"] for item in self.ari_get(what)
                       if not prefixes or item["id"].startswith(prefixes)]
                for what in ("channels", "bridges")
            }
            if not any(left.values()) or time.monotonic() > deadline:
                return left
            time.sleep(0.2)

    def log_problems(self) -> list[str]:
        """The WARNING and ERROR lines the node logged since it was inspected."""
        try:
            with open(localasterisk.asterisk_log_file(self.number), errors="replace") as fh:
                fh.seek(self._log_start)
                text = fh.read()
        except OSError:
            return []
        return [line for line in text.splitlines() if re.search(r"WARNING|ERROR", line)]


def start_nodes(count: int, started: list[Asterisk]) -> list[Asterisk]:
    """Local nodes 1..count, started together where not running. Each is appended to
    `started` as soon as it is known, so that the clean-up stops the ones this run started
    even when a later step fails."""
    nodes = []
    for info in localasterisk.ensure_nodes(count):
        node = Asterisk(info)
        started.append(node)
        nodes.append(node)
    for node in nodes:
        node._inspect()
    return nodes


def cpu_by_node(nodes: list[Asterisk]) -> dict[str, float]:
    return {node.name: node.cpu_seconds() for node in nodes}


def leftovers(nodes: list[Asterisk], prefixes: tuple[str, ...],
              wait: float = 10.0) -> dict[str, dict[str, list[str]]]:
    """Each node's leftovers (Asterisk.leftovers), by node name."""
    deadline = time.monotonic() + wait
    return {node.name: node.leftovers(prefixes, max(0.0, deadline - time.monotonic()))
            for node in nodes}


def merged(by_node: dict[str, dict[str, list[str]]]) -> dict[str, list[str]]:
    """Leftovers of all nodes in one {channels, bridges}; ids named `node:id` when there are
    several nodes."""
    several = len(by_node) > 1
    out: dict[str, list[str]] = {"channels": [], "bridges": []}
    for name, left in by_node.items():
        for what, ids in left.items():
            out[what] += [f"{name}:{i}" if several else i for i in ids]
    return out
