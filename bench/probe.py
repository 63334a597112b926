"""A stream of small authenticated GETs from a process of its own: the latency that other
clients see while the service does something heavy.

Open loop: one GET is due every 1/rate seconds whatever the earlier ones do, and each is
timed from when it was due, so a stall of the service counts for every request it delayed
(a closed loop would record one slow request and then simply send fewer). Running in its
own process keeps the bench's own work (reading a long answer, say) out of the figures.

As a program (`probe.py`, started by `Probe`): reads its settings as one JSON line on stdin,
prints `ready` after its first answer, stops sending when stdin closes and then prints one
JSON line with every sample.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from common import BenchError, die_with_parent, stop_process
from report import percentile

DEFAULT_RATE = 100.0  # GETs per second


def add_arguments(parser: argparse.ArgumentParser, *, baseline: float, baseline_help: str
                  ) -> None:
    """The options of a benchmark that probes a service while it works (data.py,
    hostile.py): the probe's rate and lone baseline, another checkout's service, JSON."""
    parser.add_argument("--probe-rate", type=float, default=DEFAULT_RATE,
                        help=f"GETs per second of the probe (default {DEFAULT_RATE:g})")
    parser.add_argument("--probe-baseline", type=float, default=baseline,
                        help=f"seconds of probe alone {baseline_help} (default {baseline:g})")
    parser.add_argument("--service-python", metavar="PYTHON",
                        help="run the service of another checkout: the python of its venv")
    parser.add_argument("--json", action="store_true", help="also print a JSON summary")


@dataclass
class ProbeResult:
    """Samples of one probe run: (when the GET was due, its latency), monotonic seconds."""

    samples: list[tuple[float, float]]
    errors: int
    first_error: str

    def window(self, start: float, end: float) -> ProbeResult:
        """The samples that were due between `start` and `end` (time.monotonic())."""
        return ProbeResult([s for s in self.samples if start <= s[0] <= end], self.errors,
                           self.first_error)

    @property
    def latencies_ms(self) -> list[float]:
        return [latency * 1000 for _due, latency in self.samples]

    @property
    def count(self) -> int:
        return len(self.samples)

    def pct(self, pct: float) -> float:
        return percentile(self.latencies_ms, pct)

    @property
    def max_ms(self) -> float:
        return max(self.latencies_ms, default=float("nan"))


class Probe:
    """Start with `start()`, end with `stop()`; a context manager too."""

    def __init__(self, url: str, token: str, rate: float = DEFAULT_RATE,
                 timeout: float = 900.0) -> None:
        self.settings = {"url": url, "token": token, "rate": rate, "timeout": timeout}
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> Probe:
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            preexec_fn=die_with_parent,
        )
        stdin, stdout = self._pipes()
        stdin.write(json.dumps(self.settings) + "\n")
        stdin.flush()
        line = stdout.readline()
        if line.strip() != "ready":
            self.kill()
            raise BenchError(f"the GET probe did not start: {line.strip()[:300]}")
        return self

    def _pipes(self) -> tuple[IO[str], IO[str]]:
        if self.proc is None or self.proc.stdin is None or self.proc.stdout is None:
            raise BenchError("the GET probe is not running")
        return self.proc.stdin, self.proc.stdout

    def stop(self) -> ProbeResult:
        """Stop sending, wait for the GETs in flight, and return every sample."""
        stdin, stdout = self._pipes()
        stdin.close()
        line = stdout.readline()
        assert self.proc is not None
        self.proc.wait(timeout=60)
        self.proc = None
        if not line:
            raise BenchError("the GET probe ended without a result")
        raw = json.loads(line)
        return ProbeResult([(due, latency) for due, latency in raw["samples"]],
                           raw["errors"], raw["first_error"])

    def kill(self) -> None:
        stop_process(self.proc)
        self.proc = None

    def __enter__(self) -> Probe:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.kill()


# --- the probe process -----------------------------------------------------------------------


async def _run(settings: dict[str, Any]) -> dict[str, Any]:
    from aiohttp import ClientSession, ClientTimeout, TCPConnector

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    samples: list[tuple[float, float]] = []
    errors: list[str] = []
    headers = {"X-Auth-Token": settings["token"]}

    def wait_for_eof() -> None:
        sys.stdin.read()
        loop.call_soon_threadsafe(stop.set)

    async def one(session: ClientSession, due: float) -> None:
        try:
            async with session.get(settings["url"], headers=headers) as resp:
                await resp.read()
                if resp.status != 200:
                    errors.append(f"status {resp.status}")
                    return
        except Exception as exc:  # a failed probe request is counted and reported
            errors.append(f"{type(exc).__name__}: {str(exc)[:160]} after "
                          f"{time.monotonic() - due:.1f} s")
            return
        samples.append((due, time.monotonic() - due))

    connector = TCPConnector(limit=256)
    timeout = ClientTimeout(total=settings["timeout"])
    async with ClientSession(connector=connector, timeout=timeout) as session:
        await one(session, time.monotonic())  # connect and warm up; not a sample
        if errors:
            return {"samples": [], "errors": len(errors), "first_error": errors[0]}
        samples.clear()
        print("ready", flush=True)
        threading.Thread(target=wait_for_eof, daemon=True).start()
        interval = 1.0 / settings["rate"]
        tasks: set[asyncio.Task[None]] = set()
        due = time.monotonic()
        while not stop.is_set():
            delay = due - time.monotonic()
            if delay > 0:
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                    break
                except TimeoutError:
                    pass
            task = asyncio.create_task(one(session, due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            due += interval
        await asyncio.gather(*tasks)
    return {"samples": samples, "errors": len(errors),
            "first_error": errors[0] if errors else ""}


def main() -> int:
    settings = json.loads(sys.stdin.readline())
    result = asyncio.run(_run(settings))
    if not result["samples"] and result["errors"]:
        print(f"error: {result['first_error']}", flush=True)
        return 1
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
