"""Per-call tokens: what an anonymous caller (the web widget) gets from connect to watch the
one call it started, and nothing else."""

from __future__ import annotations

import hashlib
import hmac

from c2c_ari.domain.ids import is_secret_shaped


class CallTokens:
    def __init__(self, key: str) -> None:
        self._key = bytes.fromhex(key)

    def issue(self, call_id: str) -> str:
        return hmac.new(self._key, call_id.encode(), hashlib.sha256).hexdigest()

    def check(self, call_id: str, token: str | None) -> bool:
        return is_secret_shaped(token) and hmac.compare_digest(
            self.issue(call_id).encode(), token.encode())  # type: ignore[union-attr]
