"""How to reach a local Asterisk: its ARI URL, credentials and Stasis app."""

from __future__ import annotations

from dataclasses import dataclass

from c2c_ari.localasterisk.common import APP


@dataclass(frozen=True)
class AriInfo:
    """How to reach ARI. `url` is the HTTP base without `/ari`, e.g. http://127.0.0.1:8088."""

    url: str
    user: str
    password: str
    app: str = APP
    # True when this call started Asterisk (so the caller should stop it).
    started: bool = False

    @property
    def ari_url(self) -> str:
        return self.url.rstrip("/") + "/ari"

    @property
    def events_url(self) -> str:
        ws = "ws" + self.url[len("http"):] if self.url.startswith("http") else self.url
        return ws.rstrip("/") + f"/ari/events?app={self.app}&subscribeAll=false"
