"""Costs that must not grow with the data: the same requests against a small and a large
data set, side by side, as ratios large/small.

Run from the repository (with the project installed in the active Python):

    python bench/data.py [--quick] [--service-python OTHER_VENV/bin/python] [--json]

Each size gets its own real service process (`python -m c2c_ari serve`) on a fresh data dir:
a first start makes the schema (the service's own migrations) and two accounts with a token
each; then the service stops, the SQLite file is filled directly (history rows, click-to-calls,
soft-deleted click-to-calls) and the service starts again on it. Requests are sent one at a
time (latency per request: the median of many), small and large interleaved, best of
`--rounds`. Then `paginate=false` on the whole history: time to the last byte, the service's
memory, and what a stream of small GETs from another process sees meanwhile.

`--service-python` runs another checkout's service (the python of its venv), for a
before/after with the same bench: the history start key format is read from a first page.

Exit status: 0 when every request succeeded (whether or not a target was met), 1 when a
request failed or answered something unexpected, 2 on bad options.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import data_fill
import probe
from aiohttp import ClientSession, ClientTimeout
from common import (
    BenchError,
    Server,
    create_account,
    exit_on_sigterm,
    http,
    issue_token,
    log,
    memory_mb,
    reset_peak,
    serve,
)
from probe import Probe, ProbeResult
from report import Column, Target, json_summary, percentile, ratio, rounded, table
from target import Target as ServiceTarget

FLAT = Target("<=", 3.0)  # latency large/small
PROBE_P99 = Target("<=", 100.0)  # ms, GETs of other clients while paginate=false streams
RSS_GROWTH = Target("<=", 100.0)  # MB, the service's peak during paginate=false over before
SIZES = {"history": (1_000, 1_000_000), "clicktocalls": (1_000, 100_000),
         "tokens": (1_000, 100_000)}
QUICK_SIZES = {"history": (1_000, 50_000), "clicktocalls": (1_000, 10_000),
               "tokens": (1_000, 20_000)}
PAGE = 50  # the service's default page size, used by every listing here
CREATE_BODY = {"data": {"name": "Sales", "extension": "1001", "whitelist": ["^\\+1"]}}
STREAM_TIMEOUT = 1800.0  # s: paginate=false of the largest history on a slow service


@dataclass
class DataSet:
    """One size: its numbers, its data dir and its running service."""

    label: str
    history_rows: int
    clicktocalls: int
    tokens: int
    directory: Path
    options: list[str] = field(default_factory=list)
    server: Server | None = None
    base: str = ""
    account_id: str = ""
    token: str = ""
    api_key: str = ""
    deleted_account_id: str = ""
    deleted_token: str = ""
    history_id: str = ""  # the click-to-call that holds the whole history
    ids: list[str] = field(default_factory=list)  # live ids of the account, sorted
    layout: data_fill.HistoryLayout | None = None
    key_format: str = ""  # history start keys: "timestamp-seq" (now) or "seq" (before)
    fill_s: float = 0.0
    get_cursor: int = 0

    @property
    def collection(self) -> str:
        return f"{self.base}/v2/accounts/{self.account_id}/clicktocall"

    @property
    def deleted_collection(self) -> str:
        return f"{self.base}/v2/accounts/{self.deleted_account_id}/clicktocall"

    @property
    def history_url(self) -> str:
        return f"{self.collection}/{self.history_id}/history"

    @property
    def database(self) -> Path:
        return self.directory / "c2c-ari.sqlite3"

    @property
    def pid(self) -> int:
        if self.server is None:
            raise BenchError(f"the {self.label} service is not running")
        return self.server.pid

    def history_key(self, seq: int) -> str:
        assert self.layout is not None
        if self.key_format == "timestamp-seq":
            return f"{self.layout.timestamps[seq - 1]}-{seq}"
        return str(seq)

    def call_id(self, seq: int) -> str:
        return f"c2c-{self.history_id}-{seq:016x}"


# --- preparing a data set ----------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="c2c-ari-bench-data-"))
        self.servers: list[Server] = []
        self.target = ServiceTarget.detect(args.service_python, self.tmp)
        sizes = QUICK_SIZES if args.quick else SIZES
        history = args.history or sizes["history"]
        clicktocalls = args.clicktocalls or sizes["clicktocalls"]
        tokens = args.tokens or sizes["tokens"]
        self.sets = [
            DataSet(label, history[i], clicktocalls[i], tokens[i], self.tmp / label)
            for i, label in enumerate(("small", "large"))
        ]

    def cleanup(self) -> None:
        for server in self.servers:
            with contextlib.suppress(Exception):
                server.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _serve(self, ds: DataSet) -> None:
        ds.server = serve(f"service ({ds.label})", ds.options, ds.directory / "server.log",
                          python=self.target.python, cwd=self.tmp, started=self.servers)
        ds.base = f"http://127.0.0.1:{ds.server.port}"

    def _stop(self, ds: DataSet) -> None:
        if ds.server is not None:
            ds.server.stop()
            self.servers.remove(ds.server)
            ds.server = None

    def prepare(self, ds: DataSet) -> None:
        """Schema and accounts by the service itself, then the bulk of the data directly."""
        ds.directory.mkdir(parents=True)
        config = ds.directory / "bench.toml"
        # Creates go on in the large account however many documents it holds; tokens
        # outlive the run.
        config.write_text(self.target.config(
            max_clicktocalls_per_account=10_000_000, token_ttl=86_400))
        ds.options = ["--data-dir", str(ds.directory), "--config", str(config)]
        account = create_account(ds.options, python=self.target.python, cwd=self.tmp)
        deleted = create_account(ds.options, python=self.target.python, cwd=self.tmp,
                                 name="Bench deleted")
        ds.account_id, ds.api_key = account["account_id"], account["api_key"]
        ds.deleted_account_id = deleted["account_id"]
        self._serve(ds)
        ds.token = issue_token(ds.base, ds.api_key)
        ds.deleted_token = issue_token(ds.base, deleted["api_key"])
        created = http_json("PUT", ds.collection, ds.token, CREATE_BODY, 201)
        ds.history_id = created["data"]["id"]
        self._stop(ds)

        log(f"{ds.label}: filling {ds.history_rows:,} history rows, {ds.clicktocalls:,} "
            f"click-to-calls and as many again soft-deleted (255 of 256)")
        started = time.perf_counter()
        ds.layout = data_fill.history_layout(ds.history_rows)
        others = data_fill.new_ids(ds.clicktocalls - 1)
        conn = data_fill.connect(ds.database, exclusive=True)
        try:
            data_fill.fill_history(conn, ds.account_id, ds.history_id, ds.layout)
            data_fill.fill_clicktocalls(conn, ds.account_id, others)
            data_fill.fill_clicktocalls(conn, ds.deleted_account_id,
                                        data_fill.new_ids(ds.clicktocalls),
                                        deleted_every=data_fill.DELETED_EVERY)
        finally:
            data_fill.close_exclusive(conn)
        ds.fill_s = time.perf_counter() - started
        ds.ids = sorted([*others, ds.history_id])
        log(f"{ds.label}: filled in {ds.fill_s:.1f} s "
            f"({ds.database.stat().st_size / 1e6:,.0f} MB); starting the service again")
        self._serve(ds)

    # --- measuring ---------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        for ds in self.sets:
            self.prepare(ds)
        timeout = ClientTimeout(total=None, sock_read=STREAM_TIMEOUT)
        async with ClientSession(timeout=timeout) as session:
            for ds in self.sets:
                await self.detect_key_format(session, ds)
            variants = self.variants(session)
            results: dict[str, dict[str, list[float]]] = {
                name: {ds.label: [] for ds in self.sets} for name in variants}
            samples: dict[str, dict[str, int]] = {
                name: {ds.label: 0 for ds in self.sets} for name in variants}
            for fn in variants.values():  # warm-up: not counted
                for ds in self.sets:
                    for _ in range(2):
                        await fn(ds)
            for round_no in range(self.args.rounds):
                order = self.sets if round_no % 2 == 0 else self.sets[::-1]
                for name, fn in variants.items():
                    for ds in order:
                        times = await self.sample(fn, ds)
                        results[name][ds.label].append(percentile(times, 50))
                        samples[name][ds.label] += len(times)
                        log(f"round {round_no + 1}/{self.args.rounds} {name} ({ds.label}): "
                            f"median {percentile(times, 50) * 1000:.2f} ms of {len(times)}")
            streams = {}
            for ds in self.sets:
                streams[ds.label] = await self.paginate_false(session, ds)
        memory = {ds.label: memory_mb(ds.pid) for ds in self.sets}
        return self.summary(results, samples, streams, memory)

    async def sample(self, fn: Callable[[DataSet], Awaitable[float]], ds: DataSet) -> list[float]:
        """Latencies (s) of up to --samples requests, within --budget seconds (at least 3)."""
        times: list[float] = []
        deadline = time.monotonic() + self.args.budget
        while len(times) < self.args.samples and (len(times) < 3
                                                  or time.monotonic() < deadline):
            times.append(await fn(ds))
        return times

    async def detect_key_format(self, session: ClientSession, ds: DataSet) -> None:
        """Which start keys this version's history takes, from a first page's next key."""
        body = await get_json(session, ds.history_url, ds.token)
        key = str(body.get("next_start_key", ""))
        if re.fullmatch(r"[0-9]+-[0-9]+", key):
            ds.key_format = "timestamp-seq"
        elif re.fullmatch(r"[0-9]+", key):
            ds.key_format = "seq"
        else:
            raise BenchError(f"unknown history start key {key!r} ({ds.label})")
        newest = ds.history_rows
        if key != ds.history_key(newest - PAGE):
            raise BenchError(f"history next_start_key {key!r} is not the row expected "
                             f"({ds.history_key(newest - PAGE)!r}): the fill and the service "
                             "disagree")

    def variants(self, session: ClientSession) -> dict[str, Callable[[DataSet], Awaitable[float]]]:
        """Each variant sends one request to a data set and returns its latency (s) after
        checking the answer."""

        async def history_first(ds: DataSet) -> float:
            elapsed, body = await timed_json(session, "GET", ds.history_url, ds.token)
            expect_items(body, PAGE, "history first page")
            expect_first(body, ds.call_id(ds.history_rows), "history first page")
            return elapsed

        async def history_deep(ds: DataSet) -> float:
            assert ds.layout is not None
            seq = ds.layout.seq_at_depth(0.9)
            url = f"{ds.history_url}?start_key={ds.history_key(seq)}"
            elapsed, body = await timed_json(session, "GET", url, ds.token)
            expect_items(body, min(PAGE, seq), "history deep page")
            expect_first(body, ds.call_id(seq), "history deep page")
            return elapsed

        async def history_window(ds: DataSet) -> float:
            assert ds.layout is not None
            created_from, created_to, inside = ds.layout.window()
            url = f"{ds.history_url}?created_from={created_from}&created_to={created_to}"
            elapsed, body = await timed_json(session, "GET", url, ds.token)
            expect_items(body, inside, "history time window")
            return elapsed

        async def listing_first(ds: DataSet) -> float:
            elapsed, body = await timed_json(session, "GET", ds.collection, ds.token)
            expect_items(body, PAGE, "listing first page")
            return elapsed

        async def listing_deep(ds: DataSet) -> float:
            at = int(len(ds.ids) * 0.9)
            url = f"{ds.collection}?start_key={ds.ids[at]}"
            elapsed, body = await timed_json(session, "GET", url, ds.token)
            expect_items(body, min(PAGE, len(ds.ids) - at), "listing deep page")
            return elapsed

        async def listing_deleted(ds: DataSet) -> float:
            elapsed, body = await timed_json(session, "GET", ds.deleted_collection,
                                             ds.deleted_token)
            live = -(-ds.clicktocalls // data_fill.DELETED_EVERY)
            expect_items(body, min(PAGE, live), "listing of mostly deleted documents")
            return elapsed

        async def get_by_id(ds: DataSet) -> float:
            # A different document every time: a read from SQLite, not from the cache.
            doc_id = ds.ids[(ds.get_cursor * 7919) % len(ds.ids)]
            ds.get_cursor += 1
            elapsed, body = await timed_json(session, "GET", f"{ds.collection}/{doc_id}",
                                             ds.token)
            if body["data"].get("id") != doc_id:
                raise BenchError(f"GET {doc_id} answered another document")
            return elapsed

        async def put_create(ds: DataSet) -> float:
            elapsed, _body = await timed_json(session, "PUT", ds.collection, ds.token,
                                              CREATE_BODY, 201)
            return elapsed

        async def put_create_deleted(ds: DataSet) -> float:
            # Into the account whose documents are nearly all soft-deleted: fewer live ones
            # than the default limit per account, so this is what any account may see. The
            # new document is soft-deleted again (not timed): the account stays as it was.
            elapsed, body = await timed_json(session, "PUT", ds.deleted_collection,
                                             ds.deleted_token, CREATE_BODY, 201)
            await timed_json(session, "DELETE", f"{ds.deleted_collection}/{body['data']['id']}",
                             ds.deleted_token)
            return elapsed

        async def api_auth(ds: DataSet) -> float:
            # The tokens go in first, then one PUT /v2/api_auth is timed, then whatever it
            # left of them goes: every sample meets the same number, and the service's own
            # housekeeping never meets a pile of them during the other samples.
            conn = data_fill.connect(ds.database)
            try:
                data_fill.insert_expired_tokens(conn, ds.account_id, ds.tokens)
                data_fill.checkpoint(conn)
                # The kernel writes the fill out now, not during the timed request; the
                # same pause before every sample of both sizes.
                os.sync()
                await asyncio.sleep(0.2)
                elapsed, _body = await timed_json(
                    session, "PUT", f"{ds.base}/v2/api_auth", None,
                    {"data": {"api_key": ds.api_key}}, 201)
                data_fill.delete_expired_tokens(conn)
                data_fill.checkpoint(conn)
            finally:
                conn.close()
            return elapsed

        return {
            "history: first page": history_first,
            "history: deep page (start_key 90% down)": history_deep,
            f"history: narrow window (<{PAGE} rows, middle)": history_window,
            "listing: first page": listing_first,
            "listing: deep page (start_key 90% in)": listing_deep,
            "listing: 255 of 256 soft-deleted, 1st page": listing_deleted,
            "GET by id (not cached)": get_by_id,
            "PUT create": put_create,
            "PUT create, 255 of 256 soft-deleted": put_create_deleted,
            "PUT /v2/api_auth after N expired tokens": api_auth,
        }

    async def paginate_false(self, session: ClientSession, ds: DataSet) -> dict[str, Any]:
        """The whole history in one answer: time to the last byte, the service's memory,
        and the latency of other clients' GETs meanwhile (next to a baseline without it)."""
        pid = ds.pid
        probe_url = f"{ds.collection}/{ds.history_id}"
        log(f"paginate=false ({ds.label}): baseline of the GET probe for "
            f"{self.args.probe_baseline:g} s")
        with Probe(probe_url, ds.token, rate=self.args.probe_rate) as probe:
            await asyncio.sleep(self.args.probe_baseline)
            baseline = probe.stop()
        before = memory_mb(pid)
        peak_reset = reset_peak(pid)
        peak_seen = before["VmRSS"]
        done = asyncio.Event()

        async def watch_memory() -> None:
            nonlocal peak_seen
            while not done.is_set():
                with contextlib.suppress(OSError):
                    peak_seen = max(peak_seen, memory_mb(pid)["VmRSS"])
                await asyncio.sleep(0.02)

        log(f"paginate=false ({ds.label}): streaming {ds.history_rows:,} rows")
        with Probe(probe_url, ds.token, rate=self.args.probe_rate) as probe:
            await asyncio.sleep(0.5)
            watcher = asyncio.create_task(watch_memory())
            started = time.monotonic()
            try:
                first_byte, size, items = await read_stream(
                    session, f"{ds.history_url}?paginate=false", ds.token)
            finally:
                ended = time.monotonic()
                done.set()
                await watcher
            # A short stream still gets a second of probe samples from its start.
            until = max(ended, started + 1.0)
            await asyncio.sleep(until + 0.2 - time.monotonic())
            during = probe.stop().window(started, until)
        after = memory_mb(pid)
        if items != ds.history_rows:
            raise BenchError(f"paginate=false ({ds.label}) answered {items} items, not "
                             f"{ds.history_rows}")
        peak = max(peak_seen, after["VmHWM"] if peak_reset else 0.0)
        result: dict[str, Any] = {
            "rows": items, "bytes": size, "ttfb_s": first_byte - started,
            "ttlb_s": ended - started, "rows_per_s": items / max(ended - started, 1e-9),
            "rss_before_mb": before["VmRSS"], "rss_after_mb": after["VmRSS"],
            "rss_peak_mb": peak, "peak_source": "VmHWM" if peak_reset else "sampled",
            "rss_growth_mb": peak - before["VmRSS"],
            "probe": probe_summary(during), "probe_baseline": probe_summary(baseline),
        }
        log(f"paginate=false ({ds.label}): {result['ttlb_s']:.2f} s, peak "
            f"{peak:.0f} MB (before {before['VmRSS']:.0f} MB), probe p99 "
            f"{result['probe']['p99_ms']:.1f} ms")
        return result

    def summary(self, results: dict[str, dict[str, list[float]]],
                samples: dict[str, dict[str, int]], streams: dict[str, dict[str, Any]],
                memory: dict[str, dict[str, float]]) -> dict[str, Any]:
        small, large = self.sets
        variants = []
        for name, by_size in results.items():
            s_ms, l_ms = min(by_size["small"]) * 1000, min(by_size["large"]) * 1000
            variants.append({
                "variant": name, "small_ms": s_ms, "large_ms": l_ms,
                "samples": samples[name], **FLAT.judge(ratio(l_ms, s_ms)),
            })
        stream = streams["large"]
        summary: dict[str, Any] = rounded({
            "service": self.target.describe(),
            "sizes": {ds.label: {"history": ds.history_rows, "clicktocalls": ds.clicktocalls,
                                 "tokens": ds.tokens, "fill_s": ds.fill_s,
                                 "history_key": ds.key_format} for ds in self.sets},
            "rounds": self.args.rounds, "samples": self.args.samples,
            "variants": variants,
            "paginate_false": streams,
            "probe_p99": {"value": stream["probe"]["p99_ms"], "target": PROBE_P99.limit,
                          "pass": PROBE_P99.met(stream["probe"]["p99_ms"])},
            "rss_growth": {"value": stream["rss_growth_mb"], "target": RSS_GROWTH.limit,
                           "pass": RSS_GROWTH.met(stream["rss_growth_mb"])},
            "memory_end": memory,
            "large_over_small": {"history": ratio(large.history_rows, small.history_rows),
                                 "clicktocalls": ratio(large.clicktocalls,
                                                       small.clicktocalls)},
        })
        return summary


