"""The API's routes, each declared once: the router, the CORS rules and the OpenAPI document
are all built from `API` (see `api/routing.py` for what each field means).

A new endpoint is a handler in its resource's module and one `Route` here. The shapes of
history items and call statuses are the files of `schemas/` (`history_item`,
`call_status`), which front-ends read too; `ref(name)` points at one.
"""

from __future__ import annotations

from collections.abc import Callable

from c2c_ari.api import auth, clicktocall, openapi, schemas
from c2c_ari.api.openapi import ref
from c2c_ari.api.routing import Link, Param, Reply, Route, RouteTable, Schema
from c2c_ari.config import Settings
from c2c_ari.domain.contact import NUMBER, SIP_URI

CLICKTOCALLS = "/v2/accounts/{account_id}/clicktocall"
ITEM = CLICKTOCALLS + "/{c2c_id}"

_STRING: Schema = {"type": "string"}
# Kazoo ids: anything else answers 404 without a look-up.
_ID: Schema = {"type": "string", "pattern": "^[0-9a-f]{32}$"}
# Query integers are at most 18 ASCII digits (api/request.py).
_QUERY_INT_MAX = 10**18 - 1


def _query(name: str, description: str, schema: Schema | Callable[[Settings], Schema],
           key: str = "") -> Param:
    return Param(name, "query", description, schema, key=key)


# --- parameters ---------------------------------------------------------------------------------

PATH_PARAMS = {
    "account_id": Param("account_id", "path", "The account's id.", _ID),
    "c2c_id": Param("c2c_id", "path", "The click-to-call's id.", _ID),
    "call_id": Param("call_id", "path",
                     "A call's id, `c2c-{C2C_ID}-{random}` (connect's `outbound_call_id` or "
                     "`call_id`).", {"type": "string",
                                     "pattern": "^c2c-[0-9a-f]{32}-[0-9a-f]{16}$"}),
    "name": Param("name", "path", "A schema's name, as listed by GET /v2/schemas.",
                  {"type": "string", "examples": ["clicktocall"]}, key="schema_name"),
}


def _page_size(settings: Settings) -> Schema:
    return {"type": "integer", "minimum": 1, "maximum": settings.max_page_size,
            "default": settings.default_page_size}


_PAGE_SIZE = _query("page_size", "Items per page.", _page_size)
_PAGINATE = _query("paginate", "`false` answers every item in one (streamed) page.",
                   {"type": "boolean"})
_LISTING = (
    _PAGE_SIZE,
    # Document ids from `id` on; any printable ASCII is taken (clicktocall._start_key).
    _query("start_key", "The previous page's next_start_key.",
           {"type": "string", "maxLength": 64, "pattern": "^[ -~]*$"}),
    _PAGINATE,
)
_GREGORIAN: Schema = {"type": "integer", "minimum": 0, "maximum": _QUERY_INT_MAX}
_HISTORY = (
    _PAGE_SIZE,
    # domain.clicktocalls.parse_history_key's rule: `{timestamp}-{seq}`.
    _query("start_key", "The previous page's next_start_key (`{timestamp}-{seq}`).",
           {"type": "string", "pattern": "^[0-9]{1,18}-[0-9]{1,18}$"},
           key="history_start_key"),
    _PAGINATE,
    _query("created_from", "Only items at or after this time (Gregorian seconds).",
           _GREGORIAN),
    _query("created_to", "Only items at or before this time (Gregorian seconds).",
           _GREGORIAN),
)
_CONNECT = (
    _query("contact", "The number to call, when the body has no `contact`: digits with an "
                      "optional leading `+` (then normalised to E.164), or a `sip:` URI the "
                      "whitelist allows.",
           {"type": "string", "minLength": 1, "maxLength": 64,
            "pattern": f"{NUMBER}|{SIP_URI}"}),
    _query("blocking", "Wait for the outcome (200 with the history item) instead of "
                       "answering 202 at once, when the body has no `blocking`.",
           {"type": "boolean"}),
    Param("custom_application_vars", "query",
          "Any other query parameter becomes a custom application variable of the call, "
          "checked like the stored ones.",
          {"type": "object", "additionalProperties": _STRING}, explode=True),
)
_CALL_TOKEN_SCHEMA: Schema = {
    "type": "string", "pattern": "^[0-9a-f]{64}$",
    "description": "Follows this one call without X-Auth-Token (never hangs it up)."}
