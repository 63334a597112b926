"""Kazoo's response envelope, built in one place for every success and every error."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from typing import Any

from aiohttp import web

from c2c_ari import __version__

NODE_KEY: web.AppKey[str] = web.AppKey("node", str)
REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id", str)
AUTH_TOKEN: web.RequestKey[str] = web.RequestKey("auth_token", str)
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def node_hash(node_name: str) -> str:
    return hashlib.md5(node_name.encode(), usedforsecurity=False).hexdigest()


def request_id(request: web.Request) -> str:
    """The client's X-Request-ID when it is safe to echo, else a fresh one (once per request)."""
    rid = request.get(REQUEST_ID)
    if rid is None:
        offered = request.headers.get("X-Request-ID", "")
        rid = offered if _REQUEST_ID.fullmatch(offered) else secrets.token_hex(16)
        request[REQUEST_ID] = rid
    return rid


def _timestamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _dumps(body: dict[str, Any]) -> str:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def _base(request: web.Request) -> dict[str, Any]:
    return {
        "auth_token": request.get(AUTH_TOKEN, ""),
        "node": request.app[NODE_KEY],
        "request_id": request_id(request),
        "timestamp": _timestamp(),
        "version": __version__,
    }


def success(
    request: web.Request,
    data: Any,
    *,
    status: int = 200,
    revision: str | None = None,
    extra: dict[str, Any] | None = None,
) -> web.Response:
    body = _base(request)
    body["data"] = data
    if revision is None:
        # Listings have no stored revision; a digest of the data still lets clients compare.
        revision = node_hash(_dumps(data))
    body["revision"] = revision
    body["status"] = "success"
    if extra:
        body.update(extra)
    response = web.Response(
        text=_dumps(body), status=status, content_type="application/json"
    )
    response.headers["ETag"] = f'"{revision}"'
    response.headers["X-Request-ID"] = body["request_id"]
    return response


def error(
    request: web.Request,
    status: int,
    message: str,
    data: Any,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body = _base(request)
    body.update({"data": data, "error": str(status), "message": message, "status": "error"})
    response = web.Response(
        text=_dumps(body), status=status, content_type="application/json", headers=headers
    )
    response.headers["X-Request-ID"] = body["request_id"]
    return response
