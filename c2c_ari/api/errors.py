"""Every failure becomes one Kazoo error envelope here, and nothing else answers errors."""

from __future__ import annotations

import logging
import math

from aiohttp import web

from c2c_ari.api.envelope import error
from c2c_ari.domain.errors import (
    CallsUnavailable,
    DomainError,
    Forbidden,
    LimitReached,
    NotFound,
    RevisionConflict,
    Throttled,
    Unauthorized,
    ValidationFailed,
)

log = logging.getLogger(__name__)


class BadRequest(Exception):
    """A request-level problem outside the domain (body, content type, size)."""

    def __init__(self, status: int, message: str, data: dict[str, object]) -> None:
        super().__init__(message)
        self.status, self.message, self.data = status, message, data


def from_domain(request: web.Request, exc: DomainError) -> web.Response:
    match exc:
        case ValidationFailed():
            return error(request, 400, exc.message, exc.errors)
        case NotFound():
            return error(
                request, 404, "bad_identifier", {"message": "bad identifier", "cause": exc.ident}
            )
        case Unauthorized():
            return error(request, 401, "invalid_credentials", {"message": "invalid credentials"})
        case RevisionConflict():
            return error(
                request, 412, "precondition_failed",
                {"message": "If-Match does not name the current revision",
                 "cause": exc.current},
            )
        case Throttled():
            seconds = str(math.ceil(exc.retry_after))
            return error(
                request, 429, "too many requests",
                {"message": "connect limit reached for this click-to-call",
                 "retry_after": int(seconds)},
                headers={"Retry-After": seconds},
            )
        case Forbidden():
            return error(request, 403, "forbidden",
                         {"message": exc.message, "cause": exc.cause})
        case LimitReached():
            return error(request, 403, "forbidden",
                         {"message": exc.message, "limit": exc.limit})
        case CallsUnavailable():
            data: dict[str, object] = {"message": str(exc)}
            headers = None
            if exc.retry_after is not None:
                data["retry_after"] = exc.retry_after
                headers = {"Retry-After": str(exc.retry_after)}
            return error(request, 503, "service unavailable", data, headers=headers)
    log.error("unmapped domain error %r", exc)
    return error(request, 500, "internal_server_error", {"message": "internal error"})


def from_http(request: web.Request, exc: web.HTTPException) -> web.Response:
    """aiohttp's own refusals (no route, wrong verb, body too large) in Kazoo's shape."""
    status = exc.status
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allow = ", ".join(sorted(exc.allowed_methods))
        return error(
            request, 405, "invalid_method", {"message": "method not allowed", "allow": allow},
            headers={"Allow": allow},
        )
    if status == 404:
        return error(
            request, 404, "not_found",
            {"message": "not found", "cause": request.path[:256]},
        )
    if status == 413:
        return error(
            request, 413, "request_entity_too_large",
            {"message": "the request body is too large"},
        )
    reason = exc.reason.lower().replace(" ", "_")
    return error(request, status, reason, {"message": exc.reason})


@web.middleware
async def kazoo_errors(request: web.Request, handler) -> web.StreamResponse:  # type: ignore[no-untyped-def]
    try:
        return await handler(request)
    except DomainError as exc:
        return from_domain(request, exc)
    except BadRequest as exc:
        return error(request, exc.status, exc.message, exc.data)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return from_http(request, exc)
    except ConnectionResetError:
        # The client hung up (mid-upload, say): nobody is left to answer, and it is not the
        # service's fault, so no traceback; the access log shows the request.
        log.debug("client went away during %s %s", request.method, request.path)
        return error(request, 400, "client_disconnected", {"message": "connection lost"})
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error(request, 500, "internal_server_error", {"message": "internal error"})
