"""What the resources need from the rest of the service, handed over by app.py."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from aiohttp import web

from c2c_ari import logs
from c2c_ari.api.envelope import AUTH_TOKEN
from c2c_ari.config import Settings
from c2c_ari.domain.accounts import Account, AccountService
from c2c_ari.domain.call_tokens import CallTokens
from c2c_ari.domain.calls import CallsService
from c2c_ari.domain.clicktocalls import ClickToCallService
from c2c_ari.domain.connect import ConnectService
from c2c_ari.domain.errors import NotFound, Unauthorized


@dataclass(frozen=True)
class ApiContext:
    settings: Settings
    accounts: AccountService
    clicktocalls: ClickToCallService
    connect: ConnectService
    calls: CallsService
    call_tokens: CallTokens
    schemas: dict[str, dict[str, Any]]
    validate: Callable[[dict[str, Any], str], dict[str, Any]]

    @cached_property
    def trusted_proxies(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(ipaddress.ip_network(p, strict=False)
                     for p in self.settings.trusted_proxies)


CONTEXT: web.AppKey[ApiContext] = web.AppKey("c2c_ari", ApiContext)


def context(request: web.Request) -> ApiContext:
    return request.app[CONTEXT]


def _is_trusted(proxies: tuple[Any, ...], address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def client_ip(request: web.Request) -> str | None:
    """The client's address: the peer's, or, when the peer is a trusted proxy, the last
    address in X-Forwarded-For that is not one (earlier ones are the client's own claims)."""
    peer = request.remote
    proxies = context(request).trusted_proxies
    if not proxies or peer is None or not _is_trusted(proxies, peer):
        return peer
    forwarded = ",".join(request.headers.getall("X-Forwarded-For", ()))[:4096]
    for hop in reversed([hop.strip() for hop in forwarded.split(",") if hop.strip()]):
        if not _is_trusted(proxies, hop):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # a forged or broken header: the proxy itself is what we know
    return peer


def auth_token(request: web.Request) -> str | None:
    token = request.headers.get("X-Auth-Token")
    if token:
        request[AUTH_TOKEN] = token if len(token) <= 256 and token.isprintable() else ""
    return token


async def authenticate(request: web.Request) -> Account:
    """The account named in the path, if the request's token belongs to it.

    A token never reveals other accounts: their ids answer exactly like unknown ones."""
    account = await context(request).accounts.authenticate(auth_token(request))
    if request.match_info.get("account_id", account.id) != account.id:
        raise NotFound(request.match_info["account_id"])
    logs.ACCOUNT_ID.set(account.id)
    return account


async def authenticate_call(request: web.Request) -> str:
    """The account id for reading one call: from the auth token, or, without one, from a
    valid per-call token (`X-Call-Token` or `?call_token=`, which EventSource can send) that
    connect gave the anonymous caller who started exactly this call."""
    if auth_token(request) is not None:
        return (await authenticate(request)).id
    call_token = request.headers.get("X-Call-Token") or request.query.get("call_token")
    if not context(request).call_tokens.check(request.match_info["call_id"], call_token):
        raise Unauthorized()
    return request.match_info["account_id"]


async def authenticate_optional(request: web.Request) -> Account | None:
    """For connect: None without a token; a token that is sent must be valid."""
    if auth_token(request) is None:
        return None
    return await authenticate(request)
