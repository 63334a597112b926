"""Calls through a real Asterisk: c2c-ari against a minimal raw-ARI script, in the same run.

Run from the repository as root (the local Asterisk needs it), with the project installed in
the active Python and SIPp (Debian's sip-tester) on the PATH:

    python bench/calls.py [--calls 1000] [--concurrency 100] [--samples 50] [--rounds 2] [--json]
    python bench/calls.py --quick          # 100 calls, 20 at a time, 10 samples, 1 round

It takes the same lock as the integration test sessions (they share Asterisk, the Stasis app
and SIPp's ports), starts the local Asterisk if it is not running (and stops it at the end
only then), and starts its own service, SIPp peers and raw-ARI driver, all stopped by pid.

1. Overhead: the time from sending a request to the extension's INVITE arriving at SIPp, for
   a non-blocking connect of the service and for a raw ARI originate to the same endpoint sent
   by this script; interleaved samples, one call at a time. SIPp logs wall-clock times, the
   requests are timed with time.time(), so both sides read the same clock.
2. Load: N click-to-calls, C at a time (a slot is free again when the extension's phone gets
   its BYE), the contact hanging up after 1 s; against the same two-leg-and-bridge flow driven
   by a raw-ARI script (`--raw-driver`, its own process and Stasis app) at the same
   concurrency. Calls per second, CPU per call of the service and of Asterisk (/proc), the
   service's memory, and its history rows against the attempts.
3. At the end, Asterisk must have no channel and no bridge left.

Exit status: 0 when every call succeeded and nothing was left behind (whether or not a target
was met), 1 when a call failed, a history row was missing, something was left in Asterisk or
the run could not complete, 2 when SIPp or a usable host is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import math
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from aiohttp import ClientSession, ClientTimeout, TCPConnector, WSMsgType, encode_basic_auth
from common import BenchError, free_port, http, log

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # for the SIPp helpers of the tests
    sys.path.insert(0, str(ROOT))

from c2c_ari import localasterisk  # noqa: E402
from tests.helpers.sipp import SipMessage, Sipp, parse_message_log  # noqa: E402

OVERHEAD_TARGET = 1.2  # service/raw, POST to the extension's INVITE, median and p95
CPS_TARGET = 0.8  # service/raw calls per second
CPU_TARGET = 0.5  # service CPU per call / Asterisk CPU per call
AGENT_PORT = 5071  # extension 1001's contact in asterisk/pjsip.conf
TRUNK_PORT = 5080  # the trunk's contact
EXTENSION = "1001"
HOLD_MS = 1000  # the contact hangs up this long after answering (load)
SAMPLE_HOLD_MS = 100  # the same during the overhead samples
WARMUP_SAMPLES = 3  # per side, not counted
RING_TIMEOUT = 30  # seconds Asterisk lets a leg ring (the click-to-call's default timeout)
END_TIMEOUT = 45.0  # a call not over after this long counts as stuck
RAW_APP = "c2c-bench-raw"
RAW_PREFIX = "c2c-bench-raw-"  # ids of the raw script's channels and bridges
SERVICE_PREFIX = "c2c-"  # the service's ids: c2c-{c2c id}-{random}
CREATE_BODY = {"data": {"name": "Bench", "extension": EXTENSION}}
DNS_PITFALL_S = 4.0  # a leg this slow to reach SIPp smells of the 5 s DNS timeout
TAIL_INTERVAL = 0.01  # seconds between reads of the agent's SIPp message log




def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (p50 of 50 values is the 25th smallest)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak) in MB, from /proc."""
    out: dict[str, float] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024
    return out


def sipp_time(message: SipMessage) -> float:
    """SIPp's log timestamp (local wall clock, microseconds) as Unix seconds."""
    return datetime.strptime(message.timestamp, "%Y-%m-%d %H:%M:%S.%f").timestamp()


def contact_number(kind: int, round_no: int, n: int) -> str:
    """A contact unique in the run, so each call is found in SIPp's logs by its number: the
    extension's INVITE shows it in From (the service's caller-ID rule, and the raw script's
    callerId), the trunk's in the request URI."""
    return f"+4930{kind}{round_no}{n:06d}"


# --- processes -----------------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the bench dies without cleaning up."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG



def stop_pid(proc: subprocess.Popen[Any] | None) -> None:
    """SIGTERM a process this bench started, by its pid; SIGKILL if it lingers."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def service_env(info: localasterisk.AriInfo) -> dict[str, str]:
    """The bench's environment without other C2C_ARI_* settings, plus the ARI to use."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("C2C_ARI_") or k == "C2C_ARI_CACHE_DIR"}
    env.update(C2C_ARI_URL=info.url, C2C_ARI_USER=info.user, C2C_ARI_PASSWORD=info.password)
    return env



@dataclass
class Service:
    proc: subprocess.Popen[bytes]
    log_path: Path
    base: str
    account_id: str = ""
    token: str = ""
    c2c_id: str = ""

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def c2c_url(self) -> str:
        return f"{self.base}/v2/accounts/{self.account_id}/clicktocall/{self.c2c_id}"

    def log_lines(self) -> list[str]:
        try:
            return self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return []


