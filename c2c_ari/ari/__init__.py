"""Asterisk REST Interface: a small aiohttp client (REST calls) and the events websocket.

Imports nothing else from c2c_ari, so it can be used and tested on its own.
"""

from .backoff import Backoff
from .client import AriClient, JsonDict
from .errors import AriError, AriException, AriUnavailable
from .events import AriEvents, EventHandler, Hook

__all__ = [
    "AriClient",
    "AriError",
    "AriEvents",
    "AriException",
    "AriUnavailable",
    "Backoff",
    "EventHandler",
    "Hook",
    "JsonDict",
]
