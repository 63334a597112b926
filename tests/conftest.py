"""Fixtures shared by the service tests: a database per test, on every backend (a real SQLite
file, and a fresh database in a PostgreSQL cluster the session starts), and a signed-in
client."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiohttp.test_utils import TestClient
from pytest_postgresql import factories

from c2c_ari.api.context import CONTEXT
from c2c_ari.app import create_app
from c2c_ari.config import Settings
from tests.helpers.postgres import Cluster, Outage

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


# Every storage backend; tests that take `database` (and so `settings`, `client`, `api`, and
# the store contract's `store`) run once on each.
BACKENDS = ["sqlite", "postgresql"]


@dataclass(frozen=True)
class PostgresServer:
    """What pytest-postgresql's noproc factory reads from the fixture it depends on."""

    host: str
    port: int
    user: str
    password: str | None = None
    options: str = ""
    maintenance_dbname: str = "postgres"
    template_dbname: str | None = None


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster of this session's own (tests/helpers/postgres.py): initdb in a
    temporary folder, started on a free port, stopped and removed when the session ends.
    Debian's server package is installed first when its binaries are missing."""
    cluster = Cluster.start()
    try:
        yield PostgresServer(cluster.host, cluster.port, cluster.user)
    finally:
        cluster.stop()


def _migrate_template(*, host: str, port: int, user: str, dbname: str,
                      password: str | None = None, **_: Any) -> None:
    """Migrate the template every test database is cloned from, so each test starts with
    the current schema (opening a store then only checks it)."""
    from c2c_ari.store.postgres import migrate_database

    url = psycopg.conninfo.make_conninfo(host=host, port=port, user=user, dbname=dbname,
                                         password=password)
    # A thread of its own: no event loop may be running in this one.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, migrate_database(url)).result()


# pytest-postgresql in noproc mode on that cluster: a template database made once per session,
# and a fresh database cloned from it for each test that asks (dropped after the test).
postgres_template = factories.postgresql_noproc(depends_on="postgres_cluster",
                                                load=[_migrate_template])
postgres_connection = factories.postgresql("postgres_template")


@pytest.fixture
def postgres_url(postgres_connection: psycopg.Connection[Any]) -> str:
    """A fresh, migrated PostgreSQL database for this test."""
    info = postgres_connection.info
    return f"postgresql://{info.user}@{info.host}:{info.port}/{info.dbname}"


@pytest.fixture
def outage(postgres_connection: psycopg.Connection[Any]) -> Iterator[Outage]:
    """The test's PostgreSQL database made unreachable at will (`begin`, `end`)."""
    found = Outage(postgres_connection.info)
    try:
        yield found
    finally:
        found.end()  # the database must be droppable, whatever the test did
        found.admin.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test's database must outlive the service it serves. Fixtures are torn down in the
    reverse order of their set-up, and a fixture named early sets up its own dependencies
    first (`client` sets up pytest-aiohttp's `aiohttp_client`, which closes the services it
    started, before `settings`): so `database` is set up first of all, whatever order tests
    and fixtures name things in. Otherwise the database is dropped first and the service's
    clean-up (its last writes, closing its pool) meets a database that is gone."""
    for item in items:
        names = getattr(item, "fixturenames", None)
        if names and "database" in names:
            names.remove("database")
            names.insert(0, "database")


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest) -> str:
    """The `database` setting of this test's backend: "" (a SQLite file in the data
    directory) or a fresh PostgreSQL database's URL."""
    if request.param == "postgresql":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return ""


@pytest.fixture
def settings(tmp_path: Path, database: str) -> Settings:
    # No Asterisk for these tests: connect must answer 503 whatever runs on the machine.
    return Settings(data_dir=tmp_path, node="test-node", ari_url="off", database=database)


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
