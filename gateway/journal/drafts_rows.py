"""Journal rows → draft records, and the rules both backends apply the same way.

The SQLite and PostgreSQL journals keep the draft register in tables with the
same columns under the same names (``schema.py`` and ``postgres_schema.py``,
migration 10).  They differ only in how a row hands back an instant and a
date (:class:`~gateway.journal.correspondence_rows.Decoding`), so one mapper
builds every :class:`DraftRecord` and what STATUS, NTFY and ``gatewayctl drafts``
read cannot drift apart between backends (docs/bank-drafts.md §1-§4).  The
SQL stays per backend; the decisions a ccms.900 or a presentment takes
(which event, which notification, which amount) are made here, once, with
:func:`gateway.drafts.register.next_state`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Final

from gateway.drafts.numbers import check_participant
from gateway.drafts.records import Answer, DraftEntry, DraftState, Reason, Result, Scope
from gateway.drafts.register import DraftEvent, is_notified, next_state, remainder
from gateway.journal import schema
from gateway.journal.correspondence_rows import Decoding
from gateway.journal.draft_records import (
    DraftMessage,
    DraftRecord,
    DraftStepRecord,
    NewDraft,
)
from gateway.journal.records import NewOutbound, NewRequest

if TYPE_CHECKING:
    from gateway.journal.correspondence_rows import Row

DRAFT_SEQUENCE: Final = "draft"
"""The ``sequences`` row the DraftNo's 8 digits come from (docs/bank-drafts.md §1)."""

DRAFT_COLUMNS: Final = (
    "draft_no, corp_id, msg_id, scope, amount_fen, payer_acct, payer_name, payee_name, purpose,"
    " issue_date, expiry_date, code_key, state, release_at, paid_on, settle_amount_fen,"
    " created_at"
)
"""What :func:`draft_of` reads, by name (``SELECT {DRAFT_COLUMNS} FROM drafts``)."""
DRAFT_COLUMNS_D: Final = ", ".join(f"d.{c.strip()}" for c in DRAFT_COLUMNS.split(","))
""":data:`DRAFT_COLUMNS` qualified by the alias ``d`` (for joins)."""
STEP_COLUMNS: Final = "state, at, reason_code, reason_text"
"""What :func:`step_of` reads from ``draft_steps``, oldest first (``ORDER BY id``)."""

FINAL_STATES: Final = "'SETTLED', 'REFUNDED', 'REJECTED'"
"""The closed register entries (``DraftState.final``), as an SQL list."""

_EVENTS: Final = {
    (DraftMessage.ISSUE, "ACSC"): DraftEvent.ISSUE_ACSC,
    (DraftMessage.ISSUE, "RJCT"): DraftEvent.ISSUE_RJCT,
    (DraftMessage.SETTLE, "ACSC"): DraftEvent.SETTLE_ACSC,
    (DraftMessage.SETTLE, "RJCT"): DraftEvent.SETTLE_RJCT,
    (DraftMessage.REFUND, "ACSC"): DraftEvent.REFUND_ACSC,
    (DraftMessage.REFUND, "RJCT"): DraftEvent.REFUND_RJCT,
}
"""A ccms.900 on a draft message → the register's event (docs/bank-drafts.md §3)."""


def draft_of(row: Row, dec: Decoding, history: Iterable[DraftStepRecord] = ()) -> DraftRecord:
    """A register entry from a ``drafts`` row (read by column name)."""
    d = dict(row)
    release_at, paid_on, settle = d["release_at"], d["paid_on"], d["settle_amount_fen"]
    entry = DraftEntry(
        draft_no=str(d["draft_no"]),
        scope=Scope(d["scope"]),
        amount=schema.from_fen(int(d["amount_fen"])),
        payer_acct=str(d["payer_acct"]),
        payer_name=str(d["payer_name"]),
        payee_name=str(d["payee_name"]),
        issue_date=dec.day(d["issue_date"]),
        expiry_date=dec.day(d["expiry_date"]),
        state=DraftState(d["state"]),
        code_key=str(d["code_key"]),
    )
    return DraftRecord(
        entry=entry,
        corp_id=str(d["corp_id"]),
        msg_id=str(d["msg_id"]),
        purpose=d["purpose"],
        created_at=dec.instant(d["created_at"]),
        release_at=None if release_at is None else dec.instant(release_at),
        paid_on=None if paid_on is None else dec.day(paid_on),
        settle_amount=None if settle is None else schema.from_fen(int(settle)),
        history=tuple(history),
    )


