"""Records of the operators' message tools: search, show, manual actions.

``gatewayctl messages search|show``, ``held list|release`` and ``resend``
(docs/operations.md) read and write the journal through these frozen
dataclasses, the same on both backends and for the retention archives.
Every manual action is journaled as an :class:`OperatorAction`: who (the
OS user the admin socket saw, SO_PEERCRED), what, on which reference and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Final

from gateway.journal.records import OutboundRecord, RequestRecord
from gateway.model import Engine, State

MAX_DETAIL_ITEMS: Final = 200
"""Items ``messages show`` lists of one request or package (a batch may hold 50,000)."""


class ActionKind(str, Enum):
    RELEASE = "release"  # a HELD item released before its engine's opening
    RESEND = "resend"  # an outbound message re-published under its MsgId
    APPROVE = "approve"  # a reviewer's approval of a screened item (docs/foreign-currency.md §5)
    REJECT = "reject"  # a reviewer's rejection: the item ends REJECTED RR04


@dataclass(frozen=True, slots=True)
class OperatorAction:
    """One manual action: journaled before (resend) or with (release) its effect."""

    at: datetime
    uid: int
    operator: str  # the user name of ``uid`` (``uid:N`` when it has none)
    action: ActionKind
    target: str  # an item's TxId (release) or an outbound MsgId (resend)
    reason: str
    forced: bool


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A verified inbound clearing message, kept with its exact signed bytes.

    ``ref`` links it to what it is about: a ccms.990 / ccms.900's
    ``OrgnlMsgId``, or a beps.netting / beps.settle round as the NETTED and
    SETTLED transitions name it (``<work date> round <n>``); None otherwise.
    """

    msg_id: str
    msg_tp: str
    sndr: str
    topic: str
    ref: str | None
    payload: bytes
    received_at: datetime


@dataclass(frozen=True, slots=True)
class MessageQuery:
    """Filters of ``messages search`` (all optional, combined with AND).

    ``received_from`` / ``received_before`` bound the request's reception
    (half-open); amounts are inclusive.  Results come oldest first by
    (received_at, tx_id); ``after`` is the cursor of the next page.
    """

    corp_id: str | None = None
    msg_id: str | None = None
    gw_ref: str | None = None
    end_to_end_id: str | None = None
    state: State | None = None
    engine: Engine | None = None
    min_amount: Decimal | None = None
    max_amount: Decimal | None = None
    received_from: datetime | None = None
    received_before: datetime | None = None
    after: tuple[datetime, str] | None = None

    def matches(self, hit: MessageHit) -> bool:
        """The same test in Python, for archived items (the journal does it in SQL)."""
        equal = (
            (self.corp_id, hit.corp_id),
            (self.msg_id, hit.msg_id),
            (self.gw_ref, hit.gw_ref),
            (self.end_to_end_id, hit.end_to_end_id),
            (self.state, hit.state),
            (self.engine, hit.engine),
        )
        if any(want is not None and want != have for want, have in equal):
            return False
        if self.min_amount is not None and hit.amount < self.min_amount:
            return False
        if self.max_amount is not None and hit.amount > self.max_amount:
            return False
        if self.received_from is not None and hit.received_at < self.received_from:
            return False
        if self.received_before is not None and hit.received_at >= self.received_before:
            return False
        return self.after is None or (hit.received_at, hit.tx_id) > self.after


@dataclass(frozen=True, slots=True)
class MessageHit:
    """One item of a journaled request, as search lists it."""

    gw_ref: str
    corp_id: str
    msg_id: str
    oper_id: str
    trn_code: str
    received_at: datetime
    tx_id: str
    seq_no: int | None
    end_to_end_id: str
    engine: Engine | None
    receiver: str | None
    work_date: date | None
    state: State
    release_at: datetime | None
    amount: Decimal
    ccy: str
    payer_acct: str
    payer_name: str
    payee_acct: str
    payee_name: str
    payee_bank_code: str
    reason_code: str | None
    reason_text: str | None
    out_msg_id: str | None
    archive: str | None = None  # the archive file it was found in; None: the live journal
    # what a review's release routes again by (docs/foreign-currency.md §5); archived items
    # have them too (the foreign-currency ones from archive format 7, None in older files)
    priority: str | None = None
    biz_type: str | None = None
    purpose: str | None = None
    payee_bic: str | None = None
    payee_country: str | None = None
    chrg_br: str | None = None
    screening: str | None = None  # JSON: list versions and hits (docs/foreign-currency.md §5)
    uetr: str | None = None  # a SWIFT payment's tracking id (docs/foreign-currency.md §1)

    @property
    def cursor(self) -> tuple[datetime, str]:
        return (self.received_at, self.tx_id)


@dataclass(frozen=True, slots=True)
class TrailStep:
    state: State
    at: datetime
    detail: str | None


@dataclass(frozen=True, slots=True)
class ItemTrail:
    item: MessageHit
    transitions: tuple[TrailStep, ...]


@dataclass(frozen=True, slots=True)
class MessageDetail:
    """Everything journaled about one GwRef, TxId or outbound MsgId (``messages show``)."""

    request: RequestRecord | None
    items: tuple[ItemTrail, ...]
    items_total: int
    outbound: tuple[OutboundRecord, ...]
    inbound: tuple[InboundMessage, ...]
    actions: tuple[OperatorAction, ...]
    archive: str | None = None
    exchange: Exchange | None = None  # the request's signed bytes and its response's


@dataclass(frozen=True, slots=True)
class Exchange:
    """A journaled request as received and the 0000 as sent, both signed (exact bytes)."""

    gw_ref: str
    request: bytes
    response: bytes
    at: datetime


class ReleaseOutcome(str, Enum):
    RELEASED = "released"
    UNKNOWN = "unknown"  # no item with that TxId
    NOT_HELD = "not_held"  # the item is not (or no longer) HELD
