"""Run SIPp (Debian's `sip-tester`) as a SIP peer in tests, and read what it received.

    with Sipp("uas_answer.xml", port=5071) as peer:        # agent 1001's contact
        ... make a call to PJSIP/1001 ...
        invite = peer.wait_for_invite()
        assert invite.header("X-C2C") == "hello"
    # leaving the block stops that sipp by its pid

The scenarios live in tests/sipp/. Every message sipp sends or receives is logged with
`-trace_msg` into the instance's work dir and parsed from there; `<log>` actions of a scenario
go to `actions.log` there (`-trace_logs`).

Ports, as in asterisk/pjsip.conf: agents 1001..1004 are 127.0.0.1:5071..5074, the trunk (the
contacts) is 127.0.0.1:5080, phones calling in use 5090 and up. Each instance's media port
defaults to 20000 + (port - 5000) * 10, outside Asterisk's RTP range (10000-11999).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from c2c_ari.localasterisk.demo import terminate
from c2c_ari.localasterisk.demo import udp_bound as _udp_bound

SCENARIO_DIR = Path(__file__).resolve().parent.parent / "sipp"

_BLOCK_HEAD = re.compile(r"^-{20,} (?P<ts>\S+ \S+)$", re.M)
_DIRECTION = re.compile(r"^(?P<transport>\w+) message (?P<dir>received|sent)\b")


@dataclass
class SipMessage:
    """One SIP message from the log: `direction` is "received" or "sent" (by sipp)."""

    direction: str
    timestamp: str
    start_line: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: str = ""
    raw: str = ""

    @property
    def is_request(self) -> bool:
        return not self.start_line.startswith("SIP/2.0")

    @property
    def method(self) -> str | None:
        """INVITE, ACK, BYE...; for a response, the method of its CSeq."""
        if self.is_request:
            return self.start_line.split(" ", 1)[0]
        cseq = self.header("CSeq")
        return cseq.split()[-1] if cseq else None

    @property
    def status(self) -> int | None:
        if self.is_request:
            return None
        return int(self.start_line.split()[1])

    @property
    def request_uri(self) -> str | None:
        return self.start_line.split()[1] if self.is_request else None

    @property
    def request_user(self) -> str | None:
        """User part of the request URI: the dialled number (`+15551234567` of sip:+1...@)."""
        uri = self.request_uri
        if not uri:
            return None
        m = re.match(r"sips?:([^@;>]+)@", uri)
        return m.group(1) if m else None

    def header(self, name: str) -> str | None:
        """The first value of a header (case-insensitive), or None."""
        values = self.header_all(name)
        return values[0] if values else None

    def header_all(self, name: str) -> list[str]:
        names = {name.lower(), _COMPACT.get(name.lower(), "")} - {""}
        return [v for k, v in self.headers if k.lower() in names]

    @property
    def call_id(self) -> str | None:
        return self.header("Call-ID")

    @property
    def from_display(self) -> str | None:
        return _name_addr(self.header("From"))[0]

    @property
    def from_user(self) -> str | None:
        return _name_addr(self.header("From"))[1]

    @property
    def to_user(self) -> str | None:
        return _name_addr(self.header("To"))[1]


# Compact header forms (RFC 3261 section 7.3.3), both ways.
_COMPACT = {"i": "call-id", "f": "from", "t": "to", "m": "contact", "v": "via", "l":
            "content-length", "c": "content-type", "k": "supported", "s": "subject"}
_COMPACT.update({v: k for k, v in list(_COMPACT.items())})


def _name_addr(value: str | None) -> tuple[str | None, str | None]:
    """('Alice', '5551234') from '"Alice" <sip:5551234@host>;tag=x'."""
    if not value:
        return None, None
    display = None
    m = re.match(r'\s*"((?:[^"\\]|\\.)*)"\s*<', value)
    if m:
        display = re.sub(r"\\(.)", r"\1", m.group(1))
    else:
        m = re.match(r"\s*([^<\"]+?)\s*<", value)
        if m:
            display = m.group(1)
    m = re.search(r"sips?:([^@;>]+)@", value)
    return display, (m.group(1) if m else None)


def parse_message_log(text: str) -> list[SipMessage]:
    """Parse sipp's `-trace_msg` log into messages, in order."""
    messages = []
    heads = list(_BLOCK_HEAD.finditer(text))
    for i, head in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        block = text[head.end():end].lstrip("\n")
        first, _, rest = block.partition("\n")
        m = _DIRECTION.match(first)
        if not m:
            continue
        rest = rest.lstrip("\r\n")
        head_part, _, body = rest.replace("\r\n", "\n").partition("\n\n")
        lines = head_part.split("\n")
        if not lines or not lines[0].strip():
            continue
        headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            if line[:1] in (" ", "\t") and headers:  # folded header line
                name, value = headers[-1]
                headers[-1] = (name, value + " " + line.strip())
            elif ":" in line:
                name, _, value = line.partition(":")
                headers.append((name.strip(), value.strip()))
        messages.append(SipMessage(direction=m.group("dir"), timestamp=head.group("ts"),
                                   start_line=lines[0].strip(), headers=headers,
                                   body=body.strip("\n"), raw=rest))
    return messages


