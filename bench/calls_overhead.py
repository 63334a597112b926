"""The overhead phase of bench/calls.py: one call at a time, the time from sending a request
to the extension's INVITE arriving at SIPp, for a connect of the service and for a raw ARI
originate sent from this process. SIPp logs wall-clock times and the requests are timed with
time.time(), so both ends read the same clock. With several service instances the connects
go to them in turn; with several nodes the raw originates go to the nodes in turn."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from aiohttp import ClientSession, ClientTimeout, TCPConnector
from calls_service import CallService
from calls_sipp import EXTENSION, AgentLog, Peers, contact_number, following
from common import BenchError, log
from raw_driver import RAW_PREFIX, RawAri, next_event
from report import percentile

from c2c_ari import localasterisk

SAMPLE_HOLD_MS = 100  # the contact hangs up this long after answering
WARMUP_SAMPLES = 3  # per side, not counted


async def measure_overhead(
    service: CallService, infos: list[localasterisk.AriInfo], peers: Peers, samples: int
) -> dict[str, Any]:
    """`samples` per side after the warm-up, interleaved (raw, service, then service, raw,
    ...) so that drifts of a shared machine hit both sides alike. Latencies in ms per side."""
    agent = peers.start("overhead", SAMPLE_HOLD_MS)
    agent_log = AgentLog(agent.message_log)
    latencies: dict[str, list[float]] = {"raw": [], "service": []}
    connector = TCPConnector(limit=10)
    async with (
        ClientSession(connector=connector, timeout=ClientTimeout(total=30),
                      trust_env=False) as session,
        contextlib.AsyncExitStack() as stack,
    ):
        aris = [await stack.enter_async_context(RawAri(info.url, info.user, info.password))
                for info in infos]
        with following(agent_log):
            await service.wait_ready(session, agent_log)
            log(f"overhead: {samples} samples per side "
                f"(+{WARMUP_SAMPLES} warm-up), interleaved")
            for n in range(WARMUP_SAMPLES + samples):
                order = ("raw", "service") if n % 2 == 0 else ("service", "raw")
                for side in order:
                    if side == "raw":
                        latency = await raw_sample(aris[n % len(aris)], agent_log, n)
                    else:
                        latency = await service_sample(service, session, agent_log, n)
                    if n >= WARMUP_SAMPLES:
                        latencies[side].append(latency * 1000)
                    await asyncio.sleep(0.1)  # let the last call's clean-up finish
    agent_log.close()
    result: dict[str, Any] = {"samples": samples}
    for side, values in latencies.items():
        result[side] = {"p50_ms": percentile(values, 50), "p95_ms": percentile(values, 95),
                        "max_ms": max(values), "min_ms": min(values)}
        log(f"overhead {side}: p50 {result[side]['p50_ms']:.2f} ms, "
            f"p95 {result[side]['p95_ms']:.2f} ms")
    return result


async def raw_sample(ari: RawAri, agent_log: AgentLog, n: int) -> float:
    """Originate the extension alone, hang it up once answered; seconds to its INVITE."""
    contact = contact_number(1, 0, n)
    channel_id = f"{RAW_PREFIX}overhead-{n}"
    queue = ari.route(channel_id)
    try:
        started = time.time()
        status = await ari.originate(f"PJSIP/{EXTENSION}", channel_id, f'"Bench" <{contact}>')
        if status != 200:
            raise BenchError(f"raw originate answered {status}")
        invite = await asyncio.wait_for(agent_log.wait("invite", contact), 10)
        while (await next_event(queue))["type"] != "StasisStart":
            pass
        await ari.hangup(channel_id)
        while (await next_event(queue))["type"] != "ChannelDestroyed":
            pass
    finally:
        ari.unroute(channel_id)
    await asyncio.wait_for(agent_log.wait("end", contact), 10)
    return invite - started


async def service_sample(
    service: CallService, session: ClientSession, agent_log: AgentLog, n: int
) -> float:
    """A whole click-to-call (the contact hangs up soon); seconds to the extension's INVITE."""
    contact = contact_number(2, 0, n)
    started = time.time()
    answer = await service.connect(session, contact)
    if answer.status != 202:
        raise BenchError(f"connect answered {answer.status}: {answer.body}")
    try:
        invite = await asyncio.wait_for(agent_log.wait("invite", contact), 10)
        await asyncio.wait_for(agent_log.wait("end", contact), 15)
    except TimeoutError:
        raise BenchError(f"overhead sample {n}: the service's call to {contact} did not "
                         "reach the extension's phone or did not end") from None
    return invite - started