_CALL_TOKEN = _query(
    "call_token", "Without X-Auth-Token: the `call_token` that an anonymous connect "
                  "answered, good for that one call only (also accepted as the X-Call-Token "
                  "header).", _CALL_TOKEN_SCHEMA)
_IF_MATCH = Param("If-Match", "header", "The revision the change is based on; another one "
                                        "answers 412 and changes nothing.", _STRING)


# --- shapes that only the OpenAPI document has ---------------------------------------------------

SHAPES: dict[str, Schema] = {
    "ClickToCallSummary": {
        "type": "object",
        "required": ["id", "name", "extension"],
        "properties": {"id": _STRING, "name": _STRING, "extension": _STRING},
    },
    "ClickToCallDocument": {
        "allOf": [ref("clicktocall")],
        "type": "object",
        "required": ["id"],
        "properties": {"id": {"type": "string", "description": "The document's id."}},
        "description": "A stored click-to-call: its keys (unknown keys included) and id.",
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
            "custom_application_vars": {"type": "object", "additionalProperties": _STRING},
            "timeout": {"type": "integer"},
            "call_token": _CALL_TOKEN_SCHEMA,
        },
    },
}
_DOCUMENT = ref("ClickToCallDocument")
_CONNECTED = (Reply(202, "Placed: the originate plan.", ref("OriginatePlan")),
              Reply(200, "With `blocking`: the call's history item.", {
                  "allOf": [ref("history_item")],
                  "properties": {"call_token": _CALL_TOKEN_SCHEMA}}))
# Following the call just placed, with the token that came with it.
_FOLLOW = tuple(
    Link(target, {"account_id": "$request.path.account_id", "c2c_id": "$request.path.c2c_id",
                  "call_id": "$response.body#/data/outbound_call_id",
                  **({"call_token": "$response.body#/data/call_token"}
                     if target != "hangUpCall" else {})})
    for target in ("getCall", "watchCall", "hangUpCall"))


# --- the routes ----------------------------------------------------------------------------------

