"""`calls.py --compare scaleout`: the saturation phase of calls.py for several setups of the
service in one run, each next to the raw-ARI script on the same nodes, so that every ratio is
measured in the same conditions:

  a  1 instance on SQLite, 1 node          the reference (calls.py without options)
  b  2 instances sharing PostgreSQL, 1 node
  c  1 instance on SQLite, 2 nodes
  d  2 instances sharing PostgreSQL, 2 nodes

Each setup gets fresh instances (and, on PostgreSQL, a fresh database in the run's cluster),
a warm-up call through each instance, then a raw run and a service run (which one first
alternates from setup to setup); its history is checked, its instances stopped, and the next
setup starts. With --rounds 2 the setups run a second time in reverse order. Nodes are
started once for the run (as many as the largest setup needs); a setup with one node uses
node 1, and its raw runs too.
"""

from __future__ import annotations

import asyncio
import math
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from aiohttp import ClientSession, ClientTimeout
from calls_asterisk import leftovers, merged, start_nodes
from calls_load import HOLD_MS, LoadRun, RawDriver, check_history, load_raw, load_service
from calls_overhead import SAMPLE_HOLD_MS
from calls_report import (
    ACCEPTED_FAILED_TARGET,
    describe_service,
    node_cell,
    phase_summary,
    run_row,
)
from calls_service import CallService
from calls_sipp import AgentLog, Peers, following
from common import log
from pgcluster import DESCRIPTION as POSTGRES_DESCRIPTION
from report import Column, check, ratio, table

from c2c_ari.config import Settings

if TYPE_CHECKING:  # calls.py imports this module
    from calls import Bench


@dataclass(frozen=True)
class Setup:
    key: str
    database: str  # "sqlite" or "postgresql"
    instances: int
    nodes: int

    @property
    def text(self) -> str:
        return describe_service(self.instances, self.database, self.nodes)


SETUPS = {setup.key: setup for setup in (
    Setup("a", "sqlite", 1, 1),
    Setup("b", "postgresql", 2, 1),
    Setup("c", "sqlite", 1, 2),
    Setup("d", "postgresql", 2, 2),
)}


async def warm_up(service: CallService, peers: Peers, name: str) -> None:
    """A call through each instance, once it can place one (calls_service.wait_ready)."""
    agent = peers.start(name, SAMPLE_HOLD_MS)
    agent_log = AgentLog(agent.message_log)
    async with ClientSession(timeout=ClientTimeout(total=30), trust_env=False) as session:
        with following(agent_log):
            await service.wait_ready(session, agent_log)
    agent_log.close()
    peers.stop()


