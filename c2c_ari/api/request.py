"""Reading untrusted request bodies and query parameters, each failure a Kazoo 4xx."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from c2c_ari.api.errors import BadRequest
from c2c_ari.domain.errors import ValidationFailed

JSON_TYPES = ("application/json",)
FORM_TYPE = "application/x-www-form-urlencoded"


def _is_json_type(content_type: str) -> bool:
    return content_type in JSON_TYPES or content_type.endswith("+json")


def _invalid_json(message: str) -> BadRequest:
    return BadRequest(
        400, "invalid request body",
        {"json": {"invalid": {"message": message, "target": "body"}}},
    )


async def read_envelope(request: web.Request, *, allow_form: bool = False) -> dict[str, Any]:
    """The request's `data` object; an empty body is an empty object.

    curl's `-d` sends JSON labelled as a form (Kazoo's own examples do this), so a form
    body that parses as JSON is taken as JSON. Real forms are accepted only where
    `allow_form` says so (connect)."""
    raw = await request.read()  # aiohttp enforces client_max_size here (413)
    if not raw.strip():
        return {}
    content_type = request.content_type
    if not (_is_json_type(content_type) or content_type in (FORM_TYPE, "application/octet-stream")):
        raise BadRequest(
            415, "unsupported_media_type",
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
        body = json.loads(text)
    except (ValueError, RecursionError) as exc:
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


def query_int(
    request: web.Request, name: str, *, minimum: int | None = None, maximum: int | None = None
) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    if not raw.lstrip("-").isdigit() or len(raw) > 20 or not raw.isascii():
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
