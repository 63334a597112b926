"""The load runs of bench/calls.py: N calls, C at a time (a slot is free again when the
extension's phone gets its BYE), the contact hanging up after HOLD_MS; once through the
service, once through the raw-ARI script (raw_driver.py, its own process). Two phases run
this way: "load" (100 at a time by default, below the service's admission limit) and
"saturation" (400 at a time, above it). A connect the service's admission control refuses
(503 with Retry-After, before anything is dialled) is sent again after Retry-After seconds
by the same worker, and counted apart. Then the service's history is checked against the
connects it accepted.

With several service instances the connects go to them in turn, and their CPU is added up
(with PostgreSQL's, where the service's database work is done); with several Asterisk nodes
each node's CPU is read apart, and the raw script places its calls on the nodes in turn."""

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
from calls_asterisk import Asterisk, cpu_by_node, leftovers, merged
from calls_service import SERVICE_PREFIX, CallService
from calls_sipp import AgentLog, Peers, contact_number, following
from common import BenchError, die_with_parent, log, stop_process
from raw_driver import RAW_PREFIX, closed_loop

from c2c_ari import localasterisk

HOLD_MS = 1000  # the contact hangs up this long after answering
END_TIMEOUT = 45.0  # a call not over after this long counts as stuck
DNS_PITFALL_S = 4.0  # a leg this slow to reach SIPp smells of the 5 s DNS timeout
CPU_SETTLE_S = 1.0  # after the last call, for its clean-up and history write, before CPU reads
# A call refused by admission control for longer than this gives up (and fails the run), so a
# service that never admits again cannot hold the bench for ever.
ADMISSION_PATIENCE_S = 60.0
GAVE_UP = f"gave up: refused by admission control for {ADMISSION_PATIENCE_S:.0f} s"
PHASES = ("load", "saturation")
# The first digit of the contact numbers (calls_sipp.contact_number) of each phase and side,
# so every call of the run has a number of its own; 1, 2 and 5 are the overhead phase's.
CONTACT_KINDS = {("load", "raw"): 3, ("load", "service"): 4,
                 ("saturation", "raw"): 6, ("saturation", "service"): 7}


def run_name(phase: str, side: str, round_no: int, tag: str = "") -> str:
    """The name of a run's SIPp and raw-script logs ("raw-0" for the first load run, as
    before the saturation phase existed; "saturation-raw-0"; "b-saturation-raw-0" for setup
    b of a comparison)."""
    name = f"{side}-{round_no}" if phase == "load" else f"{phase}-{side}-{round_no}"
    return f"{tag}-{name}" if tag else name


def _spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {key: after[key] - before[key] for key in before}


