"""`GET /v2/openapi.json` and `GET /v2/docs`: the API described as OpenAPI 3.1, built at run time.

The paths come from the routes the application registers (each must have an entry in
`OPERATIONS`, which a test keeps in step with the router), and the document schemas are the
loaded files of `schemas/`, embedded under `components/schemas` with only what JSON Schema
2020-12 needs changed: `$id`/`$schema` dropped, `definitions` renamed `$defs`, `$ref`s pointed
into the document, and the keywords draft-07 split or renamed (`items` arrays,
`dependencies`) carried over.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from aiohttp import web

from c2c_ari import __version__
from c2c_ari.api.context import context
from c2c_ari.api.errors import KazooError

OPENAPI_PATH = "/v2/openapi.json"
DOCS_PATH = "/v2/docs"
COMPONENTS = "#/components/schemas/"
_METHODS = ("get", "put", "post", "patch", "delete", "options", "head", "trace")

# --- draft-07 documents -> JSON Schema 2020-12 (OpenAPI 3.1's dialect) -----------------------

# Keywords whose value is one subschema, a list of them, or a map of name -> subschema.
_ONE = ("additionalProperties", "propertyNames", "contains", "not", "if", "then", "else",
        "additionalItems", "items")
_MANY = ("allOf", "anyOf", "oneOf")
_MAP = ("properties", "patternProperties", "definitions", "$defs")
# What draft-07 honours beside a `$ref` (it ignores every other sibling; 2020-12 would not).
_ANNOTATIONS = frozenset({"$ref", "title", "description", "default", "examples", "$comment",
                          "readOnly", "writeOnly", "deprecated"})


def _pointer(segments: list[str]) -> str:
    return "".join("/" + s.replace("~", "~0").replace("/", "~1") for s in segments)


def _rewrite_fragment(fragment: str) -> str:
    """A draft-07 JSON pointer into a schema, as a pointer into its 2020-12 translation."""
    if not fragment.startswith("/"):
        return fragment  # a plain-name anchor: left as it is
    segments = [s.replace("~1", "/").replace("~0", "~") for s in fragment[1:].split("/")]
    out: list[str] = []
    i = 0
    while i < len(segments):
        seg = segments[i]
        if seg in _MAP and i + 1 < len(segments):
            out += ["$defs" if seg == "definitions" else seg, segments[i + 1]]
            i += 2
            continue
        if seg == "items" and i + 1 < len(segments) and segments[i + 1].isdigit():
            out += ["prefixItems", segments[i + 1]]
            i += 2
            continue
        if seg == "additionalItems":
            seg = "items"
        out.append(seg)
        i += 1
    return _pointer(out)


def _rewrite_ref(ref: str, current: str, names: set[str]) -> str:
    base, _, fragment = ref.partition("#")
    target = current if base == "" else base.removesuffix(".json")
    if target not in names:
        return ref  # not one of ours: left for the reader
    return COMPONENTS + target + _rewrite_fragment(fragment)


def adapt_schema(node: Any, current: str, names: set[str]) -> Any:
    """One draft-07 schema (or subschema) of the document `current`, as 2020-12."""
    if isinstance(node, bool) or not isinstance(node, dict):
        return copy.deepcopy(node)
    if "$ref" in node:
        node = {k: v for k, v in node.items() if k in _ANNOTATIONS}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("$schema", "$id"):
            continue
        if key == "$ref":
            out[key] = _rewrite_ref(value, current, names)
        elif key in _MAP:
            out["$defs" if key == "definitions" else key] = {
                name: adapt_schema(sub, current, names) for name, sub in value.items()}
        elif key in _MANY:
            out[key] = [adapt_schema(sub, current, names) for sub in value]
        elif key == "items" and isinstance(value, list):
            out["prefixItems"] = [adapt_schema(sub, current, names) for sub in value]
            if "additionalItems" in node:
                out["items"] = adapt_schema(node["additionalItems"], current, names)
        elif key == "additionalItems":
            if isinstance(node.get("items"), list):
                continue  # became `items` above
            # Without an `items` array, draft-07 ignores additionalItems.
        elif key == "dependencies":
            for name, dep in value.items():
                if isinstance(dep, list):
                    out.setdefault("dependentRequired", {})[name] = list(dep)
                else:
                    out.setdefault("dependentSchemas", {})[name] = adapt_schema(
                        dep, current, names)
        elif key in _ONE:
            out[key] = adapt_schema(value, current, names)
        else:
            out[key] = copy.deepcopy(value)  # assertions and annotations: unchanged
    return out


def component_schemas(schemas: dict[str, dict[str, Any]]) -> dict[str, Any]:
    names = set(schemas)
    return {name: adapt_schema(doc, name, names) for name, doc in sorted(schemas.items())}


# --- the envelope, errors and shared pieces ----------------------------------------------------


def _ref(name: str) -> dict[str, str]:
    return {"$ref": COMPONENTS + name}


_STRING = {"type": "string"}
_ENVELOPE_COMMON: dict[str, Any] = {
    "auth_token": {"type": "string", "description": "The token the request was made with."},
    "node": {"type": "string", "description": "A digest of the answering node's name."},
    "request_id": {"type": "string", "maxLength": 64,
                   "description": "The client's X-Request-ID when safe to echo, else a new one."},
    "timestamp": {"type": "string", "format": "date-time", "description": "ISO 8601, UTC."},
    "version": {"type": "string", "description": "The service's version."},
}


def _history_item() -> dict[str, Any]:
    seconds = {"type": "integer", "description": "Gregorian seconds (Unix + 62167219200)."}
    return {
        "type": "object",
        "title": "History item",
        "description": "One connect attempt (exactly one item per attempt).",
        "required": ["timestamp", "call_id", "contact", "result"],
        "properties": {
            "timestamp": seconds,
            "call_id": {"type": "string", "description": "`c2c-{C2C_ID}-{random}`."},
            "contact": _STRING,
            "result": {"type": "string", "enum": ["success", "error"]},
            "cause": {"type": "string", "description": "Why the call failed (result error)."},
            "failed_leg": {"type": ["string", "null"], "enum": ["extension", "contact", None]},
            "hangup_cause": {"type": "string", "description": "Asterisk's Q.850 cause name."},
            "hangup_cause_code": {"type": ["integer", "null"]},
            "answered_at": seconds,
            "ended_at": seconds,
            "talk_duration": {"type": "number", "minimum": 0, "description": "Seconds."},
            "client_ip": {"type": ["string", "null"]},
            "authenticated": {"type": "boolean"},
            "trigger": {"type": "string", "enum": ["api", "dialplan"]},
            "dial_first": {"type": "string", "enum": ["extension", "contact"]},
            "extension": _STRING,
        },
    }


def _envelope_schemas() -> dict[str, Any]:
    return {
        "SuccessEnvelope": {
            "type": "object",
            "title": "Success envelope",
            "required": ["data", "auth_token", "node", "request_id", "revision", "status",
                         "timestamp", "version"],
            "properties": {
                "data": {},
                **_ENVELOPE_COMMON,
                "revision": {"type": "string",
                             "description": "The document's revision (also sent as ETag)."},
                "status": {"const": "success"},
            },
        },
        "ListingEnvelope": {
            "allOf": [_ref("SuccessEnvelope")],
            "title": "Listing envelope",
            "type": "object",
            "required": ["page_size"],
            "properties": {
                "data": {"type": "array"},
                "page_size": {"type": "integer", "minimum": 0,
                              "description": "How many items this page holds."},
                "start_key": {"type": "string", "description": "The start_key asked for."},
                "next_start_key": {"type": "string",
                                   "description": "Pass as start_key for the next page; "
                                                  "absent on the last page."},
            },
        },
        "ErrorEnvelope": {
            "type": "object",
            "title": "Kazoo error envelope",
            "required": ["data", "auth_token", "error", "message", "node", "request_id",
                         "status", "timestamp", "version"],
            "properties": {
                "data": {"description": "Details; for 400 "
                                        "`{\"<field>\":{\"<keyword>\":{\"message\":…,"
                                        "\"target\":…}}}`."},
                **_ENVELOPE_COMMON,
                "error": {"type": "string", "pattern": "^[0-9]{3}$",
                          "description": "The HTTP status as a string."},
                "message": _STRING,
                "status": {"const": "error"},
            },
        },
        "ClickToCallSummary": {
            "type": "object",
            "required": ["id", "name", "extension"],
            "properties": {"id": _STRING, "name": _STRING, "extension": _STRING},
        },
        "ClickToCallDocument": {
            "allOf": [_ref("clicktocall")],
            "type": "object",
            "required": ["id"],
            "properties": {"id": {"type": "string", "description": "The document's id."}},
            "description": "A stored click-to-call: its keys (unknown keys included) and id.",
        },
        "HistoryItem": _history_item(),
        "CallStatus": {
            "type": "object",
            "title": "Call status",
            "description": "A call in flight (`state` dialing_first, dialing_second or "
                           "bridged, with each leg's Asterisk channel state), or an ended "
                           "call (`state` ended plus its history item).",
            "required": ["call_id", "state"],
            "properties": {
                "call_id": _STRING,
                "state": {"type": "string",
                          "enum": ["dialing_first", "dialing_second", "bridged", "ended"]},
                "legs": {"type": "object", "additionalProperties": {
                    "type": "object",
                    "properties": {"channel_id": _STRING, "state": _STRING}}},
            },
        },
        "OriginatePlan": {
            "type": "object",
            "title": "Originate plan",
            "description": "Kazoo's originate request, answered by a non-blocking connect.",
            "required": ["outbound_call_id"],
            "properties": {
                "outbound_call_id": {"type": "string",
                                     "description": "The call id, `c2c-{C2C_ID}-{random}`."},
                "dial_first": {"type": "string", "enum": ["extension", "contact"]},
                "custom_application_vars": {"type": "object",
                                            "additionalProperties": _STRING},
                "timeout": {"type": "integer"},
            },
        },
    }


def _error_responses() -> dict[str, Any]:
    """One response per status, from the list of Kazoo errors (api/errors.py)."""
    by_status: dict[int, list[KazooError]] = {}
    for kind in KazooError:
        if kind.sent:
            by_status.setdefault(kind.status, []).append(kind)
    out: dict[str, Any] = {}
    for status, kinds in sorted(by_status.items()):
        schema: dict[str, Any] = {"allOf": [_ref("ErrorEnvelope")], "properties": {
            "error": {"const": str(status)},
            "message": {"enum": [kind.message for kind in kinds]}}}
        response: dict[str, Any] = {
            "description": " ".join(f"`{kind.message}`: {kind.description}" for kind in kinds),
            "headers": {"X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"}},
            "content": {"application/json": {"schema": schema}},
        }
        for kind in kinds:
            for name, text in kind.headers.items():
                response["headers"][name] = {"description": text, "schema": _STRING}
        out[f"Error{status}"] = response
    return out


def _parameters(settings_max: int, settings_default: int) -> dict[str, Any]:
    def query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
        return {"name": name, "in": "query", "required": False, "schema": schema,
                "description": description}

    gregorian = {"type": "integer", "minimum": 0}
    return {
        "account_id": {"name": "account_id", "in": "path", "required": True,
                       "schema": _STRING, "description": "The account's id."},
        "c2c_id": {"name": "c2c_id", "in": "path", "required": True, "schema": _STRING,
                   "description": "The click-to-call's id."},
        "call_token": query("call_token", _STRING,
                            "Without X-Auth-Token: the `call_token` that an anonymous "
                            "connect answered, good for that one call only (also accepted "
                            "as the X-Call-Token header)."),
        "call_id": {"name": "call_id", "in": "path", "required": True, "schema": _STRING,
                    "description": "A call's id, `c2c-{C2C_ID}-{random}` (connect's "
                                   "`outbound_call_id` or `call_id`)."},
        "schema_name": {"name": "name", "in": "path", "required": True, "schema": _STRING,
                        "description": "A schema's name, as listed by GET /v2/schemas."},
        "page_size": query("page_size", {"type": "integer", "minimum": 1,
                                         "maximum": settings_max,
                                         "default": settings_default},
                           "Items per page."),
        "start_key": query("start_key", {"type": "string", "maxLength": 64},
                           "The previous page's next_start_key."),
        "paginate": query("paginate", {"type": "boolean"},
                          "`false` answers every item in one page."),
        "created_from": query("created_from", gregorian,
                              "Only items at or after this time (Gregorian seconds)."),
        "created_to": query("created_to", gregorian,
                            "Only items at or before this time (Gregorian seconds)."),
        "contact": query("contact", {"type": "string", "minLength": 1, "maxLength": 64},
                         "The number to call, when the body has no `contact`."),
        "blocking": query("blocking", {"type": "boolean"},
                          "Wait for the outcome (200 with the history item) instead of "
                          "answering 202 at once, when the body has no `blocking`."),
        "custom_application_vars": {
            "name": "custom_application_vars", "in": "query", "required": False,
            "style": "form", "explode": True,
            "schema": {"type": "object", "additionalProperties": _STRING},
            "description": "Any other query parameter becomes a custom application variable "
                           "of the call, checked like the stored ones.",
        },
        "If-Match": {"name": "If-Match", "in": "header", "required": False,
                     "schema": _STRING,
                     "description": "The revision the change is based on; another one "
                                    "answers 412 and changes nothing."},
        "X-Request-ID": {"name": "X-Request-ID", "in": "header", "required": False,
                         "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"},
                         "description": "Echoed when safe, else a new id is made."},
    }


# --- operations --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    operation_id: str
    summary: str
    tag: str
    auth: str = "required"  # "required", "none" or "optional"
    parameters: tuple[str, ...] = ()
    body: dict[str, Any] | None = None  # the schema of `data`
    form_body: bool = False
    success: tuple[tuple[str, str, dict[str, Any]], ...] = ()  # (status, description, schema)
    errors: tuple[str, ...] = ()
    raw: tuple[str, str, dict[str, Any]] | None = None  # (status, media type, schema)
    # OpenAPI links of the first success response: operation id -> its parameters, as
    # runtime expressions (what a client, or a stateful test, can call next).
    links: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()


_CLICKTOCALLS = "/v2/accounts/{account_id}/clicktocall"
_ITEM = _CLICKTOCALLS + "/{c2c_id}"
_LISTING = ("page_size", "start_key", "paginate")
_BODY_ERRORS = ("400", "413", "415")


def _data(schema: dict[str, Any], envelope: str = "SuccessEnvelope") -> dict[str, Any]:
    return {"allOf": [_ref(envelope)], "properties": {"data": schema}}


_DOCUMENT = _data(_ref("ClickToCallDocument"))

OPERATIONS: dict[tuple[str, str], Operation] = {
    ("PUT", "/v2/api_auth"): Operation(
        "putApiAuth", "Trade an API key for an expiring auth token", "auth", auth="none",
        body={"type": "object", "required": ["api_key"],
              "properties": {"api_key": {"type": "string"}}},
        success=(("201", "The token, in the envelope's auth_token.", _data({
            "type": "object",
            "properties": {"account_id": _STRING, "account_name": _STRING, "realm": _STRING,
                           "expires_in": {"type": "integer",
                                          "description": "Seconds the token lives."}},
        })),),
        errors=(*_BODY_ERRORS, "401"),
    ),
    ("GET", "/v2/schemas"): Operation(
        "listSchemas", "List the JSON Schema documents", "schemas", auth="none",
        success=(("200", "The schema names.", _data({"type": "array", "items": _STRING})),),
    ),
    ("GET", "/v2/schemas/{name}"): Operation(
        "getSchema", "Read one JSON Schema document (draft-07)", "schemas", auth="none",
        parameters=("schema_name",),
        success=(("200", "The document as stored in schemas/.",
                  _data({"type": "object"})),),
    ),
    ("GET", _CLICKTOCALLS): Operation(
        "listClickToCalls", "List the account's click-to-calls", "clicktocall",
        parameters=("account_id", *_LISTING),
        success=(("200", "One page of summaries.",
                  _data({"type": "array", "items": _ref("ClickToCallSummary")},
                        "ListingEnvelope")),),
        errors=("400",),
    ),
    ("PUT", _CLICKTOCALLS): Operation(
        "createClickToCall", "Create a click-to-call", "clicktocall",
        parameters=("account_id",), body=_ref("clicktocall"),
        success=(("201", "The stored document.", _DOCUMENT),), errors=_BODY_ERRORS,
        links=tuple((target, (("account_id", "$request.path.account_id"),
                              ("c2c_id", "$response.body#/data/id")))
                    for target in ("getClickToCall", "replaceClickToCall", "patchClickToCall",
                                   "deleteClickToCall", "clickToCallHistory",
                                   "connectClickToCall", "listCalls")),
    ),
    ("GET", _ITEM): Operation(
        "getClickToCall", "Read a click-to-call", "clicktocall",
        parameters=("account_id", "c2c_id"),
        success=(("200", "The stored document.", _DOCUMENT),),
    ),
    ("POST", _ITEM): Operation(
        "replaceClickToCall", "Replace a click-to-call (validated whole)", "clicktocall",
        parameters=("account_id", "c2c_id", "If-Match"), body=_ref("clicktocall"),
        success=(("200", "The stored document.", _DOCUMENT),),
        errors=(*_BODY_ERRORS, "412"),
    ),
    ("PATCH", _ITEM): Operation(
        "patchClickToCall", "Merge keys into a click-to-call, then validate the result",
        "clicktocall", parameters=("account_id", "c2c_id", "If-Match"),
        body={"type": "object", "description": "Keys of a click-to-call "
                                               "(see components/schemas/clicktocall) to merge."},
        success=(("200", "The stored document.", _DOCUMENT),),
        errors=(*_BODY_ERRORS, "412"),
    ),
    ("DELETE", _ITEM): Operation(
        "deleteClickToCall", "Delete a click-to-call (later reads answer 404)", "clicktocall",
        parameters=("account_id", "c2c_id", "If-Match"),
        success=(("200", "The deleted document.", _DOCUMENT),), errors=("412",),
    ),
    ("GET", _ITEM + "/history"): Operation(
        "clickToCallHistory", "Call history, newest first", "clicktocall",
        parameters=("account_id", "c2c_id", *_LISTING, "created_from", "created_to"),
        success=(("200", "One page of history items.",
                  _data({"type": "array", "items": _ref("HistoryItem")},
                        "ListingEnvelope")),),
        errors=("400",),
    ),
    ("GET", _ITEM + "/connect"): Operation(
        "connectClickToCallGet", "Place a call (parameters in the query string)", "connect",
        auth="optional",
        parameters=("account_id", "c2c_id", "contact", "blocking", "custom_application_vars"),
        success=(("202", "Placed: the originate plan.", _data(_ref("OriginatePlan"))),
                 ("200", "With `blocking`: the call's history item.",
                  _data(_ref("HistoryItem")))),
        errors=("400", "429", "503"),
    ),
    ("POST", _ITEM + "/connect"): Operation(
        "connectClickToCall", "Place a call", "connect", auth="optional",
        parameters=("account_id", "c2c_id", "contact", "blocking", "custom_application_vars"),
        body=_ref("connect"), form_body=True,
        success=(("202", "Placed: the originate plan.", _data(_ref("OriginatePlan"))),
                 ("200", "With `blocking`: the call's history item.",
                  _data(_ref("HistoryItem")))),
        errors=(*_BODY_ERRORS, "429", "503"),
    ),
    ("GET", _ITEM + "/calls"): Operation(
        "listCalls", "The click-to-call's calls in flight, oldest first", "calls",
        parameters=("account_id", "c2c_id"),
        success=(("200", "Their statuses, each with the `call_token` that follows it.",
                  _data({"type": "array", "items": {
                      "allOf": [_ref("CallStatus")],
                      "properties": {"call_token": _STRING}}})),),
    ),
    ("GET", _ITEM + "/calls/{call_id}"): Operation(
        "getCall", "A call's live status (state, legs), or its outcome once ended", "calls",
        auth="optional", parameters=("account_id", "c2c_id", "call_id", "call_token"),
        success=(("200", "The call's status.", _data(_ref("CallStatus"))),),
    ),
    ("GET", _ITEM + "/calls/{call_id}/events"): Operation(
        "watchCall", "Server-Sent Events of a call's status until it ends", "calls",
        auth="optional", parameters=("account_id", "c2c_id", "call_id", "call_token"),
        raw=("200", "text/event-stream", {
            "type": "string",
            "description": "`event: status` with the call's status as JSON `data`, now and "
                           "at every change of state; the last has `state: \"ended\"`. "
                           "A `retry` hint first, and a `: keep-alive` comment every 15 s "
                           "while nothing changes."}),
    ),
    ("DELETE", _ITEM + "/calls/{call_id}"): Operation(
        "hangUpCall", "Hang a call up (an ended call answers its outcome)", "calls",
        parameters=("account_id", "c2c_id", "call_id"),
        success=(("200", "The call's outcome (its history item).",
                  _data(_ref("CallStatus"))),),
    ),
    ("GET", OPENAPI_PATH): Operation(
        "getOpenApi", "This OpenAPI 3.1 document (no envelope)", "meta", auth="none",
        raw=("200", "application/json", {"type": "object"}),
    ),
    ("GET", DOCS_PATH): Operation(
        "getDocs", "A self-contained HTML page that renders this document", "meta",
        auth="none", raw=("200", "text/html", {"type": "string"}),
    ),
}

_SECURITY = {"required": [{"authToken": []}], "none": [], "optional": [{"authToken": []}, {}]}


def _operation(op: Operation) -> dict[str, Any]:
    out: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": [op.tag],
        "security": _SECURITY[op.auth],
    }
    params = [*op.parameters, *(() if op.raw else ("X-Request-ID",))]
    if params:
        out["parameters"] = [{"$ref": "#/components/parameters/" + p} for p in params]
    if op.body is not None:
        content: dict[str, Any] = {"application/json": {"schema": {
            "type": "object", "properties": {"data": op.body}}}}
        if op.form_body:
            content["application/x-www-form-urlencoded"] = {"schema": op.body}
        out["requestBody"] = {
            "required": False,
            "description": "`{\"data\": {...}}` as JSON (an empty body is an empty object).",
            "content": content,
        }
    responses: dict[str, Any] = {}
    if op.raw is not None:
        status, media, schema = op.raw
        responses[status] = {"description": op.summary, "content": {media: {"schema": schema}}}
    for status, description, schema in op.success:
        responses[status] = {
            "description": description,
            "headers": {"ETag": {"$ref": "#/components/headers/ETag"},
                        "X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"}},
            "content": {"application/json": {"schema": schema}},
        }
    if op.links:
        responses[op.success[0][0]]["links"] = {
            target: {"operationId": target, "parameters": dict(parameters)}
            for target, parameters in op.links}
    errors = set(op.errors) | {"404", "405"}
    if op.auth != "none":
        errors.add("401")
    for code in sorted(errors):
        responses[code] = {"$ref": f"#/components/responses/Error{code}"}
    out["responses"] = responses
    return out


def registered_operations(app: web.Application) -> list[tuple[str, str]]:
    """(method, path template) of every API route (under /v2/), HEAD and the CORS
    preflights (OPTIONS) aside; the browser pages are not API."""
    seen: list[tuple[str, str]] = []
    for route in app.router.routes():
        if route.method in ("HEAD", "OPTIONS", "*") or route.resource is None:
            continue
        if not route.resource.canonical.startswith("/v2/"):
            continue
        key = (route.method, route.resource.canonical)
        if key not in seen:
            seen.append(key)
    return seen


def build_document(
    app: web.Application, schemas: dict[str, dict[str, Any]], *,
    default_page_size: int = 50, max_page_size: int = 1000,
) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for method, path in registered_operations(app):
        op = OPERATIONS.get((method, path))
        if op is None:
            raise LookupError(f"{method} {path} has no entry in openapi.OPERATIONS")
        paths.setdefault(path, {})[method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "c2c-ari",
            "version": __version__,
            "summary": "Kazoo-compatible click-to-call for Asterisk (ARI/Stasis).",
            "description": "Requests carry `{\"data\": {...}}`; every answer is Kazoo's "
                           "envelope (success or error). Tokens come from PUT /v2/api_auth.",
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "tags": [{"name": "auth"}, {"name": "schemas"}, {"name": "clicktocall"},
                 {"name": "connect"}, {"name": "calls"}, {"name": "meta"}],
        "paths": paths,
        "components": {
            "schemas": {**component_schemas(schemas), **_envelope_schemas()},
            "parameters": _parameters(max_page_size, default_page_size),
            "headers": {
                "ETag": {"description": "The revision, quoted.", "schema": _STRING},
                "X-Request-ID": {"description": "The request's id.", "schema": _STRING},
            },
            "responses": _error_responses(),
            "securitySchemes": {
                "authToken": {"type": "apiKey", "in": "header", "name": "X-Auth-Token",
                              "description": "A token from PUT /v2/api_auth."},
            },
        },
    }


# --- handlers ----------------------------------------------------------------------------------

_DOCUMENT_CACHE: web.AppKey[dict[str, bytes]] = web.AppKey("openapi_document", dict)


async def get_openapi(request: web.Request) -> web.Response:
    cache = request.app[_DOCUMENT_CACHE]
    body = cache.get("json")
    if body is None:
        settings = context(request).settings
        document = build_document(
            request.app, context(request).schemas,
            default_page_size=settings.default_page_size,
            max_page_size=settings.max_page_size,
        )
        body = cache["json"] = json.dumps(document, ensure_ascii=False).encode()
    return web.Response(body=body, content_type="application/json", charset="utf-8")


def _csp_hash(html: str, tag: str) -> str:
    start = html.index(f"<{tag}>") + len(tag) + 2
    inline = html[start:html.index(f"</{tag}>", start)]
    return "'sha256-" + base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode() + "'"


_DOCS_HTML = resources.files("c2c_ari.api").joinpath("static/docs.html").read_text("utf-8")
# The page runs only its own inline script and style, and talks only to this service.
_DOCS_CSP = (
    "default-src 'none'; connect-src 'self'; "
    f"script-src {_csp_hash(_DOCS_HTML, 'script')}; style-src {_csp_hash(_DOCS_HTML, 'style')}; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


async def get_docs(request: web.Request) -> web.Response:
    return web.Response(text=_DOCS_HTML, content_type="text/html", charset="utf-8",
                        headers={"Content-Security-Policy": _DOCS_CSP})


def add_routes(app: web.Application) -> None:
    app[_DOCUMENT_CACHE] = {}
    app.router.add_get(OPENAPI_PATH, get_openapi)
    app.router.add_get(DOCS_PATH, get_docs)
