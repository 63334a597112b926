"""The hostile requests of hostile.py: what each sends, built so that no two requests of a
run share a whitelist pattern (the service's compiled-pattern caches never help).

Whitelist patterns: RE2's cost is paid when a pattern is compiled, and grows with the program
it compiles to and with what the parser must expand (Unicode classes, case folding). Found by
timing candidates with google-re2 (see bench/README.md, "hostile.py"):
- `\\pL{300}`: 127 ms each in UTF-8 mode (the before service); `\\pL{446}` is the largest
  `\\pL{n}` under RE2's default 8 MiB budget (176 ms), `\\pL{447}` just over it (refused after
  40 ms); `\\pL{415}` / `\\pL{416}` are the same edge for a 64 KiB budget in Latin-1 mode;
- `(?i)\\p{Any}`: about 25 ms for each `\\p{Any}` in Latin-1 mode with case folding (0.02 ms
  in UTF-8 mode), and it compiles to almost nothing, so no program budget refuses it: 72 of
  them fit in 512 characters, about 1.9 s per pattern.
A pattern is made unique by splitting a counted repetition (`x{300}` as `x{a}x{b}x{c}`),
which compiles to the same program, or by which of the first `\\p{Any}` are `\\P{Any}`.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_BODY = 64 * 1024  # the service's default max_body_bytes
ENTRIES = 100  # the schema's maxItems for a whitelist
BOMB_BYTES = 60_000_000  # what the gzip bodies inflate to
# Nesting of the deep documents (their `data` object is level 1): 977, and 975, where the
# service before the hardening answered 500 (its JSON encoder ran out of recursion; 976 and
# deeper its JSON parser refused, 974 and less it stored).
DEEP_LEVELS = (977, 975)
WIDE_KEYS = 4_000  # unknown keys of the wide document
WIDE_REPEATS = 400  # wide documents created one after another


@dataclass
class Request:
    """One request: `path` is "collection" (the account's click-to-calls) or "api_auth"."""

    path: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    auth: bool = True
    method: str = "PUT"


@dataclass(frozen=True)
class Attack:
    """A hostile request, or `count` of them in a row: `make(n)` makes the attack's n-th
    request (n counts every request of the attack in a run of the bench, so each is new)."""

    name: str
    make: Callable[[int], Request]
    count: int = 1


def _split(atom: str, total: int, unique: int) -> str:
    """`atom{total}` written as three counted parts chosen by `unique`: the same program,
    another text."""
    first = 1 + unique % 97
    second = 1 + unique // 97
    third = total - first - second
    if third < 1:
        raise ValueError(f"{atom}{{{total}}} cannot be split {unique} ways")
    return f"{atom}{{{first}}}{atom}{{{second}}}{atom}{{{third}}}"


def _fold_any(unique: int) -> str:
    """`(?i)` and 72 `\\p{Any}` (508 characters), the first 14 `\\p` or `\\P` as the bits of
    `unique` say."""
    if unique >= 1 << 14:
        raise ValueError(f"(?i)\\p{{Any}} cannot be written {unique} ways")
    parts = ["\\P{Any}" if unique >> bit & 1 else "\\p{Any}" for bit in range(14)]
    return "(?i)" + "".join(parts) + "\\p{Any}" * 58


def _fold_non_word(unique: int) -> str:
    """`(?i)` and 200 `\\W` or `\\w` (404 characters: 100 of them fill a 64 KiB body as
    JSON), the first 14 chosen by the bits of
    `unique`: the costliest pattern without a Unicode class found so far (case folding of a
    negated class, ~1 ms each in Latin-1 mode)."""
    if unique >= 1 << 14:
        raise ValueError(f"(?i)\\W cannot be written {unique} ways")
    parts = ["\\w" if unique >> bit & 1 else "\\W" for bit in range(14)]
    return "(?i)" + "".join(parts) + "\\W" * 186


def _document(data: dict[str, object]) -> bytes:
    body = json.dumps({"data": data}, separators=(",", ":")).encode()
    if len(body) > MAX_BODY:
        raise ValueError(f"a hostile body of {len(body)} bytes is over {MAX_BODY}")
    return body


def _whitelist(pattern: Callable[[int], str]) -> Callable[[int], Request]:
    def make(n: int) -> Request:
        entries = [pattern(n * ENTRIES + k) for k in range(ENTRIES)]
        return Request("collection", _document(
            {"name": "Hostile", "extension": "1001", "whitelist": entries}))
    return make


def _gzip(payload: bytes) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31, 9)  # 31: a gzip header
    packed = packer.compress(payload) + packer.flush()
    if len(packed) >= MAX_BODY:
        raise ValueError(f"the gzip body is {len(packed)} bytes, not under {MAX_BODY}")
    return packed


