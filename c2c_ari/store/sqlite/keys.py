"""Secrets of the service itself, made on first use and kept in the database."""

from __future__ import annotations

import secrets

from c2c_ari.store.sqlite.db import Database


class ServiceKeyStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get_or_create(self, name: str) -> str:
        """The key called `name`; the first caller's random value wins, so every process
        sharing the file agrees."""
        await self.db.execute(
            "INSERT OR IGNORE INTO service_keys (name, value) VALUES (?, ?)",
            (name, secrets.token_hex(32)),
        )
        row = await self.db.fetchone("SELECT value FROM service_keys WHERE name = ?", (name,))
        assert row is not None
        return str(row[0])
