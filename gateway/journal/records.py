"""Records that cross the journal boundary.

The store speaks in these frozen dataclasses only; nothing outside
``gateway.journal`` sees SQL rows.  Amounts are ``Decimal`` here and integer
fen (cents) inside the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum

from gateway.model import BizType, Engine, Priority, State


class OutState(str, Enum):
    """Life of one outbound clearing message (clearing.md §1)."""

    PENDING = "PENDING"  # journaled, never PUBACKed
    SENT = "SENT"  # PUBACK received, no ccms.990 yet
    ACKED = "ACKED"  # ccms.990 received


@dataclass(frozen=True, slots=True)
class NewItem:
    """One transfer of a request, routed (or refused) before journaling.

    ``state`` is the state right after ACCEPTED: QUEUED, HELD (with
    ``release_at``) or REJECTED (with ``reason_code``/``reason_text``, e.g. a
    PAYROLL item with an unknown bank code, corplink.md §4).
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


@dataclass(frozen=True, slots=True)
class DailyLimit:
    """A per-operator daily cap checked atomically with the journal write (corplink.md §6).

    ``day`` is the business calendar date (Asia/Shanghai) the amount counts on.
    """

    day: date
    cap: Decimal


@dataclass(frozen=True, slots=True)
class NewRequest:
    """A request to journal durably before answering 0000 (corplink.md §5)."""

    corp_id: str
    msg_id: str
    oper_id: str
    trn_code: str
    digest: str  # SHA-256 hex of canonical Head+Body (corplink.md §7)
    received_at: datetime
    items: tuple[NewItem, ...]
    daily_limit: DailyLimit | None = None


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
