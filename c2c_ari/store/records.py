"""What storage hands back, whatever the backend: plain frozen records."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AccountRecord:
    id: str
    name: str
    realm: str
    created: float
    # A disabled account's API key and tokens are refused, and so are its public
    # click-to-calls; `deleting` accounts are disabled for good (a delete was started).
    disabled: bool = False
    deleting: bool = False
    # Bumped by every key rotation: a token is valid only while the generation it was issued
    # under is the account's, so a rotation revokes every token of the old key in one write.
    key_generation: int = 0


# The `disabled` column: 0 enabled, 1 disabled, 2 disabled because a delete was started.
ENABLED, DISABLED, DELETING = 0, 1, 2


def account_from_row(row: tuple[Any, ...]) -> AccountRecord:
    """An account from (id, name, realm, created, disabled, key_generation)."""
    return AccountRecord(row[0], row[1], row[2], row[3], disabled=row[4] != ENABLED,
                         deleting=row[4] == DELETING, key_generation=int(row[5]))


# The columns account_from_row reads, in its order.
ACCOUNT_COLUMNS = "id, name, realm, created, disabled, key_generation"


@dataclass(frozen=True)
class AccountSummary:
    """An account as the operator's commands list it."""

    account: AccountRecord
    live_clicktocalls: int


@dataclass(frozen=True)
class StoredDocument:
    id: str
    rev: int
    revision: str
    # The document as stored: canonical JSON, ready to send without encoding it again.
    body: str

    @property
    def doc(self) -> dict[str, Any]:
        """The document, parsed anew on each use: only its text is kept in memory, so what
        a cache holds is what it counts (a parsed document takes several times more)."""
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass(frozen=True)
class ActiveCall:
    """A call in flight, as its row says."""

    call_id: str
    account_id: str
    clicktocall_id: str
    item: dict[str, Any]
    # ARI ids (channels, bridge) that may still exist in Asterisk for this call
    resources: list[str]
    bridged: bool = False
    # The process that runs the call (an instance's boot id), and the Asterisk node it is on.
    owner: str = ""
    node: str = ""


@dataclass(frozen=True)
class InstanceRecord:
    """A service process, as its heartbeat says."""

    instance_id: str  # stable across restarts (a setting; host and port by default)
    boot_id: str  # new at every start: calls are owned by a boot, not by an instance id
    app: str  # the ARI application its calls are in
    seen_at: float = 0.0