def start_service(data_dir: Path, info: localasterisk.AriInfo) -> Service:
    """The real service (`python -m c2c_ari serve`) on the local Asterisk, with an account,
    a token and one click-to-call."""
    data_dir.mkdir(parents=True)
    env = service_env(info)
    created = subprocess.run(
        [sys.executable, "-m", "c2c_ari", "accounts", "create", "--name", "Bench",
         "--realm", "bench.example.com", "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=60, env=env,
    )
    if created.returncode != 0:
        raise BenchError(f"accounts create failed ({created.returncode}): {created.stderr}")
    account = json.loads(created.stdout)
    port = free_port()
    log_path = data_dir.parent / "service.log"
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "c2c_ari", "serve", "--host", "127.0.0.1",
             "--port", str(port), "--data-dir", str(data_dir)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
            start_new_session=True, preexec_fn=_die_with_parent,
        )
    service = Service(proc, log_path, f"http://127.0.0.1:{port}", account["account_id"])
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            tail = "\n".join(service.log_lines()[-20:])
            raise BenchError(f"the service exited with {proc.returncode}:\n{tail}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            break
        if time.monotonic() > deadline:
            raise BenchError(f"the service did not listen on port {port}")
        time.sleep(0.1)
    auth = json.loads(http("PUT", f"{service.base}/v2/api_auth",
                           {"data": {"api_key": account["api_key"]}}, expect=201))
    service.token = auth["auth_token"]
    collection = f"{service.base}/v2/accounts/{service.account_id}/clicktocall"
    created_c2c = json.loads(http("PUT", collection, CREATE_BODY, service.token, 201))
    service.c2c_id = created_c2c["data"]["id"]
    return service


# --- a minimal raw-ARI client and the two-leg-and-bridge flow ------------------------------


class RawAri:
    """Just enough ARI on aiohttp: REST calls and one events websocket for its own app, whose
    events go to the queue of the call that owns the channel."""

    def __init__(self, url: str, user: str, password: str, app: str = RAW_APP) -> None:
        self.base = url.rstrip("/") + "/ari"
        self.events_url = "ws" + self.base[len("http"):] + f"/events?app={app}&subscribeAll=false"
        self.app = app
        self.auth = encode_basic_auth(user, password)
        self.routes: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self.closed = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()

    async def __aenter__(self) -> RawAri:
        self.session = ClientSession(
            headers={"Authorization": self.auth},
            connector=TCPConnector(limit=100, keepalive_timeout=5.0),
            timeout=ClientTimeout(total=15), trust_env=False,
        )
        self.ws = await self.session.ws_connect(self.events_url, heartbeat=30)
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        await self.session.close()

    async def _read(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                event = json.loads(msg.data)
                channel_id = event.get("channel", {}).get("id", "")
                queue = self.routes.get(channel_id)
                if queue is not None:
                    queue.put_nowait(event)
                elif event.get("type") == "StasisStart":  # no call owns it: never leave it up
                    task = asyncio.create_task(self.hangup(channel_id))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
        finally:
            self.closed.set()

    def route(self, *channel_ids: str) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        for channel_id in channel_ids:
            self.routes[channel_id] = queue
        return queue

    def unroute(self, *channel_ids: str) -> None:
        for channel_id in channel_ids:
            self.routes.pop(channel_id, None)

    async def request(self, method: str, path: str, **params: str) -> int:
        async with self.session.request(method, self.base + path, params=params) as resp:
            await resp.read()
            return resp.status

    async def originate(self, endpoint: str, channel_id: str, caller_id: str) -> int:
        return await self.request("POST", "/channels", endpoint=endpoint, app=self.app,
                                  channelId=channel_id, callerId=caller_id,
                                  timeout=str(RING_TIMEOUT))

    async def hangup(self, channel_id: str) -> None:
        status = await self.request("DELETE", f"/channels/{channel_id}")
        if status not in (200, 204, 404):
            raise BenchError(f"raw ARI: hangup {channel_id} answered {status}")

    async def list(self, what: str) -> list[dict[str, Any]]:
        async with self.session.get(f"{self.base}/{what}") as resp:
            return list(await resp.json())


async def _next(queue: asyncio.Queue[dict[str, Any]]) -> dict[str, Any]:
    return await asyncio.wait_for(queue.get(), RING_TIMEOUT + 15)


async def raw_call(ari: RawAri, call_no: str, contact: str) -> dict[str, Any]:
    """Originate the extension; once it answers, originate the contact; once that answers,
    bridge both (`mixing,proxy_media`, as the service does by default). When one leg ends,
    hang up the other and destroy the bridge."""
    ext, other = f"{RAW_PREFIX}{call_no}-ext", f"{RAW_PREFIX}{call_no}-contact"
    bridge = f"{RAW_PREFIX}{call_no}-bridge"
    queue = ari.route(ext, other)
    live: set[str] = set()
    result: dict[str, Any] = {"contact": contact, "ok": False, "t_post": time.time()}
    bridged = False
    try:
        for channel_id, endpoint, caller_id in (
            (ext, f"PJSIP/{EXTENSION}", f'"Bench" <{contact}>'),
            (other, f"PJSIP/{contact}@trunk", f'"{EXTENSION}" <{EXTENSION}>'),
        ):
            status = await ari.originate(endpoint, channel_id, caller_id)
            if status != 200:
                result["cause"] = f"HTTP_{status}"
                return result
            live.add(channel_id)
            while True:
                event = await _next(queue)
                event_channel = event.get("channel", {}).get("id")
                if event["type"] == "ChannelDestroyed":
                    live.discard(event_channel)
                    result["cause"] = event.get("cause_txt") or str(event.get("cause"))
                    return result
                if event["type"] == "StasisStart" and event_channel == channel_id:
                    break
        status = await ari.request("POST", f"/bridges/{bridge}", type="mixing,proxy_media")
        if status != 200:
            result["cause"] = f"BRIDGE_HTTP_{status}"
            return result
        bridged = True
        status = await ari.request("POST", f"/bridges/{bridge}/addChannel",
                                   channel=f"{ext},{other}",
                                   inhibitConnectedLineUpdates="true")
        if status not in (200, 204):
            result["cause"] = f"ADD_HTTP_{status}"
            return result
        result["ok"] = True
        while True:
            event = await _next(queue)
            if event["type"] in ("StasisEnd", "ChannelDestroyed"):
                live.discard(event.get("channel", {}).get("id"))
                return result
    except TimeoutError:
        result["ok"] = False
        result["cause"] = "STUCK"
        return result
    finally:
        for channel_id in live:
            await ari.hangup(channel_id)
        if bridged:
            await ari.request("DELETE", f"/bridges/{bridge}")
        ari.unroute(ext, other)
        result["t_end"] = time.time()


async def closed_loop(
    count: int, concurrency: int, one: Callable[[int], Awaitable[dict[str, Any]]]
) -> tuple[list[dict[str, Any]], float]:
    """`count` calls, `concurrency` at a time (a worker starts its next call once its last
    one is over); the results in call order and the wall time."""
    results: list[dict[str, Any]] = [{} for _ in range(count)]
    remaining = iter(range(count))

    async def worker() -> None:
        for index in remaining:
            results[index] = await one(index)

    started = time.time()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, count))))
    return results, time.time() - started