def _bomb(path: str, envelope: bytes, auth: bool) -> Callable[[int], Request]:
    # Valid JSON all along: the envelope, then spaces up to BOMB_BYTES.
    packed = _gzip(envelope + b" " * (BOMB_BYTES - len(envelope)))

    def make(_n: int) -> Request:
        return Request(path, packed, {"Content-Encoding": "gzip"}, auth=auth)
    return make


def _wide(n: int) -> Request:
    data: dict[str, object] = {"name": f"Wide {n}", "extension": "1001"}
    data.update({f"k{key:07d}": f"{(key + n) % 100:02d}" for key in range(WIDE_KEYS)})
    return Request("collection", _document(data))


def _deep(levels: int) -> Callable[[int], Request]:
    def make(n: int) -> Request:
        inner = f'{{"n": {n}}}'
        nested = '{"a": ' * (levels - 2) + inner + "}" * (levels - 2)
        text = '{"data": {"name": "Deep", "extension": "1001", "nested": ' + nested + "}}"
        return Request("collection", text.encode())
    return make


def _plain(n: int) -> Request:
    return Request("collection", _document(
        {"name": f"Plain {n}", "extension": "1001", "whitelist": ["^\\+1"]}))


def attacks() -> list[Attack]:
    """Every hostile request, in the order they run; the first is a plain request for
    reference."""
    api_key = "0" * 64  # well-formed, belongs to no account
    return [
        Attack("plain PUT create (reference, x50)", _plain, count=50),
        Attack("whitelist 100 x \\pL{300}", _whitelist(lambda u: _split("\\pL", 300, u))),
        Attack("whitelist 100 x [\\x{0}-\\x{10ffff}]{1000}",
               _whitelist(lambda u: _split("[\\x{0}-\\x{10ffff}]", 1000, u))),
        Attack("whitelist 100 x (\\w{1000}){1}",
               _whitelist(lambda u: "(" + _split("\\w", 1000, u) + "){1}")),
        Attack("whitelist 100 x .{1000}x", _whitelist(lambda u: _split(".", 1000, u) + "x")),
        Attack("whitelist 100 x \\pL{415} (64 KiB: under)",
               _whitelist(lambda u: _split("\\pL", 415, u))),
        Attack("whitelist 100 x \\pL{416} (64 KiB: over)",
               _whitelist(lambda u: _split("\\pL", 416, u))),
        Attack("whitelist 100 x \\pL{446} (8 MiB: under)",
               _whitelist(lambda u: _split("\\pL", 446, u))),
        Attack("whitelist 100 x \\pL{447} (8 MiB: over)",
               _whitelist(lambda u: _split("\\pL", 447, u))),
        Attack("whitelist 100 x \\pL{1000} (too large)",
               _whitelist(lambda u: _split("\\pL", 1000, u))),
        Attack("whitelist 100 x (?i)\\p{Any}x72", _whitelist(_fold_any)),
        Attack("whitelist 100 x (?i)\\Wx200", _whitelist(_fold_non_word)),
        Attack("gzip 60 MB -> PUT /v2/api_auth, no auth",
               _bomb("api_auth", b'{"data": {"api_key": "' + api_key.encode() + b'"}}',
                     auth=False)),
        Attack("gzip 60 MB -> PUT click-to-call",
               _bomb("collection", b'{"data": {"name": "Bomb", "extension": "1001"}}',
                     auth=True)),
        Attack(f"{WIDE_KEYS:,} unknown keys, 64 KiB, x{WIDE_REPEATS}", _wide,
               count=WIDE_REPEATS),
        *(Attack(f"document nested {levels} levels", _deep(levels))
          for levels in DEEP_LEVELS),
    ]
