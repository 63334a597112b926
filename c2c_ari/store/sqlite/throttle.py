"""A sliding-window rate limiter: at most `limit` attempts per key in any `window` seconds."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable


class Throttle:
    """Counts attempts per key (e.g. a click-to-call id) over a sliding window.

    Memory stays bounded: a key keeps at most `limit` timestamps, keys whose newest
    attempt has left the window are dropped by a sweep every `sweep_every` calls, and at
    most `max_keys` keys are kept (the least recently used goes first), so a caller with
    many addresses cannot grow it without end. Not thread-safe; meant for one event loop.
    """

    def __init__(
        self,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        *,
        sweep_every: int = 1024,
        max_keys: int = 50_000,
    ) -> None:
        self.window = window
        self._clock = clock
        self._sweep_every = max(1, sweep_every)
        self._calls = 0
        self._max_keys = max_keys
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()

    def __len__(self) -> int:
        """Number of keys currently tracked."""
        return len(self._hits)

    def hit(self, key: str, limit: int | None) -> float | None:
        """Record an attempt; None if allowed, else seconds until one would be allowed.

        A refused attempt is not recorded, so hammering does not extend the wait.
        `limit` None means unlimited (nothing is stored); a limit below 1 refuses all.
        """
        if limit is None:
            return None
        now = self._clock()
        self._calls += 1
        if self._calls % self._sweep_every == 0:
            self._sweep(now)
        if limit < 1:
            return self.window
        stamps = self._hits.get(key)
        if stamps is None:
            stamps = self._hits[key] = deque()
            if len(self._hits) > self._max_keys:
                self._hits.popitem(last=False)
        else:
            self._hits.move_to_end(key)
        cutoff = now - self.window
        while stamps and stamps[0] <= cutoff:
            stamps.popleft()
        # the limit may have been lowered since the last attempt: only the newest count
        while len(stamps) > limit:
            stamps.popleft()
        if len(stamps) >= limit:
            return stamps[0] + self.window - now
        stamps.append(now)
        return None

    def _sweep(self, now: float) -> None:
        cutoff = now - self.window
        stale = [key for key, stamps in self._hits.items() if not stamps or stamps[-1] <= cutoff]
        for key in stale:
            del self._hits[key]


class MemoryThrottle:
    """The store's throttle for one process: a Throttle per bucket, in memory. Exact, since
    one process owns the store. Buckets apart, so that one with many keys (client addresses)
    can never evict another's (click-to-calls)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[tuple[str, float], Throttle] = {}

    async def hit(self, bucket: str, key: str, limit: int, window: float) -> float | None:
        throttle = self._buckets.get((bucket, window))
        if throttle is None:
            throttle = self._buckets[(bucket, window)] = Throttle(window, self._clock)
        return throttle.hit(key, limit)
