"""The report of bench/calls.py: the targets, the summary (also printed as JSON by --json)
and the printed table."""

from __future__ import annotations

import math
import sys
from typing import Any, TextIO

from calls_load import DNS_PITFALL_S, HOLD_MS, LoadRun
from calls_sipp import AGENT_PORT, EXTENSION, TRUNK_PORT
from report import Column, Target, check, percentile, ratio, table

OVERHEAD_TARGET = Target("<=", 1.2)  # service/raw, request to the extension's INVITE, p50, p95
CPS_TARGET = Target(">=", 0.8)  # service/raw calls per second
CPU_TARGET = Target("<=", 0.5)  # service CPU per call / Asterisk CPU per call


def summary(
    *,
    calls: int,
    concurrency: int,
    rounds: int,
    asterisk_version: str,
    asterisk_pid: int,
    asterisk_started: bool,
    overhead: dict[str, Any],
    runs: list[LoadRun],
    history: dict[str, Any],
    memory: dict[str, float],
    before: dict[str, list[str]],
    end_state: dict[str, list[str]],
    service_log_problems: list[str],
    asterisk_log_problems: list[str],
) -> dict[str, Any]:
    """Everything the run measured, and the judgements: ratios against the targets, and `ok`,
    which is False when a call failed, a history row is missing or extra, or something was
    left in Asterisk; a missed target alone leaves it True."""
    overhead = dict(overhead)
    for key in ("p50_ms", "p95_ms"):
        overhead[f"ratio_{key[:3]}"] = OVERHEAD_TARGET.judge(
            ratio(overhead["service"][key], overhead["raw"][key], math.nan))
    load = []
    for run in runs:
        load.append({
            "side": run.side, "round": run.round_no + 1, "calls": run.calls,
            "ended": run.ended, "ok": run.ok, "success_rate": run.ok / run.calls,
            "elapsed_s": run.elapsed, "calls_per_s": run.cps,
            "client_cpu_ms_per_call": run.client_cpu_s / run.calls * 1000,
            "asterisk_cpu_ms_per_call": run.asterisk_cpu_s / run.calls * 1000,
            "invite_p50_ms": percentile(run.invite_ms, 50),
            "invite_p95_ms": percentile(run.invite_ms, 95),
            "causes": dict(run.causes.most_common()),
            "refused": run.refused[:5], "left_in_asterisk": run.left,
            "slow_calls": run.slow_calls,
        })
    # The best run of each side counts: noise on a shared machine only ever slows a run down.
    best = {side: max((r for r in runs if r.side == side), key=lambda r: r.cps)
            for side in ("raw", "service")}
    service_runs = [r for r in runs if r.side == "service"]
    service_cpu = sum(r.client_cpu_s for r in service_runs)
    asterisk_cpu = sum(r.asterisk_cpu_s for r in service_runs)
    service_calls = calls * len(service_runs)
    slowest = max([overhead["raw"]["max_ms"], overhead["service"]["max_ms"],
                   *(max(r.invite_ms, default=0.0) for r in runs)])
    dns = slowest >= DNS_PITFALL_S * 1000 or any(r.slow_calls for r in runs)
    calls_failed = any(r.ok != r.calls or r.refused for r in runs)
    left = {k: v for k, v in end_state.items() if v}
    return {
        "asterisk": asterisk_version, "asterisk_pid": asterisk_pid,
        "asterisk_started_by_bench": asterisk_started,
        "calls": calls, "concurrency": concurrency, "rounds": rounds,
        "hold_ms": HOLD_MS,
        "overhead": overhead,
        "load": load,
        "calls_per_s": {"service": best["service"].cps, "raw": best["raw"].cps,
                        **CPS_TARGET.judge(ratio(best["service"].cps, best["raw"].cps))},
        "cpu_per_call": {
            "service_ms": service_cpu / service_calls * 1000,
            "asterisk_ms": asterisk_cpu / service_calls * 1000,
            **CPU_TARGET.judge(ratio(service_cpu, asterisk_cpu, math.inf)),
        },
        "service_memory_mb": memory,
        "history": history,
        "asterisk_before": before,
        "asterisk_at_end": end_state,
        "asterisk_clean": not left,
        "dns_pitfall_suspected": dns,
        "slowest_invite_ms": slowest,
        "service_log_problems": service_log_problems[:30],
        "asterisk_log_problems": asterisk_log_problems[:30],
        "ok": not calls_failed and history["pass"] and not left
        and not any(any(r.left.values()) for r in runs),
    }


def _side(side: str) -> str:
    return "raw ARI" if side == "raw" else "service"


OVERHEAD_COLUMNS = (
    Column("side", 28, left=True),
    Column("p50 ms", 9, ".2f"),
    Column("p95 ms", 9, ".2f"),
    Column("min ms", 9, ".2f"),
    Column("max ms", 9, ".2f"),
)
LOAD_COLUMNS = (
    Column("side", 9, left=True),
    Column("rnd", 4),
    Column("ok", 7, ","),
    Column("ended", 7, ","),
    Column("success", 9, ".1%"),
    Column("calls/s", 9, ".1f"),
    Column("elapsed", 9, ".1f", suffix="s"),
    Column("INVITE p50/p95 ms", 19),
    Column("CPU ms/call", 13, ".2f"),
    Column("Asterisk", 10, ".2f"),
)


