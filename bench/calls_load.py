"""The load phase of bench/calls.py: N calls, C at a time (a slot is free again when the
extension's phone gets its BYE), the contact hanging up after HOLD_MS; once through the
service, once through the raw-ARI script (raw_driver.py, its own process). Then the
service's history is checked against the connects it accepted."""

from __future__ import annotations

import asyncio
import json
import os
import select
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import raw_driver
from aiohttp import ClientSession, ClientTimeout, TCPConnector
from calls_asterisk import Asterisk
from calls_service import SERVICE_PREFIX, CallService
from calls_sipp import AgentLog, Peers, contact_number, following
from common import BenchError, cpu_seconds, die_with_parent, log, stop_process
from raw_driver import RAW_PREFIX, closed_loop

from c2c_ari import localasterisk

HOLD_MS = 1000  # the contact hangs up this long after answering
END_TIMEOUT = 45.0  # a call not over after this long counts as stuck
DNS_PITFALL_S = 4.0  # a leg this slow to reach SIPp smells of the 5 s DNS timeout
CPU_SETTLE_S = 1.0  # after the last call, for its clean-up and history write, before CPU reads


@dataclass
class LoadRun:
    """What one load run of one side measured."""

    side: str  # "raw" or "service"
    round_no: int
    calls: int
    ended: int
    ok: int
    elapsed: float
    client_cpu_s: float  # the service process, or the raw script
    asterisk_cpu_s: float  # Asterisk's process in the same window
    invite_ms: list[float] = field(default_factory=list)
    causes: Counter[str] = field(default_factory=Counter)
    call_ids: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # service: connects not answered 202
    left: dict[str, list[str]] = field(default_factory=dict)
    slow_calls: int = 0

    @property
    def cps(self) -> float:
        return self.ended / self.elapsed if self.elapsed > 0 else 0.0


def _too_slow(t_post: float, t_end: float) -> bool:
    """A call that ran seconds over its length: a leg waited for something (DNS)."""
    return t_end - t_post > HOLD_MS / 1000 + DNS_PITFALL_S


async def load_service(
    service: CallService, asterisk: Asterisk, peers: Peers, calls: int, concurrency: int,
    round_no: int,
) -> LoadRun:
    """The service's side: non-blocking connects from this process."""
    agent = peers.start(f"service-{round_no}", HOLD_MS)
    agent_log = AgentLog(agent.message_log)
    log(f"load round {round_no + 1}: service, {calls} calls, {concurrency} at a time")
    connector = TCPConnector(limit=concurrency)
    async with ClientSession(connector=connector, timeout=ClientTimeout(total=60),
                             trust_env=False) as session:

        async def one(index: int) -> dict[str, Any]:
            contact = contact_number(4, round_no, index)
            end = agent_log.wait("end", contact)
            started = time.time()
            status, body = await service.connect(session, contact)
            if status != 202:
                end.cancel()
                return {"contact": contact, "status": status,
                        "body": json.dumps(body)[:300], "t_post": started}
            call_id = body["data"]["outbound_call_id"]
            try:
                await asyncio.wait_for(end, END_TIMEOUT)
            except TimeoutError:
                return {"contact": contact, "status": 202, "call_id": call_id,
                        "t_post": started, "stuck": True}
            return {"contact": contact, "status": 202, "call_id": call_id,
                    "t_post": started, "t_end": time.time()}

        with following(agent_log):
            own_before = os.times()
            service_before, asterisk_before = cpu_seconds(service.pid), cpu_seconds(asterisk.pid)
            results, elapsed = await closed_loop(calls, concurrency, one)
            await asyncio.sleep(CPU_SETTLE_S)
            service_after, asterisk_after = cpu_seconds(service.pid), cpu_seconds(asterisk.pid)
            own_after = os.times()
    agent_log.poll(final=True)
    agent_log.close()
    run = LoadRun(
        side="service", round_no=round_no, calls=calls,
        ended=sum(1 for r in results if "t_end" in r), ok=0, elapsed=elapsed,
        client_cpu_s=service_after - service_before,
        asterisk_cpu_s=asterisk_after - asterisk_before,
    )
    # Printed because a loader short of CPU would slow the service's side down.
    loader_cpu = (own_after.user + own_after.system) - (own_before.user + own_before.system)
    log(f"  the bench's own loader used {loader_cpu:.2f} s of CPU")
    for r in results:
        if r["status"] != 202:
            run.refused.append(f"{r['status']} {r['body']}")
            run.causes[f"HTTP {r['status']}"] += 1
        else:
            run.call_ids.append(r["call_id"])
            if r.get("stuck"):
                run.causes["STUCK (no BYE at the extension)"] += 1
        invite = agent_log.invites.get(r["contact"])
        if invite is not None:
            run.invite_ms.append((invite - r["t_post"]) * 1000)
        if "t_end" in r and _too_slow(r["t_post"], r["t_end"]):
            run.slow_calls += 1
    # Outcomes (ok, causes) come from the history at the end: check_history.
    run.left = asterisk.leftovers((SERVICE_PREFIX,))
    peers.stop()
    log(f"  {run.ended}/{run.calls} ended, {run.cps:.1f} calls/s, "
        f"service CPU {run.client_cpu_s:.2f} s, Asterisk CPU {run.asterisk_cpu_s:.2f} s")
    return run


