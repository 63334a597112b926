"""One Asterisk process of the chroot (a node): launch it, wait for its ARI, talk to it with
`asterisk -rx`, and stop it by its recorded pid, and only it.

A node runs as `chroot ROOT asterisk [-C /etc/asterisk-nodeK/asterisk.conf] -f -n -U asterisk
-G asterisk` in a session of its own; its pid goes to its pid file (nodes.py says where), and
a pid counts as the node's only while it is an asterisk rooted in our chroot with the node's
own arguments, since pids get reused.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from c2c_ari.localasterisk.common import LocalAsteriskError, chroot_dir, tail, write_atomic
from c2c_ari.localasterisk.nodes import AriInfo, Node

# Asterisk processes this Python process started, so stopping them reaps them (no zombies).
_children: dict[int, subprocess.Popen[bytes]] = {}


def alive(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _is_ours(pid: int, node: Node) -> bool:
    """The pid is alive and is this node's asterisk in our chroot."""
    if not alive(pid):
        return False
    try:
        root = os.readlink(f"/proc/{pid}/root")
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return False
    if comm not in ("asterisk", "chroot") or Path(root) != chroot_dir().resolve():
        return False
    # Node 1 runs with the default configuration, node k with `-C` and its own.
    config = node.asterisk_args[1:]
    return (not config and "-C" not in args) or (bool(config) and config[0] in args)


def running_pid(node: int = 1) -> int | None:
    """The pid of that node's Asterisk, if it still runs."""
    this = Node(node)
    try:
        pid = int(this.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _is_ours(pid, this) else None


def asterisk_log_file(node: int = 1) -> Path:
    """The node's messages.log (on the host, under the chroot)."""
    return Node(node).log_file


def asterisk_rx(command: str, timeout: float = 15.0, node: int = 1) -> str:
    """Run an Asterisk CLI command in that node (`asterisk -rx`); its output."""
    argv = ["chroot", str(chroot_dir()), "asterisk", *Node(node).asterisk_args, "-rx", command]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise LocalAsteriskError(f"asterisk -rx {command!r} timed out") from None
    except OSError as exc:
        raise LocalAsteriskError(f"asterisk -rx {command!r}: {exc}") from None
    if done.returncode != 0:
        msg = (done.stderr or done.stdout).strip().splitlines()[-1:] or [f"exit {done.returncode}"]
        raise LocalAsteriskError(f"asterisk -rx {command!r}: {msg[0]}")
    return done.stdout


def ari_get(url: str, user: str, password: str, timeout: float = 3.0) -> tuple[int, bytes]:
    """GET with Basic auth; (status, body), or (0, b"") when nothing answers."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    req = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read() if exc.fp else b""
    except (urllib.error.URLError, OSError):
        return 0, b""


def wait_for_ari(pid: int, info: AriInfo, timeout: float) -> dict:
    """Wait until the node's ARI answers `GET /ari/asterisk/info` with 200 (503 while it
    boots); that answer."""
    node = Node(info.node)
    deadline = time.monotonic() + timeout
    url = info.ari_url + "/asterisk/info"
    status = 0
    while time.monotonic() < deadline:
        status, body = ari_get(url, info.user, info.password)
        if status == 200:
            return json.loads(body)
        if status in (401, 404) and _fully_booted(node):
            # Booted now; ask again, as the first answer may predate res_ari.
            status, body = ari_get(url, info.user, info.password)
            if status == 200:
                return json.loads(body)
            if status == 401:
                raise LocalAsteriskError(f"ARI at {info.url} refuses user {info.user!r} (401)")
            if status == 404:
                raise LocalAsteriskError(
                    f"Asterisk booted but ARI is not there (404 for {url}); did a module fail"
                    f" to load? last log lines:\n{log_tail(node)}")
        if not alive(pid):
            raise LocalAsteriskError(
                f"Asterisk (pid {pid}) exited while starting; last log lines:\n"
                f"{log_tail(node)}")
        time.sleep(0.2)
    raise LocalAsteriskError(
        f"ARI at {url} did not answer 200 within {timeout:.0f} s (last status "
        f"{status or 'no answer'}); last log lines:\n{log_tail(node)}")


def _fully_booted(node: Node) -> bool:
    # Unauthenticated api-docs answer once the HTTP server runs; 401 then is a real refusal.
    try:
        out = asterisk_rx("core waitfullybooted", timeout=2, node=node.number)
    except LocalAsteriskError:
        return False
    return "fully booted" in out


def log_tail(node: Node, lines: int = 25) -> str:
    parts = []
    for path in (node.log_file, node.output_file):
        text = tail(path, lines)
        if text:
            parts.append(f"--- {path}\n{text}")
    return "\n".join(parts) or "(no log)"


def _port_taken(port: int, proto: str = "tcp") -> bool:
    """Is a TCP port listened on, or a UDP port bound, by anything on this host?"""
    needle = f":{port:04X}"
    for table in (f"/proc/net/{proto}", f"/proc/net/{proto}6"):
        try:
            with open(table) as fh:
                next(fh)
                for line in fh:
                    cols = line.split()
                    if cols[1].endswith(needle) and (proto == "udp" or cols[3] == "0A"):
                        return True
        except OSError:
            continue
    return False


def check_ports_free(node: Node) -> None:
    """The node's HTTP and SIP ports are free, or a clear error naming the setting."""
    for port, proto, setting in ((node.http_port, "tcp", "C2C_ARI_HTTP_PORT"),
                                 (node.sip_port, "udp", "C2C_ARI_SIP_PORT")):
        # An Asterisk that was just killed can hold its sockets for a moment after its pid
        # is gone (its other threads are still exiting): give the port a few seconds.
        deadline = time.monotonic() + 5
        while _port_taken(port, proto) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _port_taken(port, proto):
            which = "" if node.number == 1 else f" (node {node.number}'s, derived from it)"
            raise LocalAsteriskError(
                f"{proto.upper()} port {port}{which} is already in use by another program "
                f"(not an Asterisk this command started); stop it or set {setting}")


def launch(root: Path, node: Node) -> int:
    """Start the node's Asterisk in the background and record its pid; the pid."""
    log = node.log_file
    if log.exists():
        log.replace(log.with_name(log.name + ".1"))
    node.state_dir.mkdir(parents=True, exist_ok=True)
    out = open(node.output_file, "wb")  # noqa: SIM115 - handed to the child
    try:
        child = subprocess.Popen(
            ["chroot", str(root), "asterisk", *node.asterisk_args,
             "-f", "-n", "-U", "asterisk", "-G", "asterisk"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C in the terminal must not kill it
            close_fds=True)
    finally:
        out.close()
    _children[child.pid] = child
    write_atomic(node.pid_file, f"{child.pid}\n")
    return child.pid


def stop_node(node: Node, grace: float = 10.0) -> bool:
    """Stop the node's Asterisk: `core stop now`, then SIGTERM, then SIGKILL, by its pid.
    True if it was running."""
    pid = running_pid(node.number)
    if pid is not None:
        with contextlib.suppress(LocalAsteriskError):
            asterisk_rx("core stop now", timeout=grace, node=node.number)
        if not _wait_exit(pid, grace):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            if not _wait_exit(pid, 5):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                _wait_exit(pid, 5)
    node.pid_file.unlink(missing_ok=True)
    return pid is not None


def _wait_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    child = _children.get(pid)
    while time.monotonic() < deadline:
        if child is not None:
            if child.poll() is not None:
                _children.pop(pid, None)
                return True
        elif not alive(pid):
            return True
        time.sleep(0.1)
    return False
