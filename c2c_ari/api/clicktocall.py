"""`/v2/accounts/{account_id}/clicktocall`: Kazoo's click-to-call resource.

Each handler follows Kazoo's pipeline: the router allows the method, then authenticate,
then validate, then execute; the envelope is built by `envelope.success`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from c2c_ari.api.context import (
    authenticate,
    authenticate_call,
    authenticate_optional,
    client_ip,
    context,
)
from c2c_ari.api.envelope import RawJson, encode_json, success, success_stream
from c2c_ari.api.request import query_bool, query_int, read_envelope
from c2c_ari.domain.clicktocalls import Page
from c2c_ari.domain.connect import connect_request
from c2c_ari.domain.errors import ValidationFailed
from c2c_ari.domain.origins import request_origin
from c2c_ari.store import StoredDocument

SSE_HEARTBEAT_SECONDS = 15.0
SSE_RETRY_MS = 2000


def _document(request: web.Request, stored: StoredDocument, status: int = 200) -> web.Response:
    # Stored documents hold only public keys and their id: their text is the response data.
    return success(request, RawJson(stored.body), status=status, revision=stored.revision)


def _page_size(request: web.Request) -> int | None:
    """None when the client asked for everything (`paginate=false`)."""
    if query_bool(request, "paginate") is False:
        return None
    settings = context(request).settings
    size = query_int(request, "page_size", minimum=1, maximum=settings.max_page_size)
    return settings.default_page_size if size is None else size


def _start_key(request: web.Request) -> str | None:
    key = request.query.get("start_key")
    if key is not None and (len(key) > 64 or not key.isascii() or not key.isprintable()):
        raise ValidationFailed.single("start_key", "pattern", "start_key is not a valid key",
                                      target="printable ASCII, at most 64 characters")
    return key


def _listing_extra(start_key: str | None) -> dict[str, Any]:
    return {} if start_key is None else {"start_key": start_key}


def _listing(request: web.Request, page: Page, start_key: str | None) -> web.Response:
    extra = {**_listing_extra(start_key), "page_size": len(page.items)}
    if page.next_start_key is not None:
        extra["next_start_key"] = page.next_start_key
    return success(request, RawJson("[" + ",".join(page.items) + "]"), extra=extra)


async def _everything(
    request: web.Request, items: AsyncIterator[str], start_key: str | None
) -> web.StreamResponse:
    """paginate=false: the whole listing, streamed; a missing resource still answers a
    plain Kazoo error, because nothing is sent before the first item is read."""
    first = await anext(items, None)

    async def chained() -> AsyncIterator[str]:
        if first is not None:
            yield first
            async for item in items:
                yield item

    return await success_stream(request, chained(), extra=_listing_extra(start_key))


async def list_clicktocalls(request: web.Request) -> web.StreamResponse:
    account = await authenticate(request)
    start_key, page_size = _start_key(request), _page_size(request)
    clicktocalls = context(request).clicktocalls
    if page_size is None:
        return await _everything(request, clicktocalls.all_items(account.id, start_key),
                                 start_key)
    return _listing(request, await clicktocalls.page(account.id, start_key, page_size),
                    start_key)


async def create_clicktocall(request: web.Request) -> web.Response:
    account = await authenticate(request)
    data = await read_envelope(request)
    stored = await context(request).clicktocalls.create(account.id, data)
    return _document(request, stored, status=201)


async def get_clicktocall(request: web.Request) -> web.Response:
    account = await authenticate(request)
    stored = await context(request).clicktocalls.get(account.id, request.match_info["c2c_id"])
    return _document(request, stored)


async def replace_clicktocall(request: web.Request) -> web.Response:
    account = await authenticate(request)
    data = await read_envelope(request)
    stored = await context(request).clicktocalls.replace(
        account.id, request.match_info["c2c_id"], data, request.headers.get("If-Match")
    )
    return _document(request, stored)


async def patch_clicktocall(request: web.Request) -> web.Response:
    account = await authenticate(request)
    data = await read_envelope(request)
    stored = await context(request).clicktocalls.patch(
        account.id, request.match_info["c2c_id"], data, request.headers.get("If-Match")
    )
    return _document(request, stored)


async def delete_clicktocall(request: web.Request) -> web.Response:
    account = await authenticate(request)
    stored = await context(request).clicktocalls.delete(
        account.id, request.match_info["c2c_id"], request.headers.get("If-Match")
    )
    return _document(request, stored)


async def history(request: web.Request) -> web.StreamResponse:
    account = await authenticate(request)
    start_key, page_size = _start_key(request), _page_size(request)
    created_from = query_int(request, "created_from", minimum=0)
    created_to = query_int(request, "created_to", minimum=0)
    if created_from is not None and created_to is not None and created_from > created_to:
        raise ValidationFailed.single(
            "created_from", "maximum", "created_from must not be after created_to",
            target=created_to,
        )
    clicktocalls, c2c_id = context(request).clicktocalls, request.match_info["c2c_id"]
    window = {"start_key": start_key, "created_from": created_from, "created_to": created_to}
    if page_size is None:
        return await _everything(
            request, clicktocalls.all_history(account.id, c2c_id, **window), start_key)
    page = await clicktocalls.history(account.id, c2c_id, page_size=page_size, **window)
    return _listing(request, page, start_key)


async def connect(request: web.Request) -> web.Response:
    account = await authenticate_optional(request)
    params = connect_request(
        await read_envelope(request, allow_form=True), request.query,
        context(request).validate, client_ip=client_ip(request),
        origin=request_origin(request.headers.get("Origin"), request.headers.get("Referer")),
    )
    result = await context(request).connect.connect(
        request.match_info["account_id"], request.match_info["c2c_id"], params,
        authenticated=account,
    )
    # Whoever placed the call may follow it, and only it: the token is what a browser's
    # EventSource (which cannot send X-Auth-Token) or an anonymous widget shows.
    data = result.data
    call_id = data.get("outbound_call_id") or data["call_id"]
    data = {**data, "call_token": context(request).call_tokens.issue(call_id)}
    return success(request, data, status=result.status)


async def calls_in_flight(request: web.Request) -> web.Response:
    account = await authenticate(request)
    tokens = context(request).call_tokens
    calls = await context(request).calls.in_flight(account.id, request.match_info["c2c_id"])
    # Each with its token, so that a browser can follow it with an EventSource.
    return success(request, [{**call, "call_token": tokens.issue(call["call_id"])}
                             for call in calls])


async def get_call(request: web.Request) -> web.Response:
    account_id = await authenticate_call(request)
    status = await context(request).calls.status(
        account_id, request.match_info["c2c_id"], request.match_info["call_id"]
    )
    return success(request, status)


async def call_events(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: one `status` event now and at every change; the last one has
    `state: "ended"`. Errors before the stream starts are ordinary Kazoo errors."""
    account_id = await authenticate_call(request)
    updates = context(request).calls.updates(
        account_id, request.match_info["c2c_id"], request.match_info["call_id"]
    )
    first = await anext(updates)  # raises NotFound before any byte of the stream is sent
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    # `retry` paces the browser's reconnects; after one it gets the status as it is then.
    await response.write(f"retry: {SSE_RETRY_MS}\n\n".encode())
    pending: asyncio.Future[dict[str, Any] | None] | None = None
    try:
        status: dict[str, Any] | None = first
        while status is not None:
            await response.write(f"event: status\ndata: {encode_json(status)}\n\n".encode())
            pending = asyncio.ensure_future(anext(updates, None))
            # A comment line now and then, while nothing changes: proxies do not close the
            # idle stream, and a browser that is gone shows up as a failed write.
            while not (await asyncio.wait({pending}, timeout=SSE_HEARTBEAT_SECONDS))[0]:
                await response.write(b": keep-alive\n\n")
            status, pending = pending.result(), None
    finally:
        if pending is not None:
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
        await updates.aclose()
    await response.write_eof()
    return response


async def hang_up_call(request: web.Request) -> web.Response:
    account = await authenticate(request)
    status = await context(request).calls.hang_up(
        account.id, request.match_info["c2c_id"], request.match_info["call_id"]
    )
    return success(request, status)

