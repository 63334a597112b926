"""What the API answers after an operator's account commands, on every backend: a disabled
account's key, tokens and public click-to-calls get the same 401 as unknown ones and come
back with enable; a rotated key's old tokens are refused at the next request. (The same
through the real CLI beside a running service: tests/test_accounts_cli.py.)"""

from __future__ import annotations

from typing import Any

from c2c_ari.app import STORE
from c2c_ari.domain.account_admin import AccountAdmin
from tests.conftest import Api, sign_in

CONTACT = {"contact": "+4930123456"}
# What differs between two answers of the same error (the token sent is echoed).
_PER_REQUEST = ("request_id", "timestamp", "auth_token")


def _same(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in _PER_REQUEST}


async def _anonymous(api: Api, c2c_id: str, account_id: str | None = None,
                     ) -> tuple[int, dict[str, Any]]:
    path = f"/v2/accounts/{account_id or api.account_id}/clicktocall/{c2c_id}/connect"
    response = await api.client.post(path, json={"data": CONTACT})
    return response.status, await response.json()


async def _sign_in_with(api: Api, api_key: str) -> tuple[int, dict[str, Any]]:
    response = await api.client.put("/v2/api_auth", json={"data": {"api_key": api_key}})
    return response.status, await response.json()


async def test_a_disabled_account_is_refused_everywhere_until_enabled(api: Api) -> None:
    public = await api.create(auth_required=False)
    other = await sign_in(api.client, name="Other")
    other_c2c = await other.create()
    admin = AccountAdmin(api.client.app[STORE])
    unknown_status, unknown = await _anonymous(api, "f" * 32)
    assert unknown_status == 401
    assert (await _anonymous(api, public["id"]))[0] == 503  # would be placed (no Asterisk)

    await admin.disable(api.account_id)
    status, body, _ = await api.call("GET", api.base)
    assert status == 401
    assert _same(body) == _same(unknown)
    assert (await _sign_in_with(api, api.api_key))[0] == 401
    status, body = await _anonymous(api, public["id"])
    assert status == 401
    assert _same(body) == _same(unknown)  # as if it did not exist
    # Another account goes on as before.
    assert (await other.call("GET", f"{other.base}/{other_c2c['id']}"))[0] == 200

    await admin.enable(api.account_id)
    status, body, _ = await api.call("GET", f"{api.base}/{public['id']}")
    assert status == 200  # nothing was deleted, and the old token is good again
    assert (await _sign_in_with(api, api.api_key))[0] == 201
    assert (await _anonymous(api, public["id"]))[0] == 503


async def test_a_rotated_key_refuses_its_old_tokens_at_the_next_request(api: Api) -> None:
    doc = await api.create()
    other = await sign_in(api.client, name="Other")
    assert (await api.call("GET", f"{api.base}/{doc['id']}"))[0] == 200  # token cached
    _, new_key = await AccountAdmin(api.client.app[STORE]).rotate_key(api.account_id)

    assert (await api.call("GET", f"{api.base}/{doc['id']}"))[0] == 401
    assert (await _sign_in_with(api, api.api_key))[0] == 401
    status, body = await _sign_in_with(api, new_key)
    assert status == 201
    status, body, _ = await api.call("GET", f"{api.base}/{doc['id']}",
                                     token=body["auth_token"])
    assert status == 200
    assert body["data"]["id"] == doc["id"]
    assert (await other.call("GET", other.base))[0] == 200
