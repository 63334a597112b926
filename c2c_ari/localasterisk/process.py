"""Running the local Asterisk: start, wait for ARI, stop by pid, status, `asterisk -rx`, and
the two locks (one up/down at a time; one user of the running Asterisk at a time).

Every start installs the configuration (install.py), mounts proc and /dev into the chroot
(image.py), starts `chroot ROOT asterisk -f -U asterisk -G asterisk` in the background, records
its pid and waits until ARI answers `GET /ari/asterisk/info` with 200 (503 while booting).
`stop` ends that process by its recorded pid, and only it.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from c2c_ari.localasterisk.common import (
    APP,
    DEFAULT_HOST,
    LocalAsteriskError,
    base_url,
    cache_dir,
    chroot_dir,
    http_port,
    say,
    settings,
    sip_port,
    state_dir,
    tail,
    write_atomic,
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
    _credentials,
    credentials_file,
    install_config,
    read_credentials,
)
from c2c_ari.localasterisk.nodes import AriInfo

_LOG_NAME = "messages.log"  # as named in asterisk/logger.conf


def asterisk_log_file() -> Path:
    return chroot_dir() / "var/log/asterisk" / _LOG_NAME


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


# Asterisk processes this Python process started, so stop() can reap them (no zombies).
_children: dict[int, subprocess.Popen] = {}


def _pid_file() -> Path:
    return state_dir() / "asterisk.pid"


def _alive(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _is_ours(pid: int) -> bool:
    """The pid is alive and is an asterisk whose root is our chroot (pids get reused)."""
    if not _alive(pid):
        return False
    try:
        root = os.readlink(f"/proc/{pid}/root")
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return False
    return comm in ("asterisk", "chroot") and Path(root) == chroot_dir().resolve()


def running_pid() -> int | None:
    """The pid of the Asterisk `up` started, if it still runs."""
    try:
        pid = int(_pid_file().read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _is_ours(pid) else None


def _ari_get(url: str, user: str, password: str, timeout: float = 3.0) -> tuple[int, bytes]:
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


def _wait_for_ari(pid: int, info: AriInfo, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    url = info.ari_url + "/asterisk/info"
    status = 0
    while time.monotonic() < deadline:
        status, body = _ari_get(url, info.user, info.password)
        if status == 200:
            return json.loads(body)
        if status in (401, 404) and _fully_booted():
            # Booted now; ask again, as the first answer may predate res_ari.
            status, body = _ari_get(url, info.user, info.password)
            if status == 200:
                return json.loads(body)
            if status == 401:
                raise LocalAsteriskError(f"ARI at {info.url} refuses user {info.user!r} (401)")
            if status == 404:
                raise LocalAsteriskError(
                    f"Asterisk booted but ARI is not there (404 for {url}); did a module fail"
                    f" to load? last log lines:\n{_log_tail()}")
        if not _alive(pid):
            raise LocalAsteriskError(
                f"Asterisk (pid {pid}) exited while starting; last log lines:\n{_log_tail()}")
        time.sleep(0.2)
    raise LocalAsteriskError(
        f"ARI at {url} did not answer 200 within {timeout:.0f} s (last status "
        f"{status or 'no answer'}); last log lines:\n{_log_tail()}")


def _fully_booted() -> bool:
    # Unauthenticated api-docs answer once the HTTP server runs; 401 then is a real refusal.
    try:
        out = asterisk_rx("core waitfullybooted", timeout=2)
    except LocalAsteriskError:
        return False
    return "fully booted" in out


def _log_tail(lines: int = 25) -> str:
    parts = []
    for path in (asterisk_log_file(), state_dir() / "asterisk.out"):
        text = tail(path, lines)
        if text:
            parts.append(f"--- {path}\n{text}")
    return "\n".join(parts) or "(no log)"


def asterisk_rx(command: str, timeout: float = 15.0) -> str:
    """Run an Asterisk CLI command in the running instance (`asterisk -rx`); its output."""
    root = chroot_dir()
    try:
        done = subprocess.run(["chroot", str(root), "asterisk", "-rx", command],
                              capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise LocalAsteriskError(f"asterisk -rx {command!r} timed out") from None
    except OSError as exc:
        raise LocalAsteriskError(f"asterisk -rx {command!r}: {exc}") from None
    if done.returncode != 0:
        msg = (done.stderr or done.stdout).strip().splitlines()[-1:] or [f"exit {done.returncode}"]
        raise LocalAsteriskError(f"asterisk -rx {command!r}: {msg[0]}")
    return done.stdout


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


# --------------------------------------------------------------------------- up / down / status


@contextlib.contextmanager
def exclusive_use(on_wait: Callable[[str], object] = print) -> Iterator[None]:
    """Hold the local Asterisk for one user at a time: test sessions and benchmarks share its
    Stasis app name and the SIPp ports, so a second one waits instead of stealing calls."""
    path = cache_dir() / "test-session.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            on_wait(f"waiting for another user of the local Asterisk ({path})")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_running(timeout: float | None = None, restart: bool = False) -> AriInfo:
    """Build if needed, start if not running, wait for ARI; returns how to reach ARI.

    `started` in the result is True when this call started Asterisk: the caller should stop()
    it when done. An already running instance is left as it is (its configuration too) unless
    `restart` is set.
    """
    check_host()
    if timeout is None:
        timeout = settings().start_timeout
    with _locked():
        pid = running_pid()
        if pid is not None and restart:
            _stop_locked()
            pid = None
        if pid is not None:
            info = read_credentials()
            if info is None:
                raise LocalAsteriskError("Asterisk runs but its ARI credentials file is gone;"
                                         " run `c2c-ari asterisk down` then `up`")
            _wait_for_ari(pid, info, timeout)
            return info
        return _start_locked(timeout)


def _start_locked(timeout: float) -> AriInfo:
    root = build_chroot()
    for port, proto, env in ((http_port(), "tcp", "C2C_ARI_HTTP_PORT"),
                             (sip_port(), "udp", "C2C_ARI_SIP_PORT")):
        # An Asterisk that was just killed can hold its sockets for a moment after its pid
        # is gone (its other threads are still exiting): give the port a few seconds.
        deadline = time.monotonic() + 5
        while _port_taken(port, proto) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _port_taken(port, proto):
            raise LocalAsteriskError(
                f"{proto.upper()} port {port} is already in use by another program (not an "
                f"Asterisk this command started); stop it or set {env}")
    state_dir().mkdir(parents=True, exist_ok=True)
    os.chmod(state_dir(), 0o700)
    user, password = _credentials()
    info = AriInfo(url=base_url(), user=user, password=password, started=True)
    # A chroot built before ids.py existed still has debootstrap's ids: fix them in place.
    ensure_own_ids(root)
    install_config(root, user, password)
    write_atomic(credentials_file(), json.dumps(
        {"url": info.url, "user": user, "password": password, "app": APP,
         "sip": f"{DEFAULT_HOST}:{sip_port()}"}, indent=1) + "\n", mode=0o600)
    mount_chroot_fs(root)
    log = asterisk_log_file()
    if log.exists():
        log.replace(log.with_name(log.name + ".1"))
    out = open(state_dir() / "asterisk.out", "wb")  # noqa: SIM115 - handed to the child
    try:
        child = subprocess.Popen(
            ["chroot", str(root), "asterisk", "-f", "-n", "-U", "asterisk", "-G", "asterisk"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C in the terminal must not kill it
            close_fds=True)
    finally:
        out.close()
    _children[child.pid] = child
    write_atomic(_pid_file(), f"{child.pid}\n")
    try:
        _wait_for_ari(child.pid, info, timeout)
    except BaseException:
        _stop_locked()
        raise
    return info


def up(restart: bool = False, timeout: float | None = None, quiet: bool = False) -> AriInfo:
    """`c2c-ari asterisk up`: ensure_running() plus a report on stdout."""
    started = time.monotonic()
    info = ensure_running(timeout=timeout, restart=restart)
    if not quiet:
        verb = "started" if info.started else "already running"
        print(f"Asterisk {verb} (pid {running_pid()}) in {time.monotonic() - started:.1f} s")
        print(f"ARI: {info.ari_url}  user {info.user}  app {info.app}")
        print(f"SIP: udp {DEFAULT_HOST}:{sip_port()}")
        print(f"credentials: {credentials_file()}")
    return info


def stop() -> bool:
    """Stop the Asterisk `up` started and unmount what it mounted. True if one was running."""
    check_host()
    with _locked():
        return _stop_locked()


def _stop_locked(grace: float = 10.0) -> bool:
    pid = running_pid()
    if pid is not None:
        with contextlib.suppress(LocalAsteriskError):
            asterisk_rx("core stop now", timeout=grace)
        if not _wait_exit(pid, grace):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            if not _wait_exit(pid, 5):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                _wait_exit(pid, 5)
    _pid_file().unlink(missing_ok=True)
    unmount_recorded()
    return pid is not None


def _wait_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    child = _children.get(pid)
    while time.monotonic() < deadline:
        if child is not None:
            if child.poll() is not None:
                _children.pop(pid, None)
                return True
        elif not _alive(pid):
            return True
        time.sleep(0.1)
    return False


def down(quiet: bool = False) -> bool:
    """`c2c-ari asterisk down`."""
    was = stop()
    if not quiet:
        print("Asterisk stopped" if was else "Asterisk was not running")
    return was


@dataclass(frozen=True)
class Status:
    running: bool
    pid: int | None
    version: str | None
    url: str | None
    chroot: Path
    chroot_built: bool


def status(quiet: bool = False) -> Status:
    """`c2c-ari asterisk status`: running or not, version, ARI URL."""
    pid = running_pid()
    info = read_credentials()
    version = None
    if pid is not None and info is not None:
        code, body = _ari_get(info.ari_url + "/asterisk/info", info.user, info.password)
        if code == 200:
            with contextlib.suppress(ValueError, KeyError):
                version = json.loads(body)["system"]["version"]
    result = Status(running=pid is not None, pid=pid, version=version,
                    url=info.ari_url if info and pid else None,
                    chroot=chroot_dir(), chroot_built=chroot_ready())
    if not quiet:
        if result.running:
            print(f"Asterisk {version or '(ARI not answering yet)'} running, pid {pid}")
            print(f"ARI: {result.url}  user {info.user if info else '?'}")
        else:
            print("Asterisk is not running")
        built = "built" if result.chroot_built else "not built yet"
        print(f"chroot: {result.chroot} ({built})")
    return result
