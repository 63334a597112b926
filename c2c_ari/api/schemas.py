"""`GET /v2/schemas[/{name}]`: the JSON Schema documents, public as in Kazoo."""

from __future__ import annotations

from aiohttp import web

from c2c_ari.api.context import context
from c2c_ari.api.envelope import success
from c2c_ari.domain.errors import NotFound


async def list_schemas(request: web.Request) -> web.Response:
    return success(request, sorted(context(request).schemas))


async def get_schema(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    schema = context(request).schemas.get(name)
    if schema is None:
        raise NotFound(name[:128])
    return success(request, schema)

