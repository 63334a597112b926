"""A call's state and the rules that turn how it ended into its history item's result,
cause and failed leg. Pure data and rules, no I/O: `tests/unit/test_stasis_call_causes.py`
drives them case by case."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field

# Causes of our own making: a bridged call that ends by one of these was cut, not finished.
INTERRUPTIONS = frozenset({"CHANNEL_LOST", "SERVICE_STOPPED", "ARI_ERROR", "INTERNAL_ERROR",
                           "ASTERISK_SHUTDOWN"})
# Q.850 names that a leg which never answered ends with when it rang out or was cancelled:
# for it they mean "no answer".
_UNANSWERED_NORMAL = frozenset({"NORMAL_CLEARING", "UNSPECIFIED"})


class State(enum.Enum):
    DIALING_FIRST = "dialing_first"
    DIALING_SECOND = "dialing_second"
    BRIDGED = "bridged"
    ENDED = "ended"


class LegEnded(Exception):
    """A leg is gone: hung up, refused, unanswered, or lost with Asterisk."""

    def __init__(self, role: str, cause: str, code: int | None) -> None:
        super().__init__(f"{role} leg ended: {cause}")
        self.role, self.cause, self.code = role, cause, code


@dataclass
class Outcome:
    """What happened to a call so far, in the terms of its history item."""

    started: float = field(default_factory=time.time)
    answered: float | None = None  # both legs bridged
    ended: float | None = None
    failed_leg: str | None = None
    cause: str | None = None
    hangup_cause: str | None = None
    hangup_cause_code: int | None = None

    def end(self, state: State, ended: LegEnded, answered_legs: frozenset[str],
            first_leg: str) -> None:
        """Record the first end of the call (later ones change nothing).

        Before the bridge, the leg that ended is the one that failed: a leg that never
        answered and vanished with a "normal" cause rang out (NO_ANSWER); the first leg,
        answered, hanging up normally while the second rang gave up (ORIGINATOR_CANCEL, as
        Kazoo's FreeSWITCH names it); any other end, the second leg's hang-up right after it
        answered included, is recorded with its own cause. After the bridge, a hang-up is
        the normal end of a successful call, unless one of our own interruptions cut it."""
        if self.ended is not None:
            return
        self.ended = time.time()
        self.hangup_cause, self.hangup_cause_code = ended.cause, ended.code
        if state is State.BRIDGED:
            if ended.cause in INTERRUPTIONS:
                self.cause = ended.cause
            return
        self.failed_leg = ended.role
        if ended.cause not in _UNANSWERED_NORMAL:
            self.cause = ended.cause
        elif ended.role not in answered_legs:
            self.cause = "NO_ANSWER"
        elif ended.role == first_leg:
            self.cause = "ORIGINATOR_CANCEL"
        else:
            self.cause = ended.cause

    @property
    def result(self) -> str:
        return "success" if self.answered is not None and self.cause is None else "error"
