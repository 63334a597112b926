"""The baseline of bench/calls.py: the click-to-call flow (two legs and a bridge) done with
just enough ARI on aiohttp, no service in between.

As a program, started by calls.py in its own process (so its CPU time is its own):

    python bench/raw_driver.py CONFIG

it drives one load run. CONFIG is a JSON file (it holds the ARI passwords, so calls.py writes
it mode 0600) with `nodes` (each with `name`, `url`, `user`, `password`; or, for one Asterisk,
`url`, `user` and `password` at the top), `calls`, `concurrency`, `kind` and `round` (the
contact numbers) and `label` (in channel and bridge ids, unique per run). With several nodes
it places the calls on them in turn (call i on node i mod N), the simplest fair spread, as a
service with several nodes would. It prints READY once its events websocket is up on every
node, starts on a line on stdin (so the CPU readings of calls.py frame the run itself), and
prints RESULT {json} with every call's outcome (and node), the wall time and its own CPU
seconds.

calls.py also uses RawAri in its own process, for the one-at-a-time overhead samples.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, ClientTimeout, TCPConnector, WSMsgType, encode_basic_auth
from calls_sipp import EXTENSION, contact_number
from common import BenchError

RAW_APP = "c2c-bench-raw"  # a Stasis app of its own: the service's calls never reach it
RAW_PREFIX = "c2c-bench-raw-"  # ids of the raw script's channels and bridges
RING_TIMEOUT = 30  # seconds Asterisk lets a leg ring (the click-to-call's default timeout)


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
        """One queue for the events of these channels (one call's legs)."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        for channel_id in channel_ids:
            self.routes[channel_id] = queue
        return queue

    def unroute(self, *channel_ids: str) -> None:
        for channel_id in channel_ids:
            self.routes.pop(channel_id, None)

    async def request(self, method: str, path: str, **params: str) -> int:
        """One REST call; its HTTP status."""
        async with self.session.request(method, self.base + path, params=params) as resp:
            await resp.read()
            return resp.status

    async def originate(self, endpoint: str, channel_id: str, caller_id: str) -> int:
        return await self.request("POST", "/channels", endpoint=endpoint, app=self.app,
                                  channelId=channel_id, callerId=caller_id,
                                  timeout=str(RING_TIMEOUT))

    async def hangup(self, channel_id: str) -> None:
        status = await self.request("DELETE", f"/channels/{channel_id}")
        if status not in (200, 204, 404):  # 404: it is gone already, which is what we want
            raise BenchError(f"raw ARI: hangup {channel_id} answered {status}")

    async def list(self, what: str) -> list[dict[str, Any]]:
        async with self.session.get(f"{self.base}/{what}") as resp:
            return list(await resp.json())


async def next_event(queue: asyncio.Queue[dict[str, Any]]) -> dict[str, Any]:
    """The next event of a call; TimeoutError once a leg has rung out and then some."""
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
                event = await next_event(queue)
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
            event = await next_event(queue)
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
    one is over); the results in call order and the wall time. The service's load runs use
    it too, so both sides are driven the same way."""
    results: list[dict[str, Any]] = [{} for _ in range(count)]
    remaining = iter(range(count))

    async def worker() -> None:
        for index in remaining:
            results[index] = await one(index)

    started = time.time()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, count))))
    return results, time.time() - started


def drive(config_file: Path) -> int:
    """One load run as described at the top; prints READY, then RESULT {json}."""
    config = json.loads(config_file.read_text())
    nodes = config.get("nodes") or [{"name": "node1", "url": config["url"],
                                     "user": config["user"], "password": config["password"]}]

    async def run() -> dict[str, Any]:
        async with contextlib.AsyncExitStack() as stack:
            aris = [await stack.enter_async_context(
                RawAri(node["url"], node["user"], node["password"])) for node in nodes]
            print("READY", flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
            before = os.times()

            async def one(index: int) -> dict[str, Any]:
                number = contact_number(config["kind"], config["round"], index)
                label = config.get("label", config["round"])
                result = await raw_call(aris[index % len(aris)], f"{label}-{index}", number)
                result["node"] = nodes[index % len(nodes)]["name"]
                return result

            results, elapsed = await closed_loop(config["calls"], config["concurrency"], one)
            after = os.times()
            if any(ari.closed.is_set() for ari in aris):
                raise BenchError("raw ARI: an events websocket closed during the run")
        cpu = (after.user + after.system) - (before.user + before.system)
        return {"results": results, "elapsed": elapsed, "cpu_s": cpu}

    print("RESULT " + json.dumps(asyncio.run(run())), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="One load run of the raw-ARI baseline; bench/calls.py starts it.")
    parser.add_argument("config", type=Path, help="the run's JSON file, written by calls.py")
    return drive(parser.parse_args(argv).config)


if __name__ == "__main__":
    sys.exit(main())