@dataclass
class LoadRun:
    """What one load run of one side measured."""

    side: str  # "raw" or "service"
    round_no: int
    calls: int
    ended: int
    ok: int
    elapsed: float
    client_cpu_s: float  # the service (all instances, and PostgreSQL's), or the raw script
    asterisk_cpu_s: float  # Asterisk's processes (every node's) in the same window
    invite_ms: list[float] = field(default_factory=list)
    causes: Counter[str] = field(default_factory=Counter)
    call_ids: list[str] = field(default_factory=list)
    # Service: connects answered neither 202 nor an admission-control 503 (status and body).
    refused: list[str] = field(default_factory=list)
    left: dict[str, list[str]] = field(default_factory=dict)
    slow_calls: int = 0
    phase: str = "load"  # "load" or "saturation"
    # Service only, from here on.
    admission_refusals: int = 0  # connects answered 503 + Retry-After, each sent again
    calls_refused_once: int = 0  # calls with at least one such refusal
    most_refusals: int = 0  # the most refusals one call got before its 202
    # For each call refused at least once and then answered 202: seconds from its first
    # connect to that 202 (what admission control cost its caller).
    admission_wait_s: list[float] = field(default_factory=list)
    gave_up: int = 0  # calls refused for ADMISSION_PATIENCE_S: never placed
    stuck: set[str] = field(default_factory=set)  # call ids whose extension got no BYE
    # Calls answered 202 whose history is not a success (or is missing), or that got stuck:
    # the far ends all answer, so each is a call the service accepted and then lost.
    accepted_then_failed: int = 0
    # Calls whose extension was rung although no connect for them had been answered 202
    # yet (a refused connect that dialled after all); their latency is left out.
    dialled_before_202: int = 0
    loader_cpu_s: float = 0.0  # service side: the bench's own loader (this process)
    # Service: the history items of its calls that did not succeed (the first few), for the
    # report: when each leg answered and how it ended say what went wrong.
    failed_rows: list[dict[str, Any]] = field(default_factory=list)
    # Each node's CPU in the run's window, and the calls placed on it (the service's from
    # its history, the raw script's from its own results).
    asterisk_cpu_by_node: dict[str, float] = field(default_factory=dict)
    calls_by_node: Counter[str] = field(default_factory=Counter)
    database_cpu_s: float = 0.0  # service: PostgreSQL's part of client_cpu_s
    instances: int = 1  # service: how many instances shared the calls
    tag: str = ""  # the setup of a comparison the run belongs to

    @property
    def cps(self) -> float:
        return self.ended / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def bridged_cps(self) -> float:
        """Calls that succeeded per second: a driver that loses calls under saturation ends
        them sooner, and must not look faster for it."""
        return self.ok / self.elapsed if self.elapsed > 0 else 0.0


def _too_slow(t_post: float, t_end: float) -> bool:
    """A call that ran seconds over its length: a leg waited for something (DNS)."""
    return t_end - t_post > HOLD_MS / 1000 + DNS_PITFALL_S


