"""Nodes: several Asterisk processes from the one cached chroot, and how to reach each one.

Node 1 is the Asterisk everything used before there were nodes: its ports, directories and
state files are exactly those (HTTP/ARI 8088, SIP 5060, RTP 10000-11999, /etc/asterisk,
/var/lib/asterisk, ...; state/ari.json). Node k (2..MAX_NODES) gets, from node 1's ports
(settings `http_port`, `sip_port`):

  HTTP/ARI  http_port + 100 * (k - 1)         8188, 8288, ... 8888
  SIP/UDP   sip_port + 100 * (k - 1)          5160, 5260, ... 5860
  RTP/UDP   12000 + 1000 * (k - 2) .. +999    12000-12999, ... 19000-19999

so they meet neither node 1, nor the tests' SIPp peers (SIP 5071-5099, media 20000 and up),
nor each other. Inside the chroot node k has its own configuration (/etc/asterisk-nodeK, its
asterisk.conf naming its own `[directories]`) and its own lib, spool, log, run and cache
directories (/var/lib/asterisk-nodeK, ...), so that no astdb, control socket, pid file or log
is shared. Every node has its own `systemname` (`nodeK`) and `entityid`: with the same ones two
nodes would report the same entity id and could hand out the same channel unique ids.

The shipped dialplan and endpoints (asterisk/*.conf) are the same on every node; only the
ports and names above differ.
"""

from __future__ import annotations

import hashlib
import socket
from dataclasses import dataclass
from pathlib import Path

from c2c_ari.localasterisk.common import (
    APP,
    DEFAULT_HOST,
    LocalAsteriskError,
    cache_dir,
    chroot_dir,
    http_port,
    sip_port,
    state_dir,
)

MAX_NODES = 9
PORT_STEP = 100
# Node 1 keeps the RTP range of the shipped rtp.conf (10000-11999); later nodes take 1000
# ports each above it, which keeps node 9 below the SIPp media ports (20000 and up).
RTP_FIRST = 12000
RTP_PORTS = 1000
LOG_NAME = "messages.log"  # as named in asterisk/logger.conf


@dataclass(frozen=True)
class AriInfo:
    """How to reach ARI. `url` is the HTTP base without `/ari`, e.g. http://127.0.0.1:8088."""

    url: str
    user: str
    password: str
    app: str = APP
    # True when this call started Asterisk (so the caller should stop it).
    started: bool = False
    # Which local node this is (1 for an Asterisk that is not a local node), and its
    # Asterisk `systemname` ("" when unknown).
    node: int = 1
    name: str = ""

    @property
    def ari_url(self) -> str:
        return self.url.rstrip("/") + "/ari"

    @property
    def events_url(self) -> str:
        ws = "ws" + self.url[len("http"):] if self.url.startswith("http") else self.url
        return ws.rstrip("/") + f"/ari/events?app={self.app}&subscribeAll=false"


@dataclass(frozen=True)
class Node:
    """One Asterisk process of the chroot: its ports, names and directories."""

    number: int

    def __post_init__(self) -> None:
        if not 1 <= self.number <= MAX_NODES:
            raise LocalAsteriskError(f"node {self.number}: nodes are 1..{MAX_NODES}")

    # ------------------------------------------------------------------ network

    @property
    def http_port(self) -> int:
        return http_port() + PORT_STEP * (self.number - 1)

    @property
    def sip_port(self) -> int:
        return sip_port() + PORT_STEP * (self.number - 1)

    @property
    def rtp_range(self) -> tuple[int, int] | None:
        """(first, last) RTP port; None for node 1, which keeps the shipped rtp.conf's."""
        if self.number == 1:
            return None
        first = RTP_FIRST + RTP_PORTS * (self.number - 2)
        return first, first + RTP_PORTS - 1

    @property
    def url(self) -> str:
        return f"http://{DEFAULT_HOST}:{self.http_port}"

    # ------------------------------------------------------------------ identity

    @property
    def name(self) -> str:
        """Asterisk's `systemname`, the prefix of its channels' unique ids. Never `c2c-...`:
        the service takes channels and bridges with that prefix for its own (and removes
        those no call owns)."""
        return f"node{self.number}"

    @property
    def entity_id(self) -> str:
        """Asterisk's `entityid`: a locally administered MAC address, the same for the same
        node of the same cache dir on the same host, different for every node."""
        seed = f"{socket.gethostname()}\0{cache_dir().resolve()}\0{self.number}"
        tail = hashlib.sha256(seed.encode()).digest()[:5]
        return ":".join(f"{b:02x}" for b in (0x02, *tail))

    # ------------------------------------------------------------------ in the chroot

    @property
    def suffix(self) -> str:
        return "" if self.number == 1 else f"-node{self.number}"

    @property
    def etc_dir(self) -> str:
        """Its configuration directory, as a path inside the chroot."""
        return f"/etc/asterisk{self.suffix}"

    @property
    def directories(self) -> dict[str, str]:
        """asterisk.conf `[directories]` of this node (paths inside the chroot). Node 1 names
        none: the package's compiled-in defaults are right for it, and the module directory
        differs between architectures, so it is never named."""
        if self.number == 1:
            return {}
        lib = f"/var/lib/asterisk{self.suffix}"
        return {
            "astetcdir": self.etc_dir,
            "astvarlibdir": lib,
            "astdbdir": lib,
            "astspooldir": f"/var/spool/asterisk{self.suffix}",
            "astrundir": f"/var/run/asterisk{self.suffix}",
            "astlogdir": f"/var/log/asterisk{self.suffix}",
            "astcachedir": f"/var/cache/asterisk{self.suffix}",
        }

    @property
    def writable_dirs(self) -> tuple[str, ...]:
        """The directories (inside the chroot) Asterisk writes to, owned by its user."""
        return (f"/var/run/asterisk{self.suffix}", f"/var/log/asterisk{self.suffix}",
                f"/var/lib/asterisk{self.suffix}", f"/var/spool/asterisk{self.suffix}",
                f"/var/cache/asterisk{self.suffix}")

    @property
    def asterisk_args(self) -> list[str]:
        """What makes `asterisk` (daemon or -rx) use this node: node 1 is the default one."""
        return [] if self.number == 1 else ["-C", f"{self.etc_dir}/asterisk.conf"]

    @property
    def log_file(self) -> Path:
        return chroot_dir() / f"var/log/asterisk{self.suffix}" / LOG_NAME

    # ------------------------------------------------------------------ on the host

    @property
    def state_dir(self) -> Path:
        """Pid, output and credentials of this node: node 1's are where they always were."""
        return state_dir() if self.number == 1 else state_dir() / f"node{self.number}"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "asterisk.pid"

    @property
    def output_file(self) -> Path:
        return self.state_dir / "asterisk.out"

    @property
    def credentials_file(self) -> Path:
        """JSON {url, user, password, app, sip, node, name}, mode 0600: how to reach its ARI."""
        return self.state_dir / "ari.json"


def known_nodes() -> list[Node]:
    """Node 1 and every node that has a state directory (was started at some point)."""
    found = [Node(1)]
    for path in sorted(state_dir().glob("node*")):
        number = path.name.removeprefix("node")
        if path.is_dir() and number.isdigit() and 2 <= int(number) <= MAX_NODES:
            found.append(Node(int(number)))
    return sorted(found, key=lambda n: n.number)
