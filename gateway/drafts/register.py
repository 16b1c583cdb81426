"""The draft register's rules: its state machine and the presentment checks (docs/bank-drafts.md).

Pure functions in the style of a sans-IO protocol: an event and a state give
the next state, and a register entry with a presentment gives the answer.
The journal applies them inside its own transactions, so that the same rules
hold on SQLite and PostgreSQL; nothing here reads a clock or stores anything.

State machine (docs/bank-drafts.md §1, §3), every step a journaled transition:

===============  ================  ===========  ==========================================
from             event             to           why
===============  ================  ===========  ==========================================
PENDING          ISSUE_ACSC        ISSUED       the centre moved the amount (ccms.900 ACSC)
PENDING          ISSUE_RJCT        REJECTED     the issue failed at the centre
ISSUED           PRESENT_ACCP      PAID         a presentment was accepted (same transaction)
PAID             SETTLE_ACSC       SETTLED      the remainder went back; the entry closes
PAID             SETTLE_RJCT       PAID         stays PAID, the reason in its history, alert
ISSUED           REFUND_REQUEST    REFUNDING    a DRAFTRFND from the applicant
REFUNDING        REFUND_ACSC       REFUNDED     the whole amount went back
REFUNDING        REFUND_RJCT       ISSUED       back to ISSUED, the reason in its history, alert
===============  ================  ===========  ==========================================
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import date
from decimal import Decimal
from enum import Enum
from types import MappingProxyType
from typing import Final

from gateway.drafts.code import DraftKey, verify
from gateway.drafts.dates import is_expired
from gateway.drafts.numbers import area_of
from gateway.drafts.records import (
    ACCEPTED,
    Answer,
    DraftEntry,
    DraftState,
    Presentment,
    Reason,
    Scope,
    rejected,
)
from gateway.routing.directory import Directory


class DraftEvent(str, Enum):
    """What can happen to a register entry (module docstring)."""

    ISSUE_ACSC = "ISSUE_ACSC"
    ISSUE_RJCT = "ISSUE_RJCT"
    PRESENT_ACCP = "PRESENT_ACCP"
    SETTLE_ACSC = "SETTLE_ACSC"
    SETTLE_RJCT = "SETTLE_RJCT"
    REFUND_REQUEST = "REFUND_REQUEST"
    REFUND_ACSC = "REFUND_ACSC"
    REFUND_RJCT = "REFUND_RJCT"


TRANSITIONS: Final[Mapping[tuple[DraftState, DraftEvent], DraftState]] = MappingProxyType(
    {
        (DraftState.PENDING, DraftEvent.ISSUE_ACSC): DraftState.ISSUED,
        (DraftState.PENDING, DraftEvent.ISSUE_RJCT): DraftState.REJECTED,
        (DraftState.ISSUED, DraftEvent.PRESENT_ACCP): DraftState.PAID,
        (DraftState.PAID, DraftEvent.SETTLE_ACSC): DraftState.SETTLED,
        (DraftState.PAID, DraftEvent.SETTLE_RJCT): DraftState.PAID,
        (DraftState.ISSUED, DraftEvent.REFUND_REQUEST): DraftState.REFUNDING,
        (DraftState.REFUNDING, DraftEvent.REFUND_ACSC): DraftState.REFUNDED,
        (DraftState.REFUNDING, DraftEvent.REFUND_RJCT): DraftState.ISSUED,
    }
)
"""Every allowed step (module docstring); anything else is a :class:`TransitionError`."""

NOTIFIED: Final = frozenset(
    {
        DraftState.ISSUED,
        DraftState.PAID,
        DraftState.SETTLED,
        DraftState.REFUNDED,
        DraftState.REJECTED,
    }
)
"""docs/bank-drafts.md §2: the states an NTFY of kind DRAFT reports (not PENDING, not REFUNDING)."""


class TransitionError(ValueError):
    """The event is not allowed in the entry's state; the register must not change."""

    def __init__(self, state: DraftState, event: DraftEvent) -> None:
        self.state = state
        self.event = event
        super().__init__(f"{event.value} is not allowed in state {state.value}")


