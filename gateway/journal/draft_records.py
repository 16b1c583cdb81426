"""What the journal keeps of the draft register, and what it answers (docs/bank-drafts.md).

The register lives in the journal (the journal is the truth): one row per
draft, one row per state it reached (its ``History``), one row per answered
presentment, and a link from each draft to the INTRA messages sent for it.
Amounts are ``Decimal`` here and integer fen in the tables, as for items.
The Code (密押) is never stored: only the id of the key it was made under.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum

from gateway.drafts.records import Answer, DraftEntry, DraftState, Presentment, Scope
from gateway.journal.records import DailyLimit, NewOutbound, NewRequest, RequestRecord


class DraftMessage(str, Enum):
    """The outbound INTRA draft messages a draft can have, at most one of each kind.

    The journal keeps the link (DraftNo, kind) → MsgId unique, which is what
    makes issue, settlement and refund go out exactly once per draft, even
    when two nodes run the same pass (docs/bank-drafts.md §3).
    """

    ISSUE = "issue"
    SETTLE = "settle"
    REFUND = "refund"

    @property
    def msg_tp(self) -> str:
        return f"intra.draft.{self.value}"


@dataclass(frozen=True, slots=True)
class NewDraft:
    """A DRAFT request's register entry, before it has a DraftNo.

    ``participant`` is our 12-digit participant code, the DraftNo's prefix
    (the journal takes the next value of the ``draft`` sequence inside the
    same transaction as the request, so a replay finds the same DraftNo).
    ``issue_date`` is the INTRA work date of the request, or of the next
    working day when it is held (``release_at`` set); ``code_key`` is the id
    of the ``draft`` key the Code is made under.
    """

    participant: str
    scope: Scope
    amount: Decimal
    payer_acct: str
    payer_name: str
    payee_name: str
    purpose: str | None
    issue_date: date
    expiry_date: date
    code_key: str
    release_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DraftStepRecord:
    """One row of a draft's history: the state reached, when, and the reason (if any)."""

    state: DraftState
    at: datetime
    reason_code: str | None = None
    reason_text: str | None = None


@dataclass(frozen=True, slots=True)
class DraftRecord:
    """A register entry as the journal holds it, with who applied and its history."""

    entry: DraftEntry
    corp_id: str
    msg_id: str  # the DRAFT request's MsgId
    purpose: str | None
    created_at: datetime
    release_at: datetime | None
    paid_on: date | None  # the work date its presentment was accepted
    settle_amount: Decimal | None
    history: tuple[DraftStepRecord, ...] = ()

    @property
    def draft_no(self) -> str:
        return self.entry.draft_no

    @property
    def state(self) -> DraftState:
        return self.entry.state


@dataclass(frozen=True, slots=True)
class DraftOpenOutcome:
    """What :meth:`DraftStore.open_draft` did.

    ``created`` False: the (CorpId, MsgId) was journaled before (``record``
    is that request, ``draft`` its draft when it was a DRAFT); the caller
    answers as a replay.  ``over_limit``: the operator's daily total would
    pass its cap; nothing was written.
    """

    created: bool
    record: RequestRecord | None
    draft: DraftRecord | None
    over_limit: bool = False


class RefundRefusal(str, Enum):
    """Why a DRAFTRFND cannot start a refund (1004, docs/bank-drafts.md §2)."""

    UNKNOWN = "UNKNOWN"  # no such DraftNo
    NOT_YOURS = "NOT_YOURS"  # another CorpId applied for it
    NOT_ISSUED = "NOT_ISSUED"  # its state is not ISSUED


@dataclass(frozen=True, slots=True)
class RefundOutcome:
    """What :meth:`DraftStore.open_refund` did: ``created`` False is a replay, as for accept."""

    created: bool
    record: RequestRecord | None
    draft: DraftRecord | None
    refused: RefundRefusal | None = None


@dataclass(frozen=True, slots=True)
class DraftOutboundNeed:
    """A draft that needs an outbound message of ``kind`` built and journaled.

    ``attempt`` numbers the messages of one kind for one draft: 1 for issue
    and settlement (each goes out once per DraftNo); for a refund, the how
    many-th refund request this is (a refund that came back RJCT returns the
    draft to ISSUED, and a later DRAFTRFND needs a new message).
    """

    kind: DraftMessage
    attempt: int
    draft: DraftRecord


class PresentmentVerdict(str, Enum):
    """What :meth:`DraftStore.record_presentment` did with an answer."""

    RECORDED = "RECORDED"  # this answer is now the presentment's one answer
    EXISTING = "EXISTING"  # answered before: ``answer`` and ``msg_id`` are the first answer's
    STALE = "STALE"  # the draft changed since it was read: check again, then record again


@dataclass(frozen=True, slots=True)
class PresentmentOutcome:
    verdict: PresentmentVerdict
    answer: Answer | None = None  # EXISTING: the first answer
    msg_id: str | None = None  # EXISTING: the first answer's MsgId (re-send that message)


@dataclass(frozen=True, slots=True)
class DraftStatusResult:
    """What a ``ccms.900`` for a draft message did: the draft and its state change, if any."""

    draft: DraftRecord
    before: DraftState
    after: DraftState
    kind: DraftMessage


__all__ = [
    "DailyLimit",
    "DraftMessage",
    "DraftOpenOutcome",
    "DraftOutboundNeed",
    "DraftRecord",
    "DraftState",
    "DraftStatusResult",
    "DraftStepRecord",
    "NewDraft",
    "NewOutbound",
    "NewRequest",
    "Presentment",
    "PresentmentOutcome",
    "PresentmentVerdict",
    "RefundOutcome",
    "RefundRefusal",
]
