"""Hostile and malformed requests: each a Kazoo-style 4xx, never a 500, and nothing stored."""

from __future__ import annotations

import json

from tests.conftest import Api


async def _raw(api: Api, method: str, path: str, body: bytes, content_type: str | None):
    headers = {"X-Auth-Token": api.token}
    if content_type:
        headers["Content-Type"] = content_type
    response = await api.client.request(method, path, data=body, headers=headers)
    return response.status, await response.json(content_type=None), response


async def _nothing_stored(api: Api) -> None:
    _, body, _ = await api.call("GET", api.base)
    assert body["data"] == []


async def test_body_that_is_not_json(api: Api) -> None:
    for raw in (b"{not json", b'{"data": {"name": "a",}}', b"\xff\xfe\x00", b"[" * 100_00,
                b'{"data":' * 3000 + b"1" + b"}" * 3000):
        status, body, _ = await _raw(api, "PUT", api.base, raw, "application/json")
        assert status == 400, raw[:20]
        assert body["status"] == "error"
        assert "json" in body["data"]
        assert body["data"]["json"]["invalid"]["target"] == "body"
    await _nothing_stored(api)


async def test_json_that_is_not_an_envelope(api: Api) -> None:
    for raw, field in ((b"[1, 2]", "json"), (b'"text"', "json"), (b'{"data": [1]}', "data"),
                       (b'{"data": "x"}', "data")):
        status, body, _ = await _raw(api, "PUT", api.base, raw, "application/json")
        assert status == 400
        assert field in body["data"]
    await _nothing_stored(api)


async def test_curl_style_form_labelled_json_is_accepted(api: Api) -> None:
    doc = json.dumps({"data": {"name": "Curl", "extension": "1001"}}).encode()
    status, body, _ = await _raw(api, "PUT", api.base, doc, "application/x-www-form-urlencoded")
    assert status == 201
    assert body["data"]["name"] == "Curl"


async def test_wrong_content_type_is_415(api: Api) -> None:
    doc = json.dumps({"data": {"name": "X", "extension": "1"}}).encode()
    for content_type in ("text/xml", "multipart/form-data; boundary=x", "text/plain"):
        status, body, _ = await _raw(api, "PUT", api.base, doc, content_type)
        assert status == 415, content_type
        assert body["error"] == "415"
    status, body, _ = await _raw(api, "PUT", api.base, b"name=X&extension=1",
                                 "application/x-www-form-urlencoded")
    assert status == 400
    await _nothing_stored(api)


async def test_body_over_64_kib_is_413(api: Api) -> None:
    doc = json.dumps({"data": {"name": "X", "extension": "1", "pad": "a" * 70_000}}).encode()
    status, body, _ = await _raw(api, "PUT", api.base, doc, "application/json")
    assert status == 413
    assert body["error"] == "413" and body["status"] == "error"
    await _nothing_stored(api)


async def test_wrong_types_are_validation_errors(api: Api) -> None:
    cases = {
        "name": 5, "extension": ["1001"], "auth_required": "yes", "timeout": "30",
        "throttle": 1.5, "whitelist": "^\\+1", "dial_first": "both",
        "custom_sip_headers": {"X-Bad\r\nInjected": "v"},
    }
    for field, value in cases.items():
        status, body, _ = await api.call("PUT", api.base,
                                         {"name": "A", "extension": "1", field: value})
        assert status == 400, field
        assert body["message"] == "validation error"
        assert any(key == field or key.startswith(field + ".") for key in body["data"]), body
    await _nothing_stored(api)


async def test_crlf_in_header_values_is_refused(api: Api) -> None:
    for value in ("a\r\nVia: evil", "a\nb", "a\x00b", "\x7f"):
        status, body, _ = await api.call(
            "PUT", api.base,
            {"name": "A", "extension": "1", "custom_sip_headers": {"X-C2C": value}},
        )
        assert status == 400, value
        assert "custom_sip_headers.X-C2C" in body["data"]
    await _nothing_stored(api)


async def test_headers_owned_by_the_sip_stack_are_refused(api: Api) -> None:
    for name in ("Via", "call-id", "CONTACT", "Content-Length", "f", "Route"):
        for headers in ({name: "x"}, {"out": {name: "x"}}):
            status, body, _ = await api.call(
                "PUT", api.base, {"name": "A", "extension": "1", "custom_sip_headers": headers}
            )
            assert status == 400, headers
            assert any(key.endswith("." + name) for key in body["data"]), body
    status, _, _ = await api.call(
        "PUT", api.base,
        {"name": "A", "extension": "1", "custom_sip_headers": {"out": {"X-Via": "ok"}}},
    )
    assert status == 201


async def test_unknown_path_is_404_envelope(api: Api) -> None:
    for path in ("/nope", "/v2/accounts", f"/v2/accounts/{api.account_id}/devices",
                 f"{api.base}/{'a' * 32}/nope"):
        status, body, _ = await api.call("GET", path)
        assert status == 404, path
        assert body["status"] == "error" and body["error"] == "404"


async def test_wrong_verb_is_405_with_allow(api: Api) -> None:
    created = await api.create()
    cases = {
        api.base: {"DELETE", "POST", "PATCH"},
        f"{api.base}/{created['id']}": {"PUT"},
        f"{api.base}/{created['id']}/history": {"POST", "PUT", "DELETE"},
        f"{api.base}/{created['id']}/connect": {"PUT", "DELETE", "PATCH"},
    }
    for path, methods in cases.items():
        for method in methods:
            status, body, response = await api.call(method, path)
            assert status == 405, (method, path)
            assert body["message"] == "invalid_method"
            assert body["data"]["message"] == "method not allowed"
            assert method not in response.headers["Allow"]
            assert "GET" in response.headers["Allow"]


async def test_malformed_ids_are_404(api: Api) -> None:
    for bad in ("x", "A" * 32, "0" * 31, "0" * 33, "..%2F..", "%00"):
        status, body, _ = await api.call("GET", f"{api.base}/{bad}")
        assert status == 404, bad
        assert body["status"] == "error"
    status, _, _ = await api.call("GET", f"/v2/accounts/{'z' * 32}/clicktocall")
    assert status == 404


async def test_hostile_request_id_is_not_echoed(api: Api) -> None:
    _, body, response = await api.call("GET", api.base,
                                       headers={"X-Request-ID": "a" * 500})
    assert body["request_id"] != "a" * 500
    assert response.headers["X-Request-ID"] == body["request_id"]
