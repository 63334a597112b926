"""CORS: only the origins a click-to-call names may use its widget routes from a browser."""

from __future__ import annotations

from c2c_ari.api.context import CONTEXT
from tests.conftest import Api

SHOP, EVIL = "https://shop.example", "https://evil.example"


async def test_preflight_allows_only_the_named_origins(api: Api) -> None:
    c2c = await api.create(auth_required=False, allowed_origins=[SHOP])
    connect = f"{api.base}/{c2c['id']}/connect"
    response = await api.client.options(connect, headers={
        "Origin": SHOP, "Access-Control-Request-Method": "POST"})
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == SHOP
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "X-Call-Token" in response.headers["Access-Control-Allow-Headers"]

    response = await api.client.options(connect, headers={
        "Origin": EVIL, "Access-Control-Request-Method": "POST"})
    assert response.status == 403
    assert "Access-Control-Allow-Origin" not in response.headers


async def test_answers_carry_cors_headers_for_allowed_origins_only(api: Api) -> None:
    c2c = await api.create(auth_required=False, allowed_origins=[SHOP])
    connect = f"{api.base}/{c2c['id']}/connect"
    # No Asterisk here: a 503, which the page must still be able to read; another site's
    # page is refused before any call step (403), and cannot read even that.
    for origin, status, expected in ((SHOP, 503, SHOP), (EVIL, 403, None)):
        response = await api.client.post(connect, json={"data": {"contact": "+4930123456"}},
                                         headers={"Origin": origin})
        assert response.status == status
        assert response.headers.get("Access-Control-Allow-Origin") == expected
        assert response.headers["Vary"] == "Origin"
    # The operator's API is not for other sites, whatever the click-to-call says.
    response = await api.client.get(api.base, headers={"Origin": SHOP,
                                                       "X-Auth-Token": api.token})
    assert response.status == 200
    assert "Access-Control-Allow-Origin" not in response.headers


async def test_event_stream_carries_cors_headers(api: Api) -> None:
    c2c = await api.create(auth_required=False, allowed_origins=[SHOP])
    call_id = f"c2c-{c2c['id']}-0123456789abcdef"
    await api.client.app[CONTEXT].clicktocalls.history_store.insert(
        api.account_id, c2c["id"], call_id, 63_900_000_000,
        {"timestamp": 63_900_000_000, "call_id": call_id, "result": "success",
         "contact": "+4930123456"})
    token = api.client.app[CONTEXT].call_tokens.issue(call_id)
    response = await api.client.get(f"{api.base}/{c2c['id']}/calls/{call_id}/events",
                                    params={"call_token": token}, headers={"Origin": SHOP})
    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == SHOP


async def test_origins_must_be_plain_web_origins(api: Api) -> None:
    for origin in ("javascript:alert(1)", "https://shop.example/path", "*", "shop.example",
                   "https://shop.example\r\nX: y"):
        status, body, _ = await api.call("PUT", api.base, {
            "name": "A", "extension": "1", "allowed_origins": [origin]})
        assert status == 400, origin
        assert "allowed_origins.0" in body["data"]


async def test_only_the_browser_routes_methods_are_open(api: Api) -> None:
    """The route table marks routes, not paths: hanging a call up shares its path with
    reading it, but is the operator's (a token), so no page of another site may do it."""
    c2c = await api.create(auth_required=False, allowed_origins=[SHOP])
    call = f"{api.base}/{c2c['id']}/calls/c2c-{c2c['id']}-0123456789abcdef"
    response = await api.client.options(call, headers={
        "Origin": SHOP, "Access-Control-Request-Method": "GET"})
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Methods"] == "GET"
    response = await api.client.delete(call, headers={"Origin": SHOP,
                                                      "X-Auth-Token": api.token})
    assert response.status == 404
    assert "Access-Control-Allow-Origin" not in response.headers
    response = await api.client.options(f"{api.base}/{c2c['id']}/connect", headers={
        "Origin": SHOP, "Access-Control-Request-Method": "POST"})
    assert response.headers["Access-Control-Allow-Methods"] == "GET, POST"
    # Not a browser route at all: no preflight there, and no CORS headers.
    response = await api.client.options(f"{api.base}/{c2c['id']}", headers={
        "Origin": SHOP, "Access-Control-Request-Method": "GET"})
    assert response.status == 405
    assert "Access-Control-Allow-Origin" not in response.headers
