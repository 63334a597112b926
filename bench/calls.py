"""Calls through a real Asterisk: c2c-ari against a minimal raw-ARI script, in the same run.

Run from the repository as root (the local Asterisk needs it), with the project installed in
the active Python and SIPp (Debian's sip-tester) on the PATH:

    python bench/calls.py [--calls 1000] [--concurrency 100] [--samples 50] [--rounds 2]
                          [--saturation-calls 2000] [--saturation-concurrency 400]
                          [--no-saturation] [--json]
    python bench/calls.py --quick          # 100 calls, 20 at a time, 10 samples, 1 round;
                                           # saturation: 300 calls, 150 at a time
    python bench/calls.py --instances 2 --nodes 2 [--database postgresql]
    python bench/calls.py --compare scaleout [--setups abcd] [--quick]

It takes the same lock as the integration test sessions (they share Asterisk, the Stasis app
and SIPp's ports), starts the local Asterisk if it is not running (and stops it at the end
only then), and starts its own service, SIPp peers and raw-ARI driver, all stopped by pid.

1. Overhead: the time from sending a request to the extension's INVITE arriving at SIPp, for
   a non-blocking connect of the service and for a raw ARI originate to the same endpoint sent
   by this script; interleaved samples, one call at a time. SIPp logs wall-clock times, the
   requests are timed with time.time(), so both sides read the same clock.
2. Load: N click-to-calls, C at a time (a slot is free again when the extension's phone gets
   its BYE), the contact hanging up after 1 s; against the same two-leg-and-bridge flow driven
   by a raw-ARI script (raw_driver.py, its own process and Stasis app) at the same
   concurrency. Calls per second, CPU per call of the service and of Asterisk (/proc), the
   time to the extension's INVITE, the service's memory, and its history rows against the
   attempts.
3. Saturation: the same with more calls at a time than the service admits in setup
   (max_calls_in_setup, 100 by default): a connect its admission control refuses (503 with
   Retry-After, nothing dialled) is sent again after Retry-After seconds, and counted apart.
   This is where calls per second tell the service from the raw script (at 100 at a time,
   1 s calls hold any driver to about 90 calls/s), and where no accepted call may fail.
4. At the end, Asterisk must have no channel and no bridge left.

Scale-out: `--instances N` runs N service instances sharing one database on a throwaway
PostgreSQL cluster (pgcluster.py), connects spread over them in turn, their CPU (and
PostgreSQL's) added up; `--nodes N` runs N local Asterisk nodes, the service given all of
them (C2C_ARI_NODES) and the raw script placing its calls on them in turn, each node's CPU
read apart. `--compare scaleout` runs the saturation phase for several such setups in one
run, each next to the raw script on the same nodes (calls_compare.py).

This file runs the phases in order and cleans up; the pieces are calls_sipp.py (the SIPp
peers and their logs), calls_asterisk.py, calls_service.py (the service under test),
calls_overhead.py, calls_load.py, raw_driver.py (the raw-ARI baseline, also its own program),
calls_report.py and calls_compare.py; report.py, common.py and pgcluster.py are shared with
rest.py.

Exit status: 0 when every call succeeded and nothing was left behind (whether or not a target
was met), 1 when a call failed, a history row was missing, something was left in Asterisk or
the run could not complete, 2 when SIPp or a usable host is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from calls_asterisk import Asterisk, leftovers, start_nodes
from calls_compare import SETUPS, print_compare, run_compare
from calls_load import PHASES, LoadRun, RawDriver, check_history, load_raw, load_service
from calls_overhead import measure_overhead
from calls_report import print_table, summary
from calls_service import CallService
from calls_sipp import Peers
from common import BenchError, Server, exit_on_sigterm, log
from pgcluster import Postgres
from report import json_summary

from c2c_ari import localasterisk
from c2c_ari.config import Settings

# More calls at a time than this may run the local Asterisk out of RTP ports (asterisk/rtp.conf:
# 2,000 ports, so 1,000 channels; two per call, and a call's channels may outlive a little the
# BYE that frees its worker for the next call).
RTP_SAFE_CONCURRENCY = 450
# The same for a further node, which has half as many RTP ports (localasterisk/nodes.py).
RTP_SAFE_CONCURRENCY_NODE = 225


class Bench:
    """One run: the processes it started (for the clean-up) and the order of its phases."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="c2c-ari-bench-calls-"))
        self.nodes: list[Asterisk] = []  # every node in use, as soon as it is known
        self.servers: list[Server] = []  # the service's instances, as soon as each exists
        self.services: list[CallService] = []
        self.peers = Peers(self.tmp)
        self.driver: RawDriver | None = None
        self.postgres: Postgres | None = None

    @property
    def service(self) -> CallService | None:
        return self.services[-1] if self.services else None

    def cleanup(self) -> None:
        """Stop everything this run started, by pid (nodes by their number, only those it
        started), keep the logs if asked, remove tmp."""
        self.peers.stop(quiet=True)
        if self.driver is not None:
            with contextlib.suppress(Exception):
                self.driver.stop()
        for server in self.servers:
            with contextlib.suppress(Exception):
                server.stop()
        if self.postgres is not None:
            with contextlib.suppress(Exception):
                self.postgres.stop()
        if self.args.keep_logs is not None:
            # Logs only: the raw script's config holds the ARI passwords.
            with contextlib.suppress(OSError):
                shutil.copytree(self.tmp, self.args.keep_logs, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("raw-driver-*.json", "data"))
                log(f"logs kept in {self.args.keep_logs}")
        for node in self.nodes:
            node.stop_if_started()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def service_log_problems(self) -> list[str]:
        return self.service.log_problems() if self.service is not None else []

    def start_postgres(self) -> Postgres:
        if self.postgres is None:
            self.postgres = Postgres()
            self.postgres.start()
        return self.postgres

    def run(self) -> dict[str, Any]:
        if self.args.compare:
            return run_compare(self)
        return self.run_phases()

    def run_phases(self) -> dict[str, Any]:
        """Overhead, then the load rounds and the saturation rounds (sides alternating in
        each), then the checks."""
        args = self.args
        nodes = start_nodes(args.nodes, self.nodes)
        infos = [node.info for node in nodes]
        before = leftovers(nodes, (), wait=0)
        postgres = self.start_postgres() if args.database == "postgresql" else None

        service = CallService.start(self.tmp, infos, self.servers,
                                    max_calls_in_setup=args.max_calls_in_setup,
                                    instances=args.instances, postgres=postgres)
        self.services.append(service)
        for instance in service.instances:
            log(f"{instance.name} pid {instance.pid} on {instance.base}")
        overhead = asyncio.run(measure_overhead(service, infos, self.peers, args.samples))

        self.driver = RawDriver(self.tmp, infos)
        runs: list[LoadRun] = []
        sizes = {"load": (args.calls, args.concurrency),
                 "saturation": (args.saturation_calls, args.saturation_concurrency)}
        for phase in PHASES:
            if phase == "saturation" and args.no_saturation:
                continue
            calls, concurrency = sizes[phase]
            for round_no in range(args.rounds):
                order = ("raw", "service") if round_no % 2 == 0 else ("service", "raw")
                for side in order:
                    if side == "raw":
                        runs.append(load_raw(self.driver, nodes, self.peers, calls,
                                             concurrency, round_no, phase))
                    else:
                        runs.append(asyncio.run(load_service(
                            service, nodes, self.peers, calls, concurrency, round_no, phase)))

        history = check_history(service, runs)
        memory = service.memory()
        service.stop()
        self.peers.stop()
        end_state = leftovers(nodes, (), wait=10)
        return summary(
            calls=args.calls, concurrency=args.concurrency, rounds=args.rounds,
            saturation_calls=None if args.no_saturation else args.saturation_calls,
            saturation_concurrency=None if args.no_saturation else args.saturation_concurrency,
            # The bench gives the service no C2C_ARI_* setting but ARI's, the database's,
            # the instance ids and this one (service_env), so without the option the limit
            # it runs with is the default.
            max_calls_in_setup=(Settings.max_calls_in_setup if args.max_calls_in_setup is None
                                else args.max_calls_in_setup),
            max_calls_in_setup_from=("its default" if args.max_calls_in_setup is None
                                     else "--max-calls-in-setup"),
            nodes=[describe_node(node) for node in nodes], instances=args.instances,
            database=args.database,
            overhead=overhead, runs=runs, history=history, memory=memory, before=before,
            end_state=end_state, service_log_problems=service.log_problems(),
            asterisk_log_problems={node.name: node.log_problems() for node in nodes},
        )


