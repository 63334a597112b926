"""Logging: text for a terminal, JSON lines for a log pipeline (`--log-format`), and on every
line what it is about, where known: the request, the call, the account.

The request, call and account ids live in context variables: set once where they become
known (the HTTP middleware, authentication, a call's task), they reach every line logged
under them without being passed around. Only the standard library's logging is used."""

from __future__ import annotations

import json
import logging
import time
from contextvars import ContextVar
from typing import Any

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
CALL_ID: ContextVar[str | None] = ContextVar("call_id", default=None)
ACCOUNT_ID: ContextVar[str | None] = ContextVar("account_id", default=None)
_CONTEXT = (("request_id", REQUEST_ID), ("call_id", CALL_ID), ("account_id", ACCOUNT_ID))


class ContextFilter(logging.Filter):
    """Puts the context's ids on each record (as attributes, for any formatter)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in _CONTEXT:
            if not hasattr(record, name):
                setattr(record, name, var.get())
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the ids that are known, the
    fields an access log line carries, and the exception if there is one."""

    _FIELDS = ("method", "route", "path", "status", "duration_ms", "remote")

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in (*(n for n, _var in _CONTEXT), *self._FIELDS):
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        known = [f"{name}={getattr(record, name)}" for name, _var in _CONTEXT
                 if getattr(record, name, None)]
        return f"{text} [{' '.join(known)}]" if known else text


def configure(log_format: str = "text", level: int = logging.INFO) -> None:
    """Log to stderr in `log_format` ("text" or "json")."""
    if log_format not in ("text", "json"):
        raise ValueError(f"setting 'log_format': {log_format!r} is neither text nor json")
    handler = logging.StreamHandler()
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


class AccessLogger(AbstractAccessLogger):
    """One line per request: method, route template, status and duration (and the path,
    for the requests that matched no route)."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        match_info = getattr(request, "match_info", None)
        resource = match_info.route.resource if match_info is not None else None
        route = resource.canonical if resource is not None else None
        self.logger.info(
            "%s %s %s %.1f ms", request.method, route or request.path[:200], response.status,
            time * 1000,
            extra={"method": request.method, "route": route, "status": response.status,
                   "duration_ms": round(time * 1000, 2), "remote": request.remote,
                   "path": None if route else request.path[:200]},
        )