def next_state(state: DraftState, event: DraftEvent) -> DraftState:
    """The state after ``event``, or :class:`TransitionError` if the table has no such step."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise TransitionError(state, event) from None


def allowed_events(state: DraftState) -> frozenset[DraftEvent]:
    """The events the table accepts in ``state`` (none in a final state)."""
    return frozenset(e for (s, e) in TRANSITIONS if s is state)


def is_notified(before: DraftState, after: DraftState) -> bool:
    """True when the step ``before → after`` is an NTFY of kind DRAFT (docs/bank-drafts.md §2).

    A step that keeps the state (a rejected settle) is history, not news.
    """
    return after is not before and after in NOTIFIED


def refundable(entry: DraftEntry) -> bool:
    """docs/bank-drafts.md §2: DRAFTRFND is for a draft that is ISSUED, nothing else."""
    return entry.state is DraftState.ISSUED


def remainder(entry: DraftEntry, settle_amount: Decimal) -> Decimal:
    """docs/bank-drafts.md §3: ``Remainder`` = Amount − SettleAmount, zero included."""
    if not Decimal(0) < settle_amount <= entry.amount:
        raise ValueError("SettleAmount must be in (0, Amount]")
    return entry.amount - settle_amount


def agent_active(directory: Directory, agent_bank: str, work_date: date) -> bool:
    """docs/bank-drafts.md §3 ``NF``: ``agent_bank`` is a CNAPS code usable on ``work_date``."""
    bank = directory.get(agent_bank)
    return bank is not None and bank.kind == "cnaps" and bank.usable_on(work_date)


def default_province_areas(participant: str) -> frozenset[str]:
    """``drafts.province_areas`` when unset: the ``YYYY`` of our participant code."""
    return frozenset({area_of(participant)})


def check_presentment(
    entry: DraftEntry | None,
    presentment: Presentment,
    work_date: date,
    agent_active: bool,
    province_areas: Collection[str] | None,
    keys: Iterable[DraftKey],
) -> Answer:
    """The answer to ``presentment``: the checks of docs/bank-drafts.md §3, in their order.

    ``entry`` is the register entry of the presented DraftNo (None: unknown).
    ``work_date`` is the gateway's work date when the presentment arrived;
    ``agent_active`` whether ``AgentBank`` is an active directory code on that
    date; ``province_areas`` the ``drafts.province_areas`` setting (None: the
    ``YYYY`` of the issuing participant, the first 12 digits of the DraftNo,
    which is our own participant code); ``keys`` every draft key kept now.

    The first failing check decides: EX comes before CD because a Code's key
    may be retired once every draft issued under it has expired.  Exactly-once
    (one answer per AgentBank and PrsntmtId) is the journal's part.
    """
    # 1. NF: unknown, never ISSUED, or an agent bank that is not active today
    if (
        entry is None
        or entry.draft_no != presentment.draft_no
        or entry.state in (DraftState.PENDING, DraftState.REJECTED)
        or not agent_active
    ):
        return rejected(Reason.NF)
    # 2. RF, 3. PD: the state says it can no longer be paid
    if entry.state in (DraftState.REFUNDING, DraftState.REFUNDED):
        return rejected(Reason.RF)
    if entry.state in (DraftState.PAID, DraftState.SETTLED):
        return rejected(Reason.PD)
    # 4. EX: after ExpiryDate (on it, still in time)
    if is_expired(entry.expiry_date, work_date):
        return rejected(Reason.EX)
    # 5. CD: the Code over the register's fields, and the IssueDate as registered
    if presentment.issue_date != entry.issue_date or not verify(presentment.code, entry, keys):
        return rejected(Reason.CD)
    # 6. AM, 7. SA: the amounts
    if presentment.amount != entry.amount:
        return rejected(Reason.AM)
    if not Decimal(0) < presentment.settle_amount <= entry.amount:
        return rejected(Reason.SA)
    # 8. SC: a provincial draft presented from outside the province
    if entry.scope is Scope.PROVINCIAL:
        areas = (
            province_areas
            if province_areas is not None
            else default_province_areas(entry.draft_no[:12])
        )
        if area_of(presentment.agent_bank) not in areas:
            return rejected(Reason.SC)
    return ACCEPTED


__all__ = [
    "NOTIFIED",
    "TRANSITIONS",
    "DraftEvent",
    "TransitionError",
    "agent_active",
    "allowed_events",
    "check_presentment",
    "default_province_areas",
    "is_notified",
    "next_state",
    "refundable",
    "remainder",
]
