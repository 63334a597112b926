"""The PostgreSQL schema: forward-only migrations, and history's monthly partitions.

Migrations run under a transaction-level advisory lock, one transaction each, so that
instances starting at the same time apply each step exactly once (the second waits for the
lock, then finds the step done).

History is partitioned by month of its `timestamp` (Gregorian seconds, as Kazoo counts):
retention then drops a whole month at once instead of deleting rows one by one. Partitions
are made ahead of time (this month and the next two, at every start and by the
housekeeper's `prune`), and a DEFAULT partition catches anything outside them (an item of a
month with no partition yet, e.g. copied from an older SQLite file). Making a partition for
a month whose items sit in DEFAULT moves them into it first.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from psycopg import AsyncConnection, sql

# Seconds from 0000-01-01 to 1970-01-01: history timestamps are Gregorian seconds, as Kazoo
# counts (c2c_ari.domain.ids has the same; storage does not import the domain).
GREGORIAN_OFFSET = 62_167_219_200

# Keys of pg_advisory_xact_lock (bigint form); the two-integer form, used per account by the
# click-to-call limit, is a separate key space.
MIGRATION_LOCK = 0x6332_6361_7269_0001  # "c2cari" 1
PARTITION_LOCK = 0x6332_6361_7269_0002

# Months made ahead of the current one, so that no write ever waits for a partition.
MONTHS_AHEAD = 2

# Each entry moves the schema from version i to i + 1 (the row of c2c_schema_version); never
# edit one that has shipped, append a new one. Documents are `text`, not jsonb: what the API
# sends back, and what revisions hash, is the text exactly as it was stored. Identifiers are
# COLLATE "C": listings order by id byte by byte, as SQLite does, whatever the database's
# locale.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE accounts (
        id text COLLATE "C" PRIMARY KEY,
        name text NOT NULL,
        realm text NOT NULL,
        api_key_hash text NOT NULL UNIQUE,
        created double precision NOT NULL
    );
    CREATE TABLE auth_tokens (
        token_hash text PRIMARY KEY,
        account_id text COLLATE "C" NOT NULL REFERENCES accounts(id),
        expires_at double precision NOT NULL
    );
    CREATE INDEX auth_tokens_expiry ON auth_tokens (expires_at);

    CREATE TABLE clicktocalls (
        account_id text COLLATE "C" NOT NULL REFERENCES accounts(id),
        id text COLLATE "C" NOT NULL,
        doc text NOT NULL,
        rev integer NOT NULL,
        revision text NOT NULL,
        created double precision NOT NULL,
        modified double precision NOT NULL,
        deleted boolean NOT NULL DEFAULT false,
        -- What listings show, copied out of `doc` at every write: a listing then never
        -- parses documents (PostgreSQL's JSON functions refuse a text holding an escaped
        -- NUL anywhere, which an unknown key may carry).
        name text,
        extension text,
        PRIMARY KEY (account_id, id)
    );
    -- Listings skip soft-deleted documents without reading them (and read name and
    -- extension from the index alone); a dialplan call finds its
    -- click-to-call by id alone; retention finds soft-deleted documents by age.
    CREATE INDEX clicktocalls_live ON clicktocalls (account_id, id) INCLUDE (name, extension)
        WHERE NOT deleted;
    CREATE INDEX clicktocalls_by_id ON clicktocalls (id) WHERE NOT deleted;
    CREATE INDEX clicktocalls_deleted ON clicktocalls (modified) WHERE deleted;
    -- A new document unless the account has `p_limit` live ones already; true if stored.
    -- Under READ COMMITTED, a count and an insert in one statement would let concurrent
    -- creates all count the same rows and pass the limit together. Here the account's
    -- creates take turns on an advisory lock held until the caller's transaction ends,
    -- and the count, a statement run after the lock is granted (a function's statements
    -- each take a new snapshot), sees every create that went before. A function, so that
    -- all of it is one round trip (three times the throughput of BEGIN, lock, insert,
    -- COMMIT sent one by one, and a third of the client's CPU).
    CREATE FUNCTION c2c_insert_clicktocall(
        p_account text, p_id text, p_doc text, p_revision text, p_now double precision,
        p_name text, p_extension text, p_limit integer) RETURNS boolean
    LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_advisory_xact_lock(25394, hashtext(p_account));  -- 25394: "c2"
        INSERT INTO clicktocalls (account_id, id, doc, rev, revision, created, modified,
                                  name, extension)
        SELECT p_account, p_id, p_doc, 1, p_revision, p_now, p_now, p_name, p_extension
        WHERE (SELECT count(*) FROM clicktocalls
               WHERE account_id = p_account AND NOT deleted) < p_limit;
        RETURN FOUND;
    END
    $$;

    -- One item per call attempt. A unique constraint of a partitioned table must hold the
    -- partition key, so "one item per call id" is (call_id, timestamp): enough, because
    -- every write of one call carries the same timestamp (when its call started), so a
    -- call's writes always meet in the same partition and on the same key. `seq` comes from
    -- one sequence for the whole table: history pages order by (timestamp, seq).
    -- `final` is false while a bridged call is still up, and becomes true once, when its
    -- item is completed.
    CREATE TABLE history (
        seq bigserial NOT NULL,
        account_id text COLLATE "C" NOT NULL,
        clicktocall_id text COLLATE "C" NOT NULL,
        call_id text COLLATE "C" NOT NULL,
        "timestamp" bigint NOT NULL,
        doc text NOT NULL,
        final boolean NOT NULL DEFAULT true,
        CONSTRAINT history_call_once UNIQUE (call_id, "timestamp")
    ) PARTITION BY RANGE ("timestamp");
    -- History pages and time windows walk one index range per partition.
    CREATE INDEX history_by_time ON history (account_id, clicktocall_id, "timestamp", seq);
    -- Retention deletes the oldest rows of a partition it cannot drop whole: items are
    -- written in about the order calls start, so a BRIN index (a few pages, nearly free to
    -- keep) finds them without reading the partition.
    CREATE INDEX history_age ON history USING brin ("timestamp");
    CREATE TABLE history_default PARTITION OF history DEFAULT;

    -- Calls in flight, so that a crash loses none: a row left behind is a call whose item
    -- is not final yet. `owner` is the boot id of the process that runs the call.
    CREATE TABLE active_calls (
        call_id text COLLATE "C" PRIMARY KEY,
        account_id text COLLATE "C" NOT NULL,
        clicktocall_id text COLLATE "C" NOT NULL,
        item text NOT NULL,
        resources text NOT NULL,
        bridged boolean NOT NULL DEFAULT false,
        owner text COLLATE "C" NOT NULL DEFAULT '',
        node text NOT NULL DEFAULT ''
    );
    CREATE INDEX active_calls_by_c2c ON active_calls (account_id, clicktocall_id);
    -- Claiming orphans walks the distinct owners (a few) and then the rows of dead ones.
    CREATE INDEX active_calls_by_owner ON active_calls (owner);

    -- Secrets of the service itself (e.g. the key that signs per-call tokens), made once.
    CREATE TABLE service_keys (
        name text PRIMARY KEY,
        value text NOT NULL
    );

    CREATE TABLE instances (
        instance_id text PRIMARY KEY,
        boot_id text NOT NULL,
        app text NOT NULL,
        seen_at double precision NOT NULL
    );
    CREATE TABLE leases (
        name text PRIMARY KEY,
        holder text NOT NULL,
        expires double precision NOT NULL
    );

    -- The shared throttle: per (bucket, key) the times of the attempts it allowed within
    -- the window (at most `limit` of them, oldest first), whether the last attempt was
    -- allowed, and when the row stops mattering (its newest attempt + the window).
    CREATE TABLE throttle (
        bucket text COLLATE "C" NOT NULL,
        key text COLLATE "C" NOT NULL,
        hits double precision[] NOT NULL,
        allowed boolean NOT NULL,
        expires double precision NOT NULL,
        PRIMARY KEY (bucket, key)
    );
    """,
    # Operators' account commands: `disabled` (0 enabled, 1 disabled, 2 being deleted); the
    # key generation a token was issued under, which a key rotation bumps on the account so
    # every older token is refused at once; an account's tokens found without a scan (a
    # delete takes them in batches).
    """
    ALTER TABLE accounts ADD COLUMN disabled smallint NOT NULL DEFAULT 0,
        ADD COLUMN key_generation integer NOT NULL DEFAULT 0;
    ALTER TABLE auth_tokens ADD COLUMN key_generation integer NOT NULL DEFAULT 0;
    CREATE INDEX auth_tokens_by_account ON auth_tokens (account_id);
    """,
]


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer c2c-ari than this one."""


async def migrate(conn: AsyncConnection) -> int:
    """Apply the migrations the database lacks, each in a transaction of its own under the
    migration lock; the schema version reached. `conn` must be in autocommit mode."""
    while True:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS c2c_schema_version (version integer NOT NULL)")
            cursor = await conn.execute("SELECT version FROM c2c_schema_version")
            row = await cursor.fetchone()
            version = 0 if row is None else int(row[0])
            if version > len(MIGRATIONS):
                raise SchemaTooNew(
                    f"the database's schema is version {version}, newer than this c2c-ari "
                    f"knows ({len(MIGRATIONS)}): upgrade c2c-ari")
            if version == len(MIGRATIONS):
                return version
            await conn.execute(MIGRATIONS[version])
            if row is None:
                await conn.execute("INSERT INTO c2c_schema_version (version) VALUES (%s)",
                                   (version + 1,))
            else:
                await conn.execute("UPDATE c2c_schema_version SET version = %s",
                                   (version + 1,))


# --- history partitions ----------------------------------------------------------------------

Month = tuple[int, int]  # (year, month)


def month_of(timestamp: int) -> Month:
    """The UTC month a Gregorian-seconds timestamp falls in."""
    moment = datetime.fromtimestamp(timestamp - GREGORIAN_OFFSET, UTC)
    return moment.year, moment.month


def next_month(month: Month) -> Month:
    year, number = month
    return (year + 1, 1) if number == 12 else (year, number + 1)


def month_start(month: Month) -> int:
    """Gregorian seconds at 00:00 UTC on the month's first day."""
    return calendar.timegm((month[0], month[1], 1, 0, 0, 0)) + GREGORIAN_OFFSET


