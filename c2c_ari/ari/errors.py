"""Exceptions of the ARI client."""

from __future__ import annotations

from typing import Any


class AriException(Exception):
    """Base class: anything the ARI client raises on purpose."""


class AriError(AriException):
    """ARI answered with a status that the call does not accept (non-2xx).

    `body` is the parsed JSON error (ARI sends `{"message": "..."}`) or the raw text.
    """

    def __init__(self, status: int, method: str, path: str, body: Any = None) -> None:
        self.status = status
        self.method = method
        self.path = path
        self.body = body
        super().__init__(f"ARI {method} {path} answered {status}: {self.message}")

    @property
    def message(self) -> str:
        if isinstance(self.body, dict) and "message" in self.body:
            return str(self.body["message"])
        return "" if self.body is None else str(self.body)

    @property
    def not_found(self) -> bool:
        return self.status == 404


class AriUnavailable(AriException):
    """No answer from ARI: connection refused or reset, or a request timed out.

    Raised once the retry deadline (if the call is retried at all) has passed.
    """

    def __init__(self, method: str, path: str, reason: str, *, reached: bool = True) -> None:
        self.method = method
        self.path = path
        self.reason = reason
        # False when no attempt ever reached Asterisk (refused connections): then nothing
        # was done, and the request may go to another Asterisk.
        self.reached = reached
        super().__init__(f"ARI unavailable for {method} {path}: {reason}")
