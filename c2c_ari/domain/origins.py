"""Web origins (`scheme://host[:port]`): which pages may use a click-to-call."""

from __future__ import annotations

from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_origin(value: str) -> str | None:
    """`scheme://host[:port]` in the form browsers send in Origin (lower case, no default
    port), from an origin or from a whole URL such as a Referer; None if it is neither."""
    if len(value) > 2048:
        return None
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "")
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def origin_allowed(allowed: list[str], origin: str) -> bool:
    """True if `origin` is one of `allowed` (both compared in normalised form)."""
    wanted = normalize_origin(origin)
    return wanted is not None and any(
        isinstance(entry, str) and normalize_origin(entry) == wanted for entry in allowed)


def request_origin(origin_header: str | None, referer: str | None) -> str | None:
    """The origin a browser request came from: its Origin header (`null` included, which
    opaque origins such as sandboxed frames send and which no list can allow), else the
    origin of its Referer; None when it carries neither."""
    if origin_header is not None:
        return origin_header.strip()[:2048]
    if referer:
        return normalize_origin(referer) or "null"
    return None
