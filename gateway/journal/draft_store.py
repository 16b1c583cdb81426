"""The draft register's part of the store protocol (docs/bank-drafts.md §1–§4).

Same rules as :mod:`gateway.journal.store`: every write returns after it is
on stable storage, every state change writes a step row with its time, the
caller passes every time in.  Both backends implement it and pass the same
tests.  The register's rules themselves (which event moves which state, the
presentment checks) are :mod:`gateway.drafts.register`; the journal applies
them inside its transactions, which is what makes them exact under
concurrency and across nodes.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Protocol

from gateway.drafts.records import Answer, DraftState, Presentment
from gateway.journal.draft_records import (
    DraftMessage,
    DraftOpenOutcome,
    DraftOutboundNeed,
    DraftRecord,
    DraftStatusResult,
    NewDraft,
    PresentmentOutcome,
    RefundOutcome,
)
from gateway.journal.records import NewOutbound, NewRequest


class DraftStore(Protocol):
    """What the draft service needs from the journal."""

    async def open_draft(self, request: NewRequest, draft: NewDraft) -> DraftOpenOutcome:
        """Journal a DRAFT request and its register entry (PENDING) in one transaction.

        The DraftNo is ``draft.participant`` followed by the next value of the
        ``draft`` sequence (8 digits), taken in the same transaction.  The
        amount counts toward ``request.daily_limit`` together with PAY items
        (over the cap: nothing written, ``over_limit``).  An existing
        (CorpId, MsgId) writes nothing and returns ``created`` False with that
        request and, when it was a DRAFT, its draft.
        """
        ...

    async def open_refund(self, request: NewRequest, draft_no: str) -> RefundOutcome:
        """Journal a DRAFTRFND request and move its draft ISSUED → REFUNDING, in one transaction.

        Refused (nothing written, ``refused`` set) when the draft is unknown,
        was applied for by another CorpId, or is not ISSUED.  An existing
        (CorpId, MsgId) writes nothing: ``created`` False, as for accept.
        """
        ...

    async def draft_for_request(self, corp_id: str, msg_id: str) -> DraftRecord | None:
        """The draft of a DRAFT request (or the draft a DRAFTRFND named), with its history."""
        ...

    async def find_draft(self, draft_no: str) -> DraftRecord | None:
        """A register entry by DraftNo, with its history."""
        ...

    async def drafts_needing_message(
        self, work_date: date, now: datetime, limit: int
    ) -> list[DraftOutboundNeed]:
        """Drafts whose next INTRA message has not been journaled yet, oldest first.

        - ISSUE: PENDING, ``issue_date`` ≤ ``work_date`` and ``release_at``
          unset or ≤ ``now``;
        - SETTLE: PAID with ``paid_on`` before ``work_date`` and no settlement
          message yet (one per DraftNo, ever);
        - REFUND: REFUNDING and no refund message for its latest refund request.
        """
        ...

    async def add_draft_message(
        self, draft_no: str, kind: DraftMessage, attempt: int, outbound: NewOutbound
    ) -> bool:
        """Journal ``outbound`` as the draft's message (kind, attempt); False if it exists.

        False (nothing written) means another pass or node got there first:
        the caller drops its message.  ``outbound.item_ids`` is empty.
        """
        ...

    async def apply_draft_status(
        self,
        msg_id: str,
        status: str,
        reason_code: str | None,
        reason_text: str | None,
        at: datetime,
    ) -> DraftStatusResult | None:
        """Apply a ``ccms.900`` (ACSC or RJCT) to the draft message ``msg_id``.

        Counts as the message's ``ccms.990`` too.  Issue: ACSC → ISSUED, RJCT
        → REJECTED.  Settle: ACSC → SETTLED, RJCT stays PAID with a step
        carrying the reason.  Refund: ACSC → REFUNDED, RJCT → ISSUED with the
        reason.  Writes the applicant's DRAFT notification for ISSUED, SETTLED
        (``amount`` = remainder), REFUNDED and REJECTED in the same
        transaction.  None when ``msg_id`` is not a draft message or its
        status was applied before (a redelivery changes nothing).
        """
        ...

    async def record_presentment(
        self,
        presentment: Presentment,
        answer: Answer,
        expected: DraftState | None,
        outbound: NewOutbound,
        work_date: date,
        at: datetime,
    ) -> PresentmentOutcome:
        """Journal the one answer to a presentment, keyed by (AgentBank, PrsntmtId).

        In one transaction: if that key was answered before → EXISTING with
        the first answer and its MsgId (nothing written).  If the draft's state
        is no longer ``expected`` (None: the DraftNo was unknown) → STALE
        (nothing written; the caller checks again).  Otherwise the answer and
        ``outbound`` are journaled; an ACCP also moves the draft ISSUED → PAID
        (``paid_on`` = ``work_date``, the settle amount kept) with the PAID
        notification.  At most one ACCP per draft, even from two nodes.
        """
        ...

    async def list_drafts(
        self, state: DraftState | None, expiring_before: date | None, limit: int
    ) -> list[DraftRecord]:
        """Register entries (without history), newest first, optionally filtered."""
        ...

    async def outstanding_drafts(self) -> tuple[int, Decimal]:
        """How many drafts are ISSUED, and the sum of their amounts (the outstanding total)."""
        ...

    async def settle_list(self, work_date: date) -> list[DraftRecord]:
        """The auto-settlement list (自动结清清单) of ``work_date``.

        Drafts whose settlement message was journaled with that work date,
        and PAID drafts due on it (``paid_on`` earlier) whose message is not
        journaled yet.
        """
        ...

    async def draft_counts(self) -> dict[DraftState, tuple[int, Decimal]]:
        """Per state: how many drafts and their summed amount (the drafts metrics)."""
        ...

    async def unsettled_paid(self, paid_before: date) -> int:
        """How many drafts are PAID with ``paid_on`` before ``paid_before`` (the overdue alert)."""
        ...


__all__ = ["DraftStore"]
