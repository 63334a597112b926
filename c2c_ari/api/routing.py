"""What a route of the API is, and how a table of them becomes the application's routes.

Each route is declared once, in `api/routes.py`, with everything anything needs to know
about it: the router gets its method, path and handler, the CORS rules its `browser` flag,
and the OpenAPI document (`api/openapi.py`) the rest. The browser pages (`api/pages.py`)
are not API and are registered apart.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from c2c_ari.api import cors
from c2c_ari.config import Settings

Schema = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Auth = Literal["required", "none", "optional"]

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class Param:
    """A path, query or header parameter. `schema` may depend on the settings (a page's
    largest size, say); the handlers enforce what it says."""

    name: str
    where: Literal["path", "query", "header"]
    description: str
    schema: Schema | Callable[[Settings], Schema]
    # Its name under the document's components, where two parameters share `name`.
    key: str = ""
    # An object spread over the query string, one parameter per key (custom variables).
    explode: bool = False

    @property
    def component(self) -> str:
        return self.key or self.name


@dataclass(frozen=True)
class Reply:
    """A success answer: `schema` is that of `data` in Kazoo's envelope (a listing's
    envelope when `listing`), or, with `media`, of the whole body, which has no envelope."""

    status: int
    description: str
    schema: Schema
    listing: bool = False
    media: str | None = None


@dataclass(frozen=True)
class Link:
    """An operation a client can call next with what this one answered: its parameters as
    OpenAPI runtime expressions (the stateful fuzzing phase follows these)."""

    operation_id: str
    parameters: Mapping[str, str]


# Errors any route can answer: an unknown id or path, and a method the path does not take.
_ALWAYS = (404, 405)
# Errors of reading a body: not JSON or not an envelope, too large, another media type.
_BODY = (400, 413, 415)


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # aiohttp's template; its {placeholders} are the table's path parameters
    handler: Handler
    operation_id: str
    summary: str
    tag: str
    auth: Auth = "required"  # "optional": without a token, the handler decides (connect)
    parameters: tuple[Param, ...] = ()  # query and header parameters, in the document's order
    body: Schema | None = None  # the schema of the body's `data`
    form_body: bool = False  # also takes a form (application/x-www-form-urlencoded)
    replies: tuple[Reply, ...] = ()
    errors: tuple[int, ...] = ()  # statuses beyond those every route of its kind answers
    links: tuple[Link, ...] = ()  # from the first reply
    browser: bool = False  # pages on the origins a click-to-call allows may call it (CORS)

    def path_names(self) -> list[str]:
        return _PLACEHOLDER.findall(self.path)

    def error_statuses(self) -> list[int]:
        statuses = {*_ALWAYS, *self.errors}
        if self.auth != "none":
            statuses.add(401)
        if self.body is not None:
            statuses.update(_BODY)
        if self.auth != "none" or self.body is not None:
            statuses.add(503)  # these read or write the database, which may be out of reach
        return sorted(statuses)


@dataclass(frozen=True)
class RouteTable:
    routes: tuple[Route, ...]
    path_params: Mapping[str, Param]  # by the placeholder's name, shared by every path
    # Named schemas that only the OpenAPI document has (the rest are the files of schemas/).
    shapes: Mapping[str, Schema] = field(default_factory=dict)

    def params_of(self, route: Route) -> list[Param]:
        return [self.path_params[name] for name in route.path_names()] + list(route.parameters)

    def check(self) -> None:
        """Refuse a table that cannot be served or documented as it is written."""
        seen: set[tuple[str, str]] = set()
        ids: set[str] = set()
        for route in self.routes:
            key = (route.method, route.path)
            if key in seen or route.operation_id in ids:
                raise ValueError(f"{route.method} {route.path} is declared twice")
            seen.add(key)
            ids.add(route.operation_id)
            missing = [n for n in route.path_names() if n not in self.path_params]
            if missing:
                raise ValueError(f"{route.path}: no path parameter declared for {missing}")
        for route in self.routes:
            for link in route.links:
                if link.operation_id not in ids:
                    raise ValueError(f"{route.operation_id} links to unknown "
                                     f"{link.operation_id}")


@dataclass(frozen=True)
class Served:
    """What an application serves: its route table, and what is built from it once."""

    table: RouteTable
    # The OpenAPI document's JSON once built (it cannot change while the application runs).
    memo: dict[str, bytes] = field(default_factory=dict)


SERVED: web.AppKey[Served] = web.AppKey("served_routes", Served)


def add_routes(app: web.Application, table: RouteTable) -> None:
    table.check()
    browser: dict[str, set[str]] = {}
    for route in table.routes:
        if route.method == "GET":
            app.router.add_get(route.path, route.handler)  # and HEAD, as aiohttp does
        else:
            app.router.add_route(route.method, route.path, route.handler)
        if route.browser:
            browser.setdefault(route.path, set()).add(route.method)
    cors.add_rules(app, {path: frozenset(methods) for path, methods in browser.items()})
    app[SERVED] = Served(table)
