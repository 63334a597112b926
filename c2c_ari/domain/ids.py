"""Identifiers, secrets and Kazoo's clock."""

from __future__ import annotations

import hashlib
import re
import secrets
import time

# Kazoo ids are 32 lowercase hex characters; anything else cannot name a document.
_ID = re.compile(r"[0-9a-f]{32}")
GREGORIAN_OFFSET = 62_167_219_200  # seconds from 0000-01-01 to 1970-01-01


def new_id() -> str:
    return secrets.token_hex(16)


def is_valid_id(value: str) -> bool:
    return _ID.fullmatch(value) is not None


def new_secret() -> str:
    """An API key or auth token: 256 bits, so a plain SHA-256 is enough to store it."""
    return secrets.token_hex(32)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def gregorian_now() -> int:
    return int(time.time()) + GREGORIAN_OFFSET