def run_compare(bench: Bench) -> dict[str, Any]:
    """Every setup of --setups, --rounds times, as described at the top; the summary."""
    args = bench.args
    setups = [SETUPS[key] for key in args.setups]
    nodes = start_nodes(max(setup.nodes for setup in setups), bench.nodes)
    before = leftovers(nodes, (), wait=0)
    if any(setup.database == "postgresql" for setup in setups):
        bench.start_postgres()
    runs: dict[str, list[LoadRun]] = {setup.key: [] for setup in setups}
    histories: dict[str, list[dict[str, Any]]] = {setup.key: [] for setup in setups}
    memory: dict[str, list[dict[str, dict[str, float]]]] = {setup.key: [] for setup in setups}
    problems: dict[str, list[str]] = {setup.key: [] for setup in setups}
    turn = 0
    for round_no in range(args.rounds):
        for setup in setups if round_no % 2 == 0 else setups[::-1]:
            its_nodes = nodes[:setup.nodes]
            infos = [node.info for node in its_nodes]
            log(f"setup {setup.key} ({setup.text}), round {round_no + 1}/{args.rounds}")
            service = CallService.start(
                bench.tmp, infos, bench.servers, max_calls_in_setup=args.max_calls_in_setup,
                instances=setup.instances, tag=f"{setup.key}{round_no}",
                postgres=bench.postgres if setup.database == "postgresql" else None)
            bench.services.append(service)
            asyncio.run(warm_up(service, bench.peers, f"{setup.key}-warmup-{round_no}"))
            bench.driver = RawDriver(bench.tmp, infos)
            sides = ("raw", "service") if turn % 2 == 0 else ("service", "raw")
            turn += 1
            mine: list[LoadRun] = []
            for side in sides:
                if side == "raw":
                    mine.append(load_raw(bench.driver, its_nodes, bench.peers,
                                         args.saturation_calls, args.saturation_concurrency,
                                         round_no, "saturation", setup.key))
                else:
                    mine.append(asyncio.run(load_service(
                        service, its_nodes, bench.peers, args.saturation_calls,
                        args.saturation_concurrency, round_no, "saturation", setup.key)))
            histories[setup.key].append(check_history(service, mine))
            memory[setup.key].append(service.memory())
            problems[setup.key] += service.log_problems()
            service.stop()
            runs[setup.key] += mine
    bench.peers.stop()
    end_state = leftovers(nodes, (), wait=10)
    limit = (Settings.max_calls_in_setup if args.max_calls_in_setup is None
             else args.max_calls_in_setup)
    return compare_summary(
        setups=setups, runs=runs, histories=histories, memory=memory, problems=problems,
        calls=args.saturation_calls, concurrency=args.saturation_concurrency,
        rounds=args.rounds, max_calls_in_setup=limit,
        max_calls_in_setup_from=("its default" if args.max_calls_in_setup is None
                                 else "--max-calls-in-setup"),
        nodes=[{"name": n.name, "version": n.version, "pid": n.pid, "started": n.started}
               for n in nodes],
        before=before, end_state=end_state,
        asterisk_log_problems={node.name: node.log_problems() for node in nodes},
    )


def compare_summary(
    *,
    setups: list[Setup],
    runs: dict[str, list[LoadRun]],
    histories: dict[str, list[dict[str, Any]]],
    memory: dict[str, list[dict[str, dict[str, float]]]],
    problems: dict[str, list[str]],
    calls: int,
    concurrency: int,
    rounds: int,
    max_calls_in_setup: int,
    max_calls_in_setup_from: str,
    nodes: list[dict[str, Any]],
    before: dict[str, dict[str, list[str]]],
    end_state: dict[str, dict[str, list[str]]],
    asterisk_log_problems: dict[str, list[str]],
) -> dict[str, Any]:
    """Each setup's saturation figures (calls.py's saturation phase, as calls_report has
    them), against the first setup too, and `ok`: False when a call the service accepted
    failed, a history row is missing or extra, or something was left in a node (the raw
    script's lost calls under saturation are reported, as in calls.py, not failures)."""
    entries = []
    for setup in setups:
        its = runs[setup.key]
        figures = phase_summary(its, bridged=True)
        failures = figures["service_failures"]
        failures["target"] = ACCEPTED_FAILED_TARGET.limit
        failures["pass"] = ACCEPTED_FAILED_TARGET.met(failures["count"])
        history_pass = all(h["pass"] for h in histories[setup.key])
        calls_failed = any(r.ok != r.calls or r.refused or r.dialled_before_202
                           for r in its if r.side == "service")
        left = any(any(r.left.values()) for r in its)
        entries.append({
            "setup": setup.key, "text": setup.text, "database": setup.database,
            "instances": setup.instances,
            "nodes": [node["name"] for node in nodes[:setup.nodes]],
            "admission_limit_total": max_calls_in_setup * setup.instances,
            **figures,
            "runs": [run_row(r) for r in its],
            "history": histories[setup.key], "history_pass": history_pass,
            "service_memory_mb": memory[setup.key],
            "service_log_problems": problems[setup.key][:30],
            "ok": not calls_failed and history_pass and not left,
        })
    first = entries[0]
    for entry in entries:
        entry["vs_first"] = {
            side: ratio(entry["calls_per_s"][side], first["calls_per_s"][side], math.nan)
            for side in ("service", "raw")}
    end_merged = merged(end_state)
    clean = not any(end_merged.values())
    several = len(asterisk_log_problems) > 1
    return {
        "compare": "scaleout", "calls": calls, "concurrency": concurrency, "rounds": rounds,
        "hold_ms": HOLD_MS, "max_calls_in_setup": max_calls_in_setup,
        "max_calls_in_setup_from": max_calls_in_setup_from,
        "postgresql": (POSTGRES_DESCRIPTION
                       if any(s.database == "postgresql" for s in setups) else None),
        "nodes": nodes, "setups": entries,
        "asterisk_before": merged(before),
        "asterisk_at_end_by_node": end_state, "asterisk_clean": clean,
        "asterisk_log_problems": [f"{name}: {line}" if several else line
                                  for name, lines in asterisk_log_problems.items()
                                  for line in lines][:30],
        "ok": clean and all(entry["ok"] for entry in entries),
    }


