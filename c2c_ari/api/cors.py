"""CORS for the browser-facing routes (connect and following a call): each click-to-call
names the web origins allowed to use it (`allowed_origins`); every other origin gets no CORS
headers, so browsers keep its pages out."""

from __future__ import annotations

from aiohttp import web

from c2c_ari.api.context import context
from c2c_ari.domain.errors import NotFound
from c2c_ari.domain.origins import origin_allowed

# Routes a widget on another site uses; the rest of the API is for the operator's tools.
WIDGET_SUFFIXES = ("/connect", "/calls/{call_id}", "/calls/{call_id}/events")
_ALLOWED_HEADERS = "Content-Type, X-Call-Token"
_EXPOSED_HEADERS = "X-Request-ID, Retry-After"


async def _origin_allowed(request: web.Request, origin: str) -> bool:
    try:
        stored = await context(request).clicktocalls.get(
            request.match_info.get("account_id", ""), request.match_info.get("c2c_id", ""))
    except NotFound:
        return False
    return origin_allowed(stored.doc.get("allowed_origins") or [], origin)


def _is_widget_route(request: web.Request) -> bool:
    resource = request.match_info.route.resource
    path = resource.canonical if resource is not None else ""
    return path.endswith(WIDGET_SUFFIXES)


# The request's Origin, once it is known to be allowed for this click-to-call.
ALLOWED_ORIGIN: web.RequestKey[str] = web.RequestKey("cors_origin", str)


@web.middleware
async def cors(request: web.Request, handler) -> web.StreamResponse:  # type: ignore[no-untyped-def]
    origin = request.headers.get("Origin")
    if origin is None or not _is_widget_route(request):
        return await handler(request)
    allowed = await _origin_allowed(request, origin)
    if allowed:
        request[ALLOWED_ORIGIN] = origin
    if request.method != "OPTIONS":
        return await handler(request)
    response = web.Response(status=204 if allowed else 403)
    if allowed:
        response.headers["Access-Control-Allow-Methods"] = "GET, POST"
        response.headers["Access-Control-Allow-Headers"] = _ALLOWED_HEADERS
        response.headers["Access-Control-Max-Age"] = "600"
    return response


async def add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every answer to an allowed origin carries CORS headers, errors
    and event streams included (a stream's headers go out before its handler returns)."""
    if request.headers.get("Origin") is not None and _is_widget_route(request):
        response.headers["Vary"] = "Origin"
    origin = request.get(ALLOWED_ORIGIN)
    if origin is not None:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = _EXPOSED_HEADERS


async def preflight(request: web.Request) -> web.Response:
    """OPTIONS without an Origin (not a browser's preflight): nothing to allow."""
    return web.Response(status=204)


def add_routes(app: web.Application, item: str) -> None:
    for suffix in WIDGET_SUFFIXES:
        app.router.add_route("OPTIONS", item + suffix, preflight)