# --- HTTP ----------------------------------------------------------------------------------


async def timed_json(session: ClientSession, method: str, url: str, token: str | None,
                     body: Any = None, expect: int = 200) -> tuple[float, dict[str, Any]]:
    """(seconds to the whole answer, the answer parsed); BenchError on another status."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["X-Auth-Token"] = token
    data = None if body is None else json.dumps(body).encode()
    started = time.perf_counter()
    async with session.request(method, url, data=data, headers=headers) as resp:
        raw = await resp.read()
        elapsed = time.perf_counter() - started
        if resp.status != expect:
            raise BenchError(f"{method} {url} answered {resp.status}, not {expect}: "
                             f"{raw[:300]!r}")
    parsed: dict[str, Any] = json.loads(raw)
    return elapsed, parsed


async def get_json(session: ClientSession, url: str, token: str) -> dict[str, Any]:
    return (await timed_json(session, "GET", url, token))[1]


def http_json(method: str, url: str, token: str, body: Any, expect: int) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(http(method, url, body, token, expect))
    return parsed


def expect_items(body: dict[str, Any], count: int, what: str) -> None:
    if len(body["data"]) != count:
        raise BenchError(f"{what}: {len(body['data'])} items, expected {count}")


def expect_first(body: dict[str, Any], call_id: str, what: str) -> None:
    first = body["data"][0].get("call_id") if body["data"] else None
    if first != call_id:
        raise BenchError(f"{what}: the first item is {first!r}, expected {call_id!r}")


async def read_stream(session: ClientSession, url: str, token: str) -> tuple[float, int, int]:
    """Read a long answer as it comes: (monotonic time of the first byte, bytes, items),
    items counted by their `"call_id"` key, without holding the answer in memory."""
    marker = b'"call_id"'
    size = items = 0
    first_byte = 0.0
    tail = b""
    async with session.get(url, headers={"X-Auth-Token": token}) as resp:
        if resp.status != 200:
            raise BenchError(f"GET {url} answered {resp.status}: {(await resp.read())[:300]!r}")
        async for chunk in resp.content.iter_chunked(1 << 18):
            if not size:
                first_byte = time.monotonic()
            size += len(chunk)
            joined = tail + chunk
            items += joined.count(marker)
            # Keep a marker's worth minus one, so one cut in two is counted once, later.
            tail = joined[-(len(marker) - 1):]
            items -= tail.count(marker)
    return first_byte, size, items


def probe_summary(result: ProbeResult) -> dict[str, Any]:
    return {"count": result.count, "p50_ms": result.pct(50), "p99_ms": result.pct(99),
            "max_ms": result.max_ms, "errors": result.errors,
            "first_error": result.first_error}


# --- report --------------------------------------------------------------------------------

VARIANT_COLUMNS = (
    Column("variant", 44, left=True),
    Column("small ms", 10, ".2f"),
    Column("large ms", 10, ".2f"),
    Column("large/small", 12, ".2f"),
    Column("", 28, left=True, gap="  "),
)
STREAM_COLUMNS = (
    Column("size", 6, left=True),
    Column("rows", 11, ",d"),
    Column("MB", 7, ",.0f"),
    Column("1st byte s", 11, ".2f"),
    Column("last byte s", 12, ".2f"),
    Column("RSS before", 11, ",.0f"),
    Column("after", 8, ",.0f"),
    Column("peak", 8, ",.0f"),
    Column("growth", 8, ",.0f"),
    Column("GET p50", 10, ",.1f"),
    Column("p99", 10, ",.1f"),
    Column("max", 10, ",.1f"),
    Column("idle p99", 9, ",.1f"),
)


def print_report(summary: dict[str, Any]) -> None:
    sizes = summary["sizes"]
    print(f"service: {summary['service']}")
    for label, size in sizes.items():
        print(f"{label}: {size['history']:,} history rows, {size['clicktocalls']:,} "
              f"click-to-calls (+ as many, 255/256 soft-deleted, in another account), "
              f"{size['tokens']:,} expired tokens per api_auth sample; filled in "
              f"{size['fill_s']:.1f} s; history start keys: {size['history_key']}")
    print(f"latency: median of up to {summary['samples']} sequential requests per size, "
          f"best of {summary['rounds']} interleaved rounds")
    print()
    rows = [(v["variant"], v["small_ms"], v["large_ms"], v["ratio"],
             FLAT.text(v["pass"])) for v in summary["variants"]]
    for line in table(VARIANT_COLUMNS, rows):
        print(line.rstrip())
    print()
    print("paginate=false on the whole history (MB of the answer; RSS in MB; GET latency in "
          "ms of a probe\nfrom another process, one GET due every 10 ms, while it streams; "
          "idle p99: the same probe before it)")
    stream_rows = []
    for label, s in summary["paginate_false"].items():
        stream_rows.append((label, s["rows"], s["bytes"] / 1e6, s["ttfb_s"], s["ttlb_s"],
                            s["rss_before_mb"], s["rss_after_mb"], s["rss_peak_mb"],
                            s["rss_growth_mb"], s["probe"]["p50_ms"], s["probe"]["p99_ms"],
                            s["probe"]["max_ms"], s["probe_baseline"]["p99_ms"]))
    for line in table(STREAM_COLUMNS, stream_rows):
        print(line)
    print()
    p99, growth = summary["probe_p99"], summary["rss_growth"]
    print(f"large: GET p99 while streaming {p99['value']:,.1f} ms  "
          f"{PROBE_P99.text(p99['pass'], '.0f', ' ms')}")
    print(f"large: RSS growth (peak - before) {growth['value']:,.0f} MB  "
          f"{RSS_GROWTH.text(growth['pass'], '.0f', ' MB')}")
    for label, s in summary["paginate_false"].items():
        if s["probe"]["errors"]:
            print(f"{label}: {s['probe']['errors']} probe GETs failed, first: "
                  f"{s['probe']['first_error']}")


# --- main ----------------------------------------------------------------------------------


def _pair(text: str) -> tuple[int, int]:
    parts = [int(part.replace("_", "")) for part in text.split(",")]
    if len(parts) != 2 or min(parts) < 1 or parts[0] > parts[1]:
        raise argparse.ArgumentTypeError("give SMALL,LARGE with 1 <= SMALL <= LARGE")
    return parts[0], parts[1]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smaller sizes and fewer samples, for a fast check")
    parser.add_argument("--history", type=_pair, metavar="SMALL,LARGE",
                        help="history rows (default 1000,1000000; quick 1000,50000)")
    parser.add_argument("--clicktocalls", type=_pair, metavar="SMALL,LARGE",
                        help="click-to-calls (default 1000,100000; quick 1000,10000)")
    parser.add_argument("--tokens", type=_pair, metavar="SMALL,LARGE",
                        help="expired tokens inserted before each PUT /v2/api_auth "
                             "(default 1000,100000; quick 1000,20000)")
    parser.add_argument("--samples", type=int, help="requests per variant, size and round "
                        "(default 40; quick 15)")
    parser.add_argument("--budget", type=float, default=10.0,
                        help="seconds per variant, size and round at most, once 3 requests "
                             "are done (default 10)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 2; quick 1)")
    probe.add_arguments(parser, baseline=3.0, baseline_help="before paginate=false")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.samples = args.samples or (15 if args.quick else 40)
    args.rounds = args.rounds or (1 if args.quick else 2)
    if args.samples < 3 or args.rounds < 1 or args.budget <= 0 or args.probe_rate <= 0:
        print("data.py: --samples >= 3, --rounds >= 1, --budget and --probe-rate > 0",
              file=sys.stderr)
        return 2

    exit_on_sigterm()
    bench = None
    try:
        bench = Bench(args)
        log(f"service under test: {bench.target.describe()}")
        summary = asyncio.run(bench.run())
    except BenchError as exc:
        print(f"data.py: FAILED: {exc}", file=sys.stderr)
        if bench is not None:
            for ds in bench.sets:
                if ds.server is not None:
                    print(f"--- {ds.label} service log (tail) ---\n{ds.server.tail()}",
                          file=sys.stderr)
        return 1
    finally:
        if bench is not None:
            bench.cleanup()
    print_report(summary)
    if args.json:
        print(json_summary(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
