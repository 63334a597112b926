"""Accounts and their auth tokens. Only hashes of secrets are stored."""

from __future__ import annotations

from c2c_ari.store.postgres.db import Database
from c2c_ari.store.records import (
    ACCOUNT_COLUMNS,
    DELETING,
    AccountRecord,
    AccountSummary,
    account_from_row,
)

# An account's live click-to-calls, counted from the partial index of live documents.
_LIVE = ("(SELECT count(*) FROM clicktocalls c WHERE c.account_id = accounts.id"
         " AND NOT c.deleted)")


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
            f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = %s", (account_id,))
        return account_from_row(row) if row else None

    async def by_api_key_hash(self, api_key_hash: str) -> tuple[AccountRecord, str] | None:
        """The account and its stored hash, for a constant-time comparison by the caller."""
        row = await self.db.fetchone(
            f"SELECT {ACCOUNT_COLUMNS}, api_key_hash FROM accounts"
            " WHERE api_key_hash = %s", (api_key_hash,))
        return (account_from_row(row), row[6]) if row else None

    async def insert_token(self, token_hash: str, account_id: str, expires_at: float, *,
                           key_generation: int = 0) -> bool:
        """Stored only while the account is enabled and still has the key of
        `key_generation` (a rotation committed in between leaves no token of the old key)."""
        return await self.db.execute(
            "INSERT INTO auth_tokens (token_hash, account_id, expires_at, key_generation)"
            " SELECT %s, id, %s, key_generation FROM accounts"
            " WHERE id = %s AND key_generation = %s AND disabled = 0",
            (token_hash, expires_at, account_id, key_generation),
        ) == 1

    async def token(self, token_hash: str) -> tuple[str, str, float] | None:
        """(stored hash, account id, expiry) of a token, expired or not."""
        row = await self.db.fetchone(
            "SELECT token_hash, account_id, expires_at FROM auth_tokens WHERE token_hash = %s",
            (token_hash,))
        return (row[0], row[1], row[2]) if row else None

    async def token_account(self, token_hash: str) -> tuple[str, AccountRecord, float] | None:
        row = await self.db.fetchone(
            "SELECT t.token_hash, t.expires_at, a.id, a.name, a.realm, a.created, a.disabled,"
            " a.key_generation FROM auth_tokens t JOIN accounts a ON a.id = t.account_id"
            " WHERE t.token_hash = %s AND a.disabled = 0"
            " AND a.key_generation = t.key_generation", (token_hash,))
        return (row[0], account_from_row(row[2:]), row[1]) if row else None

    async def purge_tokens(self, now: float, batch: int) -> int:
        """Delete up to `batch` expired tokens (one short transaction); how many went."""
        return await self.db.execute(
            "DELETE FROM auth_tokens WHERE token_hash = ANY(ARRAY(SELECT token_hash"
            " FROM auth_tokens WHERE expires_at <= %s LIMIT %s))", (now, batch))

    async def page(self, start_key: str | None, limit: int) -> list[AccountSummary]:
        return [AccountSummary(account_from_row(row), int(row[6]))
                for row in await self.db.fetchall(
                    f"SELECT {ACCOUNT_COLUMNS}, {_LIVE} FROM accounts"
                    " WHERE id > %s ORDER BY id LIMIT %s", (start_key or "", limit))]

    async def summary(self, account_id: str) -> AccountSummary | None:
        row = await self.db.fetchone(
            f"SELECT {ACCOUNT_COLUMNS}, {_LIVE} FROM accounts WHERE id = %s", (account_id,))
        return AccountSummary(account_from_row(row), int(row[6])) if row else None

    async def rotate_key(self, account_id: str, api_key_hash: str) -> AccountRecord | None:
        row = await self.db.fetchone(
            "UPDATE accounts SET api_key_hash = %s, key_generation = key_generation + 1"
            f" WHERE id = %s AND disabled != {DELETING} RETURNING {ACCOUNT_COLUMNS}",
            (api_key_hash, account_id))
        return account_from_row(row) if row else None

    async def set_status(self, account_id: str, status: int) -> AccountRecord | None:
        row = await self.db.fetchone(
            f"UPDATE accounts SET disabled = CASE WHEN disabled = {DELETING} THEN disabled"
            f" ELSE %s END WHERE id = %s RETURNING {ACCOUNT_COLUMNS}", (status, account_id))
        return account_from_row(row) if row else None

    async def delete_tokens(self, account_id: str, batch: int) -> int:
        return await self.db.execute(
            "DELETE FROM auth_tokens WHERE token_hash = ANY(ARRAY(SELECT token_hash"
            " FROM auth_tokens WHERE account_id = %s LIMIT %s))", (account_id, batch))

    async def delete(self, account_id: str) -> bool:
        return await self.db.execute("DELETE FROM accounts WHERE id = %s", (account_id,)) == 1

    def revocation_mark(self) -> bytes | None:
        # Several instances share the database: nothing about tokens is cached, every
        # authentication reads its token and account (one query, token_account).
        return None
