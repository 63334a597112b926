"""Demo phones for the quick start (`c2c-ari serve --local-asterisk --demo-phones`): SIPp
(Debian's `sip-tester`) as the agent phone of extension 1001 and as the carrier behind the
trunk, where the project's asterisk/pjsip.conf expects them, so that a first click-to-call
rings something, gets answered on both legs, is bridged, and ends on its own.

    extension 1001  127.0.0.1:5071  answers at once, stays on until the other side hangs up
    the carrier     127.0.0.1:5080  answers any number after a second's ringing, plays 7 s
                                    of G.711 audio (the recording sip-tester ships), hangs up
                                    after 5 s

Each is one sipp process, started in a session of its own (Ctrl-C in the terminal reaches
the service only, which then stops them after its own graceful stop), stopped by its pid,
and asked by the kernel to die with the process that started it (PR_SET_PDEATHSIG), so
that not even a killed service leaves one behind. Their output goes to
`<cache_dir>/demo-phones/` (kept until the next start, for a look when a call fails).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from c2c_ari.localasterisk.common import DEFAULT_HOST, LocalAsteriskError, cache_dir, say
from c2c_ari.localasterisk.image import ensure_host_packages

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
# The G.711 A-law recording Debian's sip-tester ships for play_pcap_audio.
AUDIO_PCAP = Path("/usr/share/sip-tester/g711a.pcap")
_AUDIO_MARK = "DEMO_AUDIO_PCAP"

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Phone:
    name: str
    scenario: str
    port: int
    # Where sipp sends and receives RTP: outside Asterisk's RTP range (10000-11999), as the
    # tests' peers do (tests/helpers/sipp.py: 20000 + (port - 5000) * 10).
    media_port: int
    what: str


PHONES = (
    Phone("extension", "demo_extension.xml", 5071, 20710,
          "extension 1001 on 127.0.0.1:5071 answers at once"),
    Phone("carrier", "demo_carrier.xml", 5080, 20800,
          "the carrier on 127.0.0.1:5080 answers any number, plays audio and hangs up "
          "after 5 s"),
)


def terminate(proc: subprocess.Popen[Any], grace: float = 5.0) -> bool:
    """Stop a child by its pid: SIGTERM, then SIGKILL after `grace` seconds. False when it
    had to be killed."""
    if proc.poll() is not None:
        return True
    try:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(grace)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(grace)
        return False
    return True


def udp_bound(host: str, port: int) -> bool:
    """Is anything bound to UDP host:port (or the wildcard) on this machine?"""
    want = {f"{_hex_ip(host)}:{port:04X}", f"00000000:{port:04X}"}
    try:
        with open("/proc/net/udp") as fh:
            next(fh)
            return any(line.split()[1] in want for line in fh)
    except (OSError, IndexError, StopIteration):
        return False


def _hex_ip(host: str) -> str:
    return "".join(f"{int(part):02X}" for part in reversed(host.split(".")))


def render_scenario(phone: Phone, pcap: Path) -> tuple[str, bool]:
    """The phone's scenario as sipp is to load it, and whether it plays audio: `pcap` where
    the scenario has a place for a recording, or, without that file, the line taken out
    (the call is silent, and still a call)."""
    text = (SCENARIOS / phone.scenario).read_text()
    if _AUDIO_MARK not in text:
        return text, False
    if pcap.is_file():
        return text.replace(_AUDIO_MARK, str(pcap)), True
    return "\n".join(line for line in text.splitlines() if _AUDIO_MARK not in line), False


def ensure_sipp() -> str:
    """The sipp executable, installing Debian's sip-tester first when it is missing (root
    on a Debian-like host, as for the local Asterisk)."""
    found = shutil.which("sipp")
    if found:
        return found
    ensure_host_packages({"sipp": "sip-tester"})
    found = shutil.which("sipp")
    if not found:
        raise LocalAsteriskError("sipp not found after installing sip-tester")
    return found


def _dies_with_parent() -> Callable[[], None]:
    """What the sipp child runs before exec: SIGTERM to it when the process that started it
    goes, however it goes. prctl is looked up here, in the parent, so the child makes one
    plain C call (a forked child must not take locks other threads may have held; the
    service starts its demo phones before it starts any thread)."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def in_child() -> None:  # pragma: no cover - runs in the child
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)

    return in_child


@dataclass
class DemoPhones:
    """The two sipp processes; `start()` them, `stop()` them (by pid), or use `with`."""

    workdir: Path = field(default_factory=lambda: cache_dir() / "demo-phones")
    host: str = DEFAULT_HOST
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    audio: bool = False

    @property
    def pids(self) -> list[int]:
        return [proc.pid for proc in self.processes.values()]

    def start(self, timeout: float = 5.0) -> DemoPhones:
        sipp = ensure_sipp()
        busy = [phone for phone in PHONES if udp_bound(self.host, phone.port)]
        if busy:
            ports = ", ".join(f"UDP {self.host}:{phone.port}" for phone in busy)
            raise LocalAsteriskError(
                f"demo phones: {ports} already in use (another service with demo phones, "
                "or a test session's SIPp peers?)")
        try:
            for phone in PHONES:
                self._start(sipp, phone)
            self._wait_bound(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, sipp: str, phone: Phone) -> None:
        workdir = self.workdir / phone.name
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        scenario = workdir / phone.scenario
        text, audio = render_scenario(phone, AUDIO_PCAP)
        self.audio |= audio
        scenario.write_text(text)
        command = [sipp, "-sf", str(scenario), "-i", self.host, "-p", str(phone.port),
                   "-mp", str(phone.media_port), "-nostdin",
                   # Answer INFO, NOTIFY, OPTIONS and UPDATE outside the scenario with 200.
                   "-aa",
                   "-trace_err", "-error_file", str(workdir / "errors.log")]
        with open(workdir / "output.log", "wb") as output:
            self.processes[phone.name] = subprocess.Popen(
                command, cwd=workdir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=output, start_new_session=True, preexec_fn=_dies_with_parent())

    def _wait_bound(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for phone in PHONES:
            proc = self.processes[phone.name]
            while not udp_bound(self.host, phone.port):
                if proc.poll() is not None:
                    raise LocalAsteriskError(
                        f"demo phones: sipp as the {phone.name} exited at start "
                        f"({proc.returncode}): {self._output_tail(phone)}")
                if time.monotonic() > deadline:
                    raise LocalAsteriskError(
                        f"demo phones: sipp as the {phone.name} did not bind UDP "
                        f"{self.host}:{phone.port} within {timeout} s")
                time.sleep(0.02)

    def _output_tail(self, phone: Phone) -> str:
        try:
            text = (self.workdir / phone.name / "output.log").read_text(errors="replace")
        except OSError:
            return "no output"
        return " | ".join(text.strip().splitlines()[-3:]) or "no output"

    def describe(self) -> str:
        phones = "; ".join(phone.what for phone in PHONES)
        silent = "" if self.audio else f" (silent: no {AUDIO_PCAP} to play)"
        pids = ", ".join(str(pid) for pid in self.pids)
        return f"demo phones: {phones}{silent} (sipp pids {pids})"

    def stop(self) -> None:
        """Stop each sipp by its pid: SIGTERM, then SIGKILL after 5 s."""
        for name, proc in list(self.processes.items()):
            if not terminate(proc):
                say(f"demo phones: sipp as the {name} ignored SIGTERM; it was killed")
            del self.processes[name]

    def __enter__(self) -> DemoPhones:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
