"""Builds the aiohttp application and wires storage, domain services and resources."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from c2c_ari import localasterisk, metrics
from c2c_ari.api import cors, operations, pages, routes, routing
from c2c_ari.api.context import CONTEXT, ApiContext
from c2c_ari.api.envelope import NODE_KEY, node_hash
from c2c_ari.api.errors import kazoo_errors
from c2c_ari.api.operations import READINESS, Readiness
from c2c_ari.ari import AriClient
from c2c_ari.cluster.calls import ClusterCalls
from c2c_ari.cluster.leases import LeaseKeeper
from c2c_ari.cluster.liveness import AsteriskBeat
from c2c_ari.cluster.membership import Membership, new_instance
from c2c_ari.cluster.reaper import Reaper
from c2c_ari.config import Settings
from c2c_ari.domain.accounts import AccountService
from c2c_ari.domain.call_tokens import CallTokens
from c2c_ari.domain.calls import CallsService, LiveCalls, NoLiveCalls
from c2c_ari.domain.clicktocalls import ClickToCallService
from c2c_ari.domain.connect import CallPlacer, ConnectService, NoCallPlacer
from c2c_ari.domain.history import HistoryRecorder
from c2c_ari.domain.retention import Housekeeper, RetentionPolicy
from c2c_ari.schemas import default_validator, load_schemas
from c2c_ari.stasis.app import StasisApp
from c2c_ari.store import Store, open_store
from c2c_ari.store.errors import StoreUnavailable

log = logging.getLogger(__name__)

STORE: web.AppKey[Store] = web.AppKey("store", Store)
STASIS: web.AppKey[StasisApp] = web.AppKey("stasis", StasisApp)
# Seconds the dialplan application's holder has to renew its lease; when it dies, another
# instance takes the name over within this (the dialplan retries meanwhile).
DIALPLAN_LEASE_TTL = 3.0
# At a graceful stop: how long calls get to be let go (those being set up: until bridged) or
# to clean up in Asterisk, and how long released calls may wait for another instance to
# adopt them (its reaper runs every second) before this one ends them after all.
STOP_GRACE = 10.0
HANDOVER_WAIT = 5.0


def ari_nodes(settings: Settings, app: str) -> dict[str, AriClient]:
    """An ARI client per Asterisk node the settings name, each in application `app`; none
    when calls are off or no Asterisk is known."""
    if settings.nodes:
        targets = [(node.name, node.url, node.user or settings.ari_user,
                    node.password or settings.ari_password) for node in settings.nodes]
    elif settings.ari_url == "off":
        targets = []
    elif settings.ari_url == "auto":
        targets = [(local.name or f"node{local.node}", local.url, local.user, local.password)
                   for local in localasterisk.read_nodes()]
    else:
        targets = [(ASTERISK_NODE, settings.ari_url, settings.ari_user, settings.ari_password)]
    return {name: AriClient(url, user, password, app, on_request=_ari_observer(name))
            for name, url, user, password in targets}


# The Asterisk node's name when the settings give one ARI URL.
ASTERISK_NODE = "asterisk"


def _ari_observer(node: str):  # type: ignore[no-untyped-def]
    def observe(operation: str, outcome: str, seconds: float) -> None:
        metrics.ARI_REQUEST.labels(node, operation, outcome).observe(seconds)
    return observe


def build_services(
    settings: Settings, store: Store, call_tokens: CallTokens,
    placer: CallPlacer | None = None, live: LiveCalls | None = None,
) -> ApiContext:
    validator = default_validator()
    clicktocalls = ClickToCallService(
        store.clicktocalls, store.history, validator.validate,
        max_per_account=settings.max_clicktocalls_per_account)
    # A token seen once is remembered only where no other process can revoke it.
    accounts = AccountService(store.accounts, settings.token_ttl,
                              cache_tokens=not store.shared)
    return ApiContext(
        settings=settings,
        accounts=accounts,
        clicktocalls=clicktocalls,
        connect=ConnectService(accounts, clicktocalls, placer or NoCallPlacer(),
                               store.throttle,
                               anonymous_throttle=settings.anonymous_throttle or None),
        calls=CallsService(clicktocalls, live or NoLiveCalls()),
        call_tokens=call_tokens,
        schemas=load_schemas(),
        validate=validator.validate,
    )


def housekeeper(settings: Settings, store: Store) -> Housekeeper:
    return Housekeeper(
        store.accounts, store.clicktocalls, store.history,
        RetentionPolicy(history_days=settings.history_retention_days,
                        deleted_days=settings.deleted_retention_days),
    )


async def _serve_metrics(listen: str, readiness: Readiness) -> web.AppRunner | None:
    """The separate listener of metrics and health checks, if the settings ask for one."""
    if not listen:
        return None
    host, _, port = listen.rpartition(":")
    runner = web.AppRunner(operations.metrics_app(readiness), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host.strip("[]") or "127.0.0.1", int(port)).start()
    return runner


async def _stop(stasis: StasisApp | None, membership: Membership,
                beating: asyncio.Task[None], asterisk_beat: AsteriskBeat | None) -> None:
    """Graceful stop. With another instance alive, bridged calls are handed over rather
    than cut: let go here (those being set up, once bridged), adopted there once this
    instance has left; those it does not adopt in time are ended here after all. Calls that
    cannot be handed over are hung up and recorded (SERVICE_STOPPED)."""
    released: list[str] = []
    if stasis is not None:
        if await membership.others_alive():
            released = await stasis.release(STOP_GRACE)
        released += await stasis.end_calls(STOP_GRACE)
    # Beating until here, so that no one takes over the calls still being let go.
    beating.cancel()
    await asyncio.gather(beating, return_exceptions=True)
    if asterisk_beat is not None:
        # Its count gone from Asterisk, this instance is gone for the others at once.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STOP_GRACE):
                await asterisk_beat.clear()
    try:
        await membership.leave()
    except StoreUnavailable:
        # The others will see this instance's heartbeat age instead.
        log.warning("stopping: the database is out of reach, so this instance's"
                    " heartbeat row stays until it ages out")
    if stasis is None:
        return
    if released:
        log.info("stopping: %d calls handed over to the other instances", len(released))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(HANDOVER_WAIT + STOP_GRACE):
                await stasis.end_unclaimed(released, wait=HANDOVER_WAIT)
    await stasis.close()


def create_app(settings: Settings, placer: CallPlacer | None = None) -> web.Application:
    # cors is outermost, so that the Kazoo errors too reach an allowed page.
    app = web.Application(
        middlewares=[operations.measure, cors.cors, kazoo_errors],
        client_max_size=settings.max_body_bytes,
        # Compressed bodies are inflated by api/request.py, never beyond max_body_bytes;
        # aiohttp's own decompression would inflate them before any limit applies.
        handler_args={"auto_decompress": False},
    )
    app.on_response_prepare.append(cors.add_cors_headers)
    app[NODE_KEY] = node_hash(settings.node)
    readiness = app[READINESS] = Readiness()

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        store = await open_store(settings.database_target,
                                 cache_bytes=settings.document_cache_bytes)
        app[STORE] = store
        instance = new_instance(settings.instance_id or f"{settings.node}-{settings.port}",
                                settings.ari_app)
        membership = Membership(store.instances, instance)
        await membership.beat()  # alive before any call is placed: nobody reaps them
        readiness.last_write = lambda: membership.last_beat
        nodes = ari_nodes(settings, instance.app) if placer is None else {}
        readiness.asterisk_configured = bool(nodes) or placer is not None
        stasis = None
        if nodes:
            stasis = StasisApp(
                nodes, HistoryRecorder(store.calls),
                extension_endpoint=settings.extension_endpoint,
                contact_endpoint=settings.contact_endpoint,
                contact_uri_endpoint=settings.contact_uri_endpoint,
                max_calls_in_setup=settings.max_calls_in_setup,
                owner=instance.boot_id, dialplan_app=instance.dialplan_app,
            )
        live = ClusterCalls(store, instance.boot_id, stasis)
        call_tokens = CallTokens(await store.keys.get_or_create("call_tokens"))
        services = build_services(settings, store, call_tokens, placer or stasis, live)
        app[CONTEXT] = services
        background = [housekeeper(settings, store).run_forever(), live.run()]
        reaper: Reaper | None = None
        asterisk_beat: AsteriskBeat | None = None
        if stasis is not None:
            stasis.accept_dialplan_calls(services.connect, services.clicktocalls,
                                         services.accounts)
            app[STASIS] = stasis
            readiness.websockets = stasis.websockets
            metrics.LIVE.calls_in_flight = stasis.load
            metrics.LIVE.ari_connected = stasis.websockets
            metrics.LIVE.node_available = stasis.availability
            await stasis.start()
            asterisk_beat = AsteriskBeat([node.ari for node in stasis.nodes.values()],
                                         instance.boot_id)
            background.append(asterisk_beat.run())
            reaper = Reaper(store.calls, membership, stasis.take_over,
                            ready=lambda: stasis.connected, still_alive=asterisk_beat.alive)
            background.append(LeaseKeeper(
                store.leases, f"dialplan-app:{instance.dialplan_app}", instance.boot_id,
                ttl=DIALPLAN_LEASE_TTL, on_acquired=stasis.attach_dialplan_app,
                on_lost=stasis.detach_dialplan_app,
                ready=lambda: stasis.connected).run())
        tasks = [asyncio.create_task(job) for job in background]
        beating = asyncio.create_task(membership.run())
        reaping = asyncio.create_task(reaper.run()) if reaper is not None else None
        metrics_runner = await _serve_metrics(settings.metrics_listen, readiness)
        yield
        if metrics_runner is not None:
            await metrics_runner.cleanup()
        if reaper is not None and reaping is not None:
            # A round in progress finishes: a call it claimed is taken over (and so ended or
            # handed on below), never left claimed by an instance that no longer follows it.
            reaper.stop()
            await reaping
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            await _stop(stasis, membership, beating, asterisk_beat)
        finally:
            beating.cancel()
            # Whatever failed before: a pool left open keeps the event loop from ending.
            await store.close()

    app.cleanup_ctx.append(lifecycle)
    operations.add_routes(app, metrics_token=settings.metrics_token or None)
    routing.add_routes(app, routes.API)
    pages.add_routes(app)  # not API: no envelope, no OpenAPI
    return app
