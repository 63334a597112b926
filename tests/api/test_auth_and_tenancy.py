"""API keys, auth tokens, and accounts that cannot see each other."""

from __future__ import annotations

import time

import pytest

from c2c_ari.api.context import CONTEXT
from tests.conftest import Api, sign_in


async def test_api_auth_issues_token_for_key_only(api: Api) -> None:
    response = await api.client.put("/v2/api_auth", json={"data": {"api_key": api.api_key}})
    body = await response.json()
    assert response.status == 201
    assert body["data"]["account_id"] == api.account_id
    assert len(body["auth_token"]) >= 32

    for data, status in (({"api_key": "0" * 64}, 401), ({"api_key": api.api_key[:-1]}, 401),
                         ({}, 400), ({"api_key": 12}, 400)):
        response = await api.client.put("/v2/api_auth", json={"data": data})
        body = await response.json()
        assert response.status == status, data
        assert body["status"] == "error"
        assert body["error"] == str(status)


async def test_requests_without_valid_token_are_401(api: Api) -> None:
    altered = api.token[:-1] + ("1" if api.token.endswith("0") else "0")
    for token in ("", "nope", altered, "x" * 5000):
        status, body, _ = await api.call("GET", api.base, token=token)
        assert status == 401
        assert body["message"] == "invalid_credentials"
        assert body["data"] == {"message": "invalid credentials"}


async def test_expired_token_is_refused(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    ttl = api.client.app[CONTEXT].settings.token_ttl
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + ttl + 1)
    status, _, _ = await api.call("GET", api.base)
    assert status == 401


async def test_secrets_are_stored_hashed(api: Api) -> None:
    # Both backends' Database (SQLite's and PostgreSQL's) read rows with fetchall(sql).
    db = api.client.app[CONTEXT].accounts.store.db
    rows = [*await db.fetchall("SELECT * FROM accounts"),
            *await db.fetchall("SELECT * FROM auth_tokens")]
    dump = "\n".join(str(row) for row in rows)
    assert api.api_key not in dump
    assert api.token not in dump


async def test_accounts_are_isolated(api: Api) -> None:
    other = await sign_in(api.client, "Other", "other.example")
    mine = await api.create(name="Mine")

    # Other's token on my account path: as if the account did not exist.
    status, body, _ = await other.call("GET", api.base)
    assert status == 404
    assert body["data"]["cause"] == api.account_id
    status, _, _ = await other.call("GET", f"{api.base}/{mine['id']}")
    assert status == 404
    # My document id under other's own account: unknown there.
    status, body, _ = await other.call("GET", f"{other.base}/{mine['id']}")
    assert (status, body["message"]) == (404, "bad_identifier")
    status, _, _ = await other.call("DELETE", f"{other.base}/{mine['id']}")
    assert status == 404
    _, body, _ = await other.call("GET", other.base)
    assert body["data"] == []
    _, body, _ = await api.call("GET", f"{api.base}/{mine['id']}")
    assert body["data"]["name"] == "Mine"


async def test_schemas_are_public(api: Api) -> None:
    response = await api.client.get("/v2/schemas")
    body = await response.json()
    assert response.status == 200
    assert {"clicktocall", "custom_sip_headers"} <= set(body["data"])
    response = await api.client.get("/v2/schemas/clicktocall")
    schema = (await response.json())["data"]
    assert schema["required"] == ["extension", "name"] or set(schema["required"]) == {
        "extension", "name"}
    response = await api.client.get("/v2/schemas/nope")
    assert response.status == 404
