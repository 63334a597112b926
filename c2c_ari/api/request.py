"""Reading untrusted request bodies and query parameters, each failure a Kazoo 4xx.

A body is bounded before anything trusts it: at most `max_body_bytes` on the wire (aiohttp
refuses more with 413), compressed bodies inflated by us only up to the same size (aiohttp's
own decompression is switched off in app.py, because it inflates before any limit applies),
and JSON parsed strictly (`strict_json`): no NaN or Infinity, numbers that every JSON reader
agrees on, no lone UTF-16 surrogates, and at most `MAX_DEPTH` levels of nesting.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from typing import Any, NoReturn
from urllib.parse import parse_qsl

from aiohttp import web

from c2c_ari.api.context import context
from c2c_ari.api.errors import BadRequest, KazooError
from c2c_ari.domain.errors import ValidationFailed

JSON_TYPES = ("application/json",)
FORM_TYPE = "application/x-www-form-urlencoded"
# Nesting of the whole body, envelope included ({"data": {...}} is 2). Kazoo's documents are
# shallow (custom_sip_headers.out.<name> is the deepest at 4); 32 leaves room for unknown keys
# and keeps every walk over a document far from Python's recursion limit.
MAX_DEPTH = 32
# Integers must be exact in every JSON reader, browsers included (IEEE doubles): ±(2^53 - 1).
MAX_SAFE_INTEGER = 2**53 - 1
# Content-Encoding -> zlib's wbits for it (16 + 15: a gzip header; 15: a zlib header).
_ENCODINGS = {"gzip": 31, "x-gzip": 31, "deflate": 15}
_SURROGATE = re.compile("[\ud800-\udfff]")


def _is_json_type(content_type: str) -> bool:
    return content_type in JSON_TYPES or content_type.endswith("+json")


def _invalid_json(message: str) -> BadRequest:
    return BadRequest(
        KazooError.INVALID_BODY,
        {"json": {"invalid": {"message": message, "target": "body"}}},
    )


def _too_large() -> BadRequest:
    return BadRequest(KazooError.TOO_LARGE,
                      {"message": "the request body is too large"})


def _inflate(raw: bytes, encoding: str, limit: int) -> bytes:
    """The body decoded from `encoding`, refusing it (413) as soon as it would exceed
    `limit`: a small compressed body never becomes a large one in memory."""
    wbits = _ENCODINGS.get(encoding)
    if wbits is None:
        raise BadRequest(
            KazooError.UNSUPPORTED_MEDIA_TYPE,
            {"message": "Content-Encoding must be identity, gzip or deflate",
             "content_encoding": encoding[:64]},
        )
    inflater = zlib.decompressobj(wbits)
    try:
        body = inflater.decompress(raw, limit + 1)
    except zlib.error:
        raise _invalid_json(f"body is not valid {encoding} data") from None
    if len(body) > limit or inflater.unconsumed_tail:
        raise _too_large()
    if not inflater.eof:
        raise _invalid_json(f"body is not valid {encoding} data: it ends early")
    return body


async def read_body(request: web.Request, limit: int) -> bytes:
    """The request body as sent, decompressed when it says it is compressed."""
    raw = await request.read()  # aiohttp enforces client_max_size here (413)
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding in ("", "identity") or not raw:
        return raw
    return _inflate(raw, encoding, limit)


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _safe_int(text: str) -> int:
    # Python would also parse 4,000 digits (its own limit); nothing here needs more than 16.
    if len(text.lstrip("-")) > 16 or abs(value := int(text)) > MAX_SAFE_INTEGER:
        raise ValueError(f"integer {text[:40]} is out of range (at most ±{MAX_SAFE_INTEGER})")
    return value


def _check_tree(value: Any) -> None:
    """Refuse nesting deeper than MAX_DEPTH and strings or keys holding a lone surrogate
    (a JSON escape such as \\ud800 that is half of a pair): neither can be stored or sent
    on as UTF-8. Iterative, so no document can exhaust the stack."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            if not node.isascii() and _SURROGATE.search(node):
                raise ValueError("a string holds a lone UTF-16 surrogate")
            continue
        if not isinstance(node, dict | list):
            continue
        if depth > MAX_DEPTH:
            raise ValueError(f"nesting deeper than {MAX_DEPTH} levels")
        if isinstance(node, dict):
            stack.extend((key, depth) for key in node)
            stack.extend((item, depth + 1) for item in node.values())
        else:
            stack.extend((item, depth + 1) for item in node)