def _columns(first: str, node_names: list[str]) -> list[Column]:
    return [
        Column("setup", 6, left=True),
        Column("side", 9, left=True),
        Column("bridged/s", 10),
        Column("ratio", 7),
        Column(f"vs {first}", 6),
        Column("success", 9),
        Column("503s", 7),
        Column("CPU ms/call", 13),
        Column("PG ms", 7),
        Column("Asterisk", 10),
        *(Column(f"{name} (calls)", 15) for name in node_names),
        Column("INVITE p50/p95 ms", 19),
    ]


def _cells(entry: dict[str, Any], side: str, node_names: list[str]) -> list[str]:
    cps = entry["calls_per_s"]
    cpu = entry["cpu_per_call"]
    invite = entry["invite"][side]
    service = side == "service"
    calls = {name: sum(row["calls_by_node"].get(name, 0) for row in entry["runs"]
                       if row["side"] == side) for name in node_names}
    return [
        entry["setup"], "service" if service else "raw ARI",
        f"{cps[side]:.1f}",
        f"{cps['ratio']:.2f}" if service else "-",
        f"{entry['vs_first'][side]:.2f}",
        f"{entry['success_rate'][side]:.1%}",
        f"{entry['admission_refusals']['connects']:,}" if service else "-",
        f"{cpu['service_ms' if service else 'raw_ms']:.2f}",
        f"{cpu['database_ms']:.2f}" if service and entry["database"] == "postgresql" else "-",
        f"{cpu['asterisk_ms' if service else 'raw_asterisk_ms']:.2f}",
        *(node_cell(cpu["by_node"][side].get(name), calls[name]) for name in node_names),
        f"{invite['p50_ms']:.1f}/{invite['p95_ms']:.1f}",
    ]


