"""For the operator's tools, not for tenants: liveness (`/healthz`), readiness (`/readyz`)
and Prometheus metrics (`/metrics`). Outside the Kazoo envelope and without auth tokens;
`/metrics` is served on the separate `metrics_listen` address only (or, with
`metrics_token`, also here to whoever presents that token), never to an API token."""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from c2c_ari import logs, metrics
from c2c_ari.api.envelope import request_id


@dataclass
class Readiness:
    """What makes this instance ready to take traffic, as the lifecycle wires it: its
    database took a write lately (the heartbeat is one), and an events websocket to
    Asterisk is up."""

    last_write: Callable[[], float | None] = lambda: None
    websockets: Callable[[], dict[tuple[str, str], bool]] = dict
    asterisk_configured: bool = False
    # A write older than this many seconds counts as a database that cannot be written.
    max_write_age: float = 10.0

    def problems(self) -> list[str]:
        out = []
        written = self.last_write()
        if written is None or time.time() - written > self.max_write_age:
            out.append("the database took no write recently")
        if not self.asterisk_configured:
            out.append("no Asterisk is configured (ari_url off, or no local Asterisk "
                       "found): calls cannot be placed")
        elif not any(self.websockets().values()):
            out.append("no ARI events websocket is connected: calls cannot be placed")
        return out


READINESS: web.AppKey[Readiness] = web.AppKey("readiness", Readiness)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"}, headers={"Cache-Control": "no-store"})


async def readyz(request: web.Request) -> web.Response:
    problems = request.app[READINESS].problems()
    ws = {f"{node}/{app}": up for (node, app), up in request.app[READINESS].websockets().items()}
    body = {"status": "not ready" if problems else "ready", "problems": problems,
            "ari_websockets": ws}
    return web.json_response(body, status=503 if problems else 200,
                             headers={"Cache-Control": "no-store"})


def metrics_handler(token: str | None) -> Callable[[web.Request], Awaitable[web.Response]]:
    expected = f"Bearer {token}".encode() if token else None

    async def serve_metrics(request: web.Request) -> web.Response:
        if expected is not None:
            given = request.headers.get("Authorization", "").encode("utf-8", "replace")
            if not hmac.compare_digest(given, expected):
                return web.Response(status=401, text="metrics need the metrics token\n",
                                    headers={"WWW-Authenticate": "Bearer"})
        return web.Response(body=metrics.exposition(),
                            headers={"Content-Type": metrics.CONTENT_TYPE})

    return serve_metrics


def add_routes(app: web.Application, *, metrics_token: str | None) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    if metrics_token:
        app.router.add_get("/metrics", metrics_handler(metrics_token))


def metrics_app(readiness: Readiness) -> web.Application:
    """The separate listener (`metrics_listen`): metrics and the health checks only."""
    app = web.Application()
    app[READINESS] = readiness
    app.router.add_get("/metrics", metrics_handler(None))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


@web.middleware
async def measure(request: web.Request, handler) -> web.StreamResponse:  # type: ignore[no-untyped-def]
    """Every request's duration, by route template (never the path itself: ids would make
    a series per document)."""
    started = time.perf_counter()
    status = 500
    # Every line logged while serving the request carries its id.
    logs.REQUEST_ID.set(request_id(request))
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        metrics.observe_http(route, request.method, status, time.perf_counter() - started)
