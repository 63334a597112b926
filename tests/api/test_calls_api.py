"""`/clicktocall/{id}/calls/{call_id}` without an Asterisk: ended calls come from history, and
every way of naming someone else's call answers 404."""

from __future__ import annotations

import json

from c2c_ari.api.context import CONTEXT
from tests.conftest import Api, sign_in


async def _recorded_call(api: Api, c2c_id: str) -> str:
    call_id = f"c2c-{c2c_id}-0123456789abcdef"
    history = api.client.app[CONTEXT].clicktocalls.history_store
    await history.insert(api.account_id, c2c_id, call_id, 63_900_000_000,
                         {"timestamp": 63_900_000_000, "call_id": call_id,
                          "contact": "+4930123456", "result": "success"})
    return call_id


async def test_an_ended_call_answers_its_outcome(api: Api) -> None:
    c2c = await api.create()
    call_id = await _recorded_call(api, c2c["id"])
    for method in ("GET", "DELETE"):
        status, body, _ = await api.call(method, f"{api.base}/{c2c['id']}/calls/{call_id}")
        assert status == 200, method
        assert body["data"]["state"] == "ended"
        assert (body["data"]["call_id"], body["data"]["result"]) == (call_id, "success")


async def test_unknown_and_foreign_calls_are_404(api: Api) -> None:
    mine, other_c2c = await api.create(), await api.create()
    call_id = await _recorded_call(api, mine["id"])
    other = await sign_in(api.client, "Other", "other.example")
    cases = [
        (api, f"{api.base}/{mine['id']}/calls/c2c-{mine['id']}-ffffffffffffffff"),  # unknown
        (api, f"{api.base}/{other_c2c['id']}/calls/{call_id}"),  # another click-to-call's
        (api, f"{api.base}/{mine['id']}/calls/{'x' * 200}"),  # malformed
        (other, f"{other.base}/{mine['id']}/calls/{call_id}"),  # another account's
        (other, f"{api.base}/{mine['id']}/calls/{call_id}"),
    ]
    for who, path in cases:
        for method in ("GET", "DELETE"):
            status, body, _ = await who.call(method, path)
            assert status == 404, (method, path)
            assert body["status"] == "error"


async def test_calls_need_a_token(api: Api) -> None:
    c2c = await api.create(auth_required=False)
    call_id = await _recorded_call(api, c2c["id"])
    for method in ("GET", "DELETE"):
        status, _, _ = await api.call(method, f"{api.base}/{c2c['id']}/calls/{call_id}",
                                      token="")
        assert status == 401


def _sse_statuses(text: str) -> list[dict]:
    return [json.loads(line[len("data: "):]) for line in text.splitlines()
            if line.startswith("data: ")]


async def test_event_stream_of_an_ended_call_is_its_outcome(api: Api) -> None:
    c2c = await api.create()
    call_id = await _recorded_call(api, c2c["id"])
    response = await api.client.get(f"{api.base}/{c2c['id']}/calls/{call_id}/events",
                                    headers={"X-Auth-Token": api.token})
    assert response.status == 200
    assert response.content_type == "text/event-stream"
    statuses = _sse_statuses(await response.text())
    assert [(s["state"], s["call_id"]) for s in statuses] == [("ended", call_id)]

    response = await api.client.get(
        f"{api.base}/{c2c['id']}/calls/c2c-{c2c['id']}-ffff/events",
        headers={"X-Auth-Token": api.token})
    assert response.status == 404
    assert (await response.json())["message"] == "bad_identifier"


async def test_an_anonymous_caller_follows_only_its_own_call(api: Api) -> None:
    c2c = await api.create(auth_required=False)
    call_id = await _recorded_call(api, c2c["id"])
    other_call = f"c2c-{c2c['id']}-fedcba9876543210"
    tokens = api.client.app[CONTEXT].call_tokens
    path = f"{api.base}/{c2c['id']}/calls/{call_id}"

    status, body, _ = await api.call("GET", path, token="",
                                     headers={"X-Call-Token": tokens.issue(call_id)})
    assert (status, body["data"]["call_id"]) == (200, call_id)
    response = await api.client.get(f"{path}/events",
                                    params={"call_token": tokens.issue(call_id)})
    assert response.status == 200
    assert _sse_statuses(await response.text())[-1]["state"] == "ended"

    for headers in ({"X-Call-Token": tokens.issue(other_call)},
                    {"X-Call-Token": "0" * 64}, {}):
        status, _, _ = await api.call("GET", path, token="", headers=headers)
        assert status == 401, headers
    # Hanging up stays with authenticated users.
    status, _, _ = await api.call("DELETE", path, token="",
                                  headers={"X-Call-Token": tokens.issue(call_id)})
    assert status == 401


async def test_calls_in_flight_are_for_the_owner_only(api: Api) -> None:
    c2c = await api.create(auth_required=False)
    await _recorded_call(api, c2c["id"])  # ended: not in flight
    path = f"{api.base}/{c2c['id']}/calls"
    status, body, _ = await api.call("GET", path)
    assert (status, body["data"]) == (200, [])
    assert (await api.call("GET", path, token=""))[0] == 401
    other = await sign_in(api.client, "Other", "other.example")
    assert (await other.call("GET", f"{other.base}/{c2c['id']}/calls"))[0] == 404
