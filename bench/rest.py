"""REST throughput, latency and memory of c2c-ari, as ratios against a bare aiohttp app.

Run from the repository (with the project installed in the active Python):

    python bench/rest.py [--duration 10] [--connections 32] [--rounds 2] [--json]

Both servers run in their own process and are loaded by wrk (one thread, N connections).
The bare app answers GET and PUT with the exact bytes the service returns for a GET of one
click-to-call, so the ratio service/bare is the cost of the service's own work (auth,
routing, validation, SQLite, envelope) over aiohttp's floor on the same machine, in the
same run. Baseline and service phases are interleaved (A B B A ...) and the best run of each
side counts, which cancels most of the noise of a shared machine.

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
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, ClientTimeout, TCPConnector, web
from common import BenchError, Server, Service, free_port, http, log, start_service
from report import Column, Target, json_summary, ratio, rounded, table

RATIO_TARGETS = {  # service/bare requests per second
    "GET": Target(">=", 0.5),  # GET of one click-to-call
    "PUT": Target(">=", 0.2),  # PUT create
}
RSS_TARGET = Target("<=", 150.0)  # resident memory in MB with 10,000 click-to-calls stored
RSS_DOCS = 10_000
RSS_GETS = 200
WRK_TIMEOUT = "10s"  # a stall shows in p99 instead of as a spurious wrk error
# A benchmark account creates far more click-to-calls than the per-account default allows.
BENCH_CONFIG = 'ari_url = "off"\nmax_clicktocalls_per_account = 10000000\n'
CREATE_BODY = {"data": {"name": "Sales", "extension": "1001", "whitelist": ["^\\+1"]}}


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
    side: str
    url: str
    script: Path
    runs: list[Run] = field(default_factory=list)

    @property
    def best(self) -> Run:
        return max(self.runs, key=lambda run: run.rps)


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="c2c-ari-bench-"))
        self.servers: list[Server] = []
        self.pinning = Pinning.detect(not args.no_pin)

    def cleanup(self) -> None:
        for server in self.servers:
            with contextlib.suppress(Exception):
                server.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _service(self, name: str, data_dir: Path) -> Service:
        data_dir.mkdir(parents=True)
        # Calls off: the bench must never attach to a PBX that happens to run on this machine.
        config = data_dir / "bench.toml"
        config.write_text(BENCH_CONFIG)
        return start_service(name, data_dir, data_dir / "server.log",
                             prefix=self.pinning.server, config=config, started=self.servers)

    def run(self) -> dict[str, Any]:
        args = self.args
        log(f"pinning: {self.pinning.note}")
        service = self._service("service", self.tmp / "load")
        created = json.loads(http("PUT", service.collection, CREATE_BODY, service.token, 201))
        one = f"{service.collection}/{created['data']['id']}"
        body_file = self.tmp / "get-body.json"
        body_file.write_bytes(http("GET", one, token=service.token))
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
        path_one = one.removeprefix(service.base)
        path_collection = service.collection.removeprefix(service.base)

        put_body = json.dumps(CREATE_BODY)
        get_lua = wrk_script(self.tmp / "get.lua", "GET", service.token, None)
        put_lua = wrk_script(self.tmp / "put.lua", "PUT", service.token, put_body)
        pairs = [
            (
                Phase("GET one click-to-call", "bare", bare_base + path_one, get_lua),
                Phase("GET one click-to-call", "service", one, get_lua),
            ),
            (
                Phase("PUT create", "bare", bare_base + path_collection, put_lua),
                Phase("PUT create", "service", service.collection, put_lua),
            ),
        ]

        warmup = min(2.0, args.duration)
        for pair in pairs:
            for phase in pair:
                run_wrk(
                    self.pinning,
                    phase.script,
                    phase.url,
                    warmup,
                    args.connections,
                    f"warm-up {phase.label} ({phase.side})",
                )
        service_puts = 0
        for round_no in range(args.rounds):
            for pair in pairs:
                order = pair if round_no % 2 == 0 else pair[::-1]  # A B, B A, ...
                for phase in order:
                    run = run_wrk(
                        self.pinning,
                        phase.script,
                        phase.url,
                        args.duration,
                        args.connections,
                        f"round {round_no + 1}/{args.rounds} {phase.label} ({phase.side})",
                    )
                    phase.runs.append(run)
                    if phase.side == "service" and phase.label.startswith("PUT"):
                        service_puts += run.requests

        # Every 201 counted by wrk must have stored a document.
        stored, listing_s = count_listing(service)
        if stored < service_puts:
            raise BenchError(
                f"wrk counted {service_puts} created click-to-calls after the "
                f"warm-up, but the listing has only {stored}"
            )
        loaded = {"documents": stored, "listing_s": listing_s, **service.server.memory()}
        bare_memory = bare.memory()
        bare.stop()
        service.server.stop()

        rss = self.measure_rss()
        return self.summary(pairs, rss, loaded, bare_memory)

    def measure_rss(self) -> dict[str, Any]:
        args = self.args
        service = self._service("service (memory)", self.tmp / "memory")
        log(f"memory: creating {RSS_DOCS:,} click-to-calls through the API")
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
        pairs: list[tuple[Phase, Phase]],
        rss: dict[str, Any],
        loaded: dict[str, Any],
        bare_memory: dict[str, float],
    ) -> dict[str, Any]:
        phases = []
        for pair in pairs:
            for phase in pair:
                best = phase.best
                phases.append(
                    {
                        "phase": phase.label,
                        "side": phase.side,
                        "rps": round(best.rps, 1),
                        "p50_ms": round(best.p50_ms, 3),
                        "p99_ms": round(best.p99_ms, 3),
                        "runs_rps": [round(run.rps, 1) for run in phase.runs],
                    }
                )
        ratios = {  # pairs are (GET, PUT), each (bare, service)
            key: rounded(target.judge(ratio(service.best.rps, bare.best.rps)))
            for (key, target), (bare, service) in zip(RATIO_TARGETS.items(), pairs, strict=True)
        }
        return {
            "duration_s": self.args.duration,
            "connections": self.args.connections,
            "rounds": self.args.rounds,
            "pinning": self.pinning.note,
            "phases": phases,
            "ratios": ratios,
            "rss": {
                **rounded(rss),
                "target_mb": RSS_TARGET.limit,
                "pass": RSS_TARGET.met(rss["VmRSS"]),
            },
            "after_load": rounded(loaded),
            "bare_memory": {k: round(v, 1) for k, v in bare_memory.items()},
        }


PHASE_COLUMNS = (
    Column("phase", 24, left=True),
    Column("side", 9, left=True),
    Column("req/s", 10, ",.0f"),
    Column("p50 ms", 9, ".2f"),
    Column("p99 ms", 9, ".2f"),
    Column("runs (req/s)", 0, left=True, gap="   "),
)


def print_table(summary: dict[str, Any]) -> None:
    print(
        f"wrk -t1 -c{summary['connections']}, {summary['duration_s']:g} s per run, "
        f"best of {summary['rounds']} interleaved runs per side; {summary['pinning']}"
    )
    print()
    rows = (
        (row["phase"], row["side"], row["rps"], row["p50_ms"], row["p99_ms"],
         ", ".join(f"{rps:,.0f}" for rps in row["runs_rps"]))
        for row in summary["phases"]
    )
    for line in table(PHASE_COLUMNS, rows):
        print(line)
    print()
    for key, entry in summary["ratios"].items():
        print(f"{key} service/bare: {entry['ratio']:.2f}  "
              f"{RATIO_TARGETS[key].text(entry['pass'])}")
    rss = summary["rss"]
    print(
        f"RSS with {rss['documents']:,} click-to-calls, after a full listing "
        f"({rss['listing_s'] * 1000:.0f} ms) and {rss['gets']} GETs: "
        f"{rss['VmRSS']:.1f} MB (peak {rss['VmHWM']:.1f} MB)  "
        f"{RSS_TARGET.text(rss['pass'], '.0f', ' MB')}"
    )
    print(f"  filled through the API at {rss['creates_per_s']:,.0f} creates/s")
    loaded = summary["after_load"]
    print(
        f"RSS of the loaded service ({loaded['documents']:,} click-to-calls, full listing "
        f"{loaded['listing_s'] * 1000:.0f} ms): {loaded['VmRSS']:.1f} MB "
        f"(peak {loaded['VmHWM']:.1f} MB); bare aiohttp: "
        f"{summary['bare_memory']['VmRSS']:.1f} MB"
    )


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

    def interrupted(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, interrupted)
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
