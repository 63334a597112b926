"""The phones of bench/calls.py: SIPp as extension 1001 and as the trunk, the contact numbers
that tell the calls apart in SIPp's logs, and a follower of the extension's message log that
says when each call's INVITE arrived and when the call ended there."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # for the SIPp helpers of the tests
    sys.path.insert(0, str(ROOT))

from tests.helpers.sipp import SipMessage, Sipp, parse_message_log  # noqa: E402

AGENT_PORT = 5071  # extension 1001's contact in asterisk/pjsip.conf
TRUNK_PORT = 5080  # the trunk's contact
EXTENSION = "1001"
TAIL_INTERVAL = 0.01  # seconds between reads of the agent's SIPp message log


def contact_number(kind: int, round_no: int, n: int) -> str:
    """A contact unique in the run, so each call is found in SIPp's logs by its number: the
    extension's INVITE shows it in From (the service's caller-ID rule, and the raw script's
    callerId), the trunk's in the request URI."""
    return f"+4930{kind}{round_no}{n:06d}"


def sipp_time(message: SipMessage) -> float:
    """SIPp's log timestamp (local wall clock, microseconds) as Unix seconds."""
    return datetime.strptime(message.timestamp, "%Y-%m-%d %H:%M:%S.%f").timestamp()


class Peers:
    """The extension's phone and the trunk, started fresh for every phase of the run so that
    each phase has logs of its own; stopped by pid (the tests' Sipp helper)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.running: list[Sipp] = []

    def start(self, name: str, hold_ms: int) -> Sipp:
        """The extension's phone answers at once and waits for BYE; the contact answers at
        once and hangs up after `hold_ms`. Returns the extension's phone."""
        self.stop()
        agent = Sipp("uas_answer.xml", AGENT_PORT, duration_ms=0,
                     workdir=self.workdir / f"sipp-{name}-agent")
        trunk = Sipp("uas_answer_then_bye.xml", TRUNK_PORT, duration_ms=hold_ms,
                     workdir=self.workdir / f"sipp-{name}-trunk")
        for peer in (agent, trunk):
            self.running.append(peer)
            peer.start()
        return agent

    def stop(self, quiet: bool = False) -> None:
        """Stop the running peers; `quiet` (clean-up) tries each one whatever happens."""
        peers, self.running = self.running, []
        for peer in peers:
            if quiet:
                with contextlib.suppress(Exception):
                    peer.stop()
            else:
                peer.stop()


class AgentLog:
    """Follows the `-trace_msg` log of the extension's SIPp while it grows: for every contact
    number, when its INVITE arrived and when the call ended there (BYE or CANCEL)."""

    _HEAD = re.compile(r"^-{20,} \S+ \S+$", re.M)

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: Any = None
        self._pending = ""
        self._users: dict[str, str] = {}  # SIP Call-ID -> contact number
        self.invites: dict[str, float] = {}
        self.ends: dict[str, float] = {}
        self._waiters: dict[tuple[str, str], list[asyncio.Future[float]]] = {}

    def poll(self, final: bool = False) -> None:
        """Read what was added to the log; `final` once SIPp is done writing."""
        if self._fh is None:
            try:
                self._fh = open(self.path, encoding="latin-1")  # noqa: SIM115
            except FileNotFoundError:
                return
        self._pending += self._fh.read()
        heads = list(self._HEAD.finditer(self._pending))
        # The last block may still be being written; it is complete once the next starts.
        cut = len(self._pending) if final else (heads[-1].start() if heads else 0)
        if cut == 0:
            return
        text, self._pending = self._pending[:cut], self._pending[cut:]
        for message in parse_message_log(text):
            if message.direction != "received" or not message.is_request:
                continue
            if message.method == "INVITE" and message.call_id not in self._users:
                user = message.from_user or ""
                self._users[message.call_id or ""] = user
                self._seen("invite", user, sipp_time(message))
            elif message.method in ("BYE", "CANCEL"):
                user = self._users.get(message.call_id or "")
                if user is not None:
                    self._seen("end", user, sipp_time(message))

    def _seen(self, kind: str, user: str, at: float) -> None:
        seen = self.invites if kind == "invite" else self.ends
        if user in seen:
            return
        seen[user] = at
        for waiter in self._waiters.pop((kind, user), []):
            if not waiter.done():
                waiter.set_result(at)

    def wait(self, kind: str, user: str) -> asyncio.Future[float]:
        """A future of the time `kind` ("invite" or "end") was seen for the contact."""
        waiter: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        seen = self.invites if kind == "invite" else self.ends
        if user in seen:
            waiter.set_result(seen[user])
        else:
            self._waiters.setdefault((kind, user), []).append(waiter)
        return waiter

    async def follow(self, interval: float = TAIL_INTERVAL) -> None:
        while True:
            self.poll()
            await asyncio.sleep(interval)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


@contextlib.contextmanager
def following(agent_log: AgentLog) -> Iterator[asyncio.Task[None]]:
    """Keep reading the log in the background while the block runs."""
    task = asyncio.get_running_loop().create_task(agent_log.follow())
    try:
        yield task
    finally:
        task.cancel()