def months(first: Month, last: Month) -> list[Month]:
    out = []
    while first <= last:
        out.append(first)
        first = next_month(first)
    return out


def partition_name(month: Month) -> str:
    return f"history_{month[0]:04d}_{month[1]:02d}"


@dataclass(frozen=True)
class Partition:
    name: str
    # [lower, upper) in Gregorian seconds; both None for the DEFAULT partition.
    lower: int | None
    upper: int | None

    @property
    def is_default(self) -> bool:
        return self.lower is None


_BOUNDS = re.compile(r"FOR VALUES FROM \('?(-?\d+)'?\) TO \('?(-?\d+)'?\)")


async def partitions(conn: AsyncConnection) -> list[Partition]:
    """History's partitions, oldest first, DEFAULT last."""
    cursor = await conn.execute(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
        " JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'history'::regclass")
    found = []
    for name, bound in await cursor.fetchall():
        match = _BOUNDS.search(bound or "")
        if match is None:
            found.append(Partition(name, None, None))
        else:
            found.append(Partition(name, int(match.group(1)), int(match.group(2))))
    return sorted(found, key=lambda p: (p.lower is None, p.lower or 0))


async def ensure_partitions(conn: AsyncConnection, first: Month, last: Month) -> list[str]:
    """Make the monthly partitions from `first` to `last` that are missing (one
    transaction each, under the partition lock, so that instances doing the same at once
    make each once); the names of those made. `conn` must be in autocommit mode."""
    have = {(p.lower, p.upper) for p in await partitions(conn)}
    made = []
    for month in months(first, last):
        lower, upper = month_start(month), month_start(next_month(month))
        if (lower, upper) in have:
            continue
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (PARTITION_LOCK,))
            # Another instance may have made it while this one waited for the lock.
            if (lower, upper) in {(p.lower, p.upper) for p in await partitions(conn)}:
                continue
            await _make_partition(conn, partition_name(month), lower, upper)
            made.append(partition_name(month))
    return made


