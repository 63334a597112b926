"""Connect: the rules a request must pass before any call is placed.

Order matters: find the click-to-call and decide whether this caller may use it (an
anonymous caller learns nothing about which accounts or ids exist: every refusal is the same
401), check the web page's origin, throttle every attempt (so a caller probing the whitelist
is slowed down too), normalise the contact, check the whitelist, and only then hand a fully
validated attempt to the call placer.

Anonymous callers (a public widget or form, `auth_required: false`) never share a budget
with the owner: the owner's connects count in one bucket, the public's in another, and each
client address in a third bucket of its own (`anonymous_throttle` per minute), so one
visitor can neither keep the widget throttled for everyone nor use up the owner's calls.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from c2c_ari import metrics
from c2c_ari.domain.accounts import Account, AccountService
from c2c_ari.domain.clicktocalls import ClickToCallService
from c2c_ari.domain.contact import normalize_contact
from c2c_ari.domain.errors import (
    CallsUnavailable,
    DomainError,
    Forbidden,
    NotFound,
    Throttled,
    Unauthorized,
    ValidationFailed,
)
from c2c_ari.domain.origins import origin_allowed
from c2c_ari.domain.whitelist import WHITELIST_MESSAGE
from c2c_ari.domain.whitelist import check as check_whitelist
from c2c_ari.store import ThrottleStore

# Throttle limits are connects per minute, in a sliding window. Buckets per click-to-call
# (few keys) and per client address (many, churned by whoever controls many addresses) are
# kept apart, so that the second can never crowd out the first.
WINDOW = 60.0
CLICKTOCALL, CLIENT = "clicktocall", "client"


@dataclass(frozen=True)
class ConnectRequest:
    contact: object
    blocking: bool = False
    custom_application_vars: dict[str, str] = field(default_factory=dict)
    client_ip: str | None = None
    # The web origin the request came from (its Origin header, else its Referer's origin).
    origin: str | None = None
    trigger: str = "api"
    # From the dialplan: the channel that dialled in (already the extension leg), and the
    # number of the phone behind it.
    incoming_channel: str | None = None
    incoming_caller: str | None = None
    # ...and the Asterisk node it is on (the call must stay there).
    incoming_node: str | None = None


# Query parameters that steer connect itself; any other becomes a custom application var
# (Kazoo's behaviour), after the same checks as the stored ones.
_RESERVED_QUERY = frozenset({"contact", "blocking", "auth_token"})


def connect_request(
    body: dict[str, Any],
    query: Mapping[str, str],
    validate: Callable[[dict[str, Any], str], dict[str, Any]],
    *,
    client_ip: str | None,
    origin: str | None,
) -> ConnectRequest:
    """Read connect's parameters from the body, falling back to the query string, and check
    them against `schemas/connect.json` (the contact is normalised later, on its own)."""
    variables: dict[str, Any] = {k: v for k, v in query.items() if k not in _RESERVED_QUERY}
    body_vars = body.get("custom_application_vars", {})
    if isinstance(body_vars, dict):
        variables.update(body_vars)
    else:
        variables = body_vars  # let the schema report the wrong type
    checked = validate(
        {"blocking": body.get("blocking", query.get("blocking", False)),
         "custom_application_vars": variables},
        "connect",
    )
    return ConnectRequest(
        contact=body.get("contact", query.get("contact")),
        blocking=checked["blocking"] in (True, "true"),
        custom_application_vars=checked["custom_application_vars"],
        client_ip=client_ip,
        origin=origin,
    )


@dataclass(frozen=True)
class ConnectAttempt:
    """Everything a call placer needs; every field has passed validation."""

    account: Account
    clicktocall: dict[str, Any]
    contact: str
    blocking: bool
    custom_application_vars: dict[str, str]
    client_ip: str | None
    authenticated: bool
    trigger: str = "api"
    incoming_channel: str | None = None
    incoming_caller: str | None = None
    incoming_node: str | None = None


@dataclass(frozen=True)
class ConnectResult:
    """What the HTTP layer answers: 202 with the plan, or 200 with the history item."""

    status: int
    data: dict[str, Any]


class CallPlacer(Protocol):
    async def place(self, attempt: ConnectAttempt) -> ConnectResult: ...


class NoCallPlacer:
    """Stands in until a Stasis application is connected: refuses, and records nothing."""

    async def place(self, attempt: ConnectAttempt) -> ConnectResult:
        raise CallsUnavailable("calls cannot be placed: no Asterisk (ARI) connection")


def client_bucket(client_ip: str | None) -> str:
    """The throttle key of a client address: an IPv4 address, or an IPv6 /64 (one host
    gets a whole /64 and could otherwise start afresh from each of its addresses)."""
    try:
        address = ipaddress.ip_address(client_ip or "")
    except ValueError:
        return "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class ConnectService:
    def __init__(
        self,
        accounts: AccountService,
        clicktocalls: ClickToCallService,
        placer: CallPlacer,
        throttle: ThrottleStore,
        *,
        anonymous_throttle: int | None = 5,
    ) -> None:
        self.accounts = accounts
        self.clicktocalls = clicktocalls
        self.placer = placer
        self.throttle = throttle
        self.anonymous_throttle = anonymous_throttle

    async def connect(
        self,
        account_id: str,
        c2c_id: str,
        request: ConnectRequest,
        *,
        authenticated: Account | None,
    ) -> ConnectResult:
        """Place a call for `c2c_id` of `account_id`. `authenticated` is the account of the
        caller's token (already matched to `account_id`), None for an anonymous caller."""
        try:
            return await self._connect(account_id, c2c_id, request, authenticated)
        except DomainError as refused:
            metrics.CONNECT_REFUSED.labels(refusal_reason(refused)).inc()
            raise

    async def _connect(
        self, account_id: str, c2c_id: str, request: ConnectRequest,
        authenticated: Account | None,
    ) -> ConnectResult:
        if authenticated is None:
            account, doc = await self._public(account_id, c2c_id, request)
        else:
            account, doc = authenticated, (await self.clicktocalls.get(account_id, c2c_id)).doc
            await self._throttle(CLICKTOCALL, f"{account.id}/{c2c_id}/owner",
                                 doc.get("throttle"))
        whitelist = doc.get("whitelist") or []
        contact = normalize_contact(request.contact, whitelist=whitelist)
        check_whitelist(whitelist, contact)
        stored_vars: dict[str, str] = doc.get("custom_application_vars") or {}
        if authenticated is None:
            _refuse_overrides(stored_vars, request.custom_application_vars)
        return await self.placer.place(
            ConnectAttempt(
                account=account,
                clicktocall=doc,
                contact=contact,
                blocking=request.blocking,
                custom_application_vars={**stored_vars, **request.custom_application_vars},
                client_ip=request.client_ip,
                authenticated=authenticated is not None,
                trigger=request.trigger,
                incoming_channel=request.incoming_channel,
                incoming_caller=request.incoming_caller,
                incoming_node=request.incoming_node,
            )
        )

    async def _public(
        self, account_id: str, c2c_id: str, request: ConnectRequest
    ) -> tuple[Account, dict[str, Any]]:
        """The account and document of a click-to-call an anonymous caller may use, after
        its origin and throttle checks. Unknown account, unknown id and a click-to-call that
        requires a token all answer the same 401, so none can be told from the others."""
        account = await self.accounts.get(account_id)
        if account is None:
            raise Unauthorized()
        try:
            doc = (await self.clicktocalls.get(account.id, c2c_id)).doc
        except NotFound:
            raise Unauthorized() from None
        if doc.get("auth_required", True) is not False:
            raise Unauthorized()
        allowed = doc.get("allowed_origins") or []
        if allowed and request.origin is not None and not origin_allowed(allowed,
                                                                         request.origin):
            # A page of another site cannot place calls from its visitors' browsers (a plain
            # form POST needs no CORS); requests without an Origin or Referer (servers,
            # curl) are not web pages and pass.
            raise Forbidden("this web page's origin may not use this click-to-call",
                            cause=request.origin)
        key = f"{account.id}/{c2c_id}"
        await self._throttle(CLIENT, f"{key}/{client_bucket(request.client_ip)}",
                             self.anonymous_throttle)
        await self._throttle(CLICKTOCALL, f"{key}/public", doc.get("throttle"))
        return account, doc

    async def _throttle(self, bucket: str, key: str, limit: int | None) -> None:
        if limit is None:
            return
        retry_after = await self.throttle.hit(bucket, key, limit, WINDOW)
        if retry_after is not None:
            raise Throttled(max(1.0, math.ceil(retry_after)))


def refusal_reason(refused: DomainError) -> str:
    """A refused connect's reason, as metrics count it."""
    match refused:
        case Throttled():
            return "throttle"
        case CallsUnavailable() if refused.retry_after is not None:
            return "admission"
        case CallsUnavailable():
            return "no_asterisk"
        case Forbidden():
            return "origin"
        case Unauthorized():
            return "unauthorized"
        case NotFound():
            return "not_found"
        case ValidationFailed() if refused.message == WHITELIST_MESSAGE:
            return "whitelist"
        case _:
            return "invalid"


def _refuse_overrides(stored: dict[str, str], given: dict[str, str]) -> None:
    """An anonymous caller may add custom application variables but never change one the
    click-to-call sets: those are the owner's (routing, accounting...)."""
    taken = sorted(set(stored) & set(given))
    if taken:
        raise ValidationFailed({
            f"custom_application_vars.{name}": {"readOnly": {
                "message": "Set by the click-to-call; an anonymous caller cannot change it",
            }} for name in taken
        })
