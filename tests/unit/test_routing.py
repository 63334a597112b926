"""The route table: what `RouteTable.check` refuses, and rules it shares with the handlers
and the domain (the rest is tested through the served application and its document)."""

from __future__ import annotations

import inspect
import re

import pytest
from aiohttp import web

from c2c_ari.api.routes import API, PATH_PARAMS
from c2c_ari.api.routing import Link, Route, RouteTable
from c2c_ari.domain import clicktocalls
from c2c_ari.domain.errors import ValidationFailed
from c2c_ari.domain.ids import is_valid_id, new_id


async def _handler(request: web.Request) -> web.Response:
    return web.Response()


def _route(method: str = "GET", path: str = "/v2/x/{account_id}", op: str = "op",
           **fields: object) -> Route:
    return Route(method, path, _handler, op, "summary", "tag", **fields)  # type: ignore[arg-type]


def test_the_table_checks_out_and_its_handlers_are_coroutines() -> None:
    API.check()
    assert all(inspect.iscoroutinefunction(route.handler) for route in API.routes)


@pytest.mark.parametrize(("routes", "complaint"), [
    ((_route(), _route(op="other")), "declared twice"),
    ((_route(), _route(path="/v2/y")), "declared twice"),  # the same operation id
    ((_route(path="/v2/x/{nobody}"),), "no path parameter"),
    ((_route(links=(Link("missing", {}),)),), "unknown missing"),
])
def test_a_table_that_cannot_be_served_is_refused(routes: tuple[Route, ...],
                                                  complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        RouteTable(routes, path_params={"account_id": PATH_PARAMS["account_id"]}).check()


def test_errors_every_route_of_its_kind_answers() -> None:
    assert _route(auth="none").error_statuses() == [404, 405]
    # Authenticated routes, and those with a body, use the database, which may be away.
    assert _route().error_statuses() == [401, 404, 405, 503]
    assert _route(body={}, errors=(412,)).error_statuses() == [400, 401, 404, 405, 412, 413,
                                                               415, 503]
    assert _route(auth="none", body={}).error_statuses() == [400, 404, 405, 413, 415, 503]


def _accepts(schema: object, value: str) -> bool:
    assert isinstance(schema, dict)
    # The document's patterns are anchored with ^...$ (ECMAScript: $ is the very end).
    return re.fullmatch(schema["pattern"].removeprefix("^").removesuffix("$"), value) is not None


@pytest.mark.parametrize("key", ["1-1", "63912345678-42", "1" * 18 + "-7", "1" * 19 + "-7",
                                 "1-", "-1", "a-1", "1-1 ", "1--1", "1-1\n", "\u0661-1"])
def test_the_documented_history_key_is_the_domains(key: str) -> None:
    history = next(route for route in API.routes if route.path.endswith("/history"))
    (start_key,) = (p for p in history.parameters if p.name == "start_key")
    try:
        clicktocalls.parse_history_key(key)
        parsed = True
    except ValidationFailed:
        parsed = False
    assert _accepts(start_key.schema, key) == parsed


@pytest.mark.parametrize("value", [new_id(), new_id().upper(), "0" * 31, "0" * 33, "g" * 32])
def test_the_documented_id_is_the_domains(value: str) -> None:
    for name in ("account_id", "c2c_id"):
        assert _accepts(PATH_PARAMS[name].schema, value) == is_valid_id(value)


def test_browser_routes_are_connect_and_following_a_call() -> None:
    browser = {(route.method, route.path.rsplit("{c2c_id}", 1)[-1])
               for route in API.routes if route.browser}
    assert browser == {("GET", "/connect"), ("POST", "/connect"), ("GET", "/calls/{call_id}"),
                       ("GET", "/calls/{call_id}/events")}
