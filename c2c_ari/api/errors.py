"""Every failure becomes one Kazoo error envelope here, and nothing else answers errors.

`KazooError` is the one list of the errors the service answers: status, message and what
it means. The handlers' failures are mapped to them here, and the OpenAPI document's error
responses are built from the same list.
"""

from __future__ import annotations

import enum
import logging
import math
from typing import Any

from aiohttp import web

from c2c_ari.api.envelope import error
from c2c_ari.domain.errors import (
    CallsUnavailable,
    DomainError,
    Forbidden,
    LimitReached,
    NotFound,
    RevisionConflict,
    StoreUnavailable,
    Throttled,
    Unauthorized,
    ValidationFailed,
)
from c2c_ari.domain.whitelist import WHITELIST_MESSAGE

log = logging.getLogger(__name__)


class KazooError(enum.Enum):
    """(status, `message`, what it means[, headers it carries: name -> meaning])."""

    VALIDATION = (400, "validation error",
                  "A schema or parameter failure; `data` is "
                  "`{\"<field>\":{\"<keyword>\":{\"message\":…,\"target\":…}}}`.")
    NOT_WHITELISTED = (400, WHITELIST_MESSAGE,
                       "The contact matches no entry of the click-to-call's whitelist.")
    INVALID_BODY = (400, "invalid request body",
                    "The body is not JSON (or not UTF-8, or broken gzip/deflate), or not an "
                    "envelope `{\"data\": {...}}`.")
    BAD_REQUEST = (400, "bad_request", "aiohttp refused the HTTP request as malformed.")
    # Never read by anyone: the client hung up before the answer (kept for the access log).
    CLIENT_GONE = (400, "client_disconnected", "The client went away mid-request.")
    UNAUTHORIZED = (401, "invalid_credentials", "No token, or a bad or expired one.")
    FORBIDDEN = (403, "forbidden",
                 "An anonymous connect from a page whose origin is not in "
                 "`allowed_origins` (`data.cause`), or an account limit (`data.limit`).")
    BAD_IDENTIFIER = (404, "bad_identifier",
                      "An unknown or malformed id, or another account's (`data.cause`).")
    NOT_FOUND = (404, "not_found", "An unknown path.")
    INVALID_METHOD = (405, "invalid_method", "The path does not take this method.",
                      (("Allow", "The methods the path takes."),))
    PRECONDITION_FAILED = (412, "precondition_failed",
                           "`If-Match` names another revision (`data.cause` is the current "
                           "one); nothing was changed.")
    TOO_LARGE = (413, "request_entity_too_large",
                 "The body is over the size limit (on the wire, or once inflated).")
    UNSUPPORTED_MEDIA_TYPE = (415, "unsupported_media_type",
                              "A content type other than JSON (or a form, for connect), or a "
                              "Content-Encoding other than identity, gzip or deflate.")
    THROTTLED = (429, "too many requests",
                 "More connects than the click-to-call's `throttle` per minute.",
                 (("Retry-After", "Seconds until a connect may be tried again."),))
    INTERNAL = (500, "internal_server_error", "A bug; the service logged it.")
    UNAVAILABLE = (503, "service unavailable",
                   "The database cannot be reached (any route that uses it; nothing was "
                   "changed), or, for connect: no Asterisk node is connected or fit, or "
                   "`max_calls_in_setup` calls are being set up; no call was placed.",
                   (("Retry-After", "Seconds until the request may be tried again (not "
                                    "sent when no Asterisk is configured at all)."),))

    def __init__(self, status: int, message: str, description: str,
                 headers: tuple[tuple[str, str], ...] = ()) -> None:
        self.status, self.message, self.description = status, message, description
        self.headers = dict(headers)

    @property
    def sent(self) -> bool:
        """False for an answer nobody can read, which the API document leaves out."""
        return self is not KazooError.CLIENT_GONE


def answer(request: web.Request, kind: KazooError, data: Any,
           headers: dict[str, str] | None = None) -> web.Response:
    return error(request, kind.status, kind.message, data, headers)


class BadRequest(Exception):
    """A request-level problem outside the domain (body, content type, size)."""

    def __init__(self, kind: KazooError, data: dict[str, object]) -> None:
        super().__init__(kind.message)
        self.kind, self.data = kind, data


