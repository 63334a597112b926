"""The OpenAPI 3.1 document and its docs page: valid, complete, derived from schemas/, offline."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator

from c2c_ari.api.routes import API
from c2c_ari.app import create_app
from c2c_ari.config import Settings
from c2c_ari.schemas import SCHEMAS_ENV, schemas_dir
from tests.conftest import Api

HTTP_METHODS = {"get", "put", "post", "patch", "delete", "options", "trace"}


async def _document(client: Any) -> dict[str, Any]:
    response = await client.get("/v2/openapi.json")
    assert response.status == 200
    assert response.content_type == "application/json"
    return await response.json()


def _documented(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in doc["paths"].items()
            for method in item if method in HTTP_METHODS}


def _registered(app: Any) -> set[tuple[str, str]]:
    return {(route.method, route.resource.canonical) for route in app.router.routes()
            if route.method not in ("HEAD", "OPTIONS")
            and route.resource.canonical.startswith("/v2/")}


def _response_validator(doc: dict[str, Any], path: str, method: str,
                        status: str) -> Draft202012Validator:
    """A validator for one response's body; `#/components/...` refs resolve in the doc."""
    schema = doc["paths"][path][method]["responses"][status]["content"]["application/json"]
    return Draft202012Validator({**doc, "allOf": [schema["schema"]]})


async def test_document_is_valid_openapi_3_1_without_auth(client: Any) -> None:
    doc = await _document(client)
    assert doc["openapi"].startswith("3.1.")
    OpenAPIV31SpecValidator(doc).validate()
    for schema in doc["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)


async def test_every_registered_route_is_documented_and_nothing_else(client: Any) -> None:
    doc = await _document(client)
    registered = _registered(client.app)
    assert registered == _documented(doc)
    assert ("GET", "/v2/openapi.json") in registered
    # The route table has no stale entries either.
    assert {(route.method, route.path) for route in API.routes} == registered
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))