async def load_service(
    service: CallService, nodes: list[Asterisk], peers: Peers, calls: int, concurrency: int,
    round_no: int, phase: str = "load", tag: str = "",
) -> LoadRun:
    """The service's side: non-blocking connects from this process, to its instances in
    turn. A connect refused by admission control keeps its worker (a caller who waits and
    tries again), which sends it again after Retry-After seconds; the call's latency counts
    from the connect answered 202."""
    agent = peers.start(run_name(phase, "service", round_no, tag), HOLD_MS)
    agent_log = AgentLog(agent.message_log)
    kind = CONTACT_KINDS[phase, "service"]
    log(f"{f'{tag}: ' if tag else ''}{phase} round {round_no + 1}: service, {calls} calls, "
        f"{concurrency} at a time")
    connector = TCPConnector(limit=concurrency)
    async with ClientSession(connector=connector, timeout=ClientTimeout(total=60),
                             trust_env=False) as session:

        async def one(index: int) -> dict[str, Any]:
            contact = contact_number(kind, round_no, index)
            end = agent_log.wait("end", contact)
            refusals = 0
            first = time.time()
            patience = time.monotonic() + ADMISSION_PATIENCE_S
            while True:
                started = time.time()
                answer = await service.connect(session, contact)
                if not answer.admission_refused or answer.retry_after is None:
                    break
                refusals += 1
                if time.monotonic() + answer.retry_after > patience:
                    end.cancel()
                    return {"contact": contact, "status": 503, "gave_up": True,
                            "refusals": refusals, "t_post": started}
                await asyncio.sleep(answer.retry_after)
            if answer.status != 202:
                end.cancel()
                return {"contact": contact, "status": answer.status, "refusals": refusals,
                        "body": json.dumps(answer.body)[:300], "t_post": started}
            call_id = answer.body["data"]["outbound_call_id"]
            try:
                await asyncio.wait_for(end, END_TIMEOUT)
            except TimeoutError:
                return {"contact": contact, "status": 202, "call_id": call_id,
                        "refusals": refusals, "t_first": first, "t_post": started,
                        "stuck": True}
            return {"contact": contact, "status": 202, "call_id": call_id,
                    "refusals": refusals, "t_first": first, "t_post": started,
                    "t_end": time.time()}

        with following(agent_log):
            own_before = os.times()
            service_before, nodes_before = service.cpu_seconds(), cpu_by_node(nodes)
            results, elapsed = await closed_loop(calls, concurrency, one)
            await asyncio.sleep(CPU_SETTLE_S)
            service_cpu = _spent(service_before, service.cpu_seconds())
            nodes_cpu = _spent(nodes_before, cpu_by_node(nodes))
            own_after = os.times()
    agent_log.poll(final=True)
    agent_log.close()
    run = LoadRun(
        side="service", round_no=round_no, calls=calls,
        ended=sum(1 for r in results if "t_end" in r), ok=0, elapsed=elapsed,
        client_cpu_s=service_cpu["total"], asterisk_cpu_s=sum(nodes_cpu.values()),
        phase=phase, asterisk_cpu_by_node=nodes_cpu, database_cpu_s=service_cpu["database"],
        instances=len(service.instances), tag=tag,
    )
    # Reported because a loader short of CPU would slow the service's side down (the raw
    # script is its own loader, the service's side has this process on the same CPUs).
    run.loader_cpu_s = (own_after.user + own_after.system) - (own_before.user + own_before.system)
    log(f"  the bench's own loader used {run.loader_cpu_s:.2f} s of CPU")
    for r in results:
        run.admission_refusals += r["refusals"]
        run.calls_refused_once += r["refusals"] > 0
        run.most_refusals = max(run.most_refusals, r["refusals"])
        if r.get("gave_up"):
            run.gave_up += 1
            run.causes[GAVE_UP] += 1
        elif r["status"] != 202:
            run.refused.append(f"{r['status']} {r['body']}")
            run.causes[f"HTTP {r['status']}"] += 1
        else:
            run.call_ids.append(r["call_id"])
            if r["refusals"]:
                run.admission_wait_s.append(r["t_post"] - r["t_first"])
            if r.get("stuck"):
                run.stuck.add(r["call_id"])
                run.causes["STUCK (no BYE at the extension)"] += 1
        invite = agent_log.invites.get(r["contact"])
        if invite is not None:
            # No INVITE can come before the connect that caused it: one that does (or one
            # for a call never answered 202) was dialled by a connect answered otherwise.
            if r["status"] != 202 or invite < r["t_post"]:
                run.dialled_before_202 += 1
            else:
                run.invite_ms.append((invite - r["t_post"]) * 1000)
        if "t_end" in r and _too_slow(r["t_post"], r["t_end"]):
            run.slow_calls += 1
    # Outcomes (ok, causes, calls by node) come from the history: check_history.
    run.left = merged(leftovers(nodes, (SERVICE_PREFIX,)))
    peers.stop()
    database = (f" (PostgreSQL {run.database_cpu_s:.2f} s)"
                if service.postgres is not None else "")
    log(f"  {run.ended}/{run.calls} ended, {run.cps:.1f} calls/s, "
        f"service CPU {run.client_cpu_s:.2f} s{database}, "
        f"Asterisk CPU {run.asterisk_cpu_s:.2f} s, "
        f"{run.admission_refusals} connects refused by admission control")
    return run


