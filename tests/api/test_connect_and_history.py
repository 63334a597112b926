"""Connect's request side (until calls are placed) and the history listing."""

from __future__ import annotations

import asyncio

from c2c_ari.api.context import CONTEXT
from c2c_ari.domain.ids import new_id
from tests.conftest import Api


async def _connect(api: Api, c2c_id: str, contact: object = None, *, token: str | None = None,
                   params: dict[str, str] | None = None, **data: object):
    body = dict(data)
    if contact is not None:
        body["contact"] = contact
    return await api.call("POST", f"{api.base}/{c2c_id}/connect", body, token=token,
                          params=params)


async def _history(api: Api, c2c_id: str, **params: str):
    return await api.call("GET", f"{api.base}/{c2c_id}/history", params=params)


async def test_missing_contact_is_400_required(api: Api) -> None:
    c2c = await api.create()
    status, body, _ = await _connect(api, c2c["id"])
    assert status == 400
    assert body["data"]["contact"]["required"]["message"]


async def test_valid_connect_answers_503_and_records_nothing(api: Api) -> None:
    c2c = await api.create()
    for status, body, _ in (
        await _connect(api, c2c["id"], "4158867900"),
        await api.call("GET", f"{api.base}/{c2c['id']}/connect",
                       params={"contact": "+4930123456"}),
    ):
        assert status == 503
        assert body["status"] == "error"
        assert "Asterisk" in body["data"]["message"]
    _, body, _ = await _history(api, c2c["id"])
    assert body["data"] == []


async def test_form_body_contact(api: Api) -> None:
    c2c = await api.create(whitelist=["^\\+1"])
    response = await api.client.post(
        f"{api.base}/{c2c['id']}/connect", data={"contact": "+4930123456"},
        headers={"X-Auth-Token": api.token},
    )
    body = await response.json()
    assert response.status == 400
    assert body["message"] == "Contact doesn't match whitelist"


async def test_hostile_contacts_never_reach_the_placer(api: Api) -> None:
    c2c = await api.create()
    for contact in ("+1415 555 1234", "4155551234&PJSIP/999", "+1415555\r\n1234",
                    "1234567890,tT", "sip:evil@host", "PJSIP/1001", "+1(415)5551234",
                    "0" * 5000, "+", "", 4155551234, ["+14155551234"], {"n": 1},
                    "+14155551234\x00", "\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668"):
        status, body, _ = await _connect(api, c2c["id"], contact)
        assert status == 400, contact
        assert "contact" in body["data"], (contact, body)


async def test_whitelist_mismatch(api: Api) -> None:
    c2c = await api.create(whitelist=["^\\+44", "^\\+1415"])
    status, body, _ = await _connect(api, c2c["id"], "+14085551234")
    assert status == 400
    assert body["message"] == "Contact doesn't match whitelist"
    # Kazoo normalises before matching: a US 10-digit number becomes +1...
    status, _, _ = await _connect(api, c2c["id"], "4155551234")
    assert status == 503


async def test_hostile_whitelist_pattern_answers_quickly(api: Api) -> None:
    # Exponential for a backtracking engine on a non-matching input; linear in RE2.
    c2c = await api.create(whitelist=["^(\\d+)+x$", "(1|1|11)*2$"])
    status, body, _ = await asyncio.wait_for(
        _connect(api, c2c["id"], "+1111111111111"), timeout=10)
    assert status == 400
    assert body["message"] == "Contact doesn't match whitelist"
    status, body, _ = await api.call("PUT", api.base,
                                     {"name": "A", "extension": "1", "whitelist": ["(a)\\1"]})
    assert status == 400
    assert "whitelist.0" in body["data"]