def print_compare(s: dict[str, Any], out: TextIO = sys.stdout) -> None:
    """The human-readable report of a compare_summary()."""

    def p(text: str = "") -> None:
        print(text, file=out)

    for node in s["nodes"]:
        p(f"{node['name']}: {node['version']} (pid {node['pid']}, "
          f"{'started by this run' if node['started'] else 'already running'})")
    if s["postgresql"]:
        p(f"PostgreSQL: a throwaway cluster started by the bench, {s['postgresql']}")
    limit = s["max_calls_in_setup"]
    p(f"Each instance admits {limit or 'any number of'} calls in setup at a time "
      f"(max_calls_in_setup, {s['max_calls_in_setup_from']})"
      + ("; two instances admit twice as many" if limit else ""))
    p()
    p(f"Scale-out, saturation: {s['calls']:,} calls, {s['concurrency']} at a time, contact "
      f"hangs up after {s['hold_ms'] / 1000:g} s; {s['rounds']} round(s); each setup next to "
      "the raw ARI script on the same nodes")
    for entry in s["setups"]:
        p(f"  {entry['setup']}: {entry['text']} ({', '.join(entry['nodes'])})")
    p()
    node_names = [node["name"] for node in s["nodes"]]
    first = s["setups"][0]["setup"]
    rows = [_cells(entry, side, node_names) for entry in s["setups"]
            for side in ("service", "raw")]
    for line in table(_columns(first, node_names), rows, indent="  "):
        p(line)
    p(f"  (bridged/s: calls that succeeded per second, best run; ratio: service/raw; vs {first}:"
      f" against setup {first}'s same side;")
    p("   success: over all runs; 503s: connects refused by admission control, each sent "
      "again;")
    p("   CPU ms/call: the service's instances and its PostgreSQL, or the raw script; PG ms: "
      "PostgreSQL's part;")
    p("   Asterisk: every node's CPU per call; each node: its CPU per call placed on it "
      "(calls placed on it);")
    p("   INVITE: connect or originate -> extension's INVITE, the run with the lowest p95)")
    p()
    for entry in s["setups"]:
        for side in ("service", "raw"):
            causes = ", ".join(f"{k}: {v:,}" for k, v in entry["causes"][side].items())
            p(f"  {entry['setup']} {'service' if side == 'service' else 'raw ARI'} outcomes: "
              f"{causes}")
        for row in entry["runs"]:
            if row["refused"]:
                p(f"    refused connects, first: {row['refused'][0]}")
            for item in row["failed_history"][:3]:
                fields = ("call_id", "contact", "cause", "failed_leg", "hangup_cause",
                          "node", "timestamp", "answered_at", "ended_at")
                p("    history: " + ", ".join(f"{k} {item[k]}" for k in fields if k in item))
            if any(row["left_in_asterisk"].values()):
                p(f"    LEFT in Asterisk after the {row['side']} run: "
                  f"{row['left_in_asterisk']}")
    p()
    for entry in s["setups"]:
        f = entry["service_failures"]
        a = entry["admission_refusals"]
        line = (f"  {entry['setup']}: calls accepted then failed by the service: "
                f"{f['count']:,}  {ACCEPTED_FAILED_TARGET.text(f['pass'], spec='.0f')}; "
                f"admission refused {a['connects']:,} connects")
        if a["connects"]:
            line += (f" ({a['calls']:,} calls; their wait for a 202: p50 "
                     f"{a['wait_p50_s']:.1f} s, max {a['wait_max_s']:.1f} s)")
        if a["gave_up"]:
            line += f"; {a['gave_up']} call(s) gave up"
        p(line)
    p()
    for entry in s["setups"]:
        texts = [f"{h['rows']:,} rows for {h['attempts']:,} connects answered 202"
                 for h in entry["history"]]
        p(f"History {entry['setup']}: {'; '.join(texts)}"
          + (f", read through one of {entry['instances']} instances"
             if entry["instances"] > 1 else "")
          + f"  {check(entry['history_pass'])}")
        for h in entry["history"]:
            if h["missing_count"] or h["unknown_count"] or h["duplicates"]:
                p(f"  missing {h['missing_count']} (first {h['missing'][:3]}), unknown "
                  f"{h['unknown_count']}, duplicates {h['duplicates']}")
    for name, end in s["asterisk_at_end_by_node"].items():
        clean = not any(end.values())
        p(f"Asterisk {name} at the end: {len(end['channels'])} channels, "
          f"{len(end['bridges'])} bridges  {check(clean)}")
        if not clean:
            p(f"  left: {end}  (before the run: {s['asterisk_before']})")
    for entry in s["setups"]:
        lines = entry["service_log_problems"]
        if lines:
            p(f"service log of setup {entry['setup']}: {len(lines)} warning/error line(s), "
              "first ones:")
            for line in lines[:10]:
                p(f"  {line[:500]}")
    lines = s["asterisk_log_problems"]
    if lines:
        p(f"Asterisk log: {len(lines)} warning/error line(s), first ones:")
        for line in lines[:10]:
            p(f"  {line[:500]}")
    p(f"Run {'OK' if s['ok'] else 'FAILED (see above)'}")
