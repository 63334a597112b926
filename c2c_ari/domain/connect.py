"""Connect: the rules a request must pass before any call is placed.

Order matters: authenticate (unless the click-to-call opted out), throttle every attempt
(so a caller probing the whitelist is slowed down too), normalise the contact, check the
whitelist, and only then hand a fully validated attempt to the call placer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from c2c_ari.domain.clicktocalls import ClickToCallService
from c2c_ari.domain.contact import normalize_contact
from c2c_ari.domain.errors import CallsUnavailable, NotFound, Throttled, Unauthorized
from c2c_ari.domain.throttle import Throttle
from c2c_ari.domain.whitelist import check as check_whitelist
from c2c_ari.store import AccountRecord


@dataclass(frozen=True)
class ConnectRequest:
    contact: object
    blocking: bool = False
    custom_application_vars: dict[str, str] = field(default_factory=dict)
    client_ip: str | None = None
    trigger: str = "api"
    # From the dialplan: the channel that dialled in, already the extension leg.
    entered_channel: str | None = None


# Query parameters that steer connect itself; any other becomes a custom application var
# (Kazoo's behaviour), after the same checks as the stored ones.
_RESERVED_QUERY = frozenset({"contact", "blocking", "auth_token"})


def connect_request(
    body: dict[str, Any],
    query: Mapping[str, str],
    validate: Callable[[dict[str, Any], str], dict[str, Any]],
    client_ip: str | None,
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
    )


@dataclass(frozen=True)
class ConnectAttempt:
    """Everything a call placer needs; every field has passed validation."""

    account: AccountRecord
    clicktocall: dict[str, Any]
    contact: str
    blocking: bool
    custom_application_vars: dict[str, str]
    client_ip: str | None
    authenticated: bool
    trigger: str = "api"
    entered_channel: str | None = None


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


class ConnectService:
    def __init__(
        self, clicktocalls: ClickToCallService, throttle: Throttle, placer: CallPlacer
    ) -> None:
        self.clicktocalls = clicktocalls
        self.throttle = throttle
        self.placer = placer

    async def connect(
        self,
        account: AccountRecord | None,
        authenticated: bool,
        c2c_id: str,
        request: ConnectRequest,
    ) -> ConnectResult:
        if account is None:
            raise NotFound(c2c_id)
        try:
            doc = (await self.clicktocalls.get(account.id, c2c_id)).doc
        except NotFound:
            # An anonymous caller must not learn which ids exist.
            if not authenticated:
                raise Unauthorized() from None
            raise
        if not authenticated and doc.get("auth_required", True) is not False:
            raise Unauthorized()
        retry_after = self.throttle.hit(f"{account.id}/{c2c_id}", doc.get("throttle"))
        if retry_after is not None:
            raise Throttled(max(1.0, math.ceil(retry_after)))
        whitelist = doc.get("whitelist") or []
        contact = normalize_contact(request.contact, whitelist=whitelist)
        check_whitelist(whitelist, contact)
        variables = {**doc.get("custom_application_vars", {}), **request.custom_application_vars}
        return await self.placer.place(
            ConnectAttempt(
                account=account,
                clicktocall=doc,
                contact=contact,
                blocking=request.blocking,
                custom_application_vars=variables,
                client_ip=request.client_ip,
                authenticated=authenticated,
                trigger=request.trigger,
                entered_channel=request.entered_channel,
            )
        )
