"""Accounts, API keys and expiring auth tokens."""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass

from c2c_ari.domain.errors import Unauthorized, ValidationFailed
from c2c_ari.domain.ids import hash_secret, is_secret_shaped, is_valid_id, new_id, new_secret
from c2c_ari.store import AccountRecord, AccountStore

Account = AccountRecord


@dataclass(frozen=True)
class IssuedToken:
    token: str
    account: Account
    expires_at: float


class AccountService:
    def __init__(self, store: AccountStore, token_ttl: int, *,
                 cache_tokens: bool = True) -> None:
        self.store = store
        self.token_ttl = token_ttl
        # Tokens are checked on every request; remembering the few live ones saves a query,
        # where no other process can revoke one behind this one's back.
        self._cache_tokens = cache_tokens
        self._tokens: dict[str, tuple[Account, float]] = {}

    async def create(self, name: str, realm: str) -> tuple[Account, str]:
        """A new account and its API key (shown once; only its hash is kept)."""
        if not name.strip() or not realm.strip():
            raise ValidationFailed.single("name", "required", "name and realm are required")
        api_key = new_secret()
        account = Account(id=new_id(), name=name, realm=realm, created=time.time())
        await self.store.insert(account, hash_secret(api_key))
        return account, api_key

    async def get(self, account_id: str) -> Account | None:
        return await self.store.get(account_id) if is_valid_id(account_id) else None

    async def issue_token(self, api_key: object) -> IssuedToken:
        if not isinstance(api_key, str) or not api_key:
            raise ValidationFailed.single(
                "api_key", "required", "Field is required but missing"
            )
        if not is_secret_shaped(api_key):
            raise Unauthorized()
        wanted = hash_secret(api_key)
        found = await self.store.by_api_key_hash(wanted)
        if found is None or not hmac.compare_digest(found[1], wanted):
            raise Unauthorized()
        account = found[0]
        token = new_secret()
        now = time.time()
        expires_at = now + self.token_ttl
        await self.store.insert_token(hash_secret(token), account.id, expires_at)
        return IssuedToken(token=token, account=account, expires_at=expires_at)

    async def authenticate(self, token: str | None) -> Account:
        """The account a token belongs to; Unauthorized when absent, unknown or expired."""
        if not is_secret_shaped(token):
            raise Unauthorized()
        wanted = hash_secret(token)
        now = time.time()
        cached = self._tokens.get(wanted)
        if cached is not None and cached[1] > now:
            return cached[0]
        row = await self.store.token(wanted)
        if row is None or not hmac.compare_digest(row[0], wanted) or row[2] <= now:
            self._tokens.pop(wanted, None)
            raise Unauthorized()
        account = await self.store.get(row[1])
        if account is None:
            raise Unauthorized()
        if not self._cache_tokens:
            return account
        if len(self._tokens) >= 10_000:
            self._tokens = {k: v for k, v in self._tokens.items() if v[1] > now}
            if len(self._tokens) >= 10_000:
                self._tokens.clear()
        self._tokens[wanted] = (account, row[2])
        return account