def describe_node(node: Asterisk) -> dict[str, Any]:
    return {"name": node.name, "version": node.version, "pid": node.pid,
            "started": node.started}


# --- entry point ---------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, help="calls per load run (default 1000)")
    parser.add_argument("--concurrency", type=int, help="calls at a time (default 100)")
    parser.add_argument("--samples", type=int, help="overhead samples per side (default 50)")
    parser.add_argument("--rounds", type=int,
                        help="load runs per side, interleaved (default 2)")
    parser.add_argument("--saturation-calls", type=int,
                        help="calls per saturation run (default 2000)")
    parser.add_argument("--saturation-concurrency", type=int,
                        help="calls at a time in saturation runs (default 400)")
    parser.add_argument("--no-saturation", action="store_true",
                        help="skip the saturation runs")
    parser.add_argument("--max-calls-in-setup", type=int, metavar="N",
                        help="the service's admission limit (default: the service's own "
                             "default; 0: none), to see what admission control costs")
    parser.add_argument("--quick", action="store_true",
                        help="100 calls, 20 at a time, 10 samples, 1 round; saturation: 300 "
                             "calls, 150 at a time (with --compare: 500, 250 at a time)")
    parser.add_argument("--instances", type=int, metavar="N",
                        help="service instances sharing one PostgreSQL database (default 1)")
    parser.add_argument("--nodes", type=int, metavar="N",
                        help="local Asterisk nodes, for the service and the raw script "
                             "(default 1)")
    parser.add_argument("--database", choices=("sqlite", "postgresql"),
                        help="the service's database (default: SQLite for one instance; "
                             "several need PostgreSQL)")
    parser.add_argument("--compare", choices=("scaleout",),
                        help="scaleout: the saturation phase for several setups (instances, "
                             "database, nodes) in one run, each next to the raw script on "
                             "the same nodes")
    parser.add_argument("--setups", metavar="KEYS",
                        help="with --compare scaleout, which setups, in order (default "
                             f"{''.join(SETUPS)}: "
                             + "; ".join(f"{k}: {v.text}" for k, v in SETUPS.items()) + ")")
    parser.add_argument("--json", action="store_true", help="also print a machine-readable summary")
    parser.add_argument("--keep-logs", type=Path, metavar="DIR",
                        help="copy the service's, the raw script's and SIPp's logs there")
    return parser