async def test_parameters_security_and_errors(client: Any) -> None:
    doc = await _document(client)
    assert doc["components"]["securitySchemes"]["authToken"] == {
        "type": "apiKey", "in": "header", "name": "X-Auth-Token",
        "description": "A token from PUT /v2/api_auth."}
    params = doc["components"]["parameters"]

    def names(path: str, method: str) -> set[str]:
        refs = doc["paths"][path][method].get("parameters", [])
        return {params[ref["$ref"].rsplit("/", 1)[1]]["name"] for ref in refs}

    base = "/v2/accounts/{account_id}/clicktocall"
    item = base + "/{c2c_id}"
    assert {"account_id", "page_size", "start_key", "paginate"} <= names(base, "get")
    assert {"account_id", "c2c_id", "page_size", "start_key", "paginate", "created_from",
            "created_to"} <= names(item + "/history", "get")
    assert {"contact", "blocking"} <= names(item + "/connect", "get")
    assert {"contact", "blocking"} <= names(item + "/connect", "post")
    assert "If-Match" in names(item, "patch")
    assert params["page_size"]["schema"]["maximum"] == 1000

    assert doc["paths"]["/v2/schemas"]["get"]["security"] == []
    assert doc["paths"]["/v2/api_auth"]["put"]["security"] == []
    assert {} in doc["paths"][item + "/connect"]["post"]["security"]
    assert doc["paths"][item]["get"]["security"] == [{"authToken": []}]

    for code in ("400", "401", "404", "405", "412", "413", "415", "429", "503"):
        response = doc["components"]["responses"][f"Error{code}"]
        schema = response["content"]["application/json"]["schema"]
        assert schema["allOf"] == [{"$ref": "#/components/schemas/ErrorEnvelope"}]
    connect = doc["paths"][item + "/connect"]["post"]["responses"]
    assert {"200", "202", "400", "401", "404", "405", "413", "415", "429", "503"} <= set(connect)
    assert "Retry-After" in doc["components"]["responses"]["Error429"]["headers"]
    assert "Allow" in doc["components"]["responses"]["Error405"]["headers"]
    body = doc["paths"][base]["put"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["data"] == {"$ref": "#/components/schemas/clicktocall"}


async def test_schemas_are_the_live_files_adapted_to_2020_12(client: Any) -> None:
    doc = await _document(client)
    schemas = doc["components"]["schemas"]
    live = json.loads((schemas_dir() / "clicktocall.json").read_text(encoding="utf-8"))
    assert schemas["clicktocall"]["properties"]["name"]["maxLength"] == (
        live["properties"]["name"]["maxLength"])
    assert schemas["clicktocall"]["properties"]["custom_sip_headers"]["$ref"] == (
        "#/components/schemas/custom_sip_headers")
    assert schemas["connect"]["properties"]["custom_application_vars"]["$ref"] == (
        "#/components/schemas/clicktocall/properties/custom_application_vars")
    headers = schemas["custom_sip_headers"]
    assert "definitions" not in headers and "header_name" in headers["$defs"]
    assert headers["propertyNames"]["$ref"] == (
        "#/components/schemas/custom_sip_headers/$defs/header_name")
    text = json.dumps(schemas)
    assert '"$schema"' not in text and '"$id"' not in text and "#/definitions/" not in text
    # The embedded schemas still decide like the service: refs resolve inside the document.
    validator = Draft202012Validator({**doc, "$ref": "#/components/schemas/clicktocall"})
    assert validator.is_valid({"name": "A", "extension": "1001",
                               "custom_sip_headers": {"X-Ok": "v"}})
    assert not validator.is_valid({"name": "A", "extension": "1001",
                                   "custom_sip_headers": {"Via": "v"}})
    assert not validator.is_valid({"name": "A" * 500, "extension": "1001"})


async def test_a_changed_schema_file_changes_the_document(
    aiohttp_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    copied = tmp_path / "schemas"
    shutil.copytree(schemas_dir(), copied)
    path = copied / "clicktocall.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["properties"]["name"]["maxLength"] = 77
    path.write_text(json.dumps(doc), encoding="utf-8")
    monkeypatch.setenv(SCHEMAS_ENV, str(copied))
    client = await aiohttp_client(create_app(
        Settings(data_dir=tmp_path, node="test-node", ari_url="off")))
    served = await _document(client)
    assert served["components"]["schemas"]["clicktocall"]["properties"]["name"][
        "maxLength"] == 77


async def test_live_answers_match_the_documented_envelopes(api: Api) -> None:
    doc = await _document(api.client)
    base = "/v2/accounts/{account_id}/clicktocall"
    status, body, _ = await api.call("PUT", api.base, {"name": "Sales", "extension": "1001"})
    assert status == 201
    _response_validator(doc, base, "put", "201").validate(body)
    status, body, _ = await api.call("GET", api.base)
    _response_validator(doc, base, "get", "200").validate(body)
    status, body, _ = await api.call("GET", api.base + "/nope", token="")
    assert status == 401
    error = doc["components"]["responses"]["Error401"]["content"]["application/json"]
    Draft202012Validator({**doc, "allOf": [error["schema"]]}).validate(body)


async def test_docs_page_is_self_contained_html(client: Any) -> None:
    response = await client.get("/v2/docs")
    assert response.status == 200
    assert response.content_type == "text/html"
    html = await response.text()
    assert not re.search(r"https?://", html, re.I)
    assert not re.search(r"<(script|link|img|iframe)[^>]*\b(src|href)=", html, re.I)
    assert "openapi.json" in html and '<html lang="en">' in html
    assert '<label for="filter">' in html
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy


def _breaking(schema: dict[str, Any]) -> list[str]:
    """Query values that the parameter's documented schema refuses."""
    if schema.get("type") == "integer":
        return ["x", str(schema["minimum"] - 1), str(schema["maximum"] + 1)]
    if schema.get("type") == "boolean":
        return ["maybe"]
    values = ["é"] if "pattern" in schema else []
    if "maxLength" in schema:
        values.append("1" * (schema["maxLength"] + 1))
    return values


async def test_documented_query_rules_are_the_enforced_ones(api: Api) -> None:
    """What the document refuses the service refuses (400 naming the parameter), and the
    documented bounds themselves are taken: the route table and the handlers agree."""
    doc = await _document(api.client)
    params = doc["components"]["parameters"]
    c2c = await api.create()
    checked: set[str] = set()
    for path, item in doc["paths"].items():
        url = path.format(account_id=api.account_id, c2c_id=c2c["id"], name="clicktocall",
                          call_id=f"c2c-{c2c['id']}-0123456789abcdef")
        for method, op in item.items():
            if "400" not in op["responses"]:
                continue
            for ref in op.get("parameters", []):
                param = params[ref["$ref"].rsplit("/", 1)[1]]
                if param["in"] != "query" or param.get("explode"):
                    continue
                name, schema = param["name"], param["schema"]
                for value in _breaking(schema):
                    status, body, _ = await api.call(method.upper(), url,
                                                     params={name: value})
                    assert status == 400 and name in body["data"], (path, name, value, body)
                if method == "get" and schema.get("type") == "integer":
                    for value in (schema["minimum"], schema["maximum"]):
                        status, body, _ = await api.call("GET", url, params={name: value})
                        assert status == 200, (path, name, value, body)
                checked.add(name)
    assert checked == {"page_size", "start_key", "paginate", "created_from", "created_to",
                       "contact", "blocking"}
