"""Records that cross the journal boundary.

The store speaks in these frozen dataclasses only; nothing outside
``gateway.journal`` sees SQL rows.  Amounts are ``Decimal`` here and integer
fen (cents) inside the store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from gateway.model import BizType, Engine, Priority, Request, State


class OutState(str, Enum):
    """Life of one outbound clearing message (docs/clearing-link.md §1)."""

    PENDING = "PENDING"  # journaled, never PUBACKed
    SENT = "SENT"  # PUBACK received, no ccms.990 yet
    ACKED = "ACKED"  # ccms.990 received


@dataclass(frozen=True, slots=True)
class NewItem:
    """One transfer of a request, routed (or refused) before journaling.

    ``state`` is the state right after ACCEPTED: QUEUED, HELD (with
    ``release_at``), REVIEW (a screening hit, keeping its route for the release,
    docs/foreign-currency.md §5) or REJECTED (with ``reason_code``/``reason_text``,
    e.g. a PAYROLL item with an unknown bank code, docs/protocol.md §4).
    """

    seq_no: int | None
    payer_acct: str
    payer_name: str
    payee_acct: str
    payee_name: str
    payee_bank_code: str
    amount: Decimal
    ccy: str
    priority: Priority
    biz_type: BizType
    purpose: str | None
    state: State
    engine: Engine | None
    receiver: str | None  # participant (12 digits) or internal branch code (6 digits)
    work_date: date | None
    release_at: datetime | None = None
    reason_code: str | None = None
    reason_text: str | None = None
    # foreign-currency payments (docs/foreign-currency.md §1); None on a CNY item
    payee_bic: str | None = None
    payee_country: str | None = None
    chrg_br: str | None = None
    # docs/foreign-currency.md §5: the screening decision as JSON (list versions, hits);
    # None when the item was not screened
    screening: str | None = None


@dataclass(frozen=True, slots=True)
class DailyLimit:
    """A per-operator daily cap checked atomically with the journal write (docs/protocol.md §6).

    ``day`` is the business calendar date (Asia/Shanghai) the amount counts on.
    """

    day: date
    cap: Decimal


@dataclass(frozen=True, slots=True)
class NewRequest:
    """A request to journal durably before answering 0000 (docs/protocol.md §5)."""

    corp_id: str
    msg_id: str
    oper_id: str
    trn_code: str
    digest: str  # SHA-256 hex of canonical Head+Body (docs/protocol.md §7)
    received_at: datetime
    items: tuple[NewItem, ...]
    daily_limit: DailyLimit | None = None

    def record(self, gw_ref: str, received_at: datetime) -> RequestRecord:
        """The journaled request, once the journal gave it ``gw_ref``; ``received_at`` as
        the journal reads it back (in the clock's zone)."""
        return RequestRecord(
            corp_id=self.corp_id,
            msg_id=self.msg_id,
            oper_id=self.oper_id,
            trn_code=self.trn_code,
            digest=self.digest,
            gw_ref=gw_ref,
            received_at=received_at,
        )


def new_request(
    req: Request,
    received_at: datetime,
    items: tuple[NewItem, ...] = (),
    daily_limit: DailyLimit | None = None,
) -> NewRequest:
    """What the journal keeps of a verified request: its Head's keys and the digest
    (docs/protocol.md §7), with ``items`` (none for INQ and RPLY, which move no money)."""
    head = req.head
    return NewRequest(
        corp_id=head.corp_id,
        msg_id=head.msg_id,
        oper_id=head.oper_id,
        trn_code=head.trn_code,
        digest=req.digest,
        received_at=received_at,
        items=items,
        daily_limit=daily_limit,
    )


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """A journaled request, as dedupe and replay see it."""

    corp_id: str
    msg_id: str
    oper_id: str
    trn_code: str
    digest: str
    gw_ref: str
    received_at: datetime


@dataclass(frozen=True, slots=True)
class AcceptOutcome:
    """Result of ``Store.accept``.

    ``created`` is False when (CorpId, MsgId) existed (``record`` is then the
    existing one) or when the operator's daily limit would be exceeded
    (``over_limit``, ``record`` None, nothing written).
    """

    created: bool
    record: RequestRecord | None
    over_limit: bool = False


@dataclass(frozen=True, slots=True)
class QueuedItem:
    """An item ready for its engine: everything needed to build the clearing Document."""

    item_id: int
    tx_id: str  # PmtId/TxId: the GwRef, or GwRef-SeqNo for batch items (unique)
    end_to_end_id: str  # PmtId/EndToEndId: the corporate's MsgId (and SeqNo for batch items)
    corp_id: str
    msg_id: str
    seq_no: int | None
    engine: Engine
    receiver: str
    work_date: date
    payer_acct: str
    payer_name: str
    payee_acct: str
    payee_name: str
    payee_bank_code: str
    amount: Decimal
    ccy: str
    priority: Priority
    biz_type: BizType
    purpose: str | None
    queued_at: datetime
    # foreign-currency payments (docs/foreign-currency.md §1, §4); None on a CNY item
    payee_bic: str | None = None
    payee_country: str | None = None
    chrg_br: str | None = None


@dataclass(frozen=True, slots=True)
class PendingGroup:
    """QUEUED, unpackaged BEPS items of one (receiver, business type, work date)."""

    engine: Engine
    receiver: str
    biz_type: BizType
    work_date: date
    count: int
    oldest_queued_at: datetime


@dataclass(frozen=True, slots=True)
class NewOutbound:
    """One clearing message about to be published (its bytes are final and signed)."""

    msg_id: str
    engine: Engine
    msg_tp: str
    topic: str
    receiver: str
    work_date: date
    payload: bytes
    item_ids: tuple[int, ...]
    created_at: datetime
    uetr: str | None = None  # a swift.008's UETR, journaled on its one item with the message


@dataclass(frozen=True, slots=True)
class OutboundRecord:
    """A journaled outbound message, for (re)publishing."""

    msg_id: str
    engine: Engine
    msg_tp: str
    topic: str
    receiver: str
    work_date: date
    payload: bytes
    state: OutState
    attempts: int
    created_at: datetime
    last_sent_at: datetime | None


@dataclass(frozen=True, slots=True)
class TxResult:
    """One ``TxInfAndSts`` of a ccms.900 (pacs.002): ACSC, ACSP or RJCT."""

    tx_id: str | None
    end_to_end_id: str | None
    status: str  # ACSC | ACSP | RJCT
    reason_code: str | None = None
    reason_text: str | None = None


@dataclass(frozen=True, slots=True)
class StateCount:
    """One row of the per-engine summary (metrics, demo, gatewayctl status)."""

    engine: Engine | None
    state: State
    reason_code: str | None
    count: int


# -- correspondence: notifications, inquiries, incoming credits, netting ------
# (docs/protocol.md §4 NTFY/INQ/RPLY, docs/clearing-link.md §4-§6, docs/routing-rules.md §5)


class InquiryDirection(str, Enum):
    # OUT: we asked (a corporate's INQ, or the automatic 有疑必查 of docs/clearing-link.md §6)
    OUT = "OUT"
    IN = "IN"  # another bank asked us (inbound ccms.314); a corporate answers with RPLY


class InquiryState(str, Enum):
    OPEN = "OPEN"
    REPLIED = "REPLIED"


@dataclass(frozen=True, slots=True)
class ItemRef:
    """What an INQ or an inbound ccms.314 needs to know about one of our items."""

    item_id: int
    corp_id: str
    msg_id: str
    seq_no: int | None
    tx_id: str
    end_to_end_id: str
    engine: Engine | None
    receiver: str | None  # the participant the payment went to (ccms.314's Rcvr)
    work_date: date | None
    state: State
    out_msg_id: str | None  # the clearing message that carried it (ccms.314's OrgnlMsgId)


@dataclass(frozen=True, slots=True)
class NewInquiry:
    """An inquiry to journal.  ``inq_id`` is ours for OUT (``IQ`` + date + sequence),
    the asking bank's for IN.

    OUT: ``corp_id``/``msg_id``/``seq_no`` name the corporate's payment (None
    for an automatic inquiry about an incoming credit, which names
    ``credit_ref`` instead); ``counterparty`` is the participant asked.
    IN: ``orgnl_msg_id``/``orgnl_tx_id`` as received; the store finds the
    corporate (our item's payer, or the incoming credit's enrolled owner).

    ``engine`` is the clearing link the inquiry travels on: OUT, the link of
    the payment or credit asked about (our ccms.314 went out on it); IN, the
    link the ccms.314 arrived on, where the ccms.315 answering it goes back
    (docs/clearing-link.md §2: ``{prefix}/{engine}/in`` → ``{prefix}/{engine}/out``).
    None only where the topic named no engine (and for rows journaled before
    migration 6).
    """

    inq_id: str
    direction: InquiryDirection
    counterparty: str
    text: str
    created_at: datetime
    orgnl_msg_id: str | None = None
    orgnl_tx_id: str | None = None
    corp_id: str | None = None
    msg_id: str | None = None
    seq_no: int | None = None
    credit_ref: str | None = None
    engine: Engine | None = None


@dataclass(frozen=True, slots=True)
class InquiryRecord:
    inq_id: str
    direction: InquiryDirection
    state: InquiryState
    counterparty: str
    text: str
    created_at: datetime
    corp_id: str | None
    msg_id: str | None  # OUT: the payment's MsgId; IN: the payment asked about, when ours
    seq_no: int | None
    credit_ref: str | None
    orgnl_msg_id: str | None
    orgnl_tx_id: str | None
    request_msg_id: str | None  # OUT: the INQ request's MsgId; IN: the answering RPLY's
    reply_text: str | None
    replied_at: datetime | None
    engine: Engine | None  # the link it travels on (NewInquiry); None: journaled before v6


class CreditState(str, Enum):
    CHECKING = "CHECKING"  # waiting for the core's AcctCheck (retried on timeout)
    POSTED = "POSTED"  # account and name matched: posted, corporate notified
    SUSPENSE = "SUSPENSE"  # mismatch or unknown account (暂收款); CNY: ccms.314 sent
    REVIEW = "REVIEW"  # a SWIFT credit the screening flagged: held for operators


@dataclass(frozen=True, slots=True)
class NewIncomingCredit:
    """One incoming credit transaction (docs/clearing-link.md §6), as received.

    ``gw_ref`` is the gateway's own reference for it (``GI`` + date +
    sequence); (``sender``, ``tx_id``) identifies it across re-deliveries.
    ``corp_id`` is the corporate the creditor account is enrolled for, if any.

    A SWIFT credit (docs/foreign-currency.md §4-§5) has its currency, the
    currency's minor units (kept with the amount, which the journal stores
    as an integer count of them), the screening decision as JSON and its
    first state: CHECKING when nothing matched, REVIEW on a hit.
    """

    gw_ref: str
    engine: Engine
    msg_id: str  # the clearing message that carried it
    tx_id: str
    end_to_end_id: str
    sender: str  # sending participant (envelope Sndr): the netting counterparty
    work_date: date
    debtor_acct: str
    debtor_name: str
    debtor_bank: str
    creditor_acct: str
    creditor_name: str
    amount: Decimal
    purpose: str | None
    received_at: datetime
    corp_id: str | None
    ccy: str = "CNY"
    minor_units: int = 2
    screening: str | None = None
    state: CreditState = CreditState.CHECKING


@dataclass(frozen=True, slots=True)
class IncomingCredit:
    gw_ref: str
    engine: Engine
    msg_id: str
    tx_id: str
    sender: str
    work_date: date
    creditor_acct: str
    creditor_name: str
    debtor_acct: str
    debtor_name: str
    debtor_bank: str
    amount: Decimal
    purpose: str | None
    corp_id: str | None
    state: CreditState
    check_attempts: int
    next_check_at: datetime | None
    ccy: str  # the amount's currency (CNY for the clearing systems' credits)
    screening: str | None  # JSON: list versions and hits (SWIFT credits; None otherwise)


@dataclass(frozen=True, slots=True)
class CreditReview:
    """A SWIFT credit in review (docs/foreign-currency.md §5), for ``review list``:
    ``screening`` is the JSON journaled with it (``versions`` and ``hits``)."""

    gw_ref: str
    received_at: datetime
    screening: str | None
    state: CreditState = CreditState.REVIEW  # ``review list --all``: decided ones too

    def _decision(self) -> dict[str, Any]:
        found = json.loads(self.screening) if self.screening else {}
        return found if isinstance(found, dict) else {}

    @property
    def hits(self) -> list[dict[str, Any]]:
        """Each hit: ``list``, ``entry_id``, ``field``, ``score``, ``listed``."""
        return list(self._decision().get("hits", []))

    @property
    def versions(self) -> list[dict[str, Any]]:
        """Each list file consulted: ``list`` (its stem) and ``version`` (SHA-256)."""
        return list(self._decision().get("versions", []))


@dataclass(frozen=True, slots=True)
class Figures:
    """One side of a bilateral position (docs/routing-rules.md §5, docs/clearing-link.md §4
    ``CptyPos``).

    ``dbt``: what we sent the counterparty (our credit transfers: we pay);
    ``cdt``: what it sent us (incoming credits, and our debit collections:
    it pays).  ``net`` = cdt_sum - dbt_sum (positive: we receive).
    """

    dbt_cnt: int
    dbt_sum: Decimal
    cdt_cnt: int
    cdt_sum: Decimal

    @property
    def net(self) -> Decimal:
        return self.cdt_sum - self.dbt_sum


@dataclass(frozen=True, slots=True)
class NettingOutcome:
    """Result of reconciling one ``CptyPos`` of a ``beps.netting`` round.

    ``items_netted`` counts our items moved ACKED → NETTED (incoming credits,
    which have no item state, are not counted though they are netted too).
    """

    matched: bool
    ours: Figures
    theirs: Figures
    items_netted: int
    already_applied: bool = False


@dataclass(frozen=True, slots=True)
class NettingRoundView:
    """One reconciled ``CptyPos`` as the journal's ``netting_rounds`` row keeps it,
    for operations (``gatewayctl netting``, docs/routing-rules.md §5): both sides' figures, so a
    mismatch can be taken up with the clearing centre without reading the table.

    ``at`` is when the position was applied; ``items_netted`` as in
    :class:`NettingOutcome`.
    """

    work_date: date
    round_no: int
    counterparty: str
    ours: Figures
    theirs: Figures
    matched: bool
    items_netted: int
    at: datetime


@dataclass(frozen=True, slots=True)
class SettlementOutcome:
    """Result of a ``beps.settle``: items NETTED in the round moved to SETTLED."""

    items_settled: int
    our_net: Decimal  # sum over the round's reconciled positions
    rounds_known: bool  # False: no reconciled position for (WorkDt, Round)
