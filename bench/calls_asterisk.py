"""The local Asterisk as bench/calls.py sees it: started if none runs (and then stopped at the
end), its pid for CPU readings, the channels and bridges ARI shows, and the warnings it
logged during the run."""

from __future__ import annotations

import contextlib
import json
import re
import time
import urllib.request
from typing import Any

from aiohttp import encode_basic_auth
from common import BenchError, log

from c2c_ari import localasterisk


class Asterisk:
    """The project's local Asterisk (`localasterisk`), for one run."""

    def __init__(self) -> None:
        self.info: localasterisk.AriInfo | None = None
        self.pid = 0
        self.version = ""
        self._log_start = 0  # where this run's lines begin in Asterisk's log

    @property
    def started(self) -> bool:
        """Whether this run started it (and so stops it)."""
        return bool(self.info and self.info.started)

    def start(self) -> localasterisk.AriInfo:
        """Start it unless it runs; how to reach its ARI."""
        self.info = localasterisk.ensure_running()
        pid = localasterisk.running_pid()
        if pid is None:
            raise BenchError("Asterisk answers but its pid is unknown (not the local Asterisk?)")
        self.pid = pid
        self.version = localasterisk.asterisk_rx("core show version").strip().split(" built")[0]
        log(f"{self.version}, pid {pid}, "
            f"{'started by this run' if self.info.started else 'already running'}")
        with contextlib.suppress(OSError):
            self._log_start = localasterisk.asterisk_log_file().stat().st_size
        return self.info

    def stop_if_started(self) -> None:
        """Stop it only if this run started it: another user's Asterisk stays up."""
        if self.started:
            log("stopping the Asterisk this run started")
            with contextlib.suppress(Exception):
                localasterisk.stop()

    def ari_get(self, what: str) -> list[dict[str, Any]]:
        """GET /ari/{what} (channels, bridges) with the standard library, outside any loop."""
        assert self.info is not None
        token = encode_basic_auth(self.info.user, self.info.password)
        request = urllib.request.Request(f"{self.info.ari_url}/{what}",
                                         headers={"Authorization": token})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=10) as response:
            return list(json.loads(response.read()))

    def leftovers(self, prefixes: tuple[str, ...], wait: float = 10.0) -> dict[str, list[str]]:
        """Channels and bridges whose ids start with one of `prefixes` (all if empty), after
        giving hangups up to `wait` seconds to land."""
        deadline = time.monotonic() + wait
        while True:
            left = {
                what: [item["id"] for item in self.ari_get(what)
                       if not prefixes or item["id"].startswith(prefixes)]
                for what in ("channels", "bridges")
            }
            if not any(left.values()) or time.monotonic() > deadline:
                return left
            time.sleep(0.2)

    def log_problems(self) -> list[str]:
        """The WARNING and ERROR lines Asterisk logged since start()."""
        try:
            with open(localasterisk.asterisk_log_file(), errors="replace") as fh:
                fh.seek(self._log_start)
                text = fh.read()
        except OSError:
            return []
        return [line for line in text.splitlines() if re.search(r"WARNING|ERROR", line)]
