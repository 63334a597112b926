"""REST throughput, latency and memory of c2c-ari, as ratios against a bare aiohttp app.

Run from the repository (with the project installed in the active Python):

    python bench/rest.py [--duration 10] [--connections 32] [--rounds 2] [--json]
                         [--database sqlite|postgresql|both]

Both servers run in their own process and are loaded by wrk (one thread, N connections).
The bare app answers GET and PUT with the exact bytes the service returns for a GET of one
click-to-call, so the ratio service/bare is the cost of the service's own work (auth,
routing, validation, SQLite, envelope) over aiohttp's floor on the same machine, in the
same run. Baseline and service phases are interleaved (A B B A ...) and the best run of each
side counts, which cancels most of the noise of a shared machine. The service runs on SQLite,
on a throwaway PostgreSQL cluster that the bench starts and stops (pgcluster.py), or on both,
side by side in the same interleaved rounds (A B C C B A ...).

Then a fresh service gets 10,000 click-to-calls through the API, a full listing and some
GETs, and its resident memory (VmRSS) is read from /proc.

Exit status: 0 when every request succeeded (whether or not a target was met), 1 when any
request failed or the run could not complete, 2 when wrk is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, ClientTimeout, TCPConnector, web
from common import (
    BenchError,
    Server,
    Service,
    exit_on_sigterm,
    free_port,
    http,
    log,
    start_service,
)
from pgcluster import DESCRIPTION as POSTGRES_DESCRIPTION
from pgcluster import Postgres
from report import Column, Target, json_summary, ratio, rounded, table

RATIO_TARGETS = {  # service/bare requests per second
    "GET": Target(">=", 0.5),  # GET of one click-to-call
    "PUT": Target(">=", 0.3),  # PUT create
}
RSS_TARGET = Target("<=", 150.0)  # resident memory in MB with 10,000 click-to-calls stored
RSS_DOCS = 10_000
RSS_GETS = 200
WRK_TIMEOUT = "10s"  # a stall shows in p99 instead of as a spurious wrk error
# A benchmark account creates far more click-to-calls than the per-account default allows.
BENCH_CONFIG = 'ari_url = "off"\nmax_clicktocalls_per_account = 10000000\n'
CREATE_BODY = {"data": {"name": "Sales", "extension": "1001", "whitelist": ["^\\+1"]}}
DATABASES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}  # --database, and how printed


# --- the baseline: a bare aiohttp app, started as `rest.py --bare-server` ------------------


def run_bare_server(port: int, body_file: Path) -> None:
    body = body_file.read_bytes()

    async def get(_request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    async def put(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=body, status=201, content_type="application/json")

    app = web.Application()
    app.router.add_get("/{tail:.*}", get)
    app.router.add_put("/{tail:.*}", put)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


# --- processes -----------------------------------------------------------------------------


@dataclass
class Pinning:
    """Where wrk and the servers run: on separate CPUs when possible, so the load generator
    does not take CPU time from the server it measures."""

    client: list[str] = field(default_factory=list)  # command prefix for wrk
    server: list[str] = field(default_factory=list)  # command prefix for the servers
    note: str = "not pinned"
    # The servers' CPUs, for processes started otherwise (PostgreSQL): None when not pinned.
    server_cpus: set[int] | None = None

    @classmethod
    def detect(cls, enabled: bool) -> Pinning:
        taskset = shutil.which("taskset")
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        if not enabled:
            return cls(note="not pinned (--no-pin)")
        if taskset is None or len(cpus) < 2:
            return cls(note="not pinned (needs taskset and 2 CPUs)")
        client, server = cpus[0], cpus[1]
        return cls(
            client=[taskset, "-c", str(client)],
            server=[taskset, "-c", str(server)],
            note=f"wrk on CPU {client}, servers on CPU {server}",
            server_cpus={server},
        )


# --- talking to the service ----------------------------------------------------------------


def count_listing(service: Service) -> tuple[int, float]:
    """(documents, seconds) of one full listing (`paginate=false`)."""
    started = time.perf_counter()
    raw = http("GET", f"{service.collection}?paginate=false", token=service.token)
    elapsed = time.perf_counter() - started
    return len(json.loads(raw)["data"]), elapsed


async def fill(service: Service, count: int, concurrency: int) -> list[str]:
    """Create `count` click-to-calls through the API, `concurrency` at a time."""
    ids: list[str] = []
    failures: list[str] = []
    remaining = iter(range(count))
    headers = {"X-Auth-Token": service.token, "Content-Type": "application/json"}
    body = json.dumps(CREATE_BODY).encode()

    async def worker(session: ClientSession) -> None:
        for _ in remaining:
            async with session.put(service.collection, data=body, headers=headers) as resp:
                raw = await resp.read()
                if resp.status != 201:
                    failures.append(f"{resp.status}: {raw[:200]!r}")
                    continue
                ids.append(json.loads(raw)["data"]["id"])

    connector = TCPConnector(limit=concurrency)
    async with ClientSession(connector=connector, timeout=ClientTimeout(total=60)) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    if failures:
        raise BenchError(f"{len(failures)} of {count} creates failed, first: {failures[0]}")
    return ids


# --- wrk -----------------------------------------------------------------------------------

# Counts every response outside 2xx (wrk itself only counts >= 400) and prints one line of
# JSON with exact numbers, so nothing depends on wrk's human-readable units.
_LUA_REPORT = r"""
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) bad = 0; bad_status = 0; bad_body = "" end
function response(status, headers, body)
  if status < 200 or status > 299 then
    bad = bad + 1
    if bad_status == 0 then bad_status = status; bad_body = string.sub(body or "", 1, 300) end
  end
