"""Whitelist matching with Kazoo's semantics, on RE2 so no pattern can take super-linear time.

Kazoo searches each whitelist entry (unanchored) in the normalised contact and lets the call
through on the first match; an empty or absent whitelist allows every contact.
"""

from __future__ import annotations

import functools
from typing import Any

import re2

from c2c_ari.domain.errors import ValidationFailed

WHITELIST_MESSAGE = "Contact doesn't match whitelist"

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a bad user pattern is a 400, not a line on stderr


def _printable(text: str) -> str:
    """Escape control characters so an error message never carries them raw."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def compile_regex(pattern: str) -> Any:
    """Compile `pattern` with RE2; raise ValueError with RE2's reason when it cannot."""
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "invalid pattern"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise ValueError(_printable(str(reason))) from None
    except (UnicodeError, TypeError) as exc:
        # lone surrogates from JSON escapes cannot be encoded for RE2
        raise ValueError(_printable(str(exc))) from None


@functools.lru_cache(maxsize=1024)
def _cached(pattern: str) -> Any | None:
    try:
        return compile_regex(pattern)
    except ValueError:
        return None


def allows(patterns: list[str] | None, contact: str) -> bool:
    """True when the whitelist is empty/None or any entry is found in `contact`.

    An entry that does not compile (stored before save-time validation existed) or is
    not a string simply never matches: the call is refused, never an exception.
    """
    if not patterns:
        return True
    for pattern in patterns:
        if not isinstance(pattern, str):
            continue
        regex = _cached(pattern)
        if regex is None:
            continue
        try:
            if regex.search(contact) is not None:
                return True
        except UnicodeError:
            return False
    return False


def check(patterns: list[str] | None, contact: str) -> None:
    """Raise Kazoo's 400 `Contact doesn't match whitelist` unless `allows(...)`."""
    if not allows(patterns, contact):
        raise ValidationFailed(
            {"contact": {"whitelist": {"message": WHITELIST_MESSAGE, "value": contact}}},
            message=WHITELIST_MESSAGE,
        )
