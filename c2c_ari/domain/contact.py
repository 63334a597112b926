"""Normalising the contact of a connect request to something safe to hand to Asterisk.

Numbers go through Kazoo's default E.164 converters and must then be E.164. SIP URIs are
accepted only in a plain `sip:user@host[:port]` form and only when the click-to-call's
whitelist explicitly matches them.

Strict on purpose: nothing is stripped or dropped. Separators such as spaces, dashes, dots or
brackets are refused rather than removed, because the contact becomes part of a dial string,
and a cleaned-up number would differ from what the client sent, from what the whitelist was
checked against and from what history records. Only what has been validated whole reaches
Asterisk; a client that shows `(555) 123-4567` can send `5551234567`.
"""

from __future__ import annotations

import re

from c2c_ari.domain import whitelist as _whitelist
from c2c_ari.domain.errors import ValidationFailed

FIELD = "contact"
MAX_LENGTH = 64
# Kazoo's own text for a connect without contact
REQUIRED_MESSAGE = "The contact extension for this click to call has not been set"
E164 = r"^\+[1-9][0-9]{5,14}$"
NUMBER = r"^\+?[0-9]+$"
SIP_URI = r"^sip:[A-Za-z0-9+._-]+@[A-Za-z0-9.-]+(:[0-9]{1,5})?$"

# Kazoo's default E.164 converters, tried in order; [0-9] and re.ASCII so that no other
# script's digits can slip through.
_CONVERTERS: tuple[tuple[re.Pattern[str], str, int], ...] = (
    (re.compile(r"(\+?1)?([2-9][0-9]{2}[2-9][0-9]{6})", re.ASCII), "+1", 2),
    (re.compile(r"011([0-9]{5,})", re.ASCII), "+", 1),
    (re.compile(r"00([0-9]{5,})", re.ASCII), "+", 1),
    (re.compile(r"([2-9][0-9]{7,})", re.ASCII), "+", 1),
)
_E164 = re.compile(r"\+[1-9][0-9]{5,14}", re.ASCII)
_SIP = re.compile(
    r"sip:(?P<user>[A-Za-z0-9+._-]+)@(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)"
    r"(?::(?P<port>[0-9]{1,5}))?",
    re.ASCII,
)
_DIGITS = frozenset("0123456789")


def _fail(keyword: str, message: str, **extra: object) -> ValidationFailed:
    return ValidationFailed.single(FIELD, keyword, message, **extra)


def _describe(char: str) -> str:
    """Name a character for an error message without ever echoing a control character."""
    if char.isspace():
        return f"whitespace (U+{ord(char):04X})"
    if " " < char < "\x7f":
        return f"'{char}'"
    return f"U+{ord(char):04X}"


def to_e164(number: str) -> str:
    """Apply Kazoo's default converters to a `+`/digits string (first matching rule wins)."""
    for regex, prefix, group in _CONVERTERS:
        match = regex.fullmatch(number)
        if match:
            return prefix + match.group(group)
    return number


def _normalize_number(contact: str) -> str:
    for position, char in enumerate(contact):
        if char not in _DIGITS and not (char == "+" and position == 0):
            raise _fail(
                "pattern",
                "Contact must be digits 0-9 with an optional leading '+', or a SIP URI; "
                f"found {_describe(char)} at position {position}",
                target=NUMBER,
            )
    normalized = to_e164(contact)
    if not _E164.fullmatch(normalized):
        raise _fail("pattern", "Contact is not a valid E.164 number", target=E164)
    return normalized


def _normalize_sip(contact: str, patterns: list[str] | None) -> str:
    uri = "sip:" + contact[4:]  # the scheme is case-insensitive; whitelists see it lower-case
    match = _SIP.fullmatch(uri)
    if not match or not 0 < int(match.group("port") or 5060) <= 65535:
        raise _fail(
            "pattern",
            "Contact is not a plain SIP URI: expected sip:user@host or sip:user@host:port "
            "without parameters, headers or spaces",
            target=SIP_URI,
        )
    if not patterns:
        raise _fail(
            "pattern",
            "SIP URI contacts are only accepted when the click-to-call has a whitelist entry "
            "matching them",
            target=SIP_URI,
        )
    _whitelist.check(patterns, uri)
    return uri


def normalize_contact(raw: object, *, whitelist: list[str] | None = None) -> str:
    """Return the contact as E.164 (`+` and digits) or as a whitelisted `sip:` URI.

    Raises ValidationFailed on field `contact`. A number is NOT checked against the
    whitelist here: call `whitelist.check(patterns, result)` afterwards for every contact.
    """
    if raw is None or raw == "":
        raise _fail("required", REQUIRED_MESSAGE)
    if not isinstance(raw, str):
        raise _fail("type", "Value did not match type(s): string", target="string")
    if len(raw) > MAX_LENGTH:
        raise _fail(
            "maxLength", f"String must not be more than {MAX_LENGTH} characters", target=MAX_LENGTH
        )
    if raw[:4].lower() == "sip:":
        return _normalize_sip(raw, whitelist)
    return _normalize_number(raw)