def run_raw_driver(config_file: Path) -> int:
    """`calls.py --raw-driver CONFIG`: the raw-ARI load, in its own process. Prints READY once
    its websocket is up, starts on a line on stdin, prints RESULT {json}."""
    config = json.loads(config_file.read_text())

    async def drive() -> dict[str, Any]:
        async with RawAri(config["url"], config["user"], config["password"]) as ari:
            print("READY", flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
            before = os.times()

            async def one(index: int) -> dict[str, Any]:
                number = contact_number(config["kind"], config["round"], index)
                return await raw_call(ari, f"{config['round']}-{index}", number)

            results, elapsed = await closed_loop(config["calls"], config["concurrency"], one)
            after = os.times()
            if ari.closed.is_set():
                raise BenchError("raw ARI: the events websocket closed during the run")
        cpu = (after.user + after.system) - (before.user + before.system)
        return {"results": results, "elapsed": elapsed, "cpu_s": cpu}

    print("RESULT " + json.dumps(asyncio.run(drive())), flush=True)
    return 0


# --- what SIPp saw ---------------------------------------------------------------------------


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
    task = asyncio.get_running_loop().create_task(agent_log.follow())
    try:
        yield task
    finally:
        task.cancel()


# --- the run -------------------------------------------------------------------------------


@dataclass
class LoadRun:
    side: str  # "raw" or "service"
    round_no: int
    calls: int
    ended: int
    ok: int
    elapsed: float
    client_cpu_s: float
    asterisk_cpu_s: float
    invite_ms: list[float] = field(default_factory=list)
    causes: Counter[str] = field(default_factory=Counter)
    call_ids: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # service: connects not answered 202
    left: dict[str, list[str]] = field(default_factory=dict)
    slow_calls: int = 0

    @property
    def cps(self) -> float:
        return self.ended / self.elapsed if self.elapsed > 0 else 0.0


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="c2c-ari-bench-calls-"))
        self.info: localasterisk.AriInfo | None = None
        self.asterisk_pid = 0
        self.service: Service | None = None
        self.peers: list[Sipp] = []
        self.driver: subprocess.Popen[bytes] | None = None
        self.attempts: list[str] = []  # call ids of every connect answered 202
        self.asterisk_log_start = 0

    # ---------------------------------------------------------------- set-up and clean-up

    def cleanup(self) -> None:
        for peer in self.peers:
            with contextlib.suppress(Exception):
                peer.stop()
        with contextlib.suppress(Exception):
            stop_pid(self.driver)
        if self.service is not None:
            with contextlib.suppress(Exception):
                stop_pid(self.service.proc)
        if self.args.keep_logs is not None:
            # Logs only: the raw script's config holds the ARI password.
            with contextlib.suppress(OSError):
                shutil.copytree(self.tmp, self.args.keep_logs, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("raw-driver-*.json", "data"))
                log(f"logs kept in {self.args.keep_logs}")
        if self.info is not None and self.info.started:
            log("stopping the Asterisk this run started")
            with contextlib.suppress(Exception):
                localasterisk.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def start_peers(self, name: str, hold_ms: int) -> tuple[Sipp, Sipp]:
        """The extension's phone answers at once and waits for BYE; the contact answers at
        once and hangs up after `hold_ms`."""
        for peer in self.peers:
            peer.stop()
        self.peers = []
        agent = Sipp("uas_answer.xml", AGENT_PORT, duration_ms=0,
                     workdir=self.tmp / f"sipp-{name}-agent")
        trunk = Sipp("uas_answer_then_bye.xml", TRUNK_PORT, duration_ms=hold_ms,
                     workdir=self.tmp / f"sipp-{name}-trunk")
        for peer in (agent, trunk):
            self.peers.append(peer)
            peer.start()
        return agent, trunk

    def ari_get(self, what: str) -> list[dict[str, Any]]:
        assert self.info is not None
        token = encode_basic_auth(self.info.user, self.info.password)
        request = urllib.request.Request(f"{self.info.ari_url}/{what}",
                                         headers={"Authorization": token})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=10) as response:
            return list(json.loads(response.read()))

    def leftovers(self, prefixes: tuple[str, ...], wait: float = 10.0) -> dict[str, list[str]]:
        """Channels and bridges whose ids start with one of `prefixes` (all if empty), after
        giving hangups up to `wait` seconds to land."""
        deadline = time.monotonic() + wait
        while True:
            left = {
                what: [item["id"] for item in self.ari_get(what)
                       if not prefixes or item["id"].startswith(prefixes)]
                for what in ("channels", "bridges")
            }
            if not any(left.values()) or time.monotonic() > deadline:
                return left
            time.sleep(0.2)

    def run(self) -> dict[str, Any]:
        args = self.args
        self.info = localasterisk.ensure_running()
        pid = localasterisk.running_pid()
        if pid is None:
            raise BenchError("Asterisk answers but its pid is unknown (not the local Asterisk?)")
        self.asterisk_pid = pid
        version = localasterisk.asterisk_rx("core show version").strip().split(" built")[0]
        log(f"{version}, pid {pid}, "
            f"{'started by this run' if self.info.started else 'already running'}")
        with contextlib.suppress(OSError):
            self.asterisk_log_start = localasterisk.asterisk_log_file().stat().st_size
        before = self.leftovers((), wait=0)

        self.service = start_service(self.tmp / "data", self.info)
        log(f"service pid {self.service.pid} on {self.service.base}")
        overhead = asyncio.run(self.overhead())

        runs: list[LoadRun] = []
        for round_no in range(args.rounds):
            order = ("raw", "service") if round_no % 2 == 0 else ("service", "raw")
            for side in order:
                if side == "raw":
                    runs.append(self.load_raw(round_no))
                else:
                    runs.append(asyncio.run(self.load_service(round_no)))

        history = self.check_history(runs)
        memory = memory_mb(self.service.pid)
        stop_pid(self.service.proc)
        for peer in self.peers:
            peer.stop()
        end_state = self.leftovers((), wait=10)
        return self.summary(overhead, runs, history, memory, before, end_state, version)

    # ---------------------------------------------------------------- overhead

    async def connect(self, session: ClientSession, contact: str) -> tuple[int, dict[str, Any]]:
        assert self.service is not None
        async with session.post(
            f"{self.service.c2c_url}/connect", json={"data": {"contact": contact}},
            headers={"X-Auth-Token": self.service.token},
        ) as resp:
            raw = await resp.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = {"raw": raw[:300].decode(errors="replace")}
        if resp.status == 202:
            self.attempts.append(body["data"]["outbound_call_id"])
        return resp.status, body

    async def overhead(self) -> dict[str, Any]:
        assert self.info is not None
        agent, _trunk = self.start_peers("overhead", SAMPLE_HOLD_MS)
        agent_log = AgentLog(agent.message_log)
        samples: dict[str, list[float]] = {"raw": [], "service": []}
        connector = TCPConnector(limit=10)
        async with (
            ClientSession(connector=connector, timeout=ClientTimeout(total=30),
                          trust_env=False) as session,
            RawAri(self.info.url, self.info.user, self.info.password) as ari,
        ):
            with following(agent_log):
                await self.wait_service_ready(session, agent_log)
                total = WARMUP_SAMPLES + self.args.samples
                log(f"overhead: {self.args.samples} samples per side "
                    f"(+{WARMUP_SAMPLES} warm-up), interleaved")
                for n in range(total):
                    order = ("raw", "service") if n % 2 == 0 else ("service", "raw")
                    for side in order:
                        if side == "raw":
                            latency = await self.raw_sample(ari, agent_log, n)
                        else:
                            latency = await self.service_sample(session, agent_log, n)
                        if n >= WARMUP_SAMPLES:
                            samples[side].append(latency * 1000)
                        await asyncio.sleep(0.1)  # let the last call's clean-up finish
        agent_log.close()
        result: dict[str, Any] = {"samples": self.args.samples}
        for side, values in samples.items():
            result[side] = {"p50_ms": percentile(values, 50), "p95_ms": percentile(values, 95),
                            "max_ms": max(values), "min_ms": min(values)}
            log(f"overhead {side}: p50 {result[side]['p50_ms']:.2f} ms, "
                f"p95 {result[side]['p95_ms']:.2f} ms")
        for key in ("p50_ms", "p95_ms"):
            ratio = result["service"][key] / result["raw"][key]
            result[f"ratio_{key[:3]}"] = {"ratio": ratio, "target": OVERHEAD_TARGET,
                                          "pass": ratio <= OVERHEAD_TARGET}
        return result

    async def wait_service_ready(self, session: ClientSession, agent_log: AgentLog) -> None:
        """Connect answers 503 until the service's events websocket is up: retry a warm-up
        call until one is placed, then wait for it to end."""
        deadline = time.monotonic() + 30
        contact = contact_number(5, 0, 0)
        while True:
            status, body = await self.connect(session, contact)
            if status == 202:
                break
            if status != 503 or time.monotonic() > deadline:
                raise BenchError(f"warm-up connect answered {status}: {body}")
            await asyncio.sleep(0.2)
        await asyncio.wait_for(agent_log.wait("end", contact), 15)

    async def raw_sample(self, ari: RawAri, agent_log: AgentLog, n: int) -> float:
        contact = contact_number(1, 0, n)
        channel_id = f"{RAW_PREFIX}overhead-{n}"
        queue = ari.route(channel_id)
        try:
            started = time.time()
            status = await ari.originate(f"PJSIP/{EXTENSION}", channel_id,
                                         f'"Bench" <{contact}>')
            if status != 200:
                raise BenchError(f"raw originate answered {status}")
            invite = await asyncio.wait_for(agent_log.wait("invite", contact), 10)
            while (await _next(queue))["type"] != "StasisStart":
                pass
            await ari.hangup(channel_id)
            while (await _next(queue))["type"] != "ChannelDestroyed":
                pass
        finally:
            ari.unroute(channel_id)
        await asyncio.wait_for(agent_log.wait("end", contact), 10)
        return invite - started

    async def service_sample(
        self, session: ClientSession, agent_log: AgentLog, n: int
    ) -> float:
        contact = contact_number(2, 0, n)
        started = time.time()
        status, body = await self.connect(session, contact)
        if status != 202:
            raise BenchError(f"connect answered {status}: {body}")
        try:
            invite = await asyncio.wait_for(agent_log.wait("invite", contact), 10)
            await asyncio.wait_for(agent_log.wait("end", contact), 15)
        except TimeoutError:
            raise BenchError(f"overhead sample {n}: the service's call to {contact} did not "
                             "reach the extension's phone or did not end") from None
        return invite - started

    # ---------------------------------------------------------------- load

    def read_cpu(self, *pids: int) -> list[float]:
        return [cpu_seconds(pid) for pid in pids]

    async def load_service(self, round_no: int) -> LoadRun:
        assert self.service is not None
        args = self.args
        agent, _trunk = self.start_peers(f"service-{round_no}", HOLD_MS)
        agent_log = AgentLog(agent.message_log)
        log(f"load round {round_no + 1}: service, {args.calls} calls, "
            f"{args.concurrency} at a time")
        connector = TCPConnector(limit=args.concurrency)
        async with ClientSession(connector=connector, timeout=ClientTimeout(total=60),
                                 trust_env=False) as session:

            async def one(index: int) -> dict[str, Any]:
                contact = contact_number(4, round_no, index)
                end = agent_log.wait("end", contact)
                started = time.time()
                status, body = await self.connect(session, contact)
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
                service_before, asterisk_before = self.read_cpu(self.service.pid,
                                                                self.asterisk_pid)
                results, elapsed = await closed_loop(args.calls, args.concurrency, one)
                await asyncio.sleep(1.0)  # the last calls' clean-up and history writes
                service_after, asterisk_after = self.read_cpu(self.service.pid,
                                                              self.asterisk_pid)
                own_after = os.times()
        agent_log.poll(final=True)
        agent_log.close()
        run = LoadRun(
            side="service", round_no=round_no, calls=args.calls,
            ended=sum(1 for r in results if "t_end" in r), ok=0, elapsed=elapsed,
            client_cpu_s=service_after - service_before,
            asterisk_cpu_s=asterisk_after - asterisk_before,
        )
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
            if "t_end" in r and r["t_end"] - r["t_post"] > HOLD_MS / 1000 + DNS_PITFALL_S:
                run.slow_calls += 1
        run.left = self.leftovers((SERVICE_PREFIX,))
        for peer in self.peers:
            peer.stop()
        log(f"  {run.ended}/{run.calls} ended, {run.cps:.1f} calls/s, "
            f"service CPU {run.client_cpu_s:.2f} s, Asterisk CPU {run.asterisk_cpu_s:.2f} s")
        return run

    def driver_line(self, timeout: float, round_no: int) -> bytes:
        """The next line the raw ARI script prints, or a BenchError after `timeout`."""
        driver = self.driver
        assert driver is not None and driver.stdout is not None
        ready, _, _ = select.select([driver.stdout], [], [], timeout)
        line = driver.stdout.readline() if ready else b""
        if not line:
            err = (self.tmp / f"raw-driver-{round_no}.log").read_text(errors="replace")
            raise BenchError(f"the raw ARI script gave no answer in {timeout:.0f} s "
                             f"(exit status {driver.poll()}):\n{err[-2000:]}")
        return line

    def load_raw(self, round_no: int) -> LoadRun:
        assert self.info is not None
        args = self.args
        agent, _trunk = self.start_peers(f"raw-{round_no}", HOLD_MS)
        config = self.tmp / f"raw-driver-{round_no}.json"
        config.touch(mode=0o600)
        config.write_text(json.dumps({
            "url": self.info.url, "user": self.info.user, "password": self.info.password,
            "calls": args.calls, "concurrency": args.concurrency, "kind": 3, "round": round_no,
        }))
        log(f"load round {round_no + 1}: raw ARI script, {args.calls} calls, "
            f"{args.concurrency} at a time")
        with open(self.tmp / f"raw-driver-{round_no}.log", "wb") as err:
            self.driver = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "--raw-driver", str(config)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                start_new_session=True, preexec_fn=_die_with_parent,
            )
        driver = self.driver
        assert driver.stdin is not None
        ready = self.driver_line(30, round_no)
        if ready.strip() != b"READY":
            raise BenchError(f"the raw ARI script did not start: {ready[:300]!r}")
        (asterisk_before,) = self.read_cpu(self.asterisk_pid)
        driver.stdin.write(b"go\n")
        driver.stdin.flush()
        budget = END_TIMEOUT + 60 + args.calls / args.concurrency * 10
        line = self.driver_line(budget, round_no)
        time.sleep(1.0)  # as for the service: equal windows
        (asterisk_after,) = self.read_cpu(self.asterisk_pid)
        stop_pid(driver)
        self.driver = None
        if not line.startswith(b"RESULT "):
            raise BenchError(f"the raw ARI script failed: {line[:300]!r}")
        result = json.loads(line[len(b"RESULT "):])
        agent_log = AgentLog(agent.message_log)
        agent_log.poll(final=True)
        agent_log.close()
        results = result["results"]
        run = LoadRun(
            side="raw", round_no=round_no, calls=args.calls,
            ended=sum(1 for r in results if r.get("cause") != "STUCK"),
            ok=sum(1 for r in results if r["ok"]), elapsed=result["elapsed"],
            client_cpu_s=result["cpu_s"], asterisk_cpu_s=asterisk_after - asterisk_before,
        )
        for r in results:
            run.causes["success" if r["ok"] else r.get("cause", "?")] += 1
            invite = agent_log.invites.get(r["contact"])
            if invite is not None:
                run.invite_ms.append((invite - r["t_post"]) * 1000)
            if r["t_end"] - r["t_post"] > HOLD_MS / 1000 + DNS_PITFALL_S:
                run.slow_calls += 1
        run.left = self.leftovers((RAW_PREFIX,))
        for peer in self.peers:
            peer.stop()
        log(f"  {run.ok}/{run.calls} bridged, {run.cps:.1f} calls/s, "
            f"script CPU {run.client_cpu_s:.2f} s, Asterisk CPU {run.asterisk_cpu_s:.2f} s")
        return run

    # ---------------------------------------------------------------- history

    def check_history(self, runs: list[LoadRun]) -> dict[str, Any]:
        """Every connect answered 202 must have exactly one history row once calls are over;
        the load runs' success counts come from there."""
        assert self.service is not None
        url = f"{self.service.c2c_url}/history?paginate=false"
        expected = len(self.attempts)
        deadline = time.monotonic() + 30
        while True:
            rows = json.loads(http("GET", url, token=self.service.token))["data"]
            if len(rows) >= expected or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        by_id: dict[str, dict[str, Any]] = {}
        duplicates = 0
        for row in rows:
            if row.get("call_id") in by_id:
                duplicates += 1
            by_id[row.get("call_id", "")] = row
        missing = [call_id for call_id in self.attempts if call_id not in by_id]
        unknown = [call_id for call_id in by_id if call_id not in set(self.attempts)]
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

    # ---------------------------------------------------------------- report

    def service_log_problems(self) -> list[str]:
        assert self.service is not None
        return [line for line in self.service.log_lines()
                if re.search(r"\b(WARNING|ERROR|CRITICAL)\b|Traceback", line)]

    def asterisk_log_problems(self) -> list[str]:
        try:
            with open(localasterisk.asterisk_log_file(), errors="replace") as fh:
                fh.seek(self.asterisk_log_start)
                text = fh.read()
        except OSError:
            return []
        return [line for line in text.splitlines() if re.search(r"WARNING|ERROR", line)]

    def summary(
        self,
        overhead: dict[str, Any],
        runs: list[LoadRun],
        history: dict[str, Any],
        memory: dict[str, float],
        before: dict[str, list[str]],
        end_state: dict[str, list[str]],
        version: str,
    ) -> dict[str, Any]:
        args = self.args
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
        best = {side: max((r for r in runs if r.side == side), key=lambda r: r.cps)
                for side in ("raw", "service")}
        cps_ratio = best["service"].cps / best["raw"].cps if best["raw"].cps else 0.0
        service_runs = [r for r in runs if r.side == "service"]
        service_cpu = sum(r.client_cpu_s for r in service_runs)
        asterisk_cpu = sum(r.asterisk_cpu_s for r in service_runs)
        cpu_ratio = service_cpu / asterisk_cpu if asterisk_cpu else math.inf
        slowest = max([overhead["raw"]["max_ms"], overhead["service"]["max_ms"],
                       *(max(r.invite_ms, default=0.0) for r in runs)])
        dns = slowest >= DNS_PITFALL_S * 1000 or any(r.slow_calls for r in runs)
        calls_failed = any(r.ok != r.calls or r.refused for r in runs)
        left = {k: v for k, v in end_state.items() if v}
        return {
            "asterisk": version, "asterisk_pid": self.asterisk_pid,
            "asterisk_started_by_bench": bool(self.info and self.info.started),
            "calls": args.calls, "concurrency": args.concurrency, "rounds": args.rounds,
            "hold_ms": HOLD_MS,
            "overhead": overhead,
            "load": load,
            "calls_per_s": {"service": best["service"].cps, "raw": best["raw"].cps,
                            "ratio": cps_ratio, "target": CPS_TARGET,
                            "pass": cps_ratio >= CPS_TARGET},
            "cpu_per_call": {
                "service_ms": service_cpu / (args.calls * len(service_runs)) * 1000,
                "asterisk_ms": asterisk_cpu / (args.calls * len(service_runs)) * 1000,
                "ratio": cpu_ratio, "target": CPU_TARGET, "pass": cpu_ratio <= CPU_TARGET,
            },
            "service_memory_mb": memory,
            "history": history,
            "asterisk_before": before,
            "asterisk_at_end": end_state,
            "asterisk_clean": not left,
            "dns_pitfall_suspected": dns,
            "slowest_invite_ms": slowest,
            "service_log_problems": self.service_log_problems()[:30],
            "asterisk_log_problems": self.asterisk_log_problems()[:30],
            "ok": not calls_failed and history["pass"] and not left
            and not any(any(r.left.values()) for r in runs),
        }


