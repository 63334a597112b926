"""Whitelist matching with Kazoo's semantics, on RE2, with every pattern's cost bounded.

Kazoo searches each whitelist entry (unanchored) in the normalised contact and lets the call
through on the first match; an empty or absent whitelist allows every contact.

Whitelist entries come from clients, so both halves of their cost are bounded here:
- matching: RE2 runs in time linear in the contact (at most 64 characters);
- compiling: RE2's own cost grows with the program a pattern compiles to (`\\pL{300}` took
  95 ms), so each pattern gets a memory budget (`MAX_MEM`, RE2's `max_mem`): a pattern whose
  program would not fit is refused at once, which bounds both the time to compile it and the
  memory it keeps. Patterns are compiled in Latin-1 mode: contacts are ASCII (`+` and digits,
  or a plain SIP URI), so Unicode classes need not expand into UTF-8 automata, which is what
  made `\\pL` expensive. A whitelist as a whole has a budget too (`MAX_PROGRAM_TOTAL`).

Compiled patterns (and the reasons failed ones were refused) are kept in one cache bounded
in bytes; every other module asks `compile_pattern`.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

import re2

from c2c_ari.domain.errors import ValidationFailed

WHITELIST_MESSAGE = "Contact doesn't match whitelist"
# RE2's memory budget for one pattern: program, reverse program and DFA states together. Any
# sensible pattern for a number of at most 64 characters needs a few hundred instructions;
# 64 KiB allows several thousand and keeps a refusal under a millisecond.
MAX_MEM = 64 * 1024
# The instructions of every entry of one whitelist together (100 entries of ~50 each is far
# more than any real list); keeps a document's patterns from filling the cache on their own.
MAX_PROGRAM_TOTAL = 20_000
# CPU seconds compiling one whitelist may take (a real one takes well under a millisecond).
COMPILE_BUDGET = 0.05
# The compiled-pattern cache: each entry is charged its whole RE2 budget, which is what it
# may grow to, plus its text.
CACHE_BYTES = 32 * 1024 * 1024

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a bad user pattern is a 400, not a line on stderr
_OPTIONS.max_mem = MAX_MEM
_OPTIONS.encoding = re2.Options.Encoding.LATIN1


def _printable(text: str) -> str:
    """Escape control characters so an error message never carries them raw."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


class _PatternCache:
    """Least recently used compiled patterns and failures, at most `limit` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._entries: OrderedDict[str, tuple[Any, int]] = OrderedDict()

    def get(self, pattern: str) -> Any | None:
        entry = self._entries.get(pattern)
        if entry is None:
            return None
        self._entries.move_to_end(pattern)
        return entry[0]

    def put(self, pattern: str, value: Any, cost: int) -> None:
        self._entries[pattern] = (value, cost)
        self.used += cost
        while self.used > self.limit and self._entries:
            _pattern, (_value, old_cost) = self._entries.popitem(last=False)
            self.used -= old_cost

    def clear(self) -> None:
        self._entries.clear()
        self.used = 0


_CACHE = _PatternCache(CACHE_BYTES)


def _unicode_class(pattern: str) -> bool:
    """True if the pattern uses a Unicode class (\\p.. or \\P..)."""
    escaped = False
    for char in pattern:
        if escaped:
            if char in "pP":
                return True
            escaped = False
        elif char == "\\":
            escaped = True
    return False


def _compile(pattern: str) -> Any:
    if not pattern.isascii() or not pattern.isprintable():
        bad = next(c for c in pattern if not (c.isascii() and c.isprintable()))
        raise ValueError(
            f"only printable ASCII characters are allowed (found U+{ord(bad):04X}): contacts "
            "are ASCII, write other bytes as \\x{..}")
    if _unicode_class(pattern):
        # Meaningless for an ASCII contact, and the costliest thing to compile: with (?i),
        # one \p{Any} took 25 ms, and a whitelist of them minutes of the event loop.
        raise ValueError("Unicode classes (\\p, \\P) are not allowed: contacts are ASCII, "
                         "use [0-9], [A-Za-z] and the like")
    try:
        # Through the module's private constructor: re2.compile would also keep the result
        # in the module's own unbounded-in-bytes cache of 128 entries.
        return re2._Regexp(pattern.encode("ascii"), _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "invalid pattern"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise ValueError(_printable(str(reason))) from None


def compile_pattern(pattern: str) -> Any:
    """The compiled pattern; ValueError with RE2's reason when it cannot be used. Both
    answers are remembered, so a pattern is compiled once however often it is checked."""
    cached = _CACHE.get(pattern)
    if cached is None:
        try:
            cached = _compile(pattern)
            cost = MAX_MEM
        except ValueError as exc:
            cached = exc
            cost = 256
        _CACHE.put(pattern, cached, cost + 2 * len(pattern))
    if isinstance(cached, ValueError):
        raise ValueError(str(cached))
    return cached


def program_size(pattern: str) -> int:
    """Instructions of the compiled pattern (0 for one that does not compile)."""
    try:
        return int(compile_pattern(pattern).programsize)
    except ValueError:
        return 0


def check_budget(patterns: list[Any] | None) -> None:
    """Refuse (400 on `whitelist`) a whitelist whose entries compile to more than
    MAX_PROGRAM_TOTAL instructions together, or take more than COMPILE_BUDGET seconds of CPU
    to compile: either bound alone keeps a request's work small. Stops at the first entry
    past either, so a hostile list costs no more than the budget. Entries that are not
    strings or do not compile are left to the schema, which says which and why."""
    total, started = 0, time.thread_time()
    for pattern in patterns or ():
        if not isinstance(pattern, str):
            continue
        total += program_size(pattern)
        if total > MAX_PROGRAM_TOTAL:
            raise ValidationFailed.single(
                "whitelist", "maxProgramSize",
                f"The whitelist's patterns compile to more than {MAX_PROGRAM_TOTAL} RE2 "
                "instructions together: simplify them", target=MAX_PROGRAM_TOTAL)
        if time.thread_time() - started > COMPILE_BUDGET:
            raise ValidationFailed.single(
                "whitelist", "maxCompileTime",
                "The whitelist's patterns take too long to compile: simplify them",
                target=COMPILE_BUDGET)


def allows(patterns: list[str] | None, contact: str) -> bool:
    """True when the whitelist is empty/None or any entry is found in `contact`.

    An entry that does not compile (stored before save-time validation existed) or is
    not a string simply never matches: the call is refused, never an exception.
    """
    if not patterns:
        return True
    if not contact.isascii():
        return False
    text = contact.encode("ascii")
    for pattern in patterns:
        if not isinstance(pattern, str):
            continue
        try:
            regex = compile_pattern(pattern)
        except ValueError:
            continue
        if regex.search(text) is not None:
            return True
    return False


def check(patterns: list[str] | None, contact: str) -> None:
    """Raise Kazoo's 400 `Contact doesn't match whitelist` unless `allows(...)`."""
    if not allows(patterns, contact):
        raise ValidationFailed(
            {"contact": {"whitelist": {"message": WHITELIST_MESSAGE, "value": contact}}},
            message=WHITELIST_MESSAGE,
        )
