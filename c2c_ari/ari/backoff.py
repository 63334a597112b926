"""Capped exponential backoff with jitter, shared by REST retries and websocket reconnects."""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """Delays that start at `initial`, grow by `factor` per attempt and stop growing at `maximum`.

    Each delay is scaled by a random factor in [1 - jitter, 1] so that many clients that lost
    Asterisk at the same moment (a restart) do not all come back in the same instant.
    """

    def __init__(
        self,
        initial: float = 0.2,
        maximum: float = 5.0,
        factor: float = 2.0,
        jitter: float = 0.5,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if initial <= 0 or maximum < initial or factor < 1 or not 0 <= jitter <= 1:
            raise ValueError("need 0 < initial <= maximum, factor >= 1, 0 <= jitter <= 1")
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.jitter = jitter
        self._rand = rand
        self.attempts = 0

    def ceiling(self) -> float:
        """The delay before jitter for the next attempt."""
        # next() stops counting attempts once the cap is reached, so the power stays small.
        return min(self.maximum, self.initial * self.factor**self.attempts)

    def next(self) -> float:
        """The delay to wait before the next attempt; advances the attempt count."""
        ceiling = self.ceiling()
        if ceiling < self.maximum:
            self.attempts += 1
        return ceiling * (1.0 - self.jitter * self._rand())

    def reset(self) -> None:
        """Back to the initial delay, e.g. after a connection succeeded."""
        self.attempts = 0
