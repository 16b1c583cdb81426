"""The store protocol: the journal is the truth (docs/architecture.md §7, principle 1).

Every method that changes state returns only after the change is on stable
storage (SQLite: WAL + ``synchronous=FULL``, one writer committing in groups),
so the caller may acknowledge it.  Every item state change writes a row to the
transition table with its time (docs/architecture.md §7, principle 2).  All times are passed
in by the caller (the injected clock); the store never reads a clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from gateway.journal.credit_review_sql import CreditReviewOutcome
from gateway.journal.draft_store import DraftStore
from gateway.journal.gauges import LiveCounts
from gateway.journal.ops_records import (
    Exchange,
    InboundMessage,
    MessageDetail,
    MessageHit,
    MessageQuery,
    OperatorAction,
    ReleaseOutcome,
)
from gateway.journal.records import (
    AcceptOutcome,
    CreditReview,
    CreditState,
    Figures,
    IncomingCredit,
    InquiryDirection,
    InquiryRecord,
    ItemRef,
    NettingOutcome,
    NettingRoundView,
    NewIncomingCredit,
    NewInquiry,
    NewOutbound,
    NewRequest,
    OutboundRecord,
    PendingGroup,
    QueuedItem,
    RequestRecord,
    SettlementOutcome,
    StateCount,
    TxResult,
)
from gateway.journal.review_records import ReviewOutcome, ReviewStep
from gateway.model import BizType, Engine, Notice, StatusView


class Store(DraftStore, Protocol):
    """What the pipeline, engines and receipt handler need from the journal.

    The draft register's part is :class:`~gateway.journal.draft_store.DraftStore`.
    """

    async def start(self) -> None:
        """Open (creating or migrating the schema) and start the writer."""

    async def close(self) -> None:
        """Flush pending writes and close; idempotent."""

    # -- the request side -------------------------------------------------
    async def find_request(self, corp_id: str, msg_id: str) -> RequestRecord | None:
        """The journaled request with this (CorpId, MsgId), if any."""

    async def accept(self, request: NewRequest) -> AcceptOutcome:
        """Journal a request and its items durably; assign its GwRef.

        Writes ACCEPTED then each item's next state (QUEUED / HELD / REJECTED)
        as transition rows.  If (CorpId, MsgId) already exists, nothing is
        written and ``created`` is False with the existing record (the caller
        compares digests: Dup replay or 3001, docs/protocol.md §7).

        Every request adds its non-rejected items' amounts to the operator's
        daily total for ``request.daily_limit.day`` (or the received date);
        with a ``daily_limit``, a request that would take the total past the
        cap writes nothing and returns ``over_limit`` (2006, docs/protocol.md §6).
        The check and the write are one transaction: exact under concurrency
        and across nodes.
        """

    async def item_status(
        self, corp_id: str, msg_id: str, seq_no: int | None = None
    ) -> StatusView | None:
        """Status with transition history of one item (the first, for a PAY)."""

    # -- the engine side --------------------------------------------------
    async def release_held(self, now: datetime, limit: int, engine: Engine | None = None) -> int:
        """Move at most ``limit`` HELD items whose release_at <= now to QUEUED
        (of one engine, when given: each engine has its own release rate)."""

    async def pending_groups(self, engine: Engine) -> list[PendingGroup]:
        """QUEUED items not yet in an outbound message, grouped for packaging."""

    async def claim_queued(
        self,
        engine: Engine,
        limit: int,
        *,
        receiver: str | None = None,
        biz_type: BizType | None = None,
        work_date: object | None = None,
    ) -> list[QueuedItem]:
        """QUEUED items without an outbound message, oldest first (optionally one group)."""

    async def next_sequence(self, name: str, count: int = 1) -> int:
        """Reserve ``count`` numbers of a named durable sequence; returns the first."""

    async def create_outbound(self, messages: Sequence[NewOutbound]) -> None:
        """Journal outbound messages (PENDING) and link their items, atomically.

        Raises ``ValueError`` if an item is no longer QUEUED or already linked.
        """

    async def reject_queued(
        self, item_id: int, engine: Engine, reason_code: str, reason_text: str, at: datetime
    ) -> bool:
        """A claimed item that can no longer be sent: QUEUED → REJECTED with its reason.

        For an item the engine cannot build a message for any more (its SWIFT
        settlement path left the routing data after it was routed: 4001,
        docs/foreign-currency.md §3).  One transaction: the state, the
        transition row and the corporate's STATUS notification.  False, with
        nothing written, if the item is no longer a QUEUED, unlinked item of
        ``engine`` (or another node holds it).
        """

    async def unsent_outbound(self, limit: int) -> list[OutboundRecord]:
        """PENDING outbound messages, oldest first (never PUBACKed: publish them)."""

    async def mark_sent(self, msg_id: str, at: datetime) -> None:
        """PUBACK arrived: outbound PENDING→SENT (attempts+1), its items QUEUED→SENT."""

    async def mark_sent_many(self, msg_ids: Sequence[str], at: datetime) -> None:
        """``mark_sent`` for several messages in one write (a burst of PUBACKs)."""

    async def due_for_resend(self, sent_before: datetime, limit: int) -> list[OutboundRecord]:
        """SENT messages without ccms.990 whose last send is at or before ``sent_before``."""

    async def mark_resent(self, msg_id: str, at: datetime) -> None:
        """A re-publish under the same MsgId got its PUBACK: attempts+1, last_sent_at."""

    async def apply_receipt(self, msg_id: str, at: datetime) -> bool:
        """ccms.990 for an outbound MsgId: message ACKED, items SENT→ACKED.

        Idempotent; False when the MsgId is unknown.
        """

    async def apply_tx_status(self, msg_id: str, results: Sequence[TxResult], at: datetime) -> int:
        """ccms.900: ACSC→SETTLED, RJCT→REJECTED(reason), ACSP→ACKED.

        Matches items of outbound ``msg_id`` by TxId (else EndToEndId).  Final
        states never move; re-applying is a no-op.  Returns items changed.
        """

    async def summary(self) -> list[StateCount]:
        """Item counts by engine, state and reason code."""

    async def live_counts(self) -> LiveCounts:
        """Live items per (engine, state) and credits in CHECKING and SUSPENSE, for the
        gauges; costs what is live, never the history (gateway/journal/gauges.py)."""

    # -- correspondence (docs/protocol.md §4 NTFY/INQ/RPLY, docs/clearing-link.md §4-§6) ----
    # Notifications have one global, strictly increasing NtfyId (the NTFY
    # cursor).  Each notification is written in the same transaction as the
    # change it reports, so a crash never loses or invents one.  STATUS
    # notifications are written whenever an item of a corporate's request
    # moves to SETTLED or REJECTED after its acceptance (at accept time the
    # response already told the corporate).

    async def pull_notices(self, corp_id: str, after: int, limit: int) -> list[Notice]:
        """Notifications of ``corp_id`` with NtfyId > ``after``, oldest first, at most ``limit``."""

    async def item_ref(self, corp_id: str, msg_id: str, seq_no: int | None) -> ItemRef | None:
        """The item of a journaled request (the first, when ``seq_no`` is None)."""

    async def open_inquiry(
        self, request: NewRequest, inquiry: NewInquiry, outbound: NewOutbound
    ) -> AcceptOutcome:
        """INQ: journal the request (no items), the OUT inquiry and its ccms.314, atomically.

        As ``accept``: an existing (CorpId, MsgId) writes nothing (``created``
        False, the existing record).  ``outbound.item_ids`` is empty.
        """

    async def inquiry_for_request(self, corp_id: str, msg_id: str) -> InquiryRecord | None:
        """The OUT inquiry an INQ request opened (for its Dup replay)."""

    async def find_inquiry(self, inq_id: str, direction: InquiryDirection) -> InquiryRecord | None:
        """An inquiry by its InqId and direction."""

    async def answer_inquiry(
        self, request: NewRequest, inq_id: str, text: str, outbound: NewOutbound
    ) -> AcceptOutcome:
        """RPLY: journal the request, mark the IN inquiry REPLIED with ``text``, and
        journal its ccms.315, atomically (an existing (CorpId, MsgId) writes nothing).

        Raises ``LookupError`` when no IN inquiry ``inq_id`` belongs to
        ``request.corp_id``, ``ValueError`` when it is already REPLIED.
        """

    async def receive_inquiry(self, inquiry: NewInquiry) -> InquiryRecord | None:
        """An inbound ccms.314: find whom it concerns by ``orgnl_tx_id`` (our item's
        TxId: its payer corporate; an incoming credit's TxId: its enrolled
        corporate), journal it (IN, OPEN) with an INQUIRY notification.

        Idempotent by InqId (a re-delivery returns the existing record and
        writes nothing); None when it concerns nothing we know.
        """

    async def receive_reply(self, inq_id: str, text: str, at: datetime) -> InquiryRecord | None:
        """An inbound ccms.315 for an OUT inquiry: REPLIED, plus a REPLY notification
        for its corporate (none for an automatic inquiry).  Idempotent; None if unknown."""

    async def receive_credit(self, credit: NewIncomingCredit) -> IncomingCredit:
        """Journal an incoming credit in ``credit.state``: CHECKING (next check: now), or
        REVIEW for a SWIFT credit the screening flagged (no check).  Idempotent by
        (sender, tx_id): a re-delivery returns the existing record unchanged."""

    async def credits_to_check(self, now: datetime, limit: int) -> list[IncomingCredit]:
        """CHECKING credits whose next check is due, oldest first."""

    async def postpone_credit_check(self, gw_ref: str, next_at: datetime) -> None:
        """The core did not answer: attempts+1, check again at ``next_at`` (docs/clearing-link.md
        §5).

        A credit no longer CHECKING is left alone; ``KeyError`` for an unknown one.
        """

    async def post_credit(self, gw_ref: str, at: datetime) -> bool:
        """AcctCheck MATCH: CHECKING → POSTED, with a CREDIT notification when the
        account is enrolled for a corporate.  False if not CHECKING (idempotent)."""

    async def suspend_credit(
        self, gw_ref: str, at: datetime, inquiry: NewInquiry, outbound: NewOutbound
    ) -> bool:
        """AcctCheck MISMATCH/UNKNOWN: CHECKING → SUSPENSE, and the automatic OUT
        inquiry (``credit_ref`` = ``gw_ref``) with its ccms.314, atomically.
        False if not CHECKING (idempotent: nothing written)."""

    async def credit_state(self, gw_ref: str) -> CreditState | None:
        """The state of an incoming credit (for tests and ``gatewayctl``)."""

    # -- SWIFT credits held by screening (docs/foreign-currency.md §4-§5) ------------
    async def suspend_credit_unasked(self, gw_ref: str, at: datetime) -> bool:
        """A SWIFT credit the core did not match: CHECKING → SUSPENSE with no inquiry
        (none goes over SWIFT).  False if not CHECKING (idempotent)."""

    async def approve_credit_review(
        self, gw_ref: str, action: OperatorAction, *, seen: tuple[str, ...]
    ) -> CreditReviewOutcome:
        """A first approval (``action``: APPROVE on ``gw_ref``): the action only, the credit
        stays in REVIEW; written only if it is in REVIEW with exactly the approvals ``seen``
        and ``action``'s operator is not among them (docs/foreign-currency.md §5)."""

    async def release_credit_review(
        self, gw_ref: str, action: OperatorAction, *, seen: tuple[str, ...]
    ) -> CreditReviewOutcome:
        """The review released it (``action``: APPROVE on ``gw_ref``): REVIEW → CHECKING,
        due for its account check now, with the action, in one transaction; on the
        conditions of ``approve_credit_review``."""

    async def reject_credit_review(
        self, gw_ref: str, action: OperatorAction, *, seen: tuple[str, ...]
    ) -> CreditReviewOutcome:
        """The review rejected it (``action``: REJECT on ``gw_ref``, with a reason): REVIEW →
        SUSPENSE, no notification, with the action, in one transaction; only if it is in
        REVIEW with exactly the approvals ``seen``."""

    async def pending_credit_reviews(self, limit: int) -> list[CreditReview]:
        """Credits in REVIEW, oldest received first, with their screening JSON."""

    async def credit_reviews_ever(self, limit: int) -> list[CreditReview]:
        """Every credit ever in REVIEW (waiting, or decided by a reviewer), newest received
        first, with its screening JSON and its state now."""

    async def ledger(self, work_date: object, counterparty: str) -> Figures:
        """The bilateral ledger for (work date, counterparty) not yet netted.

        dbt: our BEPS credit items to ``counterparty`` for that work date in
        state ACKED (receipted, not rejected, not yet netted); cdt: BEPS
        incoming credits from it (any state) not yet netted, plus our BEPS
        debit items to it in state ACKED.
        """

    async def apply_netting(
        self, work_date: object, round_no: int, counterparty: str, theirs: Figures, at: datetime
    ) -> NettingOutcome:
        """Reconcile one ``CptyPos`` of a beps.netting round against :meth:`ledger`.

        Equal figures: the ledger's items move ACKED → NETTED (round recorded),
        its incoming credits are marked netted in the round.  Different: nothing
        moves.  Either way the round's row records both figures; re-applying
        (same work date, round, counterparty) changes nothing and returns the
        recorded outcome with ``already_applied``.
        """

    async def apply_settlement(
        self, work_date: object, round_no: int, at: datetime
    ) -> SettlementOutcome:
        """beps.settle: the items NETTED in (work date, round) move to SETTLED.  Idempotent.

        ``our_net`` sums our net over the round's matched positions (to compare
        with the notice's ``Net``); ``rounds_known`` is False when no position
        of (work date, round) was ever applied, matched or not.
        """

    # -- operations views (read only: ``gatewayctl credits / inquiries / netting``) --

    async def credits_in_state(self, state: CreditState, limit: int) -> list[IncomingCredit]:
        """Up to ``limit`` incoming credits in ``state``, oldest received first.

        SUSPENSE is the work list of docs/clearing-link.md §6 (暂收款 waiting for the
        sending bank's answer); CHECKING shows what a core outage holds back.
        """

    async def open_inquiries(self, limit: int) -> list[InquiryRecord]:
        """Up to ``limit`` OPEN inquiries, both directions, oldest first (by
        ``created_at``, then direction and InqId): what still waits for an
        answer (docs/protocol.md §4 INQ/RPLY, docs/clearing-link.md §6)."""

    async def netting_rounds(self, work_date: object) -> list[NettingRoundView]:
        """Every reconciled position of ``work_date`` (a ``date`` or ISO text), by
        round then counterparty, matched or not, with both figures (docs/routing-rules.md §5)."""

    # -- operators' message tools (``gatewayctl messages / held / resend``) --------

    async def search_messages(self, query: MessageQuery, limit: int) -> list[MessageHit]:
        """Up to ``limit`` items matching ``query``, oldest received first (then TxId)."""

    async def message_detail(self, ref: str) -> MessageDetail | None:
        """A GwRef, TxId or outbound MsgId with its trail, clearing messages both ways
        (exact signed bytes) and the manual actions on it; None if unknown."""

    async def message_links(
        self, refs: Sequence[str], targets: Sequence[str]
    ) -> tuple[list[InboundMessage], list[OperatorAction]]:
        """Inbound messages about ``refs`` (outbound MsgIds, ``<day> round <n>``) and
        manual actions on ``targets`` (TxIds, MsgIds): for an archived message's show."""

    async def outbound_message(self, msg_id: str) -> OutboundRecord | None:
        """One outbound message by MsgId, whatever its state."""

    async def record_inbound(self, msg: InboundMessage) -> None:
        """Keep a verified inbound clearing message (once per sender and MsgId)."""

    async def record_exchange(self, ex: Exchange) -> None:
        """Keep a journaled request's signed bytes and its response's (once per GwRef)."""

    async def record_exchanges(self, exs: Sequence[Exchange]) -> None:
        """``record_exchange`` for many in one write (one statement, one commit); all or
        none of them are kept."""

    async def exchange(self, gw_ref: str) -> Exchange | None:
        """The signed request and response of ``gw_ref``, if kept."""

    async def record_action(self, action: OperatorAction) -> None:
        """Journal a manual action (who, what, why) before it is carried out."""

    async def release_item(self, tx_id: str, action: OperatorAction) -> ReleaseOutcome:
        """Operator's early release: HELD → QUEUED now, the transition's detail and
        ``action`` written in the same transaction; nothing written unless RELEASED."""

    async def review_list(self, *, everything: bool, limit: int) -> list[MessageHit]:
        """Items in REVIEW, oldest first; ``everything``: every item ever in REVIEW, newest
        first (docs/foreign-currency.md §5)."""

    async def review_approvals(self, tx_id: str) -> list[str]:
        """The operators who approved ``tx_id`` so far, in order."""

    async def review_step(self, step: ReviewStep) -> ReviewOutcome:
        """One reviewer's step in one transaction (action, transition, new state), written
        only if the item is still in REVIEW with exactly ``step.approvals``."""
