"""Builds the aiohttp application and wires storage, domain services and resources."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from c2c_ari.api import auth, clicktocall, schemas
from c2c_ari.api.context import CONTEXT, ApiContext
from c2c_ari.api.envelope import NODE_KEY, node_hash
from c2c_ari.api.errors import kazoo_errors
from c2c_ari.config import Settings
from c2c_ari.domain.accounts import AccountService
from c2c_ari.domain.clicktocalls import ClickToCallService
from c2c_ari.domain.connect import CallPlacer, ConnectService, NoCallPlacer
from c2c_ari.domain.throttle import Throttle
from c2c_ari.domain.validation import default_validator, load_schemas
from c2c_ari.store import AccountStore, ClickToCallStore, Database, HistoryStore

DATABASE: web.AppKey[Database] = web.AppKey("database", Database)


def build_services(
    settings: Settings, db: Database, placer: CallPlacer | None = None
) -> ApiContext:
    validator = default_validator()
    clicktocalls = ClickToCallService(ClickToCallStore(db), HistoryStore(db), validator.validate)
    return ApiContext(
        settings=settings,
        accounts=AccountService(AccountStore(db), settings.token_ttl),
        clicktocalls=clicktocalls,
        connect=ConnectService(clicktocalls, Throttle(), placer or NoCallPlacer()),
        schemas=load_schemas(),
        validate=validator.validate,
    )


def create_app(settings: Settings, placer: CallPlacer | None = None) -> web.Application:
    app = web.Application(
        middlewares=[kazoo_errors], client_max_size=settings.max_body_bytes
    )
    app[NODE_KEY] = node_hash(settings.node)
    db = Database(settings.database_path)
    app[DATABASE] = db

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await db.open()
        app[CONTEXT] = build_services(settings, db, placer)
        yield
        await db.close()

    app.cleanup_ctx.append(lifecycle)
    auth.add_routes(app)
    schemas.add_routes(app)
    clicktocall.add_routes(app)
    return app