_VALIDATION_MESSAGES = {k.message: k for k in (KazooError.VALIDATION, KazooError.NOT_WHITELISTED)}


def _validation(exc: ValidationFailed) -> KazooError:
    kind = _VALIDATION_MESSAGES.get(exc.message)
    if kind is None:
        log.error("validation message %r is not in KazooError", exc.message)
        return KazooError.VALIDATION
    return kind


def from_domain(request: web.Request, exc: DomainError) -> web.Response:
    match exc:
        case ValidationFailed():
            return answer(request, _validation(exc), exc.errors)
        case NotFound():
            return answer(request, KazooError.BAD_IDENTIFIER,
                          {"message": "bad identifier", "cause": exc.ident})
        case Unauthorized():
            return answer(request, KazooError.UNAUTHORIZED, {"message": "invalid credentials"})
        case RevisionConflict():
            return answer(request, KazooError.PRECONDITION_FAILED,
                          {"message": "If-Match does not name the current revision",
                           "cause": exc.current})
        case Throttled():
            seconds = str(math.ceil(exc.retry_after))
            return answer(request, KazooError.THROTTLED,
                          {"message": "connect limit reached for this click-to-call",
                           "retry_after": int(seconds)},
                          headers={"Retry-After": seconds})
        case Forbidden():
            return answer(request, KazooError.FORBIDDEN,
                          {"message": exc.message, "cause": exc.cause})
        case LimitReached():
            return answer(request, KazooError.FORBIDDEN,
                          {"message": exc.message, "limit": exc.limit})
        case CallsUnavailable():
            data: dict[str, object] = {"message": str(exc)}
            headers = None
            if exc.retry_after is not None:
                data["retry_after"] = exc.retry_after
                headers = {"Retry-After": str(exc.retry_after)}
            return answer(request, KazooError.UNAVAILABLE, data, headers=headers)
    log.error("unmapped domain error %r", exc)
    return answer(request, KazooError.INTERNAL, {"message": "internal error"})


def from_http(request: web.Request, exc: web.HTTPException) -> web.Response:
    """aiohttp's own refusals (no route, wrong verb, body too large) in Kazoo's shape."""
    status = exc.status
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allow = ", ".join(sorted(exc.allowed_methods))
        return answer(request, KazooError.INVALID_METHOD,
                      {"message": "method not allowed", "allow": allow},
                      headers={"Allow": allow})
    if status == 404:
        return answer(request, KazooError.NOT_FOUND,
                      {"message": "not found", "cause": request.path[:256]})
    if status == 413:
        return answer(request, KazooError.TOO_LARGE,
                      {"message": "the request body is too large"})
    if status == 400:
        return answer(request, KazooError.BAD_REQUEST, {"message": exc.reason})
    # Statuses no route documents (aiohttp's rarer refusals): Kazoo's shape all the same.
    reason = exc.reason.lower().replace(" ", "_")
    return error(request, status, reason, {"message": exc.reason})


@web.middleware
async def kazoo_errors(request: web.Request, handler) -> web.StreamResponse:  # type: ignore[no-untyped-def]
    try:
        return await handler(request)
    except DomainError as exc:
        return from_domain(request, exc)
    except StoreUnavailable as exc:
        # The database is down or restarting: not the client's fault nor a bug; say when to
        # come back instead of a 500.
        log.warning("database unavailable during %s %s: %s", request.method, request.path,
                    exc)
        return answer(request, KazooError.UNAVAILABLE,
                      {"message": "the database cannot be reached: try again shortly",
                       "retry_after": 1}, headers={"Retry-After": "1"})
    except BadRequest as exc:
        return answer(request, exc.kind, exc.data)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return from_http(request, exc)
    except ConnectionResetError:
        # The client hung up (mid-upload, say): nobody is left to answer, and it is not the
        # service's fault, so no traceback; the access log shows the request.
        log.debug("client went away during %s %s", request.method, request.path)
        return answer(request, KazooError.CLIENT_GONE, {"message": "connection lost"})
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return answer(request, KazooError.INTERNAL, {"message": "internal error"})