API = RouteTable(path_params=PATH_PARAMS, shapes=SHAPES, routes=(
    Route("PUT", "/v2/api_auth", auth.put_api_auth, "putApiAuth",
          "Trade an API key for an expiring auth token", "auth", auth="none",
          body={"type": "object", "required": ["api_key"],
                "properties": {"api_key": {"type": "string"}}},
          replies=(Reply(201, "The token, in the envelope's auth_token.", {
              "type": "object",
              "properties": {"account_id": _STRING, "account_name": _STRING,
                             "realm": _STRING,
                             "expires_in": {"type": "integer",
                                            "description": "Seconds the token lives."}},
          }),),
          errors=(401,)),

    Route("GET", "/v2/schemas", schemas.list_schemas, "listSchemas",
          "List the JSON Schema documents", "schemas", auth="none",
          replies=(Reply(200, "The schema names.", {"type": "array", "items": _STRING}),)),
    Route("GET", "/v2/schemas/{name}", schemas.get_schema, "getSchema",
          "Read one JSON Schema document (draft-07)", "schemas", auth="none",
          replies=(Reply(200, "The document as stored in schemas/.", {"type": "object"}),)),

    Route("GET", CLICKTOCALLS, clicktocall.list_clicktocalls, "listClickToCalls",
          "List the account's click-to-calls", "clicktocall", parameters=_LISTING,
          replies=(Reply(200, "One page of summaries.",
                         {"type": "array", "items": ref("ClickToCallSummary")},
                         listing=True),),
          errors=(400,)),
    Route("PUT", CLICKTOCALLS, clicktocall.create_clicktocall, "createClickToCall",
          "Create a click-to-call", "clicktocall", body=ref("clicktocall"),
          replies=(Reply(201, "The stored document.", _DOCUMENT),),
          errors=(403,),  # the account's limit
          links=tuple(Link(target, {"account_id": "$request.path.account_id",
                                    "c2c_id": "$response.body#/data/id"})
                      for target in ("getClickToCall", "replaceClickToCall",
                                     "patchClickToCall", "deleteClickToCall",
                                     "clickToCallHistory", "connectClickToCall",
                                     "connectClickToCallGet", "listCalls"))),
    Route("GET", ITEM, clicktocall.get_clicktocall, "getClickToCall",
          "Read a click-to-call", "clicktocall",
          replies=(Reply(200, "The stored document.", _DOCUMENT),)),
    Route("POST", ITEM, clicktocall.replace_clicktocall, "replaceClickToCall",
          "Replace a click-to-call (validated whole)", "clicktocall",
          parameters=(_IF_MATCH,), body=ref("clicktocall"),
          replies=(Reply(200, "The stored document.", _DOCUMENT),), errors=(412,)),
    Route("PATCH", ITEM, clicktocall.patch_clicktocall, "patchClickToCall",
          "Merge keys into a click-to-call, then validate the result", "clicktocall",
          parameters=(_IF_MATCH,),
          body={"type": "object", "description": "Keys of a click-to-call (see "
                                                 "components/schemas/clicktocall) to merge."},
          replies=(Reply(200, "The stored document.", _DOCUMENT),), errors=(412,)),
    Route("DELETE", ITEM, clicktocall.delete_clicktocall, "deleteClickToCall",
          "Delete a click-to-call (later reads answer 404)", "clicktocall",
          parameters=(_IF_MATCH,),
          replies=(Reply(200, "The deleted document.", _DOCUMENT),), errors=(412,)),
    Route("GET", ITEM + "/history", clicktocall.history, "clickToCallHistory",
          "Call history, newest first", "clicktocall", parameters=_HISTORY,
          replies=(Reply(200, "One page of history items.",
                         {"type": "array", "items": ref("history_item")}, listing=True),),
          errors=(400,)),

    Route("GET", ITEM + "/connect", clicktocall.connect, "connectClickToCallGet",
          "Place a call (parameters in the query string)", "connect", auth="optional",
          parameters=_CONNECT, replies=_CONNECTED, errors=(400, 403, 429, 503),
          links=_FOLLOW, browser=True),
    Route("POST", ITEM + "/connect", clicktocall.connect, "connectClickToCall",
          "Place a call", "connect", auth="optional", parameters=_CONNECT,
          body=ref("connect"), form_body=True, replies=_CONNECTED,
          errors=(403, 429, 503), links=_FOLLOW, browser=True),

    Route("GET", ITEM + "/calls", clicktocall.calls_in_flight, "listCalls",
          "The click-to-call's calls in flight, oldest first", "calls",
          replies=(Reply(200, "Their statuses, each with the `call_token` that follows it.",
                         {"type": "array", "items": {
                             "allOf": [ref("call_status")],
                             "properties": {"call_token": _STRING}}}),)),
    Route("GET", ITEM + "/calls/{call_id}", clicktocall.get_call, "getCall",
          "A call's live status (state, legs), or its outcome once ended", "calls",
          auth="optional", parameters=(_CALL_TOKEN,),
          replies=(Reply(200, "The call's status.", ref("call_status")),), browser=True),
    Route("GET", ITEM + "/calls/{call_id}/events", clicktocall.call_events, "watchCall",
          "Server-Sent Events of a call's status until it ends", "calls",
          auth="optional", parameters=(_CALL_TOKEN,),
          replies=(Reply(200, "The event stream.", {
              "type": "string",
              "description": "`event: status` with the call's status (components/schemas/"
                             "call_status) as JSON `data`, now and at every change of "
                             "state; the last has `state: \"ended\"`. A `retry` hint first, "
                             "and a `: keep-alive` comment every 15 s while nothing "
                             "changes."}, media="text/event-stream"),),
          browser=True),
    Route("DELETE", ITEM + "/calls/{call_id}", clicktocall.hang_up_call, "hangUpCall",
          "Hang a call up (an ended call answers its outcome)", "calls",
          replies=(Reply(200, "The call's outcome (its history item).",
                         ref("call_status")),)),

    Route("GET", "/v2/openapi.json", openapi.get_openapi, "getOpenApi",
          "This OpenAPI 3.1 document (no envelope)", "meta", auth="none",
          replies=(Reply(200, "The document.", {"type": "object"},
                         media="application/json"),)),
    Route("GET", "/v2/docs", openapi.get_docs, "getDocs",
          "A self-contained HTML page that renders this document", "meta", auth="none",
          replies=(Reply(200, "The page.", {"type": "string"}, media="text/html"),)),
))
