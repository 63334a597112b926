"""Secrets of the service itself, made on first use and kept in the database."""

from __future__ import annotations

import secrets

from c2c_ari.store.postgres.db import Database


class ServiceKeyStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get_or_create(self, name: str) -> str:
        """The key called `name`; the first writer's random value wins, so every process
        sharing the database agrees. Two statements on purpose: the read must come after the
        insert has waited for a concurrent writer's commit, which one statement's snapshot
        (taken before that wait) would not see."""
        await self.db.execute(
            "INSERT INTO service_keys (name, value) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (name, secrets.token_hex(32)))
        row = await self.db.fetchone("SELECT value FROM service_keys WHERE name = %s", (name,))
        assert row is not None
        return str(row[0])
