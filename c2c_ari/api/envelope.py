"""Kazoo's response envelope, built in one place for every success and every error."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from c2c_ari import __version__

NODE_KEY: web.AppKey[str] = web.AppKey("node", str)
REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id", str)
AUTH_TOKEN: web.RequestKey[str] = web.RequestKey("auth_token", str)
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# Request ids: a random prefix per process and a counter, unique without a syscall each.
_ID_PREFIX = secrets.token_hex(8)
_ID_COUNTER = itertools.count(1)
# Compact JSON, built once (json.dumps with options makes an encoder on every call).
encode_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class RawJson(str):
    """JSON text that is already encoded (a stored document), spliced into the envelope."""


def node_hash(node_name: str) -> str:
    return hashlib.md5(node_name.encode(), usedforsecurity=False).hexdigest()


def request_id(request: web.Request) -> str:
    """The client's X-Request-ID when it is safe to echo, else a fresh one (once per request)."""
    rid = request.get(REQUEST_ID)
    if rid is None:
        offered = request.headers.get("X-Request-ID", "")
        rid = offered if _REQUEST_ID.fullmatch(offered) else (
            f"{_ID_PREFIX}{next(_ID_COUNTER):016x}")
        request[REQUEST_ID] = rid
    return rid


_last_second = -1
_last_stamp = ""


def _timestamp() -> str:
    # strftime on every request shows up in profiles; the text changes once a second.
    global _last_second, _last_stamp
    now = int(time.time())
    if now != _last_second:
        _last_second, _last_stamp = now, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    return _last_stamp


def _base(request: web.Request) -> dict[str, Any]:
    return {
        "auth_token": request.get(AUTH_TOKEN, ""),
        "node": request.app[NODE_KEY],
        "request_id": request_id(request),
        "timestamp": _timestamp(),
        "version": __version__,
    }


def _response(body: dict[str, Any], data: str, status: int,
              headers: dict[str, str] | None) -> web.Response:
    # `data` is encoded on its own, so a stored document's text is sent as it is.
    text = '{"data":' + data + "," + encode_json(body)[1:]
    response = web.Response(text=text, status=status, content_type="application/json",
                            headers=headers)
    response.headers["X-Request-ID"] = body["request_id"]
    return response


def success(
    request: web.Request,
    data: Any,
    *,
    status: int = 200,
    revision: str | None = None,
    extra: dict[str, Any] | None = None,
) -> web.Response:
    encoded = data if isinstance(data, RawJson) else encode_json(data)
    if revision is None:
        # Listings have no stored revision; a digest of the data still lets clients compare.
        revision = node_hash(encoded)
    body = _base(request)
    body["revision"] = revision
    body["status"] = "success"
    if extra:
        body.update(extra)
    return _response(body, encoded, status, {"ETag": f'"{revision}"'})


def error(
    request: web.Request,
    status: int,
    message: str,
    data: Any,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body = _base(request)
    body.update({"error": str(status), "message": message, "status": "error"})
    return _response(body, encode_json(data), status, headers)


# Items written to the network at a time by `success_stream`.
_STREAM_BATCH = 200


async def success_stream(
    request: web.Request, items: AsyncIterator[str], *, extra: dict[str, Any] | None = None
) -> web.StreamResponse:
    """A success envelope whose `data` is a list of any length (`paginate=false`), written
    as its items are read: memory stays bounded by a chunk, however long the list. The keys
    that depend on the whole list (`page_size`, `revision`) come after it, so there is no
    ETag header; `items` yields JSON texts."""
    response = web.StreamResponse(headers={"Content-Type": "application/json",
                                           "X-Request-ID": request_id(request)})
    await response.prepare(request)
    digest = hashlib.md5(usedforsecurity=False)
    count, batch = 0, ['{"data":[']
    async for item in items:
        batch.append(item if count == 0 else "," + item)
        count += 1
        if len(batch) >= _STREAM_BATCH:
            chunk = "".join(batch).encode()
            digest.update(chunk)
            await response.write(chunk)
            batch = []
    body = _base(request)
    body.update(extra or {})
    body["page_size"] = count
    batch.append("]")
    chunk = "".join(batch).encode()
    digest.update(chunk)
    body["revision"] = digest.hexdigest()
    body["status"] = "success"
    await response.write(chunk + b"," + encode_json(body)[1:].encode())
    await response.write_eof()
    return response
