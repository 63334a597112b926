"""The shared sliding-window throttle: exact however many processes count in it.

A row per (bucket, key) holds the times of the attempts it allowed in the window. One
statement counts an attempt: an insert for a key's first attempt, else an update of its row,
which PostgreSQL does under the row's lock on the row's newest committed version (ON CONFLICT
DO UPDATE), so concurrent attempts are counted one after the other and exactly `limit` of
them pass. Times are the database server's clock, the same for every process.

A row whose newest attempt has left the window counts for nothing: `prune` removes such rows
in batches, and every `sweep_every` attempts this process starts one prune in the background
(off the request's path), so the table holds about the keys seen within a window, never all
keys ever seen.
"""

from __future__ import annotations

import asyncio
import logging

from c2c_ari.store.postgres.db import Database

log = logging.getLogger(__name__)

_NOW = "extract(epoch FROM statement_timestamp())::float8"

# $1 bucket, $2 key, $3 limit, $4 window. The inserted row's only time (excluded.hits[1]) is
# the statement's "now" in the update. `kept` is the newest `limit` times within the window,
# oldest first (only the newest count when the limit was lowered since). The attempt passes
# if fewer than `limit` are kept; else the wait is until the oldest kept one leaves the
# window, and the refused attempt is not recorded (hammering does not extend the wait).
HIT = f"""
INSERT INTO throttle AS t (bucket, key, hits, allowed, expires)
VALUES (%(bucket)s, %(key)s, ARRAY[{_NOW}], true, {_NOW} + %(window)s)
ON CONFLICT (bucket, key) DO UPDATE SET (hits, allowed, expires) = (
    SELECT CASE WHEN cardinality(k.kept) < %(limit)s THEN k.kept || k.now ELSE k.kept END,
           cardinality(k.kept) < %(limit)s,
           CASE WHEN cardinality(k.kept) < %(limit)s THEN k.now
                ELSE k.kept[cardinality(k.kept)] END + %(window)s
    FROM (SELECT excluded.hits[1] AS now,
                 ARRAY(SELECT s FROM (SELECT s FROM unnest(t.hits) s
                                      WHERE s > excluded.hits[1] - %(window)s
                                      ORDER BY s DESC LIMIT %(limit)s) newest
                       ORDER BY s) AS kept) k)
RETURNING allowed, hits[1] + %(window)s - {_NOW}
"""


class PostgresThrottle:
    def __init__(self, db: Database, *, sweep_every: int = 1000, sweep_batch: int = 5000
                 ) -> None:
        self.db = db
        self._sweep_every = max(1, sweep_every)
        self._sweep_batch = sweep_batch
        self._hits = 0
        self._sweeper: asyncio.Task[int] | None = None

    async def hit(self, bucket: str, key: str, limit: int, window: float) -> float | None:
        """None when this attempt is within `limit` per `window` seconds, else the seconds
        until one would be (the refused attempt is not counted). A bucket is meant to be
        used with one window (as the service does): rows are per (bucket, key)."""
        if limit < 1:
            return window
        self._hits += 1
        if self._hits % self._sweep_every == 0 and (
                self._sweeper is None or self._sweeper.done()):
            self._sweeper = asyncio.create_task(self._sweep(), name="throttle-prune")
        row = await self.db.fetchone(
            HIT, {"bucket": bucket, "key": key, "limit": limit, "window": float(window)})
        assert row is not None
        allowed, wait = row
        if allowed:
            return None
        # Never 0: the caller turns it into Retry-After, and the oldest time may leave the
        # window between the statement and now.
        return max(float(wait), 0.001)

    async def prune(self, batch: int = 5000) -> int:
        """Delete up to `batch` rows whose window has passed; how many went."""
        return await self.db.execute(
            "DELETE FROM throttle WHERE ctid = ANY(ARRAY(SELECT ctid FROM throttle"
            f" WHERE expires < {_NOW} LIMIT %s))", (batch,))

    async def _sweep(self) -> int:
        try:
            return await self.prune(self._sweep_batch)
        except Exception:  # a background chore: the next sweep tries again
            log.exception("pruning the throttle failed")
            return 0

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
