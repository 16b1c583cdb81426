"""The register's typed values: states, scopes, reasons, an entry, a presentment, an answer.

docs/bank-drafts.md §1 (the register entry and its states) and §3 (the
presentment and its answer).  Plain frozen dataclasses and string enums, so
the journal, the documents and the checks share one vocabulary; amounts are
``Decimal`` with two places, as everywhere in the gateway (docs/protocol.md §4).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import Enum


class DraftState(str, Enum):
    """docs/bank-drafts.md §1: the states of a register entry."""

    PENDING = "PENDING"
    ISSUED = "ISSUED"
    PAID = "PAID"
    SETTLED = "SETTLED"
    REFUNDING = "REFUNDING"
    REFUNDED = "REFUNDED"
    REJECTED = "REJECTED"

    @property
    def final(self) -> bool:
        """No event moves a draft out of these (the register entry is closed)."""
        return self in (DraftState.SETTLED, DraftState.REFUNDED, DraftState.REJECTED)


class Scope(str, Enum):
    """docs/bank-drafts.md §1: national (全国) or provincial (省辖) draft."""

    NATIONAL = "NATIONAL"
    PROVINCIAL = "PROVINCIAL"


class Result(str, Enum):
    """docs/bank-drafts.md §3: a ``DrftAnswr`` ``Result``."""

    ACCP = "ACCP"
    RJCT = "RJCT"


class Reason(str, Enum):
    """docs/bank-drafts.md §3: the presentment reasons, in the order they are checked."""

    NF = "NF"  # unknown, never ISSUED, or the agent bank is not active
    RF = "RF"  # REFUNDING or REFUNDED
    PD = "PD"  # already PAID or SETTLED
    EX = "EX"  # presented after ExpiryDate
    CD = "CD"  # Code or IssueDate wrong
    AM = "AM"  # Amount differs from the register
    SA = "SA"  # SettleAmount not in (0, Amount]
    SC = "SC"  # a PROVINCIAL draft from outside the province


@dataclass(frozen=True, slots=True)
class DraftEntry:
    """One register entry (登记簿), as the checks and the Code need it (docs/bank-drafts.md §1).

    The Code is not a field: it is recomputed from these when needed
    (docs/bank-drafts.md §1), under the key named by ``code_key``.
    """

    draft_no: str
    scope: Scope
    amount: Decimal
    payer_acct: str
    payer_name: str
    payee_name: str
    issue_date: date
    expiry_date: date
    state: DraftState
    code_key: str = ""  # id of the draft key the Code was made under


@dataclass(frozen=True, slots=True)
class Presentment:
    """A ``DrftPrsntmt`` as read from the link (docs/bank-drafts.md §3)."""

    prsntmt_id: str
    draft_no: str
    code: str
    issue_date: date
    amount: Decimal
    settle_amount: Decimal
    agent_bank: str
    holder_acct: str
    holder_name: str


@dataclass(frozen=True, slots=True)
class Answer:
    """The outcome of the checks: ACCP, or RJCT with its reason (docs/bank-drafts.md §3)."""

    result: Result
    reason: Reason | None = None

    def __post_init__(self) -> None:
        if (self.result is Result.RJCT) != (self.reason is not None):
            raise ValueError("an RJCT answer carries a reason, an ACCP answer none")

    @property
    def accepted(self) -> bool:
        return self.result is Result.ACCP


ACCEPTED = Answer(Result.ACCP)


def rejected(reason: Reason) -> Answer:
    """An RJCT answer with ``reason``."""
    return Answer(Result.RJCT, reason)


__all__ = [
    "ACCEPTED",
    "Answer",
    "DraftEntry",
    "DraftState",
    "Presentment",
    "Reason",
    "Result",
    "Scope",
    "rejected",
]
