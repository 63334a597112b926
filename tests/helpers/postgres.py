"""A throwaway PostgreSQL cluster for the tests: made, started and stopped by the test session.

    cluster = Cluster.start()        # initdb into a new temporary folder, pg_ctl start
    cluster.url("postgres")          # postgresql://postgres@127.0.0.1:PORT/postgres
    cluster.stop()                   # pg_ctl stop, then its pid if need be; folder removed

If the test session is killed before it can stop the cluster, a watchdog shell started with
the cluster stops it (and removes its folder) within a second of the session's end.

The server binaries are Debian's (`/usr/lib/postgresql/<version>/bin`, or wherever
`pg_config --bindir` says); when there are none, Debian's `postgresql` package is installed
with apt-get (Debian's policy-rc.d, or the lack of an init system, keeps the package's own
cluster from starting; ours never uses it). `initdb` refuses to run as root, so as root the
cluster belongs to the `postgres` user and its commands run through `runuser`.

The cluster is for tests only: `fsync=off` and no synchronous commit (a crash of the machine
may lose it, which does not matter for a folder removed at the end of the session); a
benchmark, whose writes must cost what they cost, overrides those with `settings`. It
listens on 127.0.0.1 on a free port, with its unix socket in its own folder, so it never
meets a PostgreSQL the machine runs. Nothing here needs pytest, so the benchmarks use it too.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from c2c_ari.store.postgres.db import APPLICATION_NAME

SUPERUSER = "postgres"
_SERVER_TOOLS = ("initdb", "pg_ctl", "postgres")
# Server settings of a test cluster: speed over durability.
TEST_SETTINGS = {
    "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
    # The suite opens a database (a pool and a listener) per test, one at a time.
    "max_connections": "200",
}


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path.parent.name)) or (0,)


def find_bindir() -> Path | None:
    """A folder with initdb, pg_ctl and postgres, the newest version first."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key,
                        reverse=True)
    if shutil.which("pg_config"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            done = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True,
                                  timeout=10)
            if done.returncode == 0 and done.stdout.strip():
                candidates.append(Path(done.stdout.strip()))
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).parent)
    for candidate in candidates:
        if all((candidate / tool).is_file() for tool in _SERVER_TOOLS):
            return candidate
    return None


