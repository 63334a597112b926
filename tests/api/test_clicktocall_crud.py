"""The click-to-call resource as a Kazoo client sees it: envelopes, verbs, revisions."""

from __future__ import annotations

import asyncio
import re

from tests.conftest import Api

ENVELOPE_KEYS = {"auth_token", "data", "node", "request_id", "revision", "status",
                 "timestamp", "version"}


async def test_kazoo_sequence_empty_create_patch_list_delete(api: Api) -> None:
    status, body, _ = await api.call("GET", api.base)
    assert (status, body["data"]) == (200, [])

    status, body, _ = await api.call(
        "PUT", api.base, {"name": "Sales", "extension": "1001", "auth_required": False}
    )
    assert status == 201
    created = body["data"]
    assert created["auth_required"] is False
    assert created["custom_application_vars"] == {}
    c2c = f"{api.base}/{created['id']}"

    status, body, _ = await api.call("PATCH", c2c, {"custom": "value"})
    assert status == 200
    assert body["data"]["custom"] == "value"
    assert body["data"]["name"] == "Sales"

    status, body, _ = await api.call("GET", api.base)
    assert body["data"] == [{"id": created["id"], "name": "Sales", "extension": "1001"}]
    status, body, _ = await api.call("GET", c2c)
    assert body["data"]["custom"] == "value"

    status, body, _ = await api.call("DELETE", c2c)
    assert status == 200
    assert body["data"]["id"] == created["id"]
    assert body["data"]["custom"] == "value"

    status, body, _ = await api.call("GET", api.base)
    assert body["data"] == []
    status, body, _ = await api.call("GET", c2c)
    assert status == 404
    assert body["message"] == "bad_identifier"
    assert body["data"] == {"message": "bad identifier", "cause": created["id"]}
    status, _, _ = await api.call("PATCH", c2c, {"custom": "again"})
    assert status == 404


async def test_envelope_and_revisions(api: Api) -> None:
    _status, body, response = await api.call("PUT", api.base, {"name": "A", "extension": "1"})
    assert set(body) >= ENVELOPE_KEYS
    assert body["status"] == "success"
    assert body["auth_token"] == api.token
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["timestamp"])
    assert re.fullmatch(r"1-[0-9a-f]{32}", body["revision"])
    assert response.headers["ETag"] == f'"{body["revision"]}"'
    assert response.headers["X-Request-ID"] == body["request_id"]
    assert "revision" not in body["data"]

    c2c = f"{api.base}/{body['data']['id']}"
    _, body2, _ = await api.call("POST", c2c, {"name": "B", "extension": "2"})
    assert body2["revision"].startswith("2-")
    _, body3, _ = await api.call("PATCH", c2c, {"name": "C"})
    assert body3["revision"].startswith("3-")
    _, read, _ = await api.call("GET", c2c)
    assert read["revision"] == body3["revision"]


async def test_post_replaces_whole_document(api: Api) -> None:
    created = await api.create(custom="x", caller_id_number="+15551234567")
    c2c = f"{api.base}/{created['id']}"
    status, body, _ = await api.call("POST", c2c, {"name": "New", "extension": "1002"})
    assert status == 200
    assert "custom" not in body["data"]
    assert "caller_id_number" not in body["data"]
    assert body["data"]["auth_required"] is True  # defaults filled again

    status, body, _ = await api.call("POST", c2c, {"name": "No extension"})
    assert status == 400
    assert body["data"] == {"extension": {"required": {"message": "Field is required but missing"}}}
    _, body, _ = await api.call("GET", c2c)
    assert body["data"]["name"] == "New"


async def test_patch_merges_then_validates_result(api: Api) -> None:
    created = await api.create(media={"ignore_early_media": False})
    c2c = f"{api.base}/{created['id']}"
    status, body, _ = await api.call("PATCH", c2c, {"timeout": 20})
    assert status == 200
    assert body["data"]["media"] == {"ignore_early_media": False}
    assert body["data"]["timeout"] == 20

    status, body, _ = await api.call("PATCH", c2c, {"name": "x" * 129})
    assert status == 400
    assert body["message"] == "validation error"
    assert body["data"]["name"]["maxLength"] == {
        "message": "String must not be more than 128 characters", "target": 128}
    _, body, _ = await api.call("GET", c2c)
    assert body["data"]["name"] == "Sales"