class RawDriver:
    """The raw-ARI script's process (raw_driver.py), one per load run, on the same nodes as
    the service. Its config file holds the ARI passwords: mode 0600, and --keep-logs leaves
    it out."""

    def __init__(self, workdir: Path, infos: list[localasterisk.AriInfo]) -> None:
        self.workdir = workdir
        self.infos = infos
        self.proc: subprocess.Popen[bytes] | None = None
        self.name = "0"

    def start(self, phase: str, round_no: int, calls: int, concurrency: int,
              tag: str = "") -> None:
        """Start it and wait until its events websockets are up."""
        # Load runs keep their old file names and channel ids; saturation runs get their own,
        # and so does each setup of a comparison.
        self.name = str(round_no) if phase == "load" else f"{phase}-{round_no}"
        label = str(round_no) if phase == "load" else f"s{round_no}"
        if tag:
            self.name, label = f"{tag}-{self.name}", f"{tag}{label}"
        config = self.workdir / f"raw-driver-{self.name}.json"
        config.touch(mode=0o600)
        config.write_text(json.dumps({
            "nodes": [{"name": info.name or f"node{info.node}", "url": info.url,
                       "user": info.user, "password": info.password} for info in self.infos],
            "calls": calls, "concurrency": concurrency,
            "kind": CONTACT_KINDS[phase, "raw"], "round": round_no, "label": label,
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
        return self.workdir / f"raw-driver-{self.name}.log"

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
    driver: RawDriver, nodes: list[Asterisk], peers: Peers, calls: int, concurrency: int,
    round_no: int, phase: str = "load", tag: str = "",
) -> LoadRun:
    """The raw-ARI script's side, at the same concurrency (it has no admission control: it
    originates as many calls as it has workers), its calls on the nodes in turn."""
    agent = peers.start(run_name(phase, "raw", round_no, tag), HOLD_MS)
    log(f"{f'{tag}: ' if tag else ''}{phase} round {round_no + 1}: raw ARI script, {calls} "
        f"calls, {concurrency} at a time")
    driver.start(phase, round_no, calls, concurrency, tag)
    nodes_before = cpu_by_node(nodes)
    driver.go()
    result = driver.result(END_TIMEOUT + 60 + calls / concurrency * 10)
    time.sleep(CPU_SETTLE_S)  # as for the service: equal windows
    nodes_cpu = _spent(nodes_before, cpu_by_node(nodes))
    driver.stop()
    agent_log = AgentLog(agent.message_log)
    agent_log.poll(final=True)
    agent_log.close()
    results = result["results"]
    run = LoadRun(
        side="raw", round_no=round_no, calls=calls,
        ended=sum(1 for r in results if r.get("cause") != "STUCK"),
        ok=sum(1 for r in results if r["ok"]), elapsed=result["elapsed"],
        client_cpu_s=result["cpu_s"], asterisk_cpu_s=sum(nodes_cpu.values()),
        phase=phase, asterisk_cpu_by_node=nodes_cpu, tag=tag,
    )
    for r in results:
        run.causes["success" if r["ok"] else r.get("cause", "?")] += 1
        run.calls_by_node[r.get("node", "node1")] += 1
        invite = agent_log.invites.get(r["contact"])
        if invite is not None:
            run.invite_ms.append((invite - r["t_post"]) * 1000)
        if _too_slow(r["t_post"], r["t_end"]):
            run.slow_calls += 1
    run.left = merged(leftovers(nodes, (RAW_PREFIX,)))
    peers.stop()
    log(f"  {run.ok}/{run.calls} bridged, {run.cps:.1f} calls/s, "
        f"script CPU {run.client_cpu_s:.2f} s, Asterisk CPU {run.asterisk_cpu_s:.2f} s")
    return run


def check_history(service: CallService, runs: list[LoadRun]) -> dict[str, Any]:
    """Every connect answered 202 must have exactly one history row once calls are over (a
    connect refused by admission control has none, and its call's 202 is a connect of its
    own), whichever instance answered it; the service's load runs get their success counts,
    causes and calls by node from there. `runs` are this service's runs only."""
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
            if row is not None:
                run.calls_by_node[str(row.get("node", "?"))] += 1
            if row is None:
                run.causes["no history row"] += 1
                run.accepted_then_failed += 1
            elif row.get("result") == "success":
                run.ok += 1
                run.causes["success"] += 1
                run.accepted_then_failed += call_id in run.stuck
            else:
                run.causes[f"{row.get('cause')} ({row.get('failed_leg')} leg)"] += 1
                run.accepted_then_failed += 1
                if len(run.failed_rows) < 5:
                    run.failed_rows.append(row)
    return {
        "attempts": expected, "rows": len(rows), "duplicates": duplicates,
        "missing": missing[:20], "missing_count": len(missing),
        "unknown": unknown[:20], "unknown_count": len(unknown),
        "results": dict(results.most_common()),
        "pass": len(rows) == expected and not missing and not duplicates and not unknown,
    }