def strict_json(text: str) -> Any:
    """Parse `text` as JSON that every reader of ours (SQLite, the encoder, browsers) can
    take back unchanged; ValueError with a reason otherwise."""
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float,
                           parse_int=_safe_int)
    except RecursionError:
        raise ValueError(f"nesting deeper than {MAX_DEPTH} levels") from None
    _check_tree(value)
    return value


async def read_envelope(request: web.Request, *, allow_form: bool = False) -> dict[str, Any]:
    """The request's `data` object; an empty body is an empty object.

    curl's `-d` sends JSON labelled as a form (Kazoo's own examples do this), so a form
    body that parses as JSON is taken as JSON. Real forms are accepted only where
    `allow_form` says so (connect)."""
    raw = await read_body(request, context(request).settings.max_body_bytes)
    if not raw.strip():
        return {}
    content_type = request.content_type
    if not (_is_json_type(content_type) or content_type in (FORM_TYPE, "application/octet-stream")):
        raise BadRequest(
            KazooError.UNSUPPORTED_MEDIA_TYPE,
            {"message": "send application/json"
                        + (" or application/x-www-form-urlencoded" if allow_form else ""),
             "content_type": content_type[:128]},
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _invalid_json("body is not UTF-8") from None
    if content_type == FORM_TYPE and not text.lstrip().startswith("{"):
        if not allow_form:
            raise _invalid_json("body must be a JSON object like {\"data\": {...}}")
        return _form_data(text)
    try:
        body = strict_json(text)
    except ValueError as exc:
        raise _invalid_json(f"body is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(body, dict):
        raise _invalid_json("body must be a JSON object like {\"data\": {...}}")
    data = body.get("data", {})
    if not isinstance(data, dict):
        raise ValidationFailed.single(
            "data", "type", "Value is not of type object", target="object"
        )
    return data


def _form_data(text: str) -> dict[str, Any]:
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=False,
                          max_num_fields=100)
    except ValueError:
        raise _invalid_json("form body has too many fields") from None
    return dict(pairs)


# --- query strings: one strict reader for every integer ---------------------------------------

_INTEGER = re.compile(r"-?[0-9]{1,18}")


def parse_query_int(
    name: str, raw: str, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    """An integer spelt in ASCII digits with an optional minus sign (at most 18 digits, so
    within SQLite's and PostgreSQL's 64-bit integers), inside [minimum, maximum]; else 400."""
    if _INTEGER.fullmatch(raw) is None:
        raise ValidationFailed.single(name, "type", "Value is not of type integer",
                                      target="integer")
    value = int(raw)
    if minimum is not None and value < minimum:
        raise ValidationFailed.single(name, "minimum", f"Value must be at least {minimum}",
                                      target=minimum)
    if maximum is not None and value > maximum:
        raise ValidationFailed.single(name, "maximum", f"Value must be at most {maximum}",
                                      target=maximum)
    return value


def query_int(
    request: web.Request, name: str, *, minimum: int | None = None, maximum: int | None = None
) -> int | None:
    raw = request.query.get(name)
    return None if raw is None else parse_query_int(name, raw, minimum=minimum, maximum=maximum)


def parse_bool(name: str, value: object) -> bool:
    """Booleans from JSON or from a query string / form ("true"/"false")."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValidationFailed.single(name, "type", "Value is not of type boolean",
                                  target="boolean")


def query_bool(request: web.Request, name: str) -> bool | None:
    raw = request.query.get(name)
    return None if raw is None else parse_bool(name, raw)