async def _make_partition(conn: AsyncConnection, name: str, lower: int, upper: int) -> None:
    table = sql.Identifier(name)
    cursor = await conn.execute(
        'SELECT 1 FROM history_default WHERE "timestamp" >= %s AND "timestamp" < %s LIMIT 1',
        (lower, upper))
    if await cursor.fetchone() is None:
        await conn.execute(sql.SQL(
            "CREATE TABLE {} PARTITION OF history FOR VALUES FROM ({}) TO ({})").format(
                table, sql.Literal(lower), sql.Literal(upper)))
        return
    # Items of this month wait in DEFAULT, which may not hold rows of an attached
    # partition's range: move them into a table of the same shape, then attach it (its
    # indexes are built then). All in this transaction: no item is ever in neither.
    await conn.execute(sql.SQL("CREATE TABLE {} (LIKE history INCLUDING DEFAULTS)").format(
        table))
    await conn.execute(sql.SQL(
        'WITH moved AS (DELETE FROM history_default WHERE "timestamp" >= %s'
        ' AND "timestamp" < %s RETURNING *) INSERT INTO {} SELECT * FROM moved').format(table),
        (lower, upper))
    await conn.execute(sql.SQL(
        "ALTER TABLE history ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
            table, sql.Literal(lower), sql.Literal(upper)))
