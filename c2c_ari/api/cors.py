"""CORS for the browser-facing routes (those the route table marks `browser`: connect and
following a call): each click-to-call names the web origins allowed to use it
(`allowed_origins`); every other origin gets no CORS headers, so browsers keep its pages out.
The rest of the API, other methods on the same paths included, is for the operator's tools.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from c2c_ari.api.context import context
from c2c_ari.domain.errors import NotFound
from c2c_ari.domain.origins import origin_allowed

_ALLOWED_HEADERS = "Content-Type, X-Call-Token"
_EXPOSED_HEADERS = "X-Request-ID, Retry-After"

# Path template -> the methods a page of an allowed origin may use there.
_RULES: web.AppKey[dict[str, frozenset[str]]] = web.AppKey("cors_rules", dict)


def add_rules(app: web.Application, rules: Mapping[str, frozenset[str]]) -> None:
    """Open these paths' methods to the allowed origins, each path with its preflight."""
    app[_RULES] = dict(rules)
    for path in rules:
        app.router.add_route("OPTIONS", path, preflight)


async def _origin_allowed(request: web.Request, origin: str) -> bool:
    try:
        stored = await context(request).clicktocalls.get(
            request.match_info.get("account_id", ""), request.match_info.get("c2c_id", ""))
    except NotFound:
        return False
    return origin_allowed(stored.doc.get("allowed_origins") or [], origin)


def _browser_methods(request: web.Request) -> frozenset[str] | None:
    """The methods open to browsers at the request's path; None where none is."""
    resource = request.match_info.route.resource
    if resource is None:
        return None
    return request.app.get(_RULES, {}).get(resource.canonical)


def _opens(methods: frozenset[str], method: str) -> bool:
    # HEAD goes with GET, as the router registers it.
    return method in methods or (method == "HEAD" and "GET" in methods)


# The request's Origin, once it is known to be allowed for this click-to-call.
ALLOWED_ORIGIN: web.RequestKey[str] = web.RequestKey("cors_origin", str)


@web.middleware
async def cors(request: web.Request, handler) -> web.StreamResponse:  # type: ignore[no-untyped-def]
    origin = request.headers.get("Origin")
    methods = None if origin is None else _browser_methods(request)
    if origin is None or methods is None or not (
            request.method == "OPTIONS" or _opens(methods, request.method)):
        return await handler(request)
    allowed = await _origin_allowed(request, origin)
    if allowed:
        request[ALLOWED_ORIGIN] = origin
    if request.method != "OPTIONS":
        return await handler(request)
    response = web.Response(status=204 if allowed else 403)
    if allowed:
        response.headers["Access-Control-Allow-Methods"] = ", ".join(sorted(methods))
        response.headers["Access-Control-Allow-Headers"] = _ALLOWED_HEADERS
        response.headers["Access-Control-Max-Age"] = "600"
    return response


async def add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every answer to an allowed origin carries CORS headers, errors
    and event streams included (a stream's headers go out before its handler returns)."""
    if request.headers.get("Origin") is not None and _browser_methods(request) is not None:
        response.headers["Vary"] = "Origin"
    origin = request.get(ALLOWED_ORIGIN)
    if origin is not None:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = _EXPOSED_HEADERS


async def preflight(request: web.Request) -> web.Response:
    """OPTIONS without an Origin (not a browser's preflight): nothing to allow."""
    return web.Response(status=204)