async def test_auth_rules_for_connect(api: Api) -> None:
    protected = await api.create()
    public = await api.create(auth_required=False)
    status, _, _ = await _connect(api, protected["id"], "+4930123456", token="")
    assert status == 401
    status, _, _ = await _connect(api, public["id"], "+4930123456", token="")
    assert status == 503
    # Unknown ids answer 401 to anonymous callers: no probing for ids.
    status, _, _ = await _connect(api, new_id(), "+4930123456", token="")
    assert status == 401
    status, _, _ = await _connect(api, public["id"], "+4930123456", token="bad")
    assert status == 401


async def test_throttle_limits_connects_per_minute(api: Api) -> None:
    c2c = await api.create(throttle=2)
    other = await api.create()
    assert (await _connect(api, c2c["id"], "+4930123456"))[0] == 503
    assert (await _connect(api, c2c["id"], "+4930123456"))[0] == 503
    status, body, response = await _connect(api, c2c["id"], "+4930123456")
    assert status == 429
    assert body["message"] == "too many requests"
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    # Another click-to-call has its own budget.
    assert (await _connect(api, other["id"], "+4930123456"))[0] == 503


async def test_throttle_counts_attempts_the_whitelist_refuses(api: Api) -> None:
    # Every attempt counts, so probing the whitelist is slowed down as much as calling.
    c2c = await api.create(throttle=2, whitelist=["^\\+1"])
    for _ in range(2):
        status, body, _ = await _connect(api, c2c["id"], "+4930123456")
        assert (status, body["message"]) == (400, "Contact doesn't match whitelist")
    status, body, response = await _connect(api, c2c["id"], "+4930123456")
    assert (status, body["message"]) == (429, "too many requests")
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    # The budget is spent for allowed contacts too.
    assert (await _connect(api, c2c["id"], "+14155551234"))[0] == 429


async def test_connect_parameters_are_validated(api: Api) -> None:
    c2c = await api.create()
    status, body, _ = await _connect(api, c2c["id"], "+4930123456", blocking="soon")
    assert status == 400 and "blocking" in body["data"]
    status, body, _ = await _connect(api, c2c["id"], "+4930123456",
                                     params={"blocking": "yes"})
    assert status == 400 and "blocking" in body["data"]
    status, body, _ = await _connect(api, c2c["id"], "+4930123456",
                                     custom_application_vars={"bad key": "v"})
    assert status == 400
    status, body, _ = await _connect(api, c2c["id"], "+4930123456",
                                     custom_application_vars={"k": "v\r\nX: y"})
    assert status == 400


async def test_history_newest_first_paginated_and_filtered(api: Api) -> None:
    c2c = await api.create()
    history = api.client.app[CONTEXT].clicktocalls.history_store
    base = 63_900_000_000
    for i in range(5):
        await history.insert(api.account_id, c2c["id"], f"c2c-{i}", base + i * 100,
                             {"timestamp": base + i * 100, "call_id": f"c2c-{i}",
                              "contact": "+4930123456", "result": "success"})
    status, body, _ = await _history(api, c2c["id"])
    assert status == 200
    assert [item["call_id"] for item in body["data"]] == [f"c2c-{i}" for i in range(4, -1, -1)]

    _, body, _ = await _history(api, c2c["id"], page_size="2")
    assert [i["call_id"] for i in body["data"]] == ["c2c-4", "c2c-3"]
    _, body, _ = await _history(api, c2c["id"], page_size="2", start_key=body["next_start_key"])
    assert [i["call_id"] for i in body["data"]] == ["c2c-2", "c2c-1"]

    _, body, _ = await _history(api, c2c["id"], created_from=str(base + 100),
                                created_to=str(base + 300))
    assert [i["call_id"] for i in body["data"]] == ["c2c-3", "c2c-2", "c2c-1"]

    for params in ({"created_from": "x"}, {"created_to": "-5"},
                   {"created_from": str(base + 1), "created_to": str(base)},
                   {"start_key": "abc"}):
        status, body, _ = await _history(api, c2c["id"], **params)
        assert status == 400, params
    status, _, _ = await _history(api, new_id())
    assert status == 404
