"""The four-eyes review of screened items in the journal (docs/foreign-currency.md §5).

Shared by both backends: the records of one review step, its outcomes and the
SQL of the review list.  A step is decided by ``gateway.ops.review`` (who may
act, the re-route at release) and written by the store in one transaction,
*conditionally*: the item must still be in REVIEW with exactly the approvals
the decision saw, so two reviewers acting at once, or a crash and a retry,
can never release an item twice or on one approval.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from typing import Final

from gateway.journal import ops_queries as q
from gateway.journal.ops_records import OperatorAction
from gateway.model import Engine, State

REJECT_CODE: Final = "RR04"
"""The Reason Code of a payment rejected in review (docs/foreign-currency.md §5)."""


@dataclass(frozen=True, slots=True)
class ReviewStep:
    """One reviewer's decision on one item, and what it does to the item.

    ``state`` REVIEW: a first approval, the item waits for the second (only the
    action and a REVIEW transition are written).  QUEUED or HELD: the release,
    with the route in force now.  REJECTED: a rejection (RR04), or a release
    that routing now refuses (its code).
    """

    tx_id: str
    action: OperatorAction
    approvals: tuple[str, ...]  # the operators whose approvals the decision saw, in order
    state: State
    detail: str  # the transition's detail: who decided, and why
    engine: Engine | None = None
    receiver: str | None = None
    payee_bank_code: str | None = None
    work_date: date | None = None
    release_at: datetime | None = None
    reason_code: str | None = None
    reason_text: str | None = None


class ReviewOutcome(str, Enum):
    DONE = "done"
    UNKNOWN = "unknown"  # no item with that TxId
    NOT_IN_REVIEW = "not_in_review"  # released or rejected meanwhile, or never screened to REVIEW
    CHANGED = "changed"  # another approval was written meanwhile: decide again
    SAME_USER = "same_user"  # this operator approved it already


REVIEW_LIST_SQL: Final = (
    f"SELECT {q.HIT_COLUMNS}{q.FROM} WHERE i.state = 'REVIEW'"
    " ORDER BY r.received_at, i.tx_id LIMIT ?"
)
"""Pending reviews, oldest first (through the partial index ``items_review``)."""
REVIEW_ALL_SQL: Final = (
    f"SELECT {q.HIT_COLUMNS}{q.FROM}"  # noqa: S608 - constants
    " WHERE i.id IN (SELECT item_id FROM transitions WHERE state = 'REVIEW')"
    " ORDER BY r.received_at DESC, i.tx_id LIMIT ?"
)
"""Every item that was ever in REVIEW, newest first (``review list --all``)."""
APPROVALS_SQL: Final = (
    "SELECT operator FROM operator_actions WHERE target = ? AND action = 'approve' ORDER BY id"
)


def step_is_current(step: ReviewStep, approvals: list[str]) -> ReviewOutcome | None:
    """The conditions of the write, checked inside its transaction; None: go ahead."""
    if step.action.action.value == "approve" and step.action.operator in approvals:
        return ReviewOutcome.SAME_USER
    if tuple(approvals) != step.approvals:
        return ReviewOutcome.CHANGED
    return None
