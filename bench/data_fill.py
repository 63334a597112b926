"""Filling a stopped service's SQLite file directly (sqlite3, executemany): a million history
rows in seconds, where the API would take hours. The schema is the service's own (its
migrations made it on a first start); only the tables' columns are relied on, which are the
same in every version so far."""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import time
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

GREGORIAN_OFFSET = 62_167_219_200  # Kazoo's timestamps: Unix seconds + this
# History is spread over at most this long, ending an hour ago: well inside any retention
# (the service prunes history older than a year by default).
HISTORY_SPAN_S = 240 * 86_400
HISTORY_STEP_S = 20  # seconds between two calls when the span allows it
WINDOW_ROWS = 20  # rows in the narrow time window (less than a page)
DELETED_EVERY = 256  # in the soft-deleted account, 255 of every 256 documents are deleted


@dataclass
class HistoryLayout:
    """Where the history rows are: row i (1-based, oldest first) has seq i and timestamps[i-1]."""

    timestamps: list[int]

    @property
    def rows(self) -> int:
        return len(self.timestamps)

    def seq_at_depth(self, fraction: float) -> int:
        """The seq of the row `fraction` of the way down from the newest."""
        return max(1, round(self.rows * (1 - fraction)))

    def window(self) -> tuple[int, int, int]:
        """(created_from, created_to, rows inside): a narrow window in the middle."""
        middle = self.rows // 2
        low = max(0, middle - WINDOW_ROWS // 2)
        high = min(self.rows - 1, low + WINDOW_ROWS - 1)
        created_from, created_to = self.timestamps[low], self.timestamps[high]
        inside = (bisect_right(self.timestamps, created_to)
                  - bisect_left(self.timestamps, created_from))
        return created_from, created_to, inside


def history_layout(rows: int, now: float | None = None) -> HistoryLayout:
    end = int(now if now is not None else time.time()) - 3600 + GREGORIAN_OFFSET
    span = min(HISTORY_SPAN_S, rows * HISTORY_STEP_S)
    return HistoryLayout([end - (span * (rows - i)) // rows for i in range(1, rows + 1)])


# A history item shaped like the ones the service records for an answered call, in the
# service's own encoding (json.dumps); a template because json.dumps a million times would
# take longer than the insert.
_HISTORY_DOC = (
    '{"timestamp": %d, "contact": "+1415%07d", "call_id": "%s", "result": "success", '
    '"extension": "1001", "dial_first": "extension", "trigger": "api", '
    '"authenticated": true, "client_ip": "203.0.113.7", "answered_at": %d, '
    '"ended_at": %d, "talk_duration": 42.0, "hangup_cause": "NORMAL_CLEARING", '
    '"hangup_cause_code": 16}'
)


def _history_doc(timestamp: int, call_id: str, n: int) -> str:
    return _HISTORY_DOC % (timestamp, n % 10_000_000, call_id, timestamp + 4, timestamp + 46)


def _clicktocall_row(account_id: str, doc_id: str, n: int, now: float,
                     deleted: bool) -> tuple[str, str, str, str, float, float, int]:
    body = json.dumps({"extension": "1001", "id": doc_id, "name": f"Sales {n}",
                       "whitelist": ["^\\+1"]}, sort_keys=True, separators=(",", ":"))
    revision = f"1-{hashlib.md5(body.encode(), usedforsecurity=False).hexdigest()}"
    return account_id, doc_id, body, revision, now, now, int(deleted)


def new_ids(count: int) -> list[str]:
    """Sorted random 32-hex ids, the service's own shape (sorted: the table's order)."""
    return sorted(secrets.token_hex(16) for _ in range(count))


def connect(path: Path, *, exclusive: bool = False) -> sqlite3.Connection:
    """A connection for filling. `exclusive` (the service must be stopped): no journal at
    all until `close_exclusive` puts the file back in WAL mode, which halves the writing of
    a big fill (WAL writes every page twice). A crash mid-fill just means a new run."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA busy_timeout=10000")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-262144")  # 256 MiB
    if exclusive:
        conn.execute("PRAGMA journal_mode=OFF")
    return conn


def close_exclusive(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()


def fill_history(conn: sqlite3.Connection, account_id: str, clicktocall_id: str,
                 layout: HistoryLayout) -> None:
    """The whole history of one click-to-call, oldest first (seq 1 is the oldest)."""

    def rows() -> Iterator[tuple[int, str, str, str, int, str]]:
        for seq, timestamp in enumerate(layout.timestamps, start=1):
            call_id = f"c2c-{clicktocall_id}-{seq:016x}"
            yield (seq, account_id, clicktocall_id, call_id, timestamp,
                   _history_doc(timestamp, call_id, seq))

    conn.execute("BEGIN")
    conn.executemany("INSERT INTO history (seq, account_id, clicktocall_id, call_id,"
                     " timestamp, doc) VALUES (?, ?, ?, ?, ?, ?)", rows())
    conn.execute("COMMIT")


def fill_clicktocalls(conn: sqlite3.Connection, account_id: str, ids: list[str],
                      *, deleted_every: int = 0) -> None:
    """Documents with these ids; with `deleted_every` = k, all but every k-th soft-deleted."""
    now = time.time()
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO clicktocalls (account_id, id, doc, rev, revision, created, modified,"
        " deleted) VALUES (?, ?, ?, 1, ?, ?, ?, ?)",
        (_clicktocall_row(account_id, doc_id, n, now,
                          bool(deleted_every) and n % deleted_every != 0)
         for n, doc_id in enumerate(ids)))
    conn.execute("COMMIT")


def insert_expired_tokens(conn: sqlite3.Connection, account_id: str, count: int) -> None:
    """Tokens that expired an hour ago (random hashes: nobody holds them)."""
    expired = time.time() - 3600
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO auth_tokens (token_hash, account_id, expires_at) VALUES (?, ?, ?)",
        ((secrets.token_hex(32), account_id, expired) for _ in range(count)))
    conn.execute("COMMIT")


def checkpoint(conn: sqlite3.Connection) -> None:
    """Copy what this connection wrote from the WAL into the database file now: else the
    service's next commit would do it (SQLite checkpoints after a commit once the WAL holds
    1000 pages) and one of the bench's timed requests would pay for the bench's own fill."""
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def delete_expired_tokens(conn: sqlite3.Connection) -> int:
    """Remove what is left of them, so the service's housekeeping never meets them later."""
    return conn.execute("DELETE FROM auth_tokens WHERE expires_at < ?",
                        (time.time(),)).rowcount
