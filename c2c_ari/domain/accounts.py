"""Accounts, API keys and expiring auth tokens."""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass

from c2c_ari.domain.errors import Unauthorized, ValidationFailed
from c2c_ari.domain.ids import hash_secret, is_secret_shaped, is_valid_id, new_id, new_secret
from c2c_ari.store import AccountRecord, AccountStore

Account = AccountRecord

# How long a checked token is trusted from the cache at most (see authenticate).
CACHE_SECONDS = 60.0


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
        # Tokens are checked on every request; remembering the live ones saves a query per
        # request. Only where the store can say cheaply that a token may have been revoked
        # meanwhile, by this process or another (its revocation mark; SQLite's is one pread
        # of a small file the CLI rewrites): the cache is dropped whenever that mark moves.
        self._cache_tokens = cache_tokens
        self._tokens: dict[str, tuple[Account, float]] = {}
        self._mark: bytes | None = None

    async def create(self, name: str, realm: str) -> tuple[Account, str]:
        """A new account and its API key (shown once; only its hash is kept)."""
        if not name.strip() or not realm.strip():
            raise ValidationFailed.single("name", "required", "name and realm are required")
        api_key = new_secret()
        account = Account(id=new_id(), name=name, realm=realm, created=time.time())
        await self.store.insert(account, hash_secret(api_key))
        return account, api_key

    async def get(self, account_id: str) -> Account | None:
        """The account if it exists and may be used: a disabled account answers as an
        unknown one (anonymous connects, calls from the dialplan)."""
        account = await self.store.get(account_id) if is_valid_id(account_id) else None
        return None if account is None or account.disabled else account

    async def issue_token(self, api_key: object) -> IssuedToken:
        if not isinstance(api_key, str) or not api_key:
            raise ValidationFailed.single(
                "api_key", "required", "Field is required but missing"
            )
        if not is_secret_shaped(api_key):
            raise Unauthorized()
        wanted = hash_secret(api_key)
        found = await self.store.by_api_key_hash(wanted)
        if found is None or not hmac.compare_digest(found[1], wanted) or found[0].disabled:
            raise Unauthorized()
        account = found[0]
        token = new_secret()
        now = time.time()
        expires_at = now + self.token_ttl
        # Refused when the key was rotated (or the account disabled) since it was read.
        if not await self.store.insert_token(hash_secret(token), account.id, expires_at,
                                             key_generation=account.key_generation):
            raise Unauthorized()
        return IssuedToken(token=token, account=account, expires_at=expires_at)

    async def authenticate(self, token: str | None) -> Account:
        """The account a token belongs to; Unauthorized when absent, unknown, expired,
        issued from a key that was rotated since, or of a disabled account."""
        if not is_secret_shaped(token):
            raise Unauthorized()
        wanted = hash_secret(token)
        now = time.time()
        # Read before the query: a revocation committed after this read moves the mark, so
        # whatever the query below sees is dropped at the next request at the latest.
        mark = self.store.revocation_mark() if self._cache_tokens else None
        if mark is not None:
            if mark != self._mark:
                self._tokens.clear()
                self._mark = mark
            cached = self._tokens.get(wanted)
            if cached is not None and cached[1] > now:
                return cached[0]
        found = await self.store.token_account(wanted)
        if found is None or not hmac.compare_digest(found[0], wanted) or found[2] <= now:
            self._tokens.pop(wanted, None)
            raise Unauthorized()
        account = found[1]
        # Only under the mark the query was made under: another request may have seen a
        # newer mark (and cleared the cache) while this one waited for its query.
        if mark is None or mark != self._mark:
            return account
        if len(self._tokens) >= 10_000:
            self._tokens = {k: v for k, v in self._tokens.items() if v[1] > now}
            if len(self._tokens) >= 10_000:
                self._tokens.clear()
        # At most a minute, whatever the token's expiry: should a revocation's writer die
        # between its commit and moving the mark, the cache still learns it within that.
        self._tokens[wanted] = (account, min(found[2], now + CACHE_SECONDS))
        return account
