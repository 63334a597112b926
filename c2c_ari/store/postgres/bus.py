"""Messages between the instances sharing the database: PostgreSQL's LISTEN/NOTIFY.

Each store listens on one connection of its own (a pooled one would be handed to others),
for the channels it has subscribers on. A reader task waits for notifications on it; to
LISTEN or UNLISTEN, that task is stopped (psycopg holds the connection while it waits) and
started again afterwards: notifications that arrive meanwhile are kept by psycopg and read
first. When the connection drops, a supervisor reconnects with capped exponential backoff
and listens again to every channel that has subscribers; what was published in that gap is
lost (NOTIFY keeps nothing for absent listeners), so subscribers must treat the bus as a
hint and read the state they care about from the store.

Publishing is `pg_notify` on a pooled connection, delivered to the listeners of every
process, this one's included, when the publishing statement commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

from psycopg import AsyncConnection, sql

from c2c_ari.store.local_bus import Subscribers, messages
from c2c_ari.store.postgres.db import Database

log = logging.getLogger(__name__)

# NOTIFY refuses payloads of 8000 bytes or more (the server's default build).
MAX_PAYLOAD_BYTES = 7999
# Channel names become identifiers (LISTEN "name"): at most 63 bytes, and plain characters
# only, so that no name is ever cut or folded into another.
_CHANNEL = re.compile(r"[A-Za-z0-9_.:-]{1,63}")


class MessageTooLarge(ValueError):
    pass


def _check_channel(channel: str) -> None:
    if not _CHANNEL.fullmatch(channel):
        raise ValueError(f"bad bus channel name {channel!r}: 1..63 of [A-Za-z0-9_.:-]")


class PostgresBus:
    def __init__(self, db: Database, *, first_delay: float = 0.1, max_delay: float = 5.0
                 ) -> None:
        self.db = db
        self._first_delay = first_delay
        self._max_delay = max_delay
        self._subscribers = Subscribers()
        self._listening: set[str] = set()  # LISTENed on the current connection
        self._conn: AsyncConnection[Any] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        # One change of the connection's state at a time (LISTEN, UNLISTEN, reconnect).
        self._control = asyncio.Lock()
        self._lost = asyncio.Event()
        self._chores: set[asyncio.Task[None]] = set()
        self._closed = False

    async def start(self) -> PostgresBus:
        async with self._control:
            await self._connect()
        self._supervisor = asyncio.create_task(self._supervise(), name="bus-supervisor")
        return self

    async def close(self) -> None:
        self._closed = True
        tasks = [t for t in (self._supervisor, *self._chores) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        async with self._control:
            await self._disconnect()

    # --- the API ---------------------------------------------------------------------------

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        _check_channel(channel)
        payload = json.dumps(message, separators=(",", ":"))
        size = len(payload.encode())
        if size > MAX_PAYLOAD_BYTES:
            raise MessageTooLarge(
                f"bus message of {size} bytes on {channel!r}: at most {MAX_PAYLOAD_BYTES}")
        await self.db.execute("SELECT pg_notify(%s, %s)", (channel, payload))

    @contextlib.asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        """Messages of `channel` from now on (LISTEN is in effect when this returns, while
        the connection is up). A subscriber that falls QUEUE_LIMIT messages behind loses the
        oldest."""
        _check_channel(channel)
        queue = self._subscribers.add(channel)
        try:
            await self._sync(channel)
            yield messages(queue)
        finally:
            # The last one gone: UNLISTEN later, in a task of its own, since this may run in
            # a task being cancelled (a closed event stream), where nothing should be awaited.
            if self._subscribers.remove(channel, queue) and not self._closed:
                chore = asyncio.create_task(self._sync(channel), name="bus-unlisten")
                self._chores.add(chore)
                chore.add_done_callback(self._chores.discard)

    # --- the connection --------------------------------------------------------------------

    def _dispatch(self, channel: str, payload: str) -> None:
        if channel not in self._subscribers:
            return
        try:
            message = json.loads(payload)
        except ValueError:
            log.warning("bus: a message on %r is not JSON; dropped", channel)
            return
        self._subscribers.deliver(channel, message)

    async def _read(self, conn: AsyncConnection[Any]) -> None:
        try:
            async for note in conn.notifies():
                self._dispatch(note.channel, note.payload)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not self._closed:
                log.warning("bus: listening connection lost (%s); reconnecting", exc)
        self._lost.set()

    def _start_reader(self) -> None:
        assert self._conn is not None
        self._reader = asyncio.create_task(self._read(self._conn), name="bus-reader")

    async def _stop_reader(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
            self._reader = None

    async def _connect(self) -> None:
        """(Under _control.) A new connection, listening to every subscribed channel."""
        conn = await self.db.connect()
        try:
            channels = self._subscribers.channels
            for channel in sorted(channels):
                await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        except BaseException:
            await conn.close()
            raise
        self._conn, self._listening = conn, channels
        self._lost.clear()
        self._start_reader()

    async def _disconnect(self) -> None:
        await self._stop_reader()
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None
        self._listening = set()

    async def _sync(self, channel: str) -> None:
        """LISTEN or UNLISTEN `channel` so that the connection matches its subscribers."""
        async with self._control:
            wanted = channel in self._subscribers
            conn = self._conn
            if self._closed or conn is None or self._lost.is_set() or (
                    wanted == (channel in self._listening)):
                return  # a reconnect listens to whatever is subscribed by then
            await self._stop_reader()
            statement = "LISTEN {}" if wanted else "UNLISTEN {}"
            try:
                await conn.execute(sql.SQL(statement).format(sql.Identifier(channel)))
            except asyncio.CancelledError:
                self._lost.set()  # cut short: start again from a new connection
                raise
            except Exception as exc:
                log.warning("bus: %s failed (%s); reconnecting", statement.split()[0], exc)
                self._lost.set()
                return
            if wanted:
                self._listening.add(channel)
            else:
                self._listening.discard(channel)
            self._start_reader()

    async def _supervise(self) -> None:
        delay = self._first_delay
        while True:
            await self._lost.wait()
            async with self._control:
                await self._disconnect()
                try:
                    await self._connect()
                except Exception as exc:
                    log.warning("bus: reconnecting failed (%s); again in %.1f s", exc, delay)
                else:
                    log.info("bus: listening again")
                    delay = self._first_delay
                    continue
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_delay)
