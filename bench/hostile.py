"""Hostile requests against the real service: the CPU each one costs it, the latency other
clients see meanwhile, and the memory it keeps.

Run from the repository (with the project installed in the active Python):

    python bench/hostile.py [--quick] [--service-python OTHER_VENV/bin/python] [--json]

Every attack (hostile_requests.py) gets a fresh service process (`python -m c2c_ari serve`)
on a fresh data dir, with an account, a token and one click-to-call, warmed up by a few plain
requests. Then:
- a probe from another process (probe.py) sends one small authenticated GET every 10 ms for
  a while alone (the idle baseline), then during the attack: p99 and max of its latency;
- the service's CPU (utime + stime from /proc/PID/stat) before and after the attack, once
  the service is idle again: best of --reps runs without the probe, or, for an attack that
  took more than --slow seconds or that is many requests in a row, the probe run itself
  less what the probe's own GETs cost (measured in the baseline);
- VmRSS before the first run and after the last, and the peak in between (VmHWM).
A request that does not complete within --timeout is reported as such, with the CPU spent
until then; the service is then replaced.

Exit status: 0 when the run completed (whether or not a target was met), 1 when a setup step
failed (the service did not start, the probe could not reach it), 2 on bad options.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import probe
from aiohttp import ClientError, ClientSession, ClientTimeout
from common import (
    BenchError,
    Server,
    Service,
    cpu_seconds,
    exit_on_sigterm,
    log,
    memory_mb,
    reset_peak,
    start_service,
)
from hostile_requests import Attack, Request, attacks
from probe import Probe, ProbeResult
from report import Column, Target, json_summary, rounded, table
from target import Target as ServiceTarget

CPU_TARGET = Target("<=", 100.0)  # ms of service CPU per hostile request
P99_TARGET = Target("<=", 100.0)  # ms, other clients' GETs during the attack
RSS_TARGET = Target("<=", 100.0)  # MB, peak RSS over the RSS before the attack
QUICK = ("plain", "\\pL{300}", "\\pL{416}", "(?i)", "gzip 60 MB -> PUT /v2/api_auth",
         "nested")


@dataclass
class Outcome:
    """What one run of an attack did."""

    status: str  # the answer's status and message, or "timeout after N s"
    wall_s: float
    cpu_s: float
    timed_out: bool = False
    probe: ProbeResult | None = None


@dataclass
class Result:
    name: str
    count: int
    body_bytes: int
    runs: list[Outcome] = field(default_factory=list)
    baseline: ProbeResult | None = None
    rss_before: float = 0.0
    rss_after: float = 0.0
    rss_peak: float = 0.0

    def summary(self) -> dict[str, Any]:
        cpu_runs = [run for run in self.runs if run.probe is None] or self.runs
        probe_runs = [run for run in self.runs if run.probe is not None]
        best_cpu = min(run.cpu_s for run in cpu_runs) / self.count
        p99 = min((run.probe.pct(99) for run in probe_runs if run.probe), default=float("nan"))
        worst = min((run.probe.max_ms for run in probe_runs if run.probe),
                    default=float("nan"))
        timed_out = any(run.timed_out for run in self.runs)
        growth = self.rss_peak - self.rss_before
        return {
            "attack": self.name, "requests": self.count, "body_bytes": self.body_bytes,
            "status": self.runs[0].status if self.runs else "not run",
            "wall_s": min(run.wall_s for run in self.runs) / self.count,
            "cpu_ms": best_cpu * 1000, "cpu_runs": len(cpu_runs), "timed_out": timed_out,
            "cpu_pass": CPU_TARGET.met(best_cpu * 1000) and not timed_out,
            "p99_ms": p99, "max_ms": worst,
            "p99_pass": P99_TARGET.met(p99) and not timed_out,
            "probe_samples": sum(run.probe.count for run in probe_runs if run.probe),
            "probe_errors": sum(run.probe.errors for run in probe_runs if run.probe),
            "probe_first_error": next((run.probe.first_error for run in probe_runs
                                       if run.probe and run.probe.errors), ""),
            "idle_p99_ms": self.baseline.pct(99) if self.baseline else float("nan"),
            "rss_before_mb": self.rss_before, "rss_after_mb": self.rss_after,
            "rss_peak_mb": self.rss_peak, "rss_growth_mb": growth,
            "rss_pass": RSS_TARGET.met(growth),
        }


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="c2c-ari-bench-hostile-"))
        self.servers: list[Server] = []
        self.target = ServiceTarget.detect(args.service_python, self.tmp)

    def cleanup(self) -> None:
        for server in self.servers:
            with contextlib.suppress(Exception):
                server.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def start(self, number: int) -> Service:
        """A fresh service on a data dir of its own, with an account and a token."""
        data_dir = self.tmp / f"attack-{number:02d}"
        data_dir.mkdir()
        config = data_dir / "bench.toml"
        config.write_text(self.target.config(token_ttl=86_400))
        service = start_service(f"service (attack {number})", data_dir,
                                data_dir / "server.log", config=config,
                                started=self.servers, python=self.target.python, cwd=self.tmp)
        return service

    async def run(self) -> list[dict[str, Any]]:
        chosen = [attack for attack in attacks()
                  if not self.args.quick or any(key in attack.name for key in QUICK)]
        results = []
        for number, attack in enumerate(chosen, start=1):
            log(f"attack {number}/{len(chosen)}: {attack.name}")
            result = await self.attack(number, attack)
            summary = result.summary()
            log(f"  {summary['status']}: CPU {summary['cpu_ms']:,.1f} ms per request, GET p99 "
                f"{summary['p99_ms']:,.1f} ms, max {summary['max_ms']:,.1f} ms, RSS +"
                f"{summary['rss_growth_mb']:,.0f} MB")
            results.append(summary)
        return results

    async def attack(self, number: int, attack: Attack) -> Result:
        service = self.start(number)
        args = self.args
        pid = service.server.pid
        timeout = ClientTimeout(total=args.timeout)
        async with ClientSession(timeout=timeout) as session:
            created = await send(session, service, Request("collection", (
                b'{"data":{"name":"Probe","extension":"1001","whitelist":["^\\\\+1"]}}')))
            if not created.status.startswith("201"):
                raise BenchError(f"cannot create the probe's click-to-call: {created.status}")
            probe_url = f"{service.collection}/{created.doc_id}"
            for _ in range(5):  # warm-up: first-request costs are not the attack's
                await send(session, service, Request("collection", (
                    b'{"data":{"name":"Warm","extension":"1001"}}')))
                await send(session, service, Request("item", b"", method="GET"),
                           item=created.doc_id)
            await wait_idle(pid)
            result = Result(attack.name, attack.count, len(attack.make(0).body))
            made = 0  # requests of this attack made so far: each next one is new
            # The probe alone: its latency and what its GETs cost the service.
            cpu_before = cpu_seconds(pid)
            with Probe(probe_url, service.token, rate=args.probe_rate,
                       timeout=args.timeout) as probe:
                await asyncio.sleep(args.probe_baseline)
                result.baseline = probe.stop()
            await wait_idle(pid)
            probe_cpu = (cpu_seconds(pid) - cpu_before) / max(result.baseline.count, 1)

            result.rss_before = memory_mb(pid)["VmRSS"]
            peak_reset = reset_peak(pid)
            # First run: with the probe.
            requests = [attack.make(made + i) for i in range(attack.count)]
            made += len(requests)
            outcome = await self.one_run(session, service, requests, probe_url, probe_cpu)
            result.runs.append(outcome)
            # Then the CPU runs, without the probe, unless one run says enough. A cheap
            # attack is sent several times per run: /proc counts CPU in 10 ms ticks.
            slow = outcome.timed_out or outcome.cpu_s > args.slow
            batch = 1 if attack.count > 1 or outcome.cpu_s > 0.2 else 10
            for _ in range(0 if slow else args.reps):
                requests = [attack.make(made + i) for i in range(attack.count * batch)]
                made += len(requests)
                outcome = await self.one_run(session, service, requests, None, 0.0)
                outcome.cpu_s /= batch
                outcome.wall_s /= batch
                result.runs.append(outcome)
            if not any(run.timed_out for run in result.runs):
                memory = memory_mb(pid)
                result.rss_after = memory["VmRSS"]
                result.rss_peak = memory["VmHWM"] if peak_reset else max(
                    memory["VmRSS"], result.rss_before)
            else:
                with contextlib.suppress(OSError):
                    memory = memory_mb(pid)
                    result.rss_after = memory["VmRSS"]
                    result.rss_peak = memory["VmHWM"]
        service.server.stop()
        self.servers.remove(service.server)
        return result

    async def one_run(self, session: ClientSession, service: Service,
                      requests: list[Request], probe_url: str | None,
                      probe_cpu: float) -> Outcome:
        """Requests in a row, once; with the probe when `probe_url`, and then the CPU that
        its GETs took (`probe_cpu` each) is not counted."""
        pid = service.server.pid
        probe = None
        if probe_url is not None:
            probe = Probe(probe_url, service.token, rate=self.args.probe_rate,
                          timeout=self.args.timeout).start()
            await asyncio.sleep(0.3)
        try:
            cpu_before = cpu_seconds(pid)
            started = time.monotonic()
            statuses: list[str] = []
            timed_out = False
            for request in requests:
                sent = await send(session, service, request)
                statuses.append(sent.status)
                if sent.timed_out:
                    timed_out = True
                    break
            ended = time.monotonic()
            samples = None
            probe_gets = 0
            if probe is not None:
                until = max(ended, started + 1.0)
                await asyncio.sleep(max(0.0, until + 0.3 - time.monotonic()))
                if timed_out:
                    # Its GETs wait for the service as long as the attack does: the one due
                    # when the attack started waited at least until the timeout.
                    probe.kill()
                    samples = ProbeResult([(started, ended - started)], 0, "")
                else:
                    everything = probe.stop()
                    probe_gets = len(everything.window(started - 1.0, time.monotonic()).samples)
                    samples = everything.window(started, until)
            if not timed_out:
                await wait_idle(pid)
            cpu = cpu_seconds(pid) - cpu_before - probe_cpu * probe_gets
        finally:
            if probe is not None and probe.proc is not None:
                probe.kill()
        distinct = sorted(set(statuses))
        status = distinct[0] if len(distinct) == 1 else " / ".join(distinct)
        if timed_out:
            status = f"timeout after {self.args.timeout:g} s"
        return Outcome(status, ended - started, max(cpu, 0.0), timed_out,
                       samples if probe_url is not None else None)


@dataclass
class Sent:
    status: str
    timed_out: bool = False
    doc_id: str = ""


async def send(session: ClientSession, service: Service, request: Request,
               item: str = "") -> Sent:
    """One request; its answer as "status message" (never raises on a refusal)."""
    headers = {"Content-Type": "application/json", **request.headers}
    if request.auth:
        headers["X-Auth-Token"] = service.token
    url = {"collection": service.collection, "api_auth": f"{service.base}/v2/api_auth",
           "item": f"{service.collection}/{item}"}[request.path]
    try:
        async with session.request(request.method, url, data=request.body or None,
                                   headers=headers) as resp:
            raw = await resp.read()
            status = resp.status
    except TimeoutError:
        return Sent("timeout", timed_out=True)
    except ClientError as exc:
        return Sent(f"connection error: {type(exc).__name__}")
    message, doc_id = "", ""
    with contextlib.suppress(ValueError, AttributeError, TypeError, StopIteration):
        body = json.loads(raw)
        message = str(body.get("message") or "")
        data = body.get("data") or {}
        doc_id = str(data.get("id") or "")
        if message == "validation error":  # which field and rule: {"field": {"rule": ...}}
            field_name = next(iter(data))
            message = f"{field_name}: {next(iter(data[field_name]))}"
    return Sent(f"{status} {message}".strip()[:40], doc_id=doc_id)


async def wait_idle(pid: int, quiet: float = 0.3, limit: float = 30.0) -> None:
    """Until the process has used no CPU (one clock tick at most) for `quiet` seconds."""
    deadline = time.monotonic() + limit
    last = cpu_seconds(pid)
    while time.monotonic() < deadline:
        await asyncio.sleep(quiet)
        now = cpu_seconds(pid)
        if now - last <= 0.011:
            return
        last = now


# --- report --------------------------------------------------------------------------------

COLUMNS = (
    Column("attack", 42, left=True),
    Column("answer", 30, left=True, gap=" "),
    Column("KB", 5, ",.0f"),
    Column("wall ms", 10, ",.1f"),
    Column("CPU ms", 10, ",.1f"),
    Column("", 5, left=True, gap=" "),
    Column("GET p99", 11, ",.1f"),
    Column("max", 11, ",.1f"),
    Column("idle", 6, ".1f"),
    Column("", 5, left=True, gap=" "),
    Column("RSS MB", 7, ",.0f"),
    Column("peak", 7, ",.0f"),
    Column("+MB", 6, ",.0f"),
    Column("", 5, left=True, gap=" "),
)


def print_report(summary: dict[str, Any]) -> None:
    print(f"service: {summary['service']}")
    print("per attack: a fresh service; CPU = service utime+stime per request (best of "
          f"{summary['reps']} runs, 10 ms ticks); GET p99/max: ms, a probe from another "
          f"process, one GET due every {1000 / summary['probe_rate']:g} ms, during the "
          "attack (idle: its p99 alone); RSS: MB before, peak during, peak growth")
    print(f"targets: CPU {CPU_TARGET.op} {CPU_TARGET.limit:g} ms per request, GET p99 "
          f"{P99_TARGET.op} {P99_TARGET.limit:g} ms, peak RSS growth {RSS_TARGET.op} "
          f"{RSS_TARGET.limit:g} MB (PASS/MISS after each)")
    print()
    rows = []
    for r in summary["attacks"]:
        wall = r["wall_s"]
        rows.append((r["attack"], r["status"], r["body_bytes"] / 1024, wall * 1000,
                     r["cpu_ms"], "PASS" if r["cpu_pass"] else "MISS", r["p99_ms"],
                     r["max_ms"], r["idle_p99_ms"], "PASS" if r["p99_pass"] else "MISS",
                     r["rss_before_mb"], r["rss_peak_mb"], r["rss_growth_mb"],
                     "PASS" if r["rss_pass"] else "MISS"))
    for line in table(COLUMNS, rows):
        print(line.rstrip())
    notes = [r for r in summary["attacks"] if r["timed_out"] or r["probe_errors"]]
    for r in notes:
        extra = []
        if r["timed_out"]:
            extra.append(f"did not answer within {summary['timeout']:g} s: CPU and latency "
                         "are what had passed by then (at least)")
        if r["probe_errors"]:
            extra.append(f"{r['probe_errors']} probe GETs failed (first: "
                         f"{r['probe_first_error']})")
        print(f"note: {r['attack']}: " + "; ".join(extra))
    print("(wall ms and CPU ms are per request; an attack of many requests shows one "
          "request's share)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"only the attacks named by {', '.join(QUICK)}, 1 run each")
    parser.add_argument("--reps", type=int, default=3,
                        help="CPU runs without the probe, best counts (default 3)")
    parser.add_argument("--slow", type=float, default=2.0,
                        help="seconds of CPU above which an attack runs once (default 2)")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds a hostile request may take (default 600)")
    probe.add_arguments(parser, baseline=2.0, baseline_help="before each attack")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.quick:
        args.reps = 1
    if args.reps < 1 or args.timeout <= 0 or args.probe_rate <= 0:
        print("hostile.py: --reps >= 1, --timeout and --probe-rate > 0", file=sys.stderr)
        return 2

    exit_on_sigterm()
    bench = None
    try:
        bench = Bench(args)
        log(f"service under test: {bench.target.describe()}")
        results = asyncio.run(bench.run())
    except BenchError as exc:
        print(f"hostile.py: FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        if bench is not None:
            bench.cleanup()
    summary = {"service": bench.target.describe(), "reps": args.reps,
               "probe_rate": args.probe_rate, "timeout": args.timeout,
               "attacks": rounded(results)}
    print_report(summary)
    if args.json:
        print(json_summary(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
