"""What the benchmarks share: logging, a free port, and plain HTTP calls to the service."""

from __future__ import annotations

import json
import socket
import sys
import urllib.error
import urllib.request
from typing import Any


class BenchError(Exception):
    """A failed request or a setup step that did not work: the run is meaningless."""


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http(
    method: str, url: str, body: Any = None, token: str | None = None, expect: int = 200
) -> bytes:
    """One request with a JSON body; raises BenchError unless the status is `expect`."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["X-Auth-Token"] = token
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    # Loopback only: never through a proxy named in the environment.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=60) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    if status != expect:
        raise BenchError(f"{method} {url} answered {status}, not {expect}: {raw[:300]!r}")
    return raw
