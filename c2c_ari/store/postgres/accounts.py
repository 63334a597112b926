"""Accounts and their auth tokens. Only hashes of secrets are stored."""

from __future__ import annotations

from c2c_ari.store.postgres.db import Database
from c2c_ari.store.records import AccountRecord


class AccountStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def insert(self, record: AccountRecord, api_key_hash: str) -> None:
        await self.db.execute(
            "INSERT INTO accounts (id, name, realm, api_key_hash, created)"
            " VALUES (%s, %s, %s, %s, %s)",
            (record.id, record.name, record.realm, api_key_hash, record.created),
        )

    async def get(self, account_id: str) -> AccountRecord | None:
        row = await self.db.fetchone(
            "SELECT id, name, realm, created FROM accounts WHERE id = %s", (account_id,))
        return AccountRecord(*row) if row else None

    async def by_api_key_hash(self, api_key_hash: str) -> tuple[AccountRecord, str] | None:
        """The account and its stored hash, for a constant-time comparison by the caller."""
        row = await self.db.fetchone(
            "SELECT id, name, realm, created, api_key_hash FROM accounts"
            " WHERE api_key_hash = %s", (api_key_hash,))
        return (AccountRecord(*row[:4]), row[4]) if row else None

    async def insert_token(self, token_hash: str, account_id: str, expires_at: float) -> None:
        await self.db.execute(
            "INSERT INTO auth_tokens (token_hash, account_id, expires_at) VALUES (%s, %s, %s)",
            (token_hash, account_id, expires_at),
        )

    async def token(self, token_hash: str) -> tuple[str, str, float] | None:
        """(stored hash, account id, expiry) of a token, expired or not."""
        row = await self.db.fetchone(
            "SELECT token_hash, account_id, expires_at FROM auth_tokens WHERE token_hash = %s",
            (token_hash,))
        return (row[0], row[1], row[2]) if row else None

    async def purge_tokens(self, now: float, batch: int) -> int:
        """Delete up to `batch` expired tokens (one short transaction); how many went."""
        return await self.db.execute(
            "DELETE FROM auth_tokens WHERE token_hash = ANY(ARRAY(SELECT token_hash"
            " FROM auth_tokens WHERE expires_at <= %s LIMIT %s))", (now, batch))