class SippError(RuntimeError):
    pass


class Sipp:
    """One sipp process. Start it with start() or `with`; stop() kills it by its pid."""

    def __init__(
        self,
        scenario: str | os.PathLike[str],
        port: int,
        *,
        remote: str | None = None,
        host: str = "127.0.0.1",
        media_port: int | None = None,
        service: str | None = None,
        duration_ms: int | None = None,
        max_calls: int | None = None,
        keys: dict[str, str] | None = None,
        replace: dict[str, str] | None = None,
        extra_args: Sequence[str] = (),
        workdir: str | os.PathLike[str] | None = None,
    ) -> None:
        """`scenario`: a file name in tests/sipp/ or a path. `port`: the local SIP port.

        `remote` ("127.0.0.1:5060") makes it a UAC calling there; `service` is then the
        dialled user (-s), `max_calls` (-m) how many calls it makes. `duration_ms` is sipp's
        -d (the length of <pause/>: ring time or talk time). `keys` become `-key k v`.
        `replace` rewrites text of the scenario (e.g. a response's status line) into a copy in
        the work dir before sipp loads it.
        """
        path = Path(scenario)
        if not path.is_absolute() and not path.exists():
            path = SCENARIO_DIR / path
        if not path.is_file():
            raise SippError(f"no SIPp scenario {scenario}")
        self.scenario = path
        self.port = port
        self.host = host
        self.remote = remote
        self.media_port = media_port or 20000 + (port - 5000) * 10
        self.service = service
        self.duration_ms = duration_ms
        self.max_calls = max_calls
        self.keys = dict(keys or {})
        self.extra_args = list(extra_args)
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix=f"sipp-{port}-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        if replace:
            text = path.read_text()
            for old, new in replace.items():
                if old not in text:
                    raise SippError(f"{path.name} has no {old!r} to replace")
                text = text.replace(old, new)
            self.scenario = self.workdir / path.name
            self.scenario.write_text(text)
        self.message_log = self.workdir / "messages.log"
        self.actions_log = self.workdir / "actions.log"
        self.error_log = self.workdir / "errors.log"
        self.stderr_log = self.workdir / "stderr.log"
        self.proc: subprocess.Popen | None = None

    # ---------------------------------------------------------------- process

    def command(self) -> list[str]:
        exe = shutil.which("sipp")
        if not exe:
            raise SippError("sipp not found: install Debian's sip-tester package")
        cmd = [exe]
        if self.remote:
            cmd.append(self.remote)
        cmd += ["-sf", str(self.scenario), "-i", self.host, "-p", str(self.port),
                "-mp", str(self.media_port), "-nostdin",
                "-trace_msg", "-message_file", str(self.message_log),
                "-trace_logs", "-log_file", str(self.actions_log),
                "-trace_err", "-error_file", str(self.error_log)]
        if self.service is not None:
            cmd += ["-s", self.service]
        if self.duration_ms is not None:
            cmd += ["-d", str(self.duration_ms)]
        if self.max_calls is not None:
            cmd += ["-m", str(self.max_calls)]
        for key, value in self.keys.items():
            cmd += ["-key", key, str(value)]
        return cmd + self.extra_args

    def start(self, timeout: float = 5.0) -> Sipp:
        if self.proc is not None:
            raise SippError("already started")
        if _udp_bound(self.host, self.port):
            raise SippError(f"UDP {self.host}:{self.port} is already in use (a leftover sipp?)")
        with open(self.stderr_log, "wb") as err:
            self.proc = subprocess.Popen(
                self.command(), cwd=self.workdir, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not _udp_bound(self.host, self.port):
            if self.proc.poll() is not None:
                raise SippError(f"sipp exited at start ({self.proc.returncode}): "
                                f"{self._stderr_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise SippError(f"sipp did not bind UDP {self.host}:{self.port} in {timeout} s")
            time.sleep(0.02)
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait(self, timeout: float = 10.0) -> int:
        """Wait for a sipp that ends by itself (a UAC with -m); its exit code (0: all passed)."""
        if self.proc is None:
            raise SippError("not started")
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise SippError(f"sipp still running after {timeout} s") from None

    def stop(self) -> int | None:
        """Stop this sipp by its pid: SIGTERM, then SIGKILL. Returns its exit code."""
        proc = self.proc
        if proc is None:
            return None
        terminate(proc)
        return proc.returncode

    def cleanup(self) -> None:
        """stop() and remove the work dir if this object made it."""
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Sipp:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- what it saw

    def messages(self) -> list[SipMessage]:
        try:
            return parse_message_log(self.message_log.read_text(errors="replace"))
        except FileNotFoundError:
            return []

    def received(self, method: str | None = None) -> list[SipMessage]:
        """Requests and responses sipp received; with `method`, only requests of it."""
        got = [m for m in self.messages() if m.direction == "received"]
        if method is not None:
            got = [m for m in got if m.is_request and m.method == method.upper()]
        return got

    def sent(self) -> list[SipMessage]:
        return [m for m in self.messages() if m.direction == "sent"]

    def invites(self) -> list[SipMessage]:
        """The INVITEs received, retransmissions (same Call-ID and CSeq) left out."""
        seen, out = set(), []
        for msg in self.received("INVITE"):
            key = (msg.call_id, msg.header("CSeq"))
            if key not in seen:
                seen.add(key)
                out.append(msg)
        return out

    def wait_for(self, predicate, timeout: float = 5.0, what: str = "a message") -> SipMessage:
        deadline = time.monotonic() + timeout
        while True:
            for msg in self.messages():
                if predicate(msg):
                    return msg
            if time.monotonic() > deadline:
                seen = ", ".join(f"{m.direction} {m.start_line}" for m in self.messages())
                raise SippError(f"sipp on port {self.port}: no {what} within {timeout} s "
                                f"(log: {seen or 'empty'}; {self._stderr_tail()})")
            time.sleep(0.02)

    def wait_for_invite(self, timeout: float = 5.0, index: int = 0) -> SipMessage:
        """The index-th INVITE received (0: the first)."""
        self.wait_for(lambda m: len(self.invites()) > index, timeout, f"INVITE #{index + 1}")
        return self.invites()[index]

    def wait_for_request(self, method: str, timeout: float = 5.0) -> SipMessage:
        method = method.upper()
        return self.wait_for(
            lambda m: m.direction == "received" and m.is_request and m.method == method,
            timeout, method)

    def wait_for_response(self, status: int, timeout: float = 5.0) -> SipMessage:
        return self.wait_for(lambda m: m.direction == "received" and m.status == status,
                             timeout, f"{status} response")

    def actions(self) -> list[str]:
        """Lines written by the scenario's <log> actions."""
        try:
            return self.actions_log.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []

    def errors(self) -> str:
        try:
            return self.error_log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _stderr_tail(self) -> str:
        try:
            tail = self.stderr_log.read_text(errors="replace").strip().splitlines()[-3:]
        except FileNotFoundError:
            tail = []
        return " | ".join(tail) or "no stderr"
