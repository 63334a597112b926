"""`GET /v2/openapi.json` and `GET /v2/docs`: the API described as OpenAPI 3.1, built at run time.

Everything comes from elsewhere: the operations from the route table (`api/routes.py`), the
error responses from the list of Kazoo errors (`api/errors.py`), and the document schemas
from the loaded files of `schemas/`, embedded under `components/schemas` with only what JSON
Schema 2020-12 needs changed: `$id`/`$schema` dropped, `definitions` renamed `$defs`, `$ref`s
pointed into the document, and the keywords draft-07 split or renamed (`items` arrays,
`dependencies`) carried over. What is left here is the envelope's description.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from importlib import resources
from typing import Any

from aiohttp import web

from c2c_ari import __version__
from c2c_ari.api.context import context
from c2c_ari.api.errors import KazooError
from c2c_ari.api.routing import SERVED, Param, Reply, Route, RouteTable
from c2c_ari.config import Settings

COMPONENTS = "#/components/schemas/"

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


# --- the envelope -----------------------------------------------------------------------------


def ref(name: str) -> dict[str, str]:
    """A reference to a named schema: a file of schemas/ or one of the document's own."""
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
_ENVELOPES: dict[str, Any] = {
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
        "allOf": [ref("SuccessEnvelope")],
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
}
# Every enveloped answer echoes it (api/envelope.py).
_REQUEST_ID = Param("X-Request-ID", "header", "Echoed when safe, else a new id is made.",
                    {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"})


def _error_responses() -> dict[str, Any]:
    """One response per status, from the list of Kazoo errors (api/errors.py)."""
    by_status: dict[int, list[KazooError]] = {}
    for kind in KazooError:
        if kind.sent:
            by_status.setdefault(kind.status, []).append(kind)
    out: dict[str, Any] = {}
    for status, kinds in sorted(by_status.items()):
        schema: dict[str, Any] = {"allOf": [ref("ErrorEnvelope")], "properties": {
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


# --- operations, from the route table ----------------------------------------------------------

_SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "required": [{"authToken": []}], "none": [], "optional": [{"authToken": []}, {}]}


def _parameter(param: Param, settings: Settings) -> dict[str, Any]:
    schema = param.schema(settings) if callable(param.schema) else param.schema
    out: dict[str, Any] = {"name": param.name, "in": param.where,
                           "required": param.where == "path", "schema": schema,
                           "description": param.description}
    if param.explode:
        out.update(style="form", explode=True)
    return out


def _reply(reply: Reply) -> dict[str, Any]:
    if reply.media is not None:
        return {"description": reply.description,
                "content": {reply.media: {"schema": reply.schema}}}
    envelope = "ListingEnvelope" if reply.listing else "SuccessEnvelope"
    return {
        "description": reply.description,
        "headers": {"ETag": {"$ref": "#/components/headers/ETag"},
                    "X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"}},
        "content": {"application/json": {"schema": {
            "allOf": [ref(envelope)], "properties": {"data": reply.schema}}}},
    }


def _operation(route: Route, params: list[Param], errors: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "tags": [route.tag],
        "security": _SECURITY[route.auth],
    }
    if params:
        out["parameters"] = [{"$ref": "#/components/parameters/" + p.component}
                             for p in params]
    if route.body is not None:
        content: dict[str, Any] = {"application/json": {"schema": {
            "type": "object", "properties": {"data": route.body}}}}
        if route.form_body:
            content["application/x-www-form-urlencoded"] = {"schema": route.body}
        out["requestBody"] = {
            "required": False,
            "description": "`{\"data\": {...}}` as JSON (an empty body is an empty object).",
            "content": content,
        }
    responses = {str(reply.status): _reply(reply) for reply in route.replies}
    if route.links:
        responses[str(route.replies[0].status)]["links"] = {
            link.operation_id: {"operationId": link.operation_id,
                                "parameters": dict(link.parameters)}
            for link in route.links}
    for status in route.error_statuses():
        name = f"Error{status}"
        if name not in errors:
            raise LookupError(f"{route.operation_id} answers {status}, which no KazooError has")
        responses[str(status)] = {"$ref": "#/components/responses/" + name}
    out["responses"] = responses
    return out


def build_document(table: RouteTable, schemas: dict[str, dict[str, Any]],
                   settings: Settings) -> dict[str, Any]:
    errors = _error_responses()
    paths: dict[str, dict[str, Any]] = {}
    parameters: dict[str, dict[str, Any]] = {}
    for route in table.routes:
        params = table.params_of(route)
        if any(reply.media is None for reply in route.replies):
            params.append(_REQUEST_ID)
        for param in params:
            doc = _parameter(param, settings)
            if parameters.setdefault(param.component, doc) != doc:
                raise ValueError(f"two parameters are named {param.component}: set a key")
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(
            route, params, errors)
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
        "tags": [{"name": tag} for tag in dict.fromkeys(r.tag for r in table.routes)],
        "paths": paths,
        "components": {
            "schemas": {**component_schemas(schemas), **_ENVELOPES,
                        **table.shapes},
            "parameters": parameters,
            "headers": {
                "ETag": {"description": "The revision, quoted.", "schema": _STRING},
                "X-Request-ID": {"description": "The request's id.", "schema": _STRING},
            },
            "responses": errors,
            "securitySchemes": {
                "authToken": {"type": "apiKey", "in": "header", "name": "X-Auth-Token",
                              "description": "A token from PUT /v2/api_auth."},
            },
        },
    }


# --- handlers ----------------------------------------------------------------------------------


async def get_openapi(request: web.Request) -> web.Response:
    served = request.app[SERVED]
    body = served.memo.get("openapi")
    if body is None:
        document = build_document(served.table, context(request).schemas,
                                  context(request).settings)
        body = served.memo["openapi"] = json.dumps(document, ensure_ascii=False).encode()
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