def _rounded(value: Any) -> Any:
    """Floats to 3 decimals, all the way down (for the JSON summary)."""
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def _verdict(passed: bool) -> str:
    return "PASS" if passed else "MISS"


def print_table(s: dict[str, Any], out: TextIO = sys.stdout) -> None:
    def p(text: str = "") -> None:
        print(text, file=out)

    p(f"{s['asterisk']} (pid {s['asterisk_pid']}, "
      f"{'started by this run' if s['asterisk_started_by_bench'] else 'already running'});"
      f" SIPp: extension {EXTENSION} on :{AGENT_PORT}, trunk on :{TRUNK_PORT}")
    o = s["overhead"]
    p()
    p(f"Overhead: request sent -> extension's INVITE at SIPp, {o['samples']} interleaved "
      "samples per side, one call at a time")
    p(f"  {'side':<28}{'p50 ms':>9}{'p95 ms':>9}{'min ms':>9}{'max ms':>9}")
    for side, label in (("raw", "raw ARI originate"), ("service", "service connect (202)")):
        row = o[side]
        p(f"  {label:<28}{row['p50_ms']:>9.2f}{row['p95_ms']:>9.2f}{row['min_ms']:>9.2f}"
          f"{row['max_ms']:>9.2f}")
    for key, label in (("ratio_p50", "p50"), ("ratio_p95", "p95")):
        r = o[key]
        p(f"  service/raw {label}: {r['ratio']:.2f}  (target <= {r['target']:.2f})  "
          f"{_verdict(r['pass'])}")
    p()
    p(f"Load: {s['calls']:,} calls, {s['concurrency']} at a time, contact hangs up after "
      f"{s['hold_ms'] / 1000:g} s; {s['rounds']} round(s), sides interleaved")
    p(f"  {'side':<9}{'rnd':>4}{'ok':>7}{'ended':>7}{'success':>9}{'calls/s':>9}"
      f"{'elapsed':>9}{'INVITE p50/p95 ms':>19}{'CPU ms/call':>13}{'Asterisk':>10}")
    for row in s["load"]:
        label = "raw ARI" if row["side"] == "raw" else "service"
        invite = f"{row['invite_p50_ms']:.1f}/{row['invite_p95_ms']:.1f}"
        p(f"  {label:<9}{row['round']:>4}{row['ok']:>7,}{row['ended']:>7,}"
          f"{row['success_rate']:>9.1%}{row['calls_per_s']:>9.1f}{row['elapsed_s']:>8.1f}s"
          f"{invite:>19}{row['client_cpu_ms_per_call']:>13.2f}"
          f"{row['asterisk_cpu_ms_per_call']:>10.2f}")
    p("  (CPU ms/call: the service process, or the raw script's; Asterisk: its process in "
      "the same window)")
    for row in s["load"]:
        causes = ", ".join(f"{k}: {v}" for k, v in row["causes"].items())
        label = "raw ARI" if row["side"] == "raw" else "service"
        p(f"  {label} round {row['round']} outcomes: {causes}")
        if row["refused"]:
            p(f"    refused connects, first: {row['refused'][0]}")
        if any(row["left_in_asterisk"].values()):
            p(f"    LEFT in Asterisk after the run: {row['left_in_asterisk']}")
    c = s["calls_per_s"]
    p(f"  service/raw calls per second (best runs): {c['service']:.1f}/{c['raw']:.1f} = "
      f"{c['ratio']:.2f}  (target >= {c['target']:.2f})  {_verdict(c['pass'])}")
    u = s["cpu_per_call"]
    p(f"  CPU per call, service/Asterisk: {u['service_ms']:.2f}/{u['asterisk_ms']:.2f} ms = "
      f"{u['ratio']:.2f}  (target <= {u['target']:.2f})  {_verdict(u['pass'])}")
    m = s["service_memory_mb"]
    p(f"  service memory at the end: RSS {m.get('VmRSS', 0):.1f} MB "
      f"(peak {m.get('VmHWM', 0):.1f} MB)")
    h = s["history"]
    p(f"  history: {h['rows']:,} rows for {h['attempts']:,} connects answered 202"
      f"  {'PASS' if h['pass'] else 'FAIL'}")
    p("    results: " + ", ".join(f"{k}: {v:,}" for k, v in h["results"].items()))
    if h["missing_count"] or h["unknown_count"] or h["duplicates"]:
        p(f"    missing {h['missing_count']} (first {h['missing'][:3]}), unknown "
          f"{h['unknown_count']}, duplicates {h['duplicates']}")
    p()
    end = s["asterisk_at_end"]
    p(f"Asterisk at the end: {len(end['channels'])} channels, {len(end['bridges'])} bridges"
      f"  {'PASS' if s['asterisk_clean'] else 'FAIL'}")
    if not s["asterisk_clean"]:
        p(f"  left: {end}  (before the run: {s['asterisk_before']})")
    if s["dns_pitfall_suspected"]:
        p(f"WARNING: a leg took {s['slowest_invite_ms'] / 1000:.1f} s to reach SIPp or a call "
          "ran 4 s over its length: the DNS pitfall (5 s per RTP stream) of FACTS?")
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


