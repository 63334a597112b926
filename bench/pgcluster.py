"""A throwaway PostgreSQL cluster for the benchmarks: the tests' own (tests/helpers/postgres.py,
which needs no pytest), started and stopped by the bench, with one database per service
under test, the CPU time of all its processes, and its processes pinned to the servers' CPU.

Its durability is set like the service's SQLite (WAL, synchronous=NORMAL): crash-safe files
(fsync and full page writes on, unlike the test suite's cluster), and a commit that does not
wait for its WAL to reach the disk (synchronous_commit off), so that neither backend waits
for the disk on a write and the comparison is between the backends, not between durability
settings. A PostgreSQL left at its defaults (as compose.yaml runs it) also waits for that
flush on every commit.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import psycopg
from common import BenchError, log
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # for the tests' cluster helper
    sys.path.insert(0, str(ROOT))

from tests.helpers.postgres import Cluster  # noqa: E402

BENCH_SETTINGS = {"fsync": "on", "full_page_writes": "on", "synchronous_commit": "off"}
DESCRIPTION = "fsync on, synchronous_commit off (as SQLite's synchronous=NORMAL)"


def _stat(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as fh:
        # The command name may hold spaces and parentheses: the fields start after the last ")".
        return fh.read().rsplit(")", 1)[1].split()


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (the postmaster's backends and workers)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError):
            if int(_stat(int(entry.name))[1]) == pid:
                found.append(int(entry.name))
    return found


class Postgres:
    """One cluster for the whole run; `database()` makes a fresh database in it."""

    def __init__(self) -> None:
        self.cluster: Cluster | None = None

    def start(self) -> Postgres:
        log(f"starting a throwaway PostgreSQL cluster ({DESCRIPTION})")
        try:
            self.cluster = Cluster.start(settings=BENCH_SETTINGS)
        except (RuntimeError, OSError) as exc:
            raise BenchError(f"PostgreSQL: {exc}") from None
        with self._admin() as conn:
            version = conn.execute("SHOW server_version").fetchone()
        log(f"PostgreSQL {version[0] if version else '?'}, pid {self.cluster.pid}, "
            f"port {self.cluster.port}")
        return self

    @property
    def pid(self) -> int:
        assert self.cluster is not None
        return self.cluster.pid

    def _admin(self) -> psycopg.Connection:  # type: ignore[type-arg]
        assert self.cluster is not None
        return psycopg.connect(self.cluster.url("postgres"), autocommit=True)

    def database(self, name: str) -> str:
        """A new, empty database (the service's migrations make its schema); its URL."""
        assert self.cluster is not None
        with self._admin() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.cluster.url(name)

    def cpu_seconds(self) -> float:
        """utime + stime of the whole cluster: the postmaster, its live children (backends,
        WAL writer, checkpointer, ...) and the children it has reaped (backends and
        autovacuum workers that exited), so a process that ends between two readings still
        counts."""
        ticks = os.sysconf("SC_CLK_TCK")
        fields = _stat(self.pid)
        total = sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
        for child in _children(self.pid):
            with contextlib.suppress(OSError, IndexError):
                child_fields = _stat(child)
                total += int(child_fields[11]) + int(child_fields[12])
        return total / ticks

    def pin(self, cpus: set[int]) -> None:
        """Run the cluster on `cpus`: its running processes, and (inherited from the
        postmaster) every backend it starts later."""
        for pid in (self.pid, *_children(self.pid)):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(pid, cpus)

    def stop(self) -> None:
        if self.cluster is not None:
            cluster, self.cluster = self.cluster, None
            cluster.stop()
