"""`PUT /v2/api_auth`: trade an account's API key for an expiring auth token."""

from __future__ import annotations

from aiohttp import web

from c2c_ari.api.context import context
from c2c_ari.api.envelope import AUTH_TOKEN, success
from c2c_ari.api.request import read_envelope


async def put_api_auth(request: web.Request) -> web.Response:
    data = await read_envelope(request)
    issued = await context(request).accounts.issue_token(data.get("api_key"))
    request[AUTH_TOKEN] = issued.token
    return success(
        request,
        {
            "account_id": issued.account.id,
            "account_name": issued.account.name,
            "realm": issued.account.realm,
            "expires_in": context(request).settings.token_ttl,
        },
        status=201,
        revision=issued.account.id,
    )