def _check_scaleout(args: argparse.Namespace) -> str | None:
    """Fill in the scale-out options' defaults; what is wrong with them, if anything."""
    if args.compare:
        given = [f"--{name}" for name in ("instances", "nodes", "database")
                 if getattr(args, name) is not None]
        if given:
            return f"--compare sets {', '.join(given)} for each setup itself"
        if args.no_saturation:
            return "--compare runs the saturation phase only: --no-saturation leaves nothing"
        args.setups = args.setups or "".join(SETUPS)
        unknown = sorted(set(args.setups) - set(SETUPS))
        if unknown or len(set(args.setups)) != len(args.setups):
            return f"--setups: each of {''.join(SETUPS)} at most once"
        args.instances = max(SETUPS[k].instances for k in args.setups)
        args.nodes = max(SETUPS[k].nodes for k in args.setups)
        return None
    if args.setups:
        return "--setups goes with --compare scaleout"
    args.instances = 1 if args.instances is None else args.instances
    args.nodes = 1 if args.nodes is None else args.nodes
    if args.instances < 1 or args.nodes < 1:
        return "--instances and --nodes must be positive"
    if args.nodes > localasterisk.MAX_NODES:
        return f"--nodes: at most {localasterisk.MAX_NODES} local nodes"
    if args.database is None:
        args.database = "sqlite" if args.instances == 1 else "postgresql"
    if args.instances > 1 and args.database == "sqlite":
        return "several instances share one database: --database postgresql"
    return None


def _rtp_warning(args: argparse.Namespace) -> None:
    widest = max(args.concurrency, 0 if args.no_saturation else args.saturation_concurrency)
    if args.compare:
        widest = args.saturation_concurrency
    if widest > RTP_SAFE_CONCURRENCY:
        log(f"warning: {widest} calls at a time may run the local Asterisk out of RTP ports "
            "(asterisk/rtp.conf)")
    per_node = -(-widest // args.nodes)
    if args.nodes > 1 and per_node > RTP_SAFE_CONCURRENCY_NODE:
        log(f"warning: about {per_node} calls at a time on each node may run node 2 and "
            "later out of RTP ports (1,000 each, localasterisk/nodes.py)")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # The quick saturation still has more calls at a time than the service admits in setup
    # (100), so that admission control and the retries are exercised; in a comparison, more
    # than two instances admit together (200).
    defaults = (100, 20, 10, 1, 300, 150) if args.quick else (1000, 100, 50, 2, 2000, 400)
    if args.quick and args.compare:
        defaults = (*defaults[:4], 500, 250)
    names = ("calls", "concurrency", "samples", "rounds", "saturation_calls",
             "saturation_concurrency")
    for name, default in zip(names, defaults, strict=True):
        if getattr(args, name) is None:
            setattr(args, name, default)
    if min(getattr(args, name) for name in names) < 1:
        print("calls.py: --calls, --concurrency, --samples, --rounds, --saturation-calls and "
              "--saturation-concurrency must be positive", file=sys.stderr)
        return 2
    if args.max_calls_in_setup is not None and args.max_calls_in_setup < 0:
        print("calls.py: --max-calls-in-setup must be 0 (no limit) or more", file=sys.stderr)
        return 2
    problem = _check_scaleout(args)
    if problem:
        print(f"calls.py: {problem}", file=sys.stderr)
        return 2
    _rtp_warning(args)
    if shutil.which("sipp") is None:
        print("calls.py: sipp is not installed. On Debian or Ubuntu:\n"
              "    sudo apt-get install sip-tester\nthen run this again.", file=sys.stderr)
        return 2
    supported, why = localasterisk.host_supported()
    if not supported:
        print(f"calls.py: no local Asterisk: {why}", file=sys.stderr)
        return 2

    exit_on_sigterm()
    with localasterisk.exclusive_use(log):
        bench = Bench(args)
        try:
            result = bench.run()
        except (BenchError, localasterisk.LocalAsteriskError) as exc:
            print(f"calls.py: FAILED: {exc}", file=sys.stderr)
            for line in bench.service_log_problems()[:20]:
                print(f"  service: {line[:300]}", file=sys.stderr)
            return 1
        finally:
            bench.cleanup()
    if args.compare:
        print_compare(result)
    else:
        print_table(result)
    if args.json:
        print(json_summary(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