def print_table(s: dict[str, Any], out: TextIO = sys.stdout) -> None:
    """The human-readable report of a summary()."""

    def p(text: str = "") -> None:
        print(text, file=out)

    p(f"{s['asterisk']} (pid {s['asterisk_pid']}, "
      f"{'started by this run' if s['asterisk_started_by_bench'] else 'already running'});"
      f" SIPp: extension {EXTENSION} on :{AGENT_PORT}, trunk on :{TRUNK_PORT}")
    o = s["overhead"]
    p()
    p(f"Overhead: request sent -> extension's INVITE at SIPp, {o['samples']} interleaved "
      "samples per side, one call at a time")
    for line in table(OVERHEAD_COLUMNS, (
        (label, o[side]["p50_ms"], o[side]["p95_ms"], o[side]["min_ms"], o[side]["max_ms"])
        for side, label in (("raw", "raw ARI originate"), ("service", "service connect (202)"))
    ), indent="  "):
        p(line)
    for key, label in (("ratio_p50", "p50"), ("ratio_p95", "p95")):
        r = o[key]
        p(f"  service/raw {label}: {r['ratio']:.2f}  {OVERHEAD_TARGET.text(r['pass'])}")
    p()
    p(f"Load: {s['calls']:,} calls, {s['concurrency']} at a time, contact hangs up after "
      f"{s['hold_ms'] / 1000:g} s; {s['rounds']} round(s), sides interleaved")
    for line in table(LOAD_COLUMNS, (
        (_side(row["side"]), row["round"], row["ok"], row["ended"], row["success_rate"],
         row["calls_per_s"], row["elapsed_s"],
         f"{row['invite_p50_ms']:.1f}/{row['invite_p95_ms']:.1f}",
         row["client_cpu_ms_per_call"], row["asterisk_cpu_ms_per_call"])
        for row in s["load"]
    ), indent="  "):
        p(line)
    p("  (CPU ms/call: the service process, or the raw script's; Asterisk: its process in "
      "the same window)")
    for row in s["load"]:
        causes = ", ".join(f"{k}: {v}" for k, v in row["causes"].items())
        p(f"  {_side(row['side'])} round {row['round']} outcomes: {causes}")
        if row["refused"]:
            p(f"    refused connects, first: {row['refused'][0]}")
        if any(row["left_in_asterisk"].values()):
            p(f"    LEFT in Asterisk after the run: {row['left_in_asterisk']}")
    c = s["calls_per_s"]
    p(f"  service/raw calls per second (best runs): {c['service']:.1f}/{c['raw']:.1f} = "
      f"{c['ratio']:.2f}  {CPS_TARGET.text(c['pass'])}")
    u = s["cpu_per_call"]
    p(f"  CPU per call, service/Asterisk: {u['service_ms']:.2f}/{u['asterisk_ms']:.2f} ms = "
      f"{u['ratio']:.2f}  {CPU_TARGET.text(u['pass'])}")
    m = s["service_memory_mb"]
    p(f"  service memory at the end: RSS {m.get('VmRSS', 0):.1f} MB "
      f"(peak {m.get('VmHWM', 0):.1f} MB)")
    h = s["history"]
    p(f"  history: {h['rows']:,} rows for {h['attempts']:,} connects answered 202"
      f"  {check(h['pass'])}")
    p("    results: " + ", ".join(f"{k}: {v:,}" for k, v in h["results"].items()))
    if h["missing_count"] or h["unknown_count"] or h["duplicates"]:
        p(f"    missing {h['missing_count']} (first {h['missing'][:3]}), unknown "
          f"{h['unknown_count']}, duplicates {h['duplicates']}")
    p()
    end = s["asterisk_at_end"]
    p(f"Asterisk at the end: {len(end['channels'])} channels, {len(end['bridges'])} bridges"
      f"  {check(s['asterisk_clean'])}")
    if not s["asterisk_clean"]:
        p(f"  left: {end}  (before the run: {s['asterisk_before']})")
    if s["dns_pitfall_suspected"]:
        p(f"WARNING: a leg took {s['slowest_invite_ms'] / 1000:.1f} s to reach SIPp or a call "
          "ran 4 s over its length: Asterisk waiting for DNS (5 s per RTP stream)? See "
          "asterisk/rtp.conf (icesupport = no) and the chroot's /etc/hosts.")
    else:
        p(f"No 5 s DNS delays seen (slowest INVITE {s['slowest_invite_ms']:.0f} ms).")
    for key, label in (("service_log_problems", "service log"),
                       ("asterisk_log_problems", "Asterisk log")):
        lines = s[key]
        if lines:
            p(f"{label}: {len(lines)} warning/error line(s), first ones:")
            for line in lines[:10]:
                p(f"  {line[:500]}")
    p(f"Run {'OK' if s['ok'] else 'FAILED (see above)'}")
