"""What both journals share for SWIFT credits held by screening (docs/foreign-currency.md §5).

An incoming SWIFT credit that the screening flagged waits in REVIEW.  The
review service (``gatewayctl review``) takes it through the steps a payment
in review takes, each one transaction together with its
:class:`OperatorAction` (who, uid, when, why):

- approve: the first approval, only the action; the credit stays in REVIEW;
- release: the second approval, REVIEW → CHECKING, due for its account check
  at once; the credit checker then posts it (with its CREDIT notification) or
  books it to suspense;
- reject: REVIEW → SUSPENSE, with no notification and no inquiry.

Every step is written *conditionally*, as a payment's is
(:mod:`gateway.journal.review_records`): the credit must still be in REVIEW
with exactly the approvals the decision saw (``seen``), and an approval must
not be its operator's second.  So the same user approving twice at once, an
approval racing a rejection, or two nodes deciding together, end in one
step written and the other refused (or, for ``CHANGED``, decided again).

A SWIFT credit the core does not match goes CHECKING → SUSPENSE without the
automatic ``ccms.314`` of a CNAPS credit: there is no inquiry over SWIFT
(docs/foreign-currency.md §4).  The SQL here is written once with ``?``
placeholders; PostgreSQL numbers them (``ops_queries.numbered``).
"""

from __future__ import annotations

from enum import Enum
from typing import Final

from gateway.journal.ops_records import ActionKind, OperatorAction


class CreditReviewOutcome(str, Enum):
    """As :class:`~gateway.journal.review_records.ReviewOutcome`, value for value."""

    DONE = "done"
    UNKNOWN = "unknown"  # no incoming credit with that reference
    NOT_IN_REVIEW = "not_in_review"  # it is not (or no longer) in REVIEW
    CHANGED = "changed"  # another approval was written meanwhile: decide again
    SAME_USER = "same_user"  # this operator approved it already


STATE: Final = "SELECT state FROM incoming_credits WHERE gw_ref = ?"
"""The credit's state, read first in a step's transaction (PostgreSQL locks the row)."""


RELEASE: Final = (
    "UPDATE incoming_credits SET state = 'CHECKING', next_check_at = ?, updated_at = ?"
    " WHERE gw_ref = ? AND state = 'REVIEW' RETURNING gw_ref"
)
"""REVIEW → CHECKING, due now: args (at, at, gw_ref)."""
REJECT: Final = (
    "UPDATE incoming_credits SET state = 'SUSPENSE', next_check_at = NULL, updated_at = ?"
    " WHERE gw_ref = ? AND state = 'REVIEW' RETURNING gw_ref"
)
"""REVIEW → SUSPENSE: args (at, gw_ref)."""
SUSPEND_UNASKED: Final = (
    "UPDATE incoming_credits SET state = 'SUSPENSE', next_check_at = NULL, updated_at = ?"
    " WHERE gw_ref = ? AND state = 'CHECKING' RETURNING gw_ref"
)
"""CHECKING → SUSPENSE without an inquiry: args (at, gw_ref)."""
PENDING: Final = (
    "SELECT gw_ref, received_at, screening FROM incoming_credits"
    " WHERE state = 'REVIEW' ORDER BY received_at, gw_ref LIMIT ?"
)
"""The credits waiting for review, oldest first: the partial index ``credits_review``
(migration 13), whose WHERE this repeats word for word."""
EVER: Final = (
    "SELECT gw_ref, received_at, screening, state FROM incoming_credits WHERE state = 'REVIEW'"
    " UNION ALL SELECT gw_ref, received_at, screening, state FROM incoming_credits"
    " WHERE state <> 'REVIEW' AND gw_ref IN"
    " (SELECT target FROM operator_actions WHERE action IN ('approve', 'reject'))"
    " ORDER BY received_at DESC, gw_ref LIMIT ?"
)
"""Every credit ever in review, newest first (``review list --all``): those in REVIEW now,
and those a reviewer decided (a credit leaves REVIEW only by a review step, which journals
its action).  Two branches, so that each can use its index (``credits_review``, the
primary key) instead of a scan of every incoming credit."""

_STEP: Final = {
    "approve": ActionKind.APPROVE,
    "release": ActionKind.APPROVE,
    "reject": ActionKind.REJECT,
}


def refusal(
    action: OperatorAction, state: str | None, approvals: list[str], seen: tuple[str, ...]
) -> CreditReviewOutcome | None:
    """The conditions of a step, checked inside its transaction; None: go ahead."""
    if state is None:
        return CreditReviewOutcome.UNKNOWN
    if state != "REVIEW":
        return CreditReviewOutcome.NOT_IN_REVIEW
    if action.action is ActionKind.APPROVE and action.operator in approvals:
        return CreditReviewOutcome.SAME_USER
    if tuple(approvals) != seen:
        return CreditReviewOutcome.CHANGED
    return None


def check_action(step: str, gw_ref: str, action: OperatorAction) -> None:
    """The action must be the step's kind (approve releases, reject rejects) on ``gw_ref``,
    with a reason: a review decision without who and why is not journaled."""
    if action.action is not _STEP[step]:
        raise ValueError(f"a credit review {step} is journaled as {_STEP[step].value}")
    if action.target != gw_ref:
        raise ValueError("the operator action must name the credit's reference")
    if not action.reason.strip() and step == "reject":
        raise ValueError("a rejection needs a reason")


__all__ = [
    "EVER",
    "PENDING",
    "REJECT",
    "RELEASE",
    "STATE",
    "SUSPEND_UNASKED",
    "CreditReviewOutcome",
    "check_action",
    "refusal",
]