def install_server() -> None:
    """apt-get install Debian's `postgresql` (the server of the release's version)."""
    if not shutil.which("apt-get"):
        raise RuntimeError("no PostgreSQL server binaries and no apt-get to install them")
    if os.geteuid() != 0:
        raise RuntimeError("no PostgreSQL server binaries; installing them needs root")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", "postgresql"]
    if subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL).returncode != 0:
        # Usually an empty or stale package list: refresh once and retry.
        subprocess.run(["apt-get", "update"], env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
        done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True)
        if done.returncode != 0:
            tail = done.stderr.strip().splitlines()[-1:] or ["?"]
            raise RuntimeError(f"apt-get install postgresql failed: {tail[0]}")


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def ensure_bindir() -> Path:
    """The server binaries, installed first if missing (or, as root, if the `postgres` user
    the cluster must belong to is missing: the package makes it)."""
    bindir = find_bindir()
    if bindir is None or (os.geteuid() == 0 and not _has_user(SUPERUSER)):
        install_server()
        bindir = find_bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL server binaries not found after installing postgresql")
    return bindir


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Cluster:
    bindir: Path
    root: Path  # data/ (the cluster), the unix socket and server.log live here
    port: int
    # Who runs the server's commands: None for this user, else a user name for runuser.
    run_as: str | None
    pid: int = 0
    watchdog: subprocess.Popen[bytes] | None = None
    settings: dict[str, str] = field(default_factory=lambda: dict(TEST_SETTINGS))

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def user(self) -> str:
        return SUPERUSER

    def url(self, dbname: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{dbname}"

    def _command(self, *args: str) -> list[str]:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.run_as is not None:
            cmd = ["runuser", "-u", self.run_as, "--", *cmd]
        return cmd

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self._command(*args), capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def _start_watchdog(self) -> None:
        """A shell that waits for this process to end and then stops the server and removes
        its folder: a test session killed outright (SIGKILL, a timeout's SIGTERM) runs no
        teardown, and would leave the cluster running. `stop` ends it first."""
        stop = " ".join(shlex.quote(part) for part in self._command(
            "pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop"))
        script = (f"while kill -0 {os.getpid()} 2>/dev/null; do sleep 1; done; {stop}; "
                  f"rm -rf {shlex.quote(str(self.root))}")
        self.watchdog = subprocess.Popen(
            ["sh", "-c", script], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True)

    @classmethod
    def start(cls, bindir: Path | None = None, attempts: int = 3,
              settings: Mapping[str, str] | None = None) -> Cluster:
        """initdb and start a new cluster; its folder is removed again if that fails.
        `settings` replace or add to TEST_SETTINGS (server settings, as `-c name=value`)."""
        bindir = bindir or ensure_bindir()
        root = Path(tempfile.mkdtemp(prefix="c2c-pg-"))
        run_as = None
        if os.geteuid() == 0:
            run_as = SUPERUSER
            entry = pwd.getpwnam(SUPERUSER)
            os.chown(root, entry.pw_uid, entry.pw_gid)
        cluster = cls(bindir, root, 0, run_as, settings={**TEST_SETTINGS, **(settings or {})})
        try:
            done = cluster._run("initdb", "-D", str(cluster.data), "-A", "trust",
                                "-U", SUPERUSER, "-E", "UTF8", "--locale=C", "--no-sync")
            if done.returncode != 0:
                raise RuntimeError(f"initdb failed: {done.stderr.strip()[-500:]}")
            for _ in range(attempts):
                # A port found free may be taken before the server binds it: try another.
                cluster.port = _free_port()
                if cluster._start_server():
                    cluster._start_watchdog()
                    return cluster
            log = (root / "server.log").read_text(errors="replace")[-1000:]
            raise RuntimeError(f"PostgreSQL did not start: {log}")
        except BaseException:
            cluster.stop()
            raise

    def _start_server(self) -> bool:
        options = " ".join([
            f"-p {self.port}", f"-k {self.root}", "-c listen_addresses=127.0.0.1",
            *(f"-c {name}={value}" for name, value in self.settings.items()),
        ])
        done = self._run("pg_ctl", "-D", str(self.data), "-o", options,
                         "-l", str(self.root / "server.log"), "-w", "-t", "60", "start")
        if done.returncode != 0:
            return False
        self.pid = self._postmaster_pid() or 0
        return self.pid > 0

    def _postmaster_pid(self) -> int | None:
        try:
            first = (self.data / "postmaster.pid").read_text().split("\n", 1)[0]
        except OSError:
            return None
        return int(first) if first.strip().isdigit() else None

    def stop(self) -> None:
        """Stop the server (fast shutdown; by its pid if pg_ctl cannot) and remove the
        folder."""
        if self.watchdog is not None:
            self.watchdog.kill()  # the shell only: the server is stopped below
            self.watchdog.wait()
            self.watchdog = None
        if self.data.joinpath("postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop",
                      timeout=60)
        pid = self.pid or self._postmaster_pid()
        if pid and _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGQUIT)  # the postmaster's immediate shutdown
            deadline = time.monotonic() + 10
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child is not running; the server is started by pg_ctl, never our child, but
    # be safe.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


class Outage:
    """Refuses new connections to the test's database and cuts the service's own."""

    def __init__(self, info: psycopg.ConnectionInfo) -> None:
        self.dbname = info.dbname
        self.admin = psycopg.connect(host=info.host, port=info.port, user=info.user,
                                     dbname="postgres", autocommit=True)

    def begin(self) -> None:
        name = sql.Identifier(self.dbname)
        self.admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false")
                           .format(name))
        self.admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                           " WHERE datname = %s AND application_name = %s",
                           (self.dbname, APPLICATION_NAME))

    def end(self) -> None:
        self.admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true")
                           .format(sql.Identifier(self.dbname)))
