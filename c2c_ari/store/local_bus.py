"""The bus of a store that one process owns: messages go to this process's subscribers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

# Messages a subscriber may fall behind by before the oldest are dropped: a slow reader
# (an event stream to a stalled browser) must not grow memory without bound.
QUEUE_LIMIT = 256


class Subscribers:
    """Each channel's subscribers, a bounded queue each: what every bus delivers to."""

    def __init__(self) -> None:
        self._queues: dict[str, set[asyncio.Queue[dict[str, Any]]]] = {}

    @property
    def channels(self) -> set[str]:
        """The channels someone listens to."""
        return set(self._queues)

    def __contains__(self, channel: str) -> bool:
        return channel in self._queues

    def deliver(self, channel: str, message: dict[str, Any]) -> None:
        """To every subscriber of `channel`; one that is QUEUE_LIMIT behind loses its
        oldest message."""
        for queue in self._queues.get(channel, ()):
            put_dropping_oldest(queue, message)

    def add(self, channel: str) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_LIMIT)
        self._queues.setdefault(channel, set()).add(queue)
        return queue

    def remove(self, channel: str, queue: asyncio.Queue[dict[str, Any]]) -> bool:
        """Forget `queue`; True when it was the channel's last subscriber."""
        queues = self._queues.get(channel, set())
        queues.discard(queue)
        if queues:
            return False
        self._queues.pop(channel, None)
        return True


def put_dropping_oldest(queue: asyncio.Queue[dict[str, Any]], message: dict[str, Any]) -> None:
    """Put `message` on a bounded queue; when it is full, its oldest message makes room."""
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(message)


async def messages(queue: asyncio.Queue[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    """A subscriber's messages, as they come."""
    while True:
        yield await queue.get()


class LocalBus:
    def __init__(self) -> None:
        self._subscribers = Subscribers()

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        self._subscribers.deliver(channel, message)

    @contextlib.asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        queue = self._subscribers.add(channel)
        try:
            yield messages(queue)
        finally:
            self._subscribers.remove(channel, queue)
