"""Requests are bounded before they are trusted: compressed bodies, JSON that other readers
would not take back, nesting, malformed query parameters and tokens. Each gets a Kazoo 4xx,
nothing is stored, and the service goes on answering everyone else."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest

from c2c_ari.api.request import MAX_DEPTH
from tests.conftest import Api

DOC = {"name": "Sales", "extension": "1001"}


async def _send(api: Api, method: str, path: str, body: bytes, **headers: str):
    all_headers = {"X-Auth-Token": api.token, "Content-Type": "application/json", **headers}
    response = await api.client.request(method, path, data=body, headers=all_headers)
    return response.status, await response.json(content_type=None)


async def _count(api: Api) -> int:
    _, body, _ = await api.call("GET", api.base)
    assert body["status"] == "success"
    return len(body["data"])


async def test_a_gzip_body_is_accepted(api: Api) -> None:
    body = gzip.compress(json.dumps({"data": DOC}).encode())
    status, answer = await _send(api, "PUT", api.base, body, **{"Content-Encoding": "gzip"})
    assert status == 201, answer
    assert answer["data"]["name"] == "Sales"
    body = zlib.compress(json.dumps({"data": {**DOC, "name": "Deflated"}}).encode())
    status, answer = await _send(api, "PUT", api.base, body, **{"Content-Encoding": "deflate"})
    assert status == 201, answer


@pytest.mark.parametrize("path", ["/v2/api_auth", "/v2/accounts/{account}/clicktocall"])
async def test_a_compression_bomb_is_refused_unread(api: Api, path: str) -> None:
    # 50 MB in under 64 KiB: within the cap on the wire, refused once inflating passes it
    # (aiohttp's own decompression would have inflated all of it first).
    bomb = gzip.compress(b" " * 50_000_000, compresslevel=9)
    assert len(bomb) < 64 * 1024
    status, answer = await _send(api, "PUT", path.format(account=api.account_id), bomb,
                                 **{"Content-Encoding": "gzip"})
    assert status == 413
    assert answer["error"] == "413"
    assert await _count(api) == 0


async def test_other_encodings_and_broken_data(api: Api) -> None:
    status, answer = await _send(api, "PUT", api.base, b"\x1b\x00", **{"Content-Encoding": "br"})
    assert status == 415
    assert answer["message"] == "unsupported_media_type"
    status, answer = await _send(api, "PUT", api.base, b"not gzip at all",
                                 **{"Content-Encoding": "gzip"})
    assert status == 400
    assert "json" in answer["data"]
    truncated = gzip.compress(json.dumps({"data": DOC}).encode())[:-12]
    status, answer = await _send(api, "PUT", api.base, truncated, **{"Content-Encoding": "gzip"})
    assert status == 400
    assert await _count(api) == 0


@pytest.mark.parametrize("raw", [
    b'{"data": {"name": "A", "extension": "1", "x": NaN}}',
    b'{"data": {"name": "A", "extension": "1", "x": Infinity}}',
    b'{"data": {"name": "A", "extension": "1", "x": -Infinity}}',
    b'{"data": {"name": "A", "extension": "1", "x": 1e400}}',
    b'{"data": {"name": "A", "extension": "1", "x": 9007199254740992}}',
    b'{"data": {"name": "A", "extension": "1", "x": -123456789012345678901234567890}}',
    b'{"data": {"name": "A", "extension": "1", "x": "\\ud800"}}',
    b'{"data": {"name": "A", "extension": "1", "\\udfff": 1}}',
    b'{"data": {"name": "A", "extension": "1", "x": ["a\\ud83d"]}}',
])
async def test_json_other_readers_would_not_take_back(api: Api, raw: bytes) -> None:
    status, answer = await _send(api, "PUT", api.base, raw)
    assert status == 400, answer
    assert answer["data"]["json"]["invalid"]["target"] == "body"
    # and the account's listing keeps working (it answered 500 once such a value was in)
    assert await _count(api) == 0


async def test_numbers_every_reader_agrees_on_are_kept(api: Api) -> None:
    status, answer = await _send(
        api, "PUT", api.base,
        b'{"data": {"name": "A", "extension": "1", "n": 9007199254740991, "f": 0.5,'
        b' "e": 1e-400, "pair": "\\ud83d\\ude00"}}')
    assert status == 201, answer
    assert answer["data"]["n"] == 9007199254740991
    assert answer["data"]["pair"] == "\U0001f600"


def _nested(depth: int) -> str:
    """JSON text of `depth` nested objects (built as text: json.dumps would recurse)."""
    return '{"k":' * depth + '"leaf"' + "}" * depth


def _doc_with(deep: str) -> bytes:
    return ('{"data": {"name": "Sales", "extension": "1001", "deep": ' + deep + "}}").encode()


async def test_nesting_is_limited(api: Api) -> None:
    # The envelope and `data` are two levels; unknown keys may nest to MAX_DEPTH in all.
    status, created = await _send(api, "PUT", api.base, _doc_with(_nested(MAX_DEPTH - 2)))
    assert status == 201, created
    item = f"{api.base}/{created['data']['id']}"
    for depth, method, path in ((MAX_DEPTH - 1, "PUT", api.base), (975, "PUT", api.base),
                                (976, "PATCH", item), (976, "POST", item)):
        status, answer = await _send(api, method, path, _doc_with(_nested(depth)))
        assert status == 400, (depth, method)
        assert "nesting deeper" in answer["data"]["json"]["invalid"]["message"]
    assert await _count(api) == 1


@pytest.mark.parametrize("query", [
    "page_size=--5", "page_size=5.0", "page_size=%EF%BC%95", "page_size=", "page_size=1e3",
    "created_from=--1", "created_to=9223372036854775808", "created_to=99999999999999999999",
    "created_from=%C2%B2", "start_key=%C2%B2", "start_key=1-", "start_key=a%0Ab",
    "start_key=" + "1" * 65, "paginate=maybe",
])
async def test_malformed_history_query_parameters(api: Api, query: str) -> None:
    c2c = await api.create()
    status, body, _ = await api.call("GET", f"{api.base}/{c2c['id']}/history?{query}")
    assert status == 400, (query, body)
    assert body["message"] == "validation error"


@pytest.mark.parametrize("query", ["page_size=--5", "start_key=%C2%B2x%0D", "page_size=0"])
async def test_malformed_listing_query_parameters(api: Api, query: str) -> None:
    status, body, _ = await api.call("GET", f"{api.base}?{query}")
    assert status == 400, (query, body)


@pytest.mark.parametrize("token", ["é" * 64, "\u00ff" * 10, "a" * 63, "A" * 64, "0" * 65,
                                   "../" * 20, "x"])
async def test_tokens_of_another_shape_are_401(api: Api, token: str) -> None:
    c2c = await api.create(auth_required=False)
    call = f"{api.base}/{c2c['id']}/calls/c2c-{c2c['id']}-0123456789abcdef"
    for params, headers in (({"call_token": token}, {}), ({}, {"X-Call-Token": token})):
        response = await api.client.get(call, params=params, headers=headers)
        assert response.status == 401, (token, params)
    # aiohttp sends header values as UTF-8 where a browser would not: the service still
    # answers 401 rather than failing on them.
    response = await api.client.get(api.base, headers={"X-Auth-Token": token})
    assert response.status == 401
    response = await api.client.put("/v2/api_auth", json={"data": {"api_key": token}})
    assert response.status == 401