class RawDriver:
    """The raw-ARI script's process (raw_driver.py), one per load run. Its config file holds
    the ARI password: mode 0600, and --keep-logs leaves it out."""

    def __init__(self, workdir: Path, info: localasterisk.AriInfo) -> None:
        self.workdir = workdir
        self.info = info
        self.proc: subprocess.Popen[bytes] | None = None
        self.round_no = 0

    def start(self, round_no: int, calls: int, concurrency: int) -> None:
        """Start it and wait until its events websocket is up."""
        self.round_no = round_no
        config = self.workdir / f"raw-driver-{round_no}.json"
        config.touch(mode=0o600)
        config.write_text(json.dumps({
            "url": self.info.url, "user": self.info.user, "password": self.info.password,
            "calls": calls, "concurrency": concurrency, "kind": 3, "round": round_no,
        }))
        with open(self._log_path, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(Path(raw_driver.__file__).resolve()), str(config)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                start_new_session=True, preexec_fn=die_with_parent,
            )
        ready = self._line(30)
        if ready.strip() != b"READY":
            raise BenchError(f"the raw ARI script did not start: {ready[:300]!r}")

    def go(self) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.flush()

    def result(self, timeout: float) -> dict[str, Any]:
        """Its RESULT: every call's outcome, the wall time and its CPU seconds."""
        line = self._line(timeout)
        if not line.startswith(b"RESULT "):
            raise BenchError(f"the raw ARI script failed: {line[:300]!r}")
        result: dict[str, Any] = json.loads(line[len(b"RESULT "):])
        return result

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None

    @property
    def _log_path(self) -> Path:
        return self.workdir / f"raw-driver-{self.round_no}.log"

    def _line(self, timeout: float) -> bytes:
        """The next line it prints, or a BenchError with its stderr after `timeout`."""
        proc = self.proc
        assert proc is not None and proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        line = proc.stdout.readline() if ready else b""
        if not line:
            err = self._log_path.read_text(errors="replace")
            raise BenchError(f"the raw ARI script gave no answer in {timeout:.0f} s "
                             f"(exit status {proc.poll()}):\n{err[-2000:]}")
        return line


def load_raw(
    driver: RawDriver, asterisk: Asterisk, peers: Peers, calls: int, concurrency: int,
    round_no: int,
) -> LoadRun:
    """The raw-ARI script's side, at the same concurrency."""
    agent = peers.start(f"raw-{round_no}", HOLD_MS)
    log(f"load round {round_no + 1}: raw ARI script, {calls} calls, "
        f"{concurrency} at a time")
    driver.start(round_no, calls, concurrency)
    asterisk_before = cpu_seconds(asterisk.pid)
    driver.go()
    result = driver.result(END_TIMEOUT + 60 + calls / concurrency * 10)
    time.sleep(CPU_SETTLE_S)  # as for the service: equal windows
    asterisk_after = cpu_seconds(asterisk.pid)
    driver.stop()
    agent_log = AgentLog(agent.message_log)
    agent_log.poll(final=True)
    agent_log.close()
    results = result["results"]
    run = LoadRun(
        side="raw", round_no=round_no, calls=calls,
        ended=sum(1 for r in results if r.get("cause") != "STUCK"),
        ok=sum(1 for r in results if r["ok"]), elapsed=result["elapsed"],
        client_cpu_s=result["cpu_s"], asterisk_cpu_s=asterisk_after - asterisk_before,
    )
    for r in results:
        run.causes["success" if r["ok"] else r.get("cause", "?")] += 1
        invite = agent_log.invites.get(r["contact"])
        if invite is not None:
            run.invite_ms.append((invite - r["t_post"]) * 1000)
        if _too_slow(r["t_post"], r["t_end"]):
            run.slow_calls += 1
    run.left = asterisk.leftovers((RAW_PREFIX,))
    peers.stop()
    log(f"  {run.ok}/{run.calls} bridged, {run.cps:.1f} calls/s, "
        f"script CPU {run.client_cpu_s:.2f} s, Asterisk CPU {run.asterisk_cpu_s:.2f} s")
    return run


def check_history(service: CallService, runs: list[LoadRun]) -> dict[str, Any]:
    """Every connect answered 202 must have exactly one history row once calls are over;
    the service's load runs get their success counts and causes from there."""
    rows = service.history()
    expected = len(service.attempts)
    by_id: dict[str, dict[str, Any]] = {}
    duplicates = 0
    for row in rows:
        if row.get("call_id") in by_id:
            duplicates += 1
        by_id[row.get("call_id", "")] = row
    missing = [call_id for call_id in service.attempts if call_id not in by_id]
    unknown = [call_id for call_id in by_id if call_id not in set(service.attempts)]
    results = Counter(
        "success" if row.get("result") == "success"
        else f"error {row.get('cause')} ({row.get('failed_leg')} leg)"
        for row in rows
    )
    for run in runs:
        if run.side != "service":
            continue
        for call_id in run.call_ids:
            row = by_id.get(call_id)
            if row is None:
                run.causes["no history row"] += 1
            elif row.get("result") == "success":
                run.ok += 1
                run.causes["success"] += 1
            else:
                run.causes[f"{row.get('cause')} ({row.get('failed_leg')} leg)"] += 1
    return {
        "attempts": expected, "rows": len(rows), "duplicates": duplicates,
        "missing": missing[:20], "missing_count": len(missing),
        "unknown": unknown[:20], "unknown_count": len(unknown),
        "results": dict(results.most_common()),
        "pass": len(rows) == expected and not missing and not duplicates and not unknown,
    }