end
function done(summary, latency, requests)
  local non_2xx, first_status, first_body = 0, 0, ""
  for _, t in ipairs(threads) do
    non_2xx = non_2xx + t:get("bad")
    local s = t:get("bad_status")
    if first_status == 0 and s ~= 0 then first_status = s; first_body = t:get("bad_body") end
  end
  local e = summary.errors
  io.write(string.format(
    '\nBENCH_RESULT {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,"status":%d,' ..
    '"non_2xx":%d,"first_bad_status":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.timeout, e.status,
    non_2xx, first_status))
  if first_status ~= 0 then
    io.write("BENCH_BAD_BODY " .. (string.gsub(first_body, "%c", " ")) .. "\n")
  end
end
"""


def _lua_string(text: str) -> str:
    return (
        '"'
        + "".join(
            chr(b) if chr(b).isalnum() or chr(b) in " -_.,:/{}[]^+" else f"\\{b:03d}"
            for b in text.encode()
        )
        + '"'
    )


def wrk_script(path: Path, method: str, token: str, body: str | None) -> Path:
    lines = [
        f"wrk.method = {_lua_string(method)}",
        f'wrk.headers["X-Auth-Token"] = {_lua_string(token)}',
    ]
    if body is not None:
        lines.append('wrk.headers["Content-Type"] = "application/json"')
        lines.append(f"wrk.body = {_lua_string(body)}")
    path.write_text("\n".join(lines) + "\n" + _LUA_REPORT)
    return path


@dataclass
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int


def run_wrk(
    pinning: Pinning, script: Path, url: str, duration: float, connections: int, label: str
) -> Run:
    argv = [
        *pinning.client,
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration:g}s",
        "--latency",
        f"--timeout={WRK_TIMEOUT}",
        "-s",
        str(script),
        url,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 120)
    out = done.stdout
    found = re.search(r"^BENCH_RESULT (\{.*\})$", out, re.MULTILINE)
    if done.returncode != 0 or found is None:
        raise BenchError(f"wrk failed for {label} ({done.returncode}):\n{out}\n{done.stderr}")
    result = json.loads(found.group(1))
    socket_errors = sum(result[k] for k in ("connect", "read", "write", "timeout"))
    # wrk's own lines are checked too, independently of the script
    text_errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors:", out)
    if result["non_2xx"] or result["status"] or socket_errors or text_errors:
        bad = re.search(r"^BENCH_BAD_BODY (.*)$", out, re.MULTILINE)
        raise BenchError(
            f"{label}: {result['non_2xx']} non-2xx responses (first status "
            f"{result['first_bad_status']}), {socket_errors} socket errors "
            f"(connect {result['connect']}, read {result['read']}, write {result['write']}, "
            f"timeout {result['timeout']}) in {result['requests']} requests"
            + (f"\nfirst bad body: {bad.group(1)}" if bad else "")
            + f"\n{out}"
        )
    if result["requests"] == 0:
        raise BenchError(f"{label}: no request completed\n{out}")
    run = Run(
        rps=result["requests"] / (result["duration_us"] / 1e6),
        p50_ms=result["p50_us"] / 1000,
        p99_ms=result["p99_us"] / 1000,
        requests=result["requests"],
    )
    log(f"{label}: {run.rps:,.0f} req/s, p50 {run.p50_ms:.2f} ms, p99 {run.p99_ms:.2f} ms")
    return run


# --- the run -------------------------------------------------------------------------------


@dataclass
class Phase:
    label: str
    side: str  # "bare" or "service"
    url: str
    script: Path
    database: str | None = None  # the service's: a key of DATABASES
    runs: list[Run] = field(default_factory=list)

    @property
    def who(self) -> str:
        return self.side if self.database is None else f"{self.side} ({DATABASES[self.database]})"

    @property
    def best(self) -> Run:
        return max(self.runs, key=lambda run: run.rps)


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="c2c-ari-bench-"))
        self.servers: list[Server] = []
        self.pinning = Pinning.detect(not args.no_pin)
        self.databases = list(DATABASES) if args.database == "both" else [args.database]
        self.postgres: Postgres | None = None

    def cleanup(self) -> None:
        for server in self.servers:
            with contextlib.suppress(Exception):
                server.stop()
        if self.postgres is not None:
            with contextlib.suppress(Exception):
                self.postgres.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _service(self, name: str, data_dir: Path, database: str) -> Service:
        """A fresh service on `database` ("sqlite": a new file in `data_dir`; "postgresql": a
        new database in the bench's cluster)."""
        data_dir.mkdir(parents=True)
        # Calls off: the bench must never attach to a PBX that happens to run on this machine.
        config = data_dir / "bench.toml"
        text = BENCH_CONFIG
        if database == "postgresql":
            if self.postgres is None:
                self.postgres = Postgres().start()
                if self.pinning.server_cpus is not None:
                    self.postgres.pin(self.pinning.server_cpus)
            text += f'database = "{self.postgres.database(data_dir.name.replace("-", "_"))}"\n'
        config.write_text(text)
        return start_service(f"{name} ({DATABASES[database]})", data_dir,
                             data_dir / "server.log", prefix=self.pinning.server,
                             config=config, started=self.servers)

    def run(self) -> dict[str, Any]:
        args = self.args
        log(f"pinning: {self.pinning.note}")
        services: dict[str, Service] = {}
        ones: dict[str, str] = {}
        for database in self.databases:
            service = self._service("service", self.tmp / f"load-{database}", database)
            services[database] = service
            created = json.loads(http("PUT", service.collection, CREATE_BODY, service.token,
                                      201))
            ones[database] = f"{service.collection}/{created['data']['id']}"
        first = self.databases[0]
        body_file = self.tmp / "get-body.json"
        body_file.write_bytes(http("GET", ones[first], token=services[first].token))
        log(f"baseline body: {body_file.stat().st_size} bytes, the service's GET of one c2c")

        bare_port = free_port()
        bare = Server(
            "bare aiohttp",
            [
                *self.pinning.server,
                sys.executable,
                str(Path(__file__).resolve()),
                "--bare-server",
                str(bare_port),
                str(body_file),
            ],
            bare_port,
            self.tmp / "bare.log",
        )
        self.servers.append(bare)
        bare.wait_ready()
        bare_base = f"http://127.0.0.1:{bare_port}"
        path_one = ones[first].removeprefix(services[first].base)
        path_collection = services[first].collection.removeprefix(services[first].base)

        put_body = json.dumps(CREATE_BODY)
        # Each service has its own token; the bare app ignores it.
        scripts = {
            database: (wrk_script(self.tmp / f"get-{database}.lua", "GET", service.token, None),
                       wrk_script(self.tmp / f"put-{database}.lua", "PUT", service.token,
                                  put_body))
            for database, service in services.items()
        }
        get_label, put_label = "GET one click-to-call", "PUT create"
        # One group per method: the bare app, then the service on each database.
        groups = [
            [Phase(get_label, "bare", bare_base + path_one, scripts[first][0]),
             *(Phase(get_label, "service", ones[db], scripts[db][0], db)
               for db in self.databases)],
            [Phase(put_label, "bare", bare_base + path_collection, scripts[first][1]),
             *(Phase(put_label, "service", services[db].collection, scripts[db][1], db)
               for db in self.databases)],
        ]

        warmup = min(2.0, args.duration)
        for group in groups:
            for phase in group:
                run_wrk(
                    self.pinning,
                    phase.script,
                    phase.url,
                    warmup,
                    args.connections,
                    f"warm-up {phase.label} ({phase.who})",
                )
        service_puts = dict.fromkeys(self.databases, 0)
        for round_no in range(args.rounds):
            for group in groups:
                order = group if round_no % 2 == 0 else group[::-1]  # A B C, C B A, ...
                for phase in order:
                    run = run_wrk(
                        self.pinning,
                        phase.script,
                        phase.url,
                        args.duration,
                        args.connections,
                        f"round {round_no + 1}/{args.rounds} {phase.label} ({phase.who})",
                    )
                    phase.runs.append(run)
                    if phase.database is not None and phase.label == put_label:
                        service_puts[phase.database] += run.requests

        loaded: dict[str, dict[str, Any]] = {}
        for database, service in services.items():
            # Every 201 counted by wrk must have stored a document.
            stored, listing_s = count_listing(service)
            if stored < service_puts[database]:
                raise BenchError(
                    f"wrk counted {service_puts[database]} created click-to-calls after the "
                    f"warm-up on {DATABASES[database]}, but the listing has only {stored}"
                )
            loaded[database] = {"documents": stored, "listing_s": listing_s,
                                **service.server.memory()}
        bare_memory = bare.memory()
        bare.stop()
        for service in services.values():
            service.server.stop()

        rss = {database: self.measure_rss(database) for database in self.databases}
        return self.summary(groups, rss, loaded, bare_memory)

    def measure_rss(self, database: str) -> dict[str, Any]:
        args = self.args
        service = self._service("service (memory)", self.tmp / f"memory-{database}", database)
        log(f"memory: creating {RSS_DOCS:,} click-to-calls through the API "
            f"({DATABASES[database]})")
        started = time.perf_counter()
        ids = asyncio.run(fill(service, RSS_DOCS, args.connections))
        fill_s = time.perf_counter() - started
        stored, listing_s = count_listing(service)
        if stored < RSS_DOCS:
            raise BenchError(f"the listing has {stored} click-to-calls, expected {RSS_DOCS}")
        for doc_id in random.sample(ids, min(RSS_GETS, len(ids))):
            http("GET", f"{service.collection}/{doc_id}", token=service.token)
        memory = service.server.memory()
        service.server.stop()
        return {
            "documents": stored,
            "fill_s": fill_s,
            "creates_per_s": RSS_DOCS / fill_s,
            "listing_s": listing_s,
            "gets": min(RSS_GETS, len(ids)),
            **memory,
        }

    def summary(
        self,
        groups: list[list[Phase]],
        rss: dict[str, dict[str, Any]],
        loaded: dict[str, dict[str, Any]],
        bare_memory: dict[str, float],
    ) -> dict[str, Any]:
        """The JSON summary. Its top-level `ratios`, `rss` and `after_load` are those of the
        first database (SQLite unless only PostgreSQL ran), as before there was a choice;
        `by_database` has each one's."""
        phases = []
        for group in groups:
            for phase in group:
                best = phase.best
                row = {
                    "phase": phase.label,
                    "side": phase.side,
                    "rps": round(best.rps, 1),
                    "p50_ms": round(best.p50_ms, 3),
                    "p99_ms": round(best.p99_ms, 3),
                    "runs_rps": [round(run.rps, 1) for run in phase.runs],
                }
                if phase.database is not None:
                    row["database"] = phase.database
                phases.append(row)
        by_database: dict[str, Any] = {}
        for database in self.databases:
            # groups are (GET, PUT), each [bare, service on each database]
            ratios = {}
            for (key, target), group in zip(RATIO_TARGETS.items(), groups, strict=True):
                bare = group[0]
                service = next(p for p in group if p.database == database)
                ratios[key] = rounded(target.judge(ratio(service.best.rps, bare.best.rps)))
            by_database[database] = {
                "ratios": ratios,
                "rss": {
                    **rounded(rss[database]),
                    "target_mb": RSS_TARGET.limit,
                    "pass": RSS_TARGET.met(rss[database]["VmRSS"]),
                },
                "after_load": rounded(loaded[database]),
            }
        first = by_database[self.databases[0]]
        out = {
            "duration_s": self.args.duration,
            "connections": self.args.connections,
            "rounds": self.args.rounds,
            "pinning": self.pinning.note,
            "databases": self.databases,
            "postgresql": POSTGRES_DESCRIPTION if "postgresql" in self.databases else None,
            "phases": phases,
            "ratios": first["ratios"],
            "rss": first["rss"],
            "after_load": first["after_load"],
            "by_database": by_database,
            "bare_memory": {k: round(v, 1) for k, v in bare_memory.items()},
        }
        if len(self.databases) > 1:
            # PostgreSQL against SQLite, best runs, in the same interleaved rounds.
            out["postgresql_vs_sqlite"] = {
                key: round(ratio(
                    next(p for p in group if p.database == "postgresql").best.rps,
                    next(p for p in group if p.database == "sqlite").best.rps), 3)
                for key, group in zip(RATIO_TARGETS, groups, strict=True)
            }
        return out


PHASE_COLUMNS = (
    Column("phase", 24, left=True),
    Column("side", 22, left=True),
    Column("req/s", 10, ",.0f"),
    Column("p50 ms", 9, ".2f"),
    Column("p99 ms", 9, ".2f"),
    Column("runs (req/s)", 0, left=True, gap="   "),
)


def _who(row: dict[str, Any]) -> str:
    database = row.get("database")
    return row["side"] if database is None else f"{row['side']} ({DATABASES[database]})"


def print_table(summary: dict[str, Any]) -> None:
    print(
        f"wrk -t1 -c{summary['connections']}, {summary['duration_s']:g} s per run, "
        f"best of {summary['rounds']} interleaved runs per side; {summary['pinning']}"
    )
    if summary["postgresql"]:
        print(f"PostgreSQL: a throwaway cluster started by the bench, {summary['postgresql']}"
              "; its processes run with the servers")
    print()
    rows = (
        (row["phase"], _who(row), row["rps"], row["p50_ms"], row["p99_ms"],
         ", ".join(f"{rps:,.0f}" for rps in row["runs_rps"]))
        for row in summary["phases"]
    )
    for line in table(PHASE_COLUMNS, rows):
        print(line)
    print()
    by_database = summary["by_database"]
    for key in RATIO_TARGETS:
        for database, found in by_database.items():
            entry = found["ratios"][key]
            print(f"{key} service/bare, {DATABASES[database]}: {entry['ratio']:.2f}  "
                  f"{RATIO_TARGETS[key].text(entry['pass'])}")
    if "postgresql_vs_sqlite" in summary:
        versus = summary["postgresql_vs_sqlite"]
        print("PostgreSQL/SQLite requests per second (best runs): "
              + ", ".join(f"{key} {value:.2f}" for key, value in versus.items())
              + "  (reported, not a target)")
    for database, found in by_database.items():
        rss = found["rss"]
        print(
            f"RSS with {rss['documents']:,} click-to-calls on {DATABASES[database]}, after a "
            f"full listing ({rss['listing_s'] * 1000:.0f} ms) and {rss['gets']} GETs: "
            f"{rss['VmRSS']:.1f} MB (peak {rss['VmHWM']:.1f} MB)  "
            f"{RSS_TARGET.text(rss['pass'], '.0f', ' MB')}"
        )
        print(f"  filled through the API at {rss['creates_per_s']:,.0f} creates/s")
    for database, found in by_database.items():
        loaded = found["after_load"]
        print(
            f"RSS of the loaded service on {DATABASES[database]} ({loaded['documents']:,} "
            f"click-to-calls, full listing {loaded['listing_s'] * 1000:.0f} ms): "
            f"{loaded['VmRSS']:.1f} MB (peak {loaded['VmHWM']:.1f} MB)"
        )
    print(f"bare aiohttp: {summary['bare_memory']['VmRSS']:.1f} MB")
    if summary["postgresql"]:
        print("(the service's own memory: PostgreSQL's is not counted)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds per measured run (default 10)"
    )
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="measured runs per side and method, interleaved (default 2)",
    )
    parser.add_argument(
        "--database",
        choices=("sqlite", "postgresql", "both"),
        default="sqlite",
        help="the service's database: SQLite (default), a throwaway PostgreSQL cluster, or "
        "both side by side in the same interleaved rounds",
    )
    parser.add_argument("--json", action="store_true", help="also print a machine-readable summary")
    parser.add_argument(
        "--no-pin", action="store_true", help="do not pin wrk and the servers to separate CPUs"
    )
    parser.add_argument(
        "--bare-server", nargs=2, metavar=("PORT", "BODY_FILE"), help=argparse.SUPPRESS
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.bare_server:
        run_bare_server(int(args.bare_server[0]), Path(args.bare_server[1]))
        return 0
    if args.duration <= 0 or args.connections < 1 or args.rounds < 1:
        print("rest.py: --duration, --connections and --rounds must be positive", file=sys.stderr)
        return 2
    if shutil.which("wrk") is None:
        print(
            "rest.py: wrk is not installed. On Debian or Ubuntu:\n"
            "    sudo apt-get install wrk\n"
            "then run this again.",
            file=sys.stderr,
        )
        return 2

    exit_on_sigterm()
    bench = Bench(args)
    try:
        summary = bench.run()
    except BenchError as exc:
        print(f"rest.py: FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        bench.cleanup()
    print_table(summary)
    if args.json:
        print(json_summary(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
