"""Exceptions the domain raises; the HTTP layer maps each to one Kazoo error envelope."""

from __future__ import annotations

from typing import Any

# Raised by the store, answered by the HTTP layer: re-exported so that the HTTP layer needs
# nothing of the store's.
from c2c_ari.store.errors import StoreUnavailable as StoreUnavailable

# Kazoo's validation error shape: {field: {keyword: {"message": ..., "target"/"value": ...}}}
FieldErrors = dict[str, dict[str, dict[str, Any]]]


class DomainError(Exception):
    """Base class: something the client asked for cannot be done."""


class ValidationFailed(DomainError):
    """The request or document breaks a rule; `errors` is Kazoo's per-field error object."""

    def __init__(self, errors: FieldErrors, message: str = "validation error") -> None:
        super().__init__(message)
        self.errors = errors
        self.message = message

    @classmethod
    def single(
        cls, field: str, keyword: str, message: str, **extra: Any
    ) -> ValidationFailed:
        """One error on one field, e.g. `single("contact", "required", "Field is required")`."""
        return cls({field: {keyword: {"message": message, **extra}}})


class NotFound(DomainError):
    """The id does not exist for this account (or belongs to another one)."""

    def __init__(self, ident: str) -> None:
        super().__init__(ident)
        self.ident = ident


class RevisionConflict(DomainError):
    """`If-Match` named a revision that is no longer current."""

    def __init__(self, current: str) -> None:
        super().__init__(current)
        self.current = current


class Throttled(DomainError):
    """Too many connects for one click-to-call in the current window."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


class Unauthorized(DomainError):
    """No valid credentials."""


class CallsUnavailable(DomainError):
    """No call placer is connected (or it is full), so a valid connect cannot be carried
    out now; `retry_after` seconds is when trying again makes sense, if known."""

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Forbidden(DomainError):
    """The caller is known (or the request is anonymous) but may not do this."""

    def __init__(self, message: str, cause: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.cause = cause


class LimitReached(DomainError):
    """An account limit (a setting) would be exceeded."""

    def __init__(self, message: str, limit: int) -> None:
        super().__init__(message)
        self.message = message
        self.limit = limit