async def test_unknown_keys_kept_private_and_ids_not_writable(api: Api) -> None:
    created = await api.create(
        id="f" * 32, revision="9-abc", pvt_account_id="other", _rev="1-x", extra={"a": [1]}
    )
    assert created["id"] != "f" * 32
    assert created["extra"] == {"a": [1]}
    for key in ("revision", "pvt_account_id", "_rev"):
        assert key not in created
    c2c = f"{api.base}/{created['id']}"
    _, body, _ = await api.call("PATCH", c2c, {"id": "0" * 32, "pvt_x": 1})
    assert body["data"]["id"] == created["id"]
    assert "pvt_x" not in body["data"]


async def test_unknown_keys_may_hold_any_text_and_the_listing_still_works(api: Api) -> None:
    # A NUL (sent as \u0000) in an unknown key: stored and sent back as it came, and the
    # listing, which shows only name and extension, is not disturbed by it.
    created = await api.create(custom="a\u0000b", other={"k\u0000": ["\u2028"]})
    assert created["custom"] == "a\u0000b"
    status, body, _ = await api.call("GET", api.base)
    assert status == 200
    assert body["data"] == [{"id": created["id"], "name": "Sales", "extension": "1001"}]
    _, body, _ = await api.call("GET", f"{api.base}/{created['id']}")
    assert body["data"]["other"] == {"k\u0000": ["\u2028"]}


async def test_if_match_stale_revision_is_412_and_changes_nothing(api: Api) -> None:
    _, body, _ = await api.call("PUT", api.base, {"name": "A", "extension": "1"})
    first = body["revision"]
    c2c = f"{api.base}/{body['data']['id']}"
    _, body, _ = await api.call("PATCH", c2c, {"name": "B"}, headers={"If-Match": f'"{first}"'})
    second = body["revision"]
    for method, data in (("PATCH", {"name": "C"}), ("POST", {"name": "C", "extension": "1"}),
                         ("DELETE", None)):
        status, body, _ = await api.call(method, c2c, data, headers={"If-Match": first})
        assert status == 412, method
        assert body["data"]["cause"] == second
    _, body, _ = await api.call("GET", c2c)
    assert (body["data"]["name"], body["revision"]) == ("B", second)
    status, _, _ = await api.call("DELETE", c2c, headers={"If-Match": second})
    assert status == 200


async def test_concurrent_patches_lose_no_update(api: Api) -> None:
    created = await api.create()
    c2c = f"{api.base}/{created['id']}"
    results = await asyncio.gather(
        *(api.call("PATCH", c2c, {f"key{i}": i}) for i in range(25))
    )
    assert all(status == 200 for status, _, _ in results)
    _, body, _ = await api.call("GET", c2c)
    assert all(body["data"][f"key{i}"] == i for i in range(25))
    assert body["revision"].startswith("26-")


async def test_pagination_walks_every_item_once(api: Api) -> None:
    ids = {(await api.create(name=f"c2c {i}"))["id"] for i in range(7)}
    seen: list[str] = []
    start_key = None
    pages = 0
    while True:
        params = {"page_size": "3", **({"start_key": start_key} if start_key else {})}
        status, body, _ = await api.call("GET", api.base, params=params)
        assert status == 200
        assert body["page_size"] == len(body["data"])
        seen += [item["id"] for item in body["data"]]
        pages += 1
        start_key = body.get("next_start_key")
        if start_key is None:
            break
    assert pages == 3
    assert sorted(seen) == sorted(ids) and len(seen) == 7

    _, body, _ = await api.call("GET", api.base, params={"paginate": "false"})
    assert len(body["data"]) == 7 and "next_start_key" not in body


async def test_bad_query_parameters_are_400(api: Api) -> None:
    for params, field in (({"page_size": "abc"}, "page_size"), ({"page_size": "0"}, "page_size"),
                          ({"page_size": "99999999"}, "page_size"),
                          ({"paginate": "maybe"}, "paginate"),
                          ({"start_key": "x\x00y"}, "start_key")):
        status, body, _ = await api.call("GET", api.base, params=params)
        assert status == 400, params
        assert field in body["data"], body
