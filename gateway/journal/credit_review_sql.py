"""What both journals share for SWIFT credits held by screening (docs/foreign-currency.md §5).

An incoming SWIFT credit that the screening flagged waits in REVIEW.  The
review service (``gatewayctl review``) ends the wait with one of two steps,
each one transaction together with its :class:`OperatorAction` (who, uid,
when, why):

- release: REVIEW → CHECKING, due for its account check at once; the credit
  checker then posts it (with its CREDIT notification) or books it to suspense;
- reject: REVIEW → SUSPENSE, with no notification and no inquiry.

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
    DONE = "done"
    UNKNOWN = "unknown"  # no incoming credit with that reference
    NOT_IN_REVIEW = "not_in_review"  # it is not (or no longer) in REVIEW


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
KNOWN: Final = "SELECT 1 FROM incoming_credits WHERE gw_ref = ?"
PENDING: Final = (
    "SELECT gw_ref, received_at, screening FROM incoming_credits"
    " WHERE state = 'REVIEW' ORDER BY received_at, gw_ref LIMIT ?"
)
"""The credits waiting for review, oldest first: the partial index ``credits_review``
(migration 13), whose WHERE this repeats word for word."""

_STEP: Final = {"release": ActionKind.APPROVE, "reject": ActionKind.REJECT}


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
    "KNOWN",
    "PENDING",
    "REJECT",
    "RELEASE",
    "SUSPEND_UNASKED",
    "CreditReviewOutcome",
    "check_action",
]
