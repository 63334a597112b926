"""up, down and status of the local Asterisk nodes, and the two locks around them.

`ensure_nodes` builds the chroot if needed, installs the configuration of every node that is
not running, mounts proc and /dev once for all of them, starts them together and waits for
each one's ARI. `stop` stops nodes by their recorded pids and unmounts only when no node is
left running.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from c2c_ari.localasterisk.common import (
    DEFAULT_HOST,
    LocalAsteriskError,
    cache_dir,
    chroot_dir,
    say,
    settings,
)
from c2c_ari.localasterisk.ids import ensure_own_ids
from c2c_ari.localasterisk.image import (
    build_chroot,
    check_host,
    chroot_ready,
    mount_chroot_fs,
    unmount_recorded,
)
from c2c_ari.localasterisk.install import (
    ari_credentials,
    install_config,
    read_credentials,
    write_credentials,
)
from c2c_ari.localasterisk.nodes import MAX_NODES, AriInfo, Node, known_nodes
from c2c_ari.localasterisk.process import (
    ari_get,
    check_ports_free,
    launch,
    running_pid,
    stop_node,
    wait_for_ari,
)

# --------------------------------------------------------------------------- locks


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """One up/down at a time (two concurrent `up`s must not both build or both start)."""
    cache_dir().mkdir(parents=True, exist_ok=True)
    with open(cache_dir() / "lock", "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say("waiting for another c2c-ari asterisk command to finish...")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# Lock files this process holds through exclusive_use: each one's open file and how many
# holders share it.
_held: dict[Path, tuple[IO[str], int]] = {}


@contextlib.contextmanager
def exclusive_use(on_wait: Callable[[str], object] = print) -> Iterator[None]:
    """Hold the local Asterisk for one user at a time: test sessions and benchmarks share its
    Stasis app name and the SIPp ports, so a second one waits instead of stealing calls.

    Re-entrant within a process: flock conflicts between two open files of one process
    too, so a second holder here (the session fixtures of two test folders) would wait
    for itself forever; it shares the lock instead, and whichever holder leaves last
    releases it."""
    path = cache_dir() / "test-session.lock"
    if path in _held:
        fh, holders = _held[path]
        _held[path] = (fh, holders + 1)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(path, "a")  # noqa: SIM115 - closed by the last holder, below
        try:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                on_wait(f"waiting for another user of the local Asterisk ({path})")
                fcntl.flock(fh, fcntl.LOCK_EX)
        except BaseException:
            fh.close()
            raise
        _held[path] = (fh, 1)
    try:
        yield
    finally:
        fh, holders = _held[path]
        if holders > 1:
            _held[path] = (fh, holders - 1)
        else:
            del _held[path]
            fcntl.flock(fh, fcntl.LOCK_UN)
            fh.close()


# --------------------------------------------------------------------------- start


def ensure_running(timeout: float | None = None, restart: bool = False,
                   node: int = 1) -> AriInfo:
    """Build if needed, start one node (node 1 unless told) if it is not running, wait for
    its ARI; returns how to reach it.

    `started` in the result is True when this call started Asterisk: the caller should stop()
    it when done. A running node is left as it is (its configuration too) unless `restart`.
    """
    return _ensure([node], timeout, restart)[0]


def ensure_nodes(count: int, timeout: float | None = None,
                 restart: bool = False) -> list[AriInfo]:
    """ensure_running() for nodes 1..count; their AriInfo in order."""
    if not 1 <= count <= MAX_NODES:
        raise LocalAsteriskError(f"--nodes {count}: 1 to {MAX_NODES} nodes")
    return _ensure(list(range(1, count + 1)), timeout, restart)


def _ensure(numbers: list[int], timeout: float | None, restart: bool) -> list[AriInfo]:
    check_host()
    nodes = [Node(n) for n in numbers]
    wait = settings().start_timeout if timeout is None else timeout
    with _locked():
        infos: dict[int, AriInfo] = {}
        to_start: list[Node] = []
        for node in nodes:
            pid = running_pid(node.number)
            if pid is not None and restart:
                stop_node(node)
                pid = None
            if pid is None:
                to_start.append(node)
                continue
            info = read_credentials(node.number)
            if info is None:
                raise LocalAsteriskError(
                    f"Asterisk node {node.number} runs but its ARI credentials file is gone;"
                    " run `c2c-ari asterisk down` then `up`")
            wait_for_ari(pid, info, wait)
            infos[node.number] = info
        if to_start:
            infos.update(_start_locked(to_start, wait))
        return [infos[n] for n in numbers]


def _start_locked(nodes: list[Node], timeout: float) -> dict[int, AriInfo]:
    root = build_chroot()
    for node in nodes:
        check_ports_free(node)
    user, password = ari_credentials()
    # A chroot built before ids.py existed still has debootstrap's ids: fix them in place.
    ensure_own_ids(root)
    infos: dict[int, AriInfo] = {}
    for node in nodes:
        install_config(root, user, password, node)
        infos[node.number] = write_credentials(node, user, password)
    mount_chroot_fs(root)
    launched: list[tuple[Node, int]] = []
    try:
        # All first, then wait: the nodes boot side by side.
        for node in nodes:
            launched.append((node, launch(root, node)))
        for node, pid in launched:
            wait_for_ari(pid, infos[node.number], timeout)
    except BaseException:
        for node, _ in launched:
            stop_node(node)
        _unmount_when_idle()
        raise
    return infos


# --------------------------------------------------------------------------- stop


def stop(node: int | None = None) -> bool:
    """Stop one node, or every node `up` started (None), and unmount what `up` mounted once
    no node runs. True if one was running."""
    check_host()
    with _locked():
        targets = known_nodes() if node is None else [Node(node)]
        was = False
        for target in targets:
            was = stop_node(target) or was
        _unmount_when_idle()
        return was


def _unmount_when_idle() -> None:
    if all(running_pid(n.number) is None for n in known_nodes()):
        unmount_recorded()


def read_nodes() -> list[AriInfo]:
    """How to reach every running node, node 1 first."""
    found = []
    for node in known_nodes():
        info = read_credentials(node.number)
        if info is not None and running_pid(node.number) is not None:
            found.append(info)
    return found


# --------------------------------------------------------------------------- commands


def up(restart: bool = False, timeout: float | None = None, quiet: bool = False,
       nodes: int = 1) -> AriInfo:
    """`c2c-ari asterisk up [--nodes N]`: ensure_nodes() plus a report on stdout; node 1's
    AriInfo."""
    started = time.monotonic()
    infos = ensure_nodes(nodes, timeout=timeout, restart=restart)
    if not quiet:
        took = time.monotonic() - started
        indent = "" if nodes == 1 else "  "
        for info in infos:
            node = Node(info.node)
            verb = "started" if info.started else "already running"
            label = "Asterisk" if nodes == 1 else f"Asterisk node {node.number} ({node.name})"
            print(f"{label} {verb} (pid {running_pid(node.number)}) in {took:.1f} s")
            print(f"{indent}ARI: {info.ari_url}  user {info.user}  app {info.app}")
            print(f"{indent}SIP: udp {DEFAULT_HOST}:{node.sip_port}")
            print(f"{indent}credentials: {node.credentials_file}")
    return infos[0]


def down(quiet: bool = False, node: int | None = None) -> bool:
    """`c2c-ari asterisk down [--node K]`: every node, or one."""
    was = stop(node)
    if not quiet:
        what = "Asterisk" if node is None else f"Asterisk node {node}"
        print(f"{what} stopped" if was else f"{what} was not running")
    return was


@dataclass(frozen=True)
class NodeStatus:
    node: int
    name: str
    running: bool
    pid: int | None
    version: str | None
    url: str | None
    sip: str


@dataclass(frozen=True)
class Status:
    """Node 1's state (what there was before nodes), and every node's."""

    running: bool
    pid: int | None
    version: str | None
    url: str | None
    chroot: Path
    chroot_built: bool
    nodes: tuple[NodeStatus, ...] = ()


def _node_status(node: Node) -> NodeStatus:
    pid = running_pid(node.number)
    info = read_credentials(node.number)
    version = None
    if pid is not None and info is not None:
        code, body = ari_get(info.ari_url + "/asterisk/info", info.user, info.password)
        if code == 200:
            with contextlib.suppress(ValueError, KeyError):
                version = json.loads(body)["system"]["version"]
    return NodeStatus(node=node.number, name=node.name, running=pid is not None, pid=pid,
                      version=version, url=info.ari_url if info and pid else None,
                      sip=f"{DEFAULT_HOST}:{node.sip_port}")


def status(quiet: bool = False) -> Status:
    """`c2c-ari asterisk status`: node 1 and every other node that runs: version, ARI URL."""
    nodes = [_node_status(n) for n in known_nodes()]
    nodes = [s for s in nodes if s.node == 1 or s.running]
    first = nodes[0]
    result = Status(running=first.running, pid=first.pid, version=first.version,
                    url=first.url, chroot=chroot_dir(), chroot_built=chroot_ready(),
                    nodes=tuple(nodes))
    if not quiet:
        for s in nodes:
            label = "Asterisk" if len(nodes) == 1 else f"Asterisk node {s.node} ({s.name})"
            indent = "" if len(nodes) == 1 else "  "
            if s.running:
                print(f"{label} {s.version or '(ARI not answering yet)'} running, pid {s.pid}")
                print(f"{indent}ARI: {s.url}  SIP: udp {s.sip}")
            else:
                print(f"{label} is not running")
        built = "built" if result.chroot_built else "not built yet"
        print(f"chroot: {result.chroot} ({built})")
    return result
