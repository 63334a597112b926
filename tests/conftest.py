"""Fixtures shared by the service tests: a real SQLite file per test and a signed-in client."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from c2c_ari.api.context import CONTEXT
from c2c_ari.app import create_app
from c2c_ari.config import Settings

# tests.guards: in CI a skip of any test fails the run (elsewhere, a summary of the skips);
# pytester: for the guard's own tests, which run pytest on small test files.
pytest_plugins = ["pytester", "tests.guards"]


@dataclass
class Api:
    """A client signed in to one account, speaking Kazoo's envelope."""

    client: TestClient
    account_id: str
    api_key: str
    token: str

    @property
    def base(self) -> str:
        return f"/v2/accounts/{self.account_id}/clicktocall"

    async def call(
        self, method: str, path: str, data: Any = None, *, token: str | None = None,
        headers: dict[str, str] | None = None, **kwargs: Any,
    ) -> tuple[int, dict[str, Any], Any]:
        """(status, envelope, response) for one request; `data` is wrapped in {"data": ...}."""
        all_headers = {"X-Auth-Token": self.token if token is None else token}
        if token == "":
            all_headers.pop("X-Auth-Token")
        all_headers.update(headers or {})
        if data is not None:
            kwargs["json"] = {"data": data}
        response = await self.client.request(method, path, headers=all_headers, **kwargs)
        body = await response.json(content_type=None)
        return response.status, body, response

    async def create(self, **fields: Any) -> dict[str, Any]:
        doc = {"name": "Sales", "extension": "1001", **fields}
        status, body, _ = await self.call("PUT", self.base, doc)
        assert status == 201, body
        return body["data"]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # No Asterisk for these tests: connect must answer 503 whatever runs on the machine.
    return Settings(data_dir=tmp_path, node="test-node", ari_url="off")


async def sign_in(client: TestClient, name: str = "Acme", realm: str = "acme.example") -> Api:
    account, api_key = await client.app[CONTEXT].accounts.create(name, realm)
    response = await client.put("/v2/api_auth", json={"data": {"api_key": api_key}})
    assert response.status == 201
    token = (await response.json())["auth_token"]
    return Api(client=client, account_id=account.id, api_key=api_key, token=token)


@pytest.fixture
async def client(aiohttp_client, settings: Settings) -> TestClient:  # type: ignore[no-untyped-def]
    return await aiohttp_client(create_app(settings))


@pytest.fixture
async def api(client: TestClient) -> Api:
    return await sign_in(client)