# --- entry point ---------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, help="calls per load run (default 1000)")
    parser.add_argument("--concurrency", type=int, help="calls at a time (default 100)")
    parser.add_argument("--samples", type=int, help="overhead samples per side (default 50)")
    parser.add_argument("--rounds", type=int,
                        help="load runs per side, interleaved (default 2)")
    parser.add_argument("--quick", action="store_true",
                        help="100 calls, 20 at a time, 10 samples, 1 round")
    parser.add_argument("--json", action="store_true", help="also print a machine-readable summary")
    parser.add_argument("--keep-logs", type=Path, metavar="DIR",
                        help="copy the service's, the raw script's and SIPp's logs there")
    parser.add_argument("--raw-driver", type=Path, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.raw_driver:
        return run_raw_driver(args.raw_driver)
    defaults = (100, 20, 10, 1) if args.quick else (1000, 100, 50, 2)
    for name, default in zip(("calls", "concurrency", "samples", "rounds"), defaults,
                             strict=True):
        if getattr(args, name) is None:
            setattr(args, name, default)
    if min(args.calls, args.concurrency, args.samples, args.rounds) < 1:
        print("calls.py: --calls, --concurrency, --samples and --rounds must be positive",
              file=sys.stderr)
        return 2
    if shutil.which("sipp") is None:
        print("calls.py: sipp is not installed. On Debian or Ubuntu:\n"
              "    sudo apt-get install sip-tester\nthen run this again.", file=sys.stderr)
        return 2
    supported, why = localasterisk.host_supported()
    if not supported:
        print(f"calls.py: no local Asterisk: {why}", file=sys.stderr)
        return 2

    def interrupted(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, interrupted)
    with localasterisk.exclusive_use(log):
        bench = Bench(args)
        try:
            summary = bench.run()
        except (BenchError, localasterisk.LocalAsteriskError) as exc:
            print(f"calls.py: FAILED: {exc}", file=sys.stderr)
            if bench.service is not None:
                problems = bench.service_log_problems()
                for line in problems[:20]:
                    print(f"  service: {line[:300]}", file=sys.stderr)
            return 1
        finally:
            bench.cleanup()
    print_table(summary)
    if args.json:
        print(json.dumps(_rounded(summary), indent=2, default=str))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