def step_of(row: Row, dec: Decoding) -> DraftStepRecord:
    d = dict(row)
    return DraftStepRecord(
        state=DraftState(d["state"]),
        at=dec.instant(d["at"]),
        reason_code=d["reason_code"],
        reason_text=d["reason_text"],
    )


def answer_of(result: str, reason: str | None) -> Answer:
    """A stored presentment answer."""
    return Answer(Result(result), None if reason is None else Reason(reason))


# -- checks before writing (both backends refuse the same input) -----------------------


def check_new_draft(request: NewRequest, draft: NewDraft) -> int:
    """A DRAFT request without items and a register entry that can be stored: its fen."""
    if request.items:
        raise ValueError("a DRAFT request has no items: the draft is its register entry")
    check_participant(draft.participant)
    fen = schema.to_fen(draft.amount)
    if fen <= 0:
        raise ValueError("a draft's amount must be positive")
    if draft.expiry_date < draft.issue_date:
        raise ValueError("a draft cannot expire before it is issued")
    return fen


def check_bare(request: NewRequest, what: str = "DRAFTRFND") -> None:
    if request.items:
        raise ValueError(f"a {what} request has no items")


def check_message(kind: DraftMessage, attempt: int, outbound: NewOutbound) -> None:
    if outbound.item_ids:
        raise ValueError("a draft message carries no items")
    if attempt < 1 or (kind is not DraftMessage.REFUND and attempt != 1):
        raise ValueError(f"a draft's {kind.value} message has attempt 1 (refund: 1 or more)")


def check_status(status: str) -> None:
    if status not in ("ACSC", "RJCT"):
        raise ValueError(f"a draft message's ccms.900 is ACSC or RJCT, not {status!r}")


# -- what a change writes ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatusChange:
    """What a ccms.900 does to a draft: its new state, the step's reason, the notice."""

    before: DraftState
    after: DraftState
    reason_code: str | None
    reason_text: str | None
    notify: bool
    notice_amount: Decimal | None
    notice_reason: str | None


def status_change(
    record: DraftRecord,
    kind: DraftMessage,
    status: str,
    reason_code: str | None,
    reason_text: str | None,
) -> StatusChange:
    """Apply the register's table to a ccms.900 (``TransitionError`` if it does not fit).

    An RJCT's reason goes into the step; the notification carries the
    Remainder when SETTLED and the reason when REJECTED (docs/bank-drafts.md §2).
    """
    before = record.state
    after = next_state(before, _EVENTS[kind, status])
    rejected = status == "RJCT"
    amount: Decimal | None = None
    if after is DraftState.SETTLED:
        settle = record.settle_amount if record.settle_amount is not None else record.entry.amount
        amount = remainder(record.entry, settle)
    return StatusChange(
        before=before,
        after=after,
        reason_code=reason_code if rejected else None,
        reason_text=reason_text if rejected else None,
        notify=is_notified(before, after),
        notice_amount=amount,
        notice_reason=reason_code if after is DraftState.REJECTED else None,
    )


def paid_state(expected: DraftState | None) -> DraftState:
    """The state an ACCP moves a draft to: only an ISSUED draft can be paid."""
    if expected is None:
        raise ValueError("an ACCP answer needs a known, ISSUED draft")
    return next_state(expected, DraftEvent.PRESENT_ACCP)


__all__ = [
    "DRAFT_COLUMNS",
    "DRAFT_COLUMNS_D",
    "DRAFT_SEQUENCE",
    "FINAL_STATES",
    "STEP_COLUMNS",
    "StatusChange",
    "answer_of",
    "check_bare",
    "check_message",
    "check_new_draft",
    "check_status",
    "draft_of",
    "paid_state",
    "status_change",
    "step_of",
]
