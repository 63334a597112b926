"""Anonymous connects (auth_required false): one answer for every id that cannot be used, the
web page's origin checked before any call step, budgets that one visitor cannot use up for
everyone, and the owner's variables out of a visitor's reach.

No Asterisk here: a connect that passes every check answers 503 (nothing to place it on)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from c2c_ari.app import create_app
from c2c_ari.config import Settings
from tests.conftest import Api, sign_in

SHOP = "https://shop.example"
CONTACT = {"contact": "+4930123456"}


async def _anonymous(api: Api, c2c_id: str, *, account_id: str | None = None,
                     data: Any = CONTACT, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    path = f"/v2/accounts/{account_id or api.account_id}/clicktocall/{c2c_id}/connect"
    response = await api.client.post(path, json={"data": data}, **kwargs)
    return response.status, await response.json()


async def test_unknown_account_and_unknown_id_answer_alike(api: Api) -> None:
    private = await api.create()
    public = await api.create(auth_required=False)
    answers = [
        await _anonymous(api, public["id"], account_id="0" * 32),  # no such account
        await _anonymous(api, "f" * 32),  # no such click-to-call
        await _anonymous(api, private["id"]),  # needs a token
        await _anonymous(api, "not-an-id"),
    ]
    for status, body in answers:
        assert status == 401
        assert body["data"] == {"message": "invalid credentials"}
    assert (await _anonymous(api, public["id"]))[0] == 503


@pytest.mark.parametrize("headers", [
    {"Origin": "https://evil.example"},
    {"Origin": "null"},
    {"Origin": "https://shop.example.evil.example"},
    {"Referer": "https://evil.example/page?x=1"},
    {"Referer": "not a url"},
])
async def test_another_site_cannot_place_calls(api: Api, headers: dict[str, str]) -> None:
    c2c = await api.create(auth_required=False, allowed_origins=[SHOP])
    status, body = await _anonymous(api, c2c["id"], headers=headers)
    assert status == 403
    assert body["message"] == "forbidden"


@pytest.mark.parametrize("headers", [
    {"Origin": SHOP}, {"Origin": "https://SHOP.example:443"}, {"Referer": SHOP + "/contact"},
    {},  # not a web page (a server, curl): no origin to check
])
async def test_the_listed_site_and_non_browsers_pass(api: Api, headers: dict[str, str]) -> None:
    c2c = await api.create(auth_required=False, allowed_origins=[SHOP])
    assert (await _anonymous(api, c2c["id"], headers=headers))[0] == 503


async def test_without_allowed_origins_any_page_may_post(api: Api) -> None:
    # Kazoo's behaviour (a plain HTML form on the company's site), kept when no list is set.
    c2c = await api.create(auth_required=False)
    status, _ = await _anonymous(api, c2c["id"], headers={"Origin": "https://any.example"})
    assert status == 503


@pytest.fixture
async def strict(aiohttp_client, settings: Settings) -> Api:  # type: ignore[no-untyped-def]
    """A service with 2 anonymous connects per client a minute, behind a trusted proxy."""
    settings = dataclasses.replace(settings, anonymous_throttle=2,
                                   trusted_proxies=("127.0.0.1/32",))
    return await sign_in(await aiohttp_client(create_app(settings)))


def _from(address: str) -> dict[str, Any]:
    return {"headers": {"X-Forwarded-For": f"198.51.100.7, {address}"}}


async def test_one_visitor_cannot_throttle_the_widget_for_everyone(strict: Api) -> None:
    c2c = await strict.create(auth_required=False, throttle=3)
    first = [(await _anonymous(strict, c2c["id"], **_from("203.0.113.1")))[0]
             for _ in range(3)]
    assert first == [503, 503, 429]
    # another visitor still gets through; the public budget (throttle 3) is then used up
    assert (await _anonymous(strict, c2c["id"], **_from("203.0.113.2")))[0] == 503
    status, body = await _anonymous(strict, c2c["id"], **_from("203.0.113.3"))
    assert status == 429
    assert int(body["data"]["retry_after"]) >= 1
    # while the owner's own budget is untouched
    for _ in range(3):
        status, _, _ = await strict.call("POST", f"{strict.base}/{c2c['id']}/connect",
                                         CONTACT)
        assert status == 503
    status, _, _ = await strict.call("POST", f"{strict.base}/{c2c['id']}/connect", CONTACT)
    assert status == 429


async def test_an_ipv6_visitor_is_one_client_per_slash_64(strict: Api) -> None:
    c2c = await strict.create(auth_required=False)
    statuses = [(await _anonymous(strict, c2c["id"], **_from(f"2001:db8:0:1::{n}")))[0]
                for n in range(1, 4)]
    assert statuses == [503, 503, 429]
    assert (await _anonymous(strict, c2c["id"], **_from("2001:db8:0:2::1")))[0] == 503


async def test_forwarded_for_is_ignored_from_an_untrusted_peer(api: Api) -> None:
    c2c = await api.create(auth_required=False)
    # default anonymous_throttle is 5 a minute per client; the header cannot make many
    statuses = [(await _anonymous(api, c2c["id"], **_from(f"203.0.113.{n}")))[0]
                for n in range(6)]
    assert statuses == [503] * 5 + [429]


async def test_a_visitor_cannot_change_the_owners_variables(api: Api) -> None:
    c2c = await api.create(auth_required=False, custom_application_vars={"campaign": "spring"})
    path = f"/v2/accounts/{api.account_id}/clicktocall/{c2c['id']}/connect"
    for request in (
        api.client.post(path + "?campaign=mine", json={"data": CONTACT}),
        api.client.post(path, json={"data": {**CONTACT,
                                             "custom_application_vars": {"campaign": "x"}}}),
    ):
        response = await request
        body = await response.json()
        assert response.status == 400
        assert "readOnly" in body["data"]["custom_application_vars.campaign"]
    # variables of their own are fine, and the owner may change the stored ones per call
    response = await api.client.post(path + "?source=widget", json={"data": CONTACT})
    assert response.status == 503
    status, _, _ = await api.call("POST", f"{api.base}/{c2c['id']}/connect?campaign=x", CONTACT)
    assert status == 503
