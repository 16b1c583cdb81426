"""Typed domain objects shared by the pipeline stages.

These are plain frozen dataclasses: the codec produces them, the router,
journal and engines consume them.  Amounts are ``Decimal`` with two places
(docs/protocol.md §4); the journal stores them as integer fen (cents).  A
foreign-currency amount keeps the decimals it was written with
(docs/foreign-currency.md §1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import Enum

from gateway.errors import RetCode


class TrnCode(str, Enum):
    """docs/protocol.md §4."""

    PAY = "PAY"
    PAYROLL = "PAYROLL"
    STATUS = "STATUS"
    NTFY = "NTFY"
    INQ = "INQ"
    RPLY = "RPLY"
    BAL = "BAL"
    PAIN001 = "PAIN001"
    MT101 = "MT101"
    DRAFT = "DRAFT"
    DRAFTRFND = "DRAFTRFND"


class State(str, Enum):
    """The payment state machine, docs/architecture.md §7, principle 2 / docs/protocol.md §5."""

    ACCEPTED = "ACCEPTED"
    HELD = "HELD"
    QUEUED = "QUEUED"
    SENT = "SENT"
    ACKED = "ACKED"
    NETTED = "NETTED"
    SETTLED = "SETTLED"
    REJECTED = "REJECTED"
    REVIEW = "REVIEW"  # a possible screening match, waiting for operators (foreign-currency.md §5)

    @property
    def final(self) -> bool:
        return self in (State.SETTLED, State.REJECTED)


class Engine(str, Enum):
    """docs/routing-rules.md §3."""

    INTRA = "INTRA"
    HVPS = "HVPS"
    BEPS = "BEPS"
    SWIFT = "SWIFT"  # foreign currency to another bank (docs/foreign-currency.md §2)


class Priority(str, Enum):
    NORM = "NORM"
    URGT = "URGT"


class BizType(str, Enum):
    CREDIT = "CREDIT"
    DEBIT = "DEBIT"


class CredentialKind(str, Enum):
    """docs/protocol.md §6."""

    USBKEY = "usbkey"
    FILE = "file"


@dataclass(frozen=True, slots=True)
class Head:
    """The request Head, docs/protocol.md §2."""

    trn_code: str
    corp_id: str
    oper_id: str
    msg_id: str
    send_time: datetime


@dataclass(frozen=True, slots=True)
class Transfer:
    """One credit transfer (PAY Body ``Transfer``), docs/protocol.md §4.

    ``amount`` of a CNY transfer has two places; in another currency it keeps
    the decimals as written (``Decimal("1500.00")`` stays two places), so that
    the currency's minor units can be judged (docs/foreign-currency.md §1).
    ``payee_bank_code`` is ``""`` when only ``payee_bic`` names the payee bank.
    """

    payer_acct: str
    payer_name: str
    payee_acct: str
    payee_name: str
    payee_bank_code: str
    amount: Decimal
    ccy: str = "CNY"
    priority: Priority = Priority.NORM
    biz_type: BizType = BizType.CREDIT
    purpose: str | None = None
    payee_bic: str | None = None  # docs/foreign-currency.md §1 ``PayeeBIC``
    payee_country: str | None = None  # ISO 3166 alpha-2, ``PayeeCountry``
    chrg_br: str = "SHAR"  # ``ChrgBr``: DEBT, CRED or SHAR (who pays the charges)


@dataclass(frozen=True, slots=True)
class StatusQuery:
    """STATUS Body ``StatusQuery``, docs/protocol.md §4."""

    orig_msg_id: str
    seq_no: int | None = None


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One item of a batch: a PAYROLL ``Item``, a PAIN001 ``CdtTrfTxInf`` or an MT101
    sequence B (docs/protocol.md §4).

    ``seq_no`` is the PAYROLL ``SeqNo`` or the transaction's position (1..n),
    the key of per-item status.  ``bic`` is set when the payee bank was given
    as a BIC (PAIN001 ``BICFI``, MT101 ``57A``); when it was given only that
    way, ``transfer.payee_bank_code`` is ``""``.
    """

    seq_no: int
    transfer: Transfer
    bic: str | None = None


@dataclass(frozen=True, slots=True)
class Batch:
    """A batch of credits (PAYROLL, PAIN001, MT101), docs/protocol.md §4.

    Admitted or refused as a whole (credentials, schema, amounts, payer
    enrolment, daily limit); routed item by item (docs/routing-rules.md §3).  Items are
    in SeqNo order, 1..n; a PAYROLL's payer is copied into every item's transfer.
    """

    items: tuple[BatchItem, ...]

    def amounts(self) -> tuple[Decimal, ...]:
        """Every item's amount, in item order (credential limits, docs/protocol.md §6)."""
        return tuple(item.transfer.amount for item in self.items)

    def payer_accounts(self) -> tuple[tuple[str, int], ...]:
        """Each distinct payer account with the SeqNo of its first item, in item order."""
        seen: dict[str, int] = {}
        for item in self.items:
            seen.setdefault(item.transfer.payer_acct, item.seq_no)
        return tuple(seen.items())


@dataclass(frozen=True, slots=True)
class NotifyPull:
    """NTFY Body ``NotifyPull``: notifications after cursor ``after`` (docs/protocol.md §4).

    ``after`` is the last ``NtfyId`` the client has seen (0: from the start);
    ``max`` is at most 500 (default 100).
    """

    after: int = 0
    max: int = 100


@dataclass(frozen=True, slots=True)
class Inquiry:
    """INQ Body ``Inquiry``: a question about an earlier payment (docs/protocol.md §4)."""

    orig_msg_id: str
    text: str
    seq_no: int | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """RPLY Body ``Reply``: the answer to an inquiry this corporate received."""

    inq_id: str
    text: str


@dataclass(frozen=True, slots=True)
class BalanceQuery:
    """BAL Body ``BalanceQuery``: answered by the core banking system (docs/clearing-link.md §5)."""

    acct: str


@dataclass(frozen=True, slots=True)
class DraftApply:
    """DRAFT Body ``DraftApply``: a request for a bank draft (docs/bank-drafts.md §2).

    ``scope`` is ``NATIONAL`` or ``PROVINCIAL`` (the codec refuses anything
    else); ``ccy`` must be CNY, which the business rules check (4004).
    """

    payer_acct: str
    payer_name: str
    payee_name: str
    amount: Decimal
    scope: str
    ccy: str = "CNY"
    purpose: str | None = None


@dataclass(frozen=True, slots=True)
class DraftRefundRequest:
    """DRAFTRFND Body ``DraftRefund``: return an ISSUED draft's amount (docs/bank-drafts.md §2)."""

    draft_no: str
    text: str


Body = (
    Transfer
    | StatusQuery
    | Batch
    | NotifyPull
    | Inquiry
    | Reply
    | BalanceQuery
    | DraftApply
    | DraftRefundRequest
)


@dataclass(frozen=True, slots=True)
class Signer:
    """Who signed a request, as established by verification (docs/protocol.md §3, §6)."""

    fingerprint: str  # SHA-256 of the certificate DER, lowercase hex
    subject: str
    kind: CredentialKind
    serial: int


@dataclass(frozen=True, slots=True)
class Request:
    """A decoded, verified request.

    ``digest`` is the SHA-256 (hex) of the exclusive-canonical Head and Body,
    the idempotency key's content half (docs/protocol.md §7).
    """

    head: Head
    body: Body
    digest: str
    encoding: str = "UTF-8"
    signer: Signer | None = None


@dataclass(frozen=True, slots=True)
class Route:
    """Where the router sends one transfer (docs/routing-rules.md §3)."""

    engine: Engine
    receiver: str  # 12-digit participant, or 6-digit internal branch code for INTRA
    payee_bank_code: str
    work_date: date
    release_at: datetime | None = None  # set when the engine is closed (HELD)


@dataclass(frozen=True, slots=True)
class Transition:
    state: State
    at: datetime


def state_changes(history: tuple[Transition, ...]) -> tuple[Transition, ...]:
    """The steps of a ``History`` the corporate sees: each change of state once.

    The journal also records steps that leave the state as it was (a first
    approval in review stays REVIEW, naming the reviewer: docs/foreign-currency.md
    §5 "The record"); those belong to the audit trail (``gatewayctl messages
    show``, ``review show``), not to STATUS, whose History lists each state
    reached with its time (docs/protocol.md §4.3, §5).  The earliest time of a
    run of equal states is kept: when the state was reached.
    """
    out: list[Transition] = []
    for step in history:
        if not out or out[-1].state is not step.state:
            out.append(step)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class StatusView:
    """What STATUS and PAY responses report, docs/protocol.md §5."""

    state: State
    engine: Engine | None
    work_date: date | None
    release_at: datetime | None = None
    reason_code: str | None = None
    reason_text: str | None = None
    seq_no: int | None = None
    history: tuple[Transition, ...] = ()
    uetr: str | None = None  # SWIFT payments: the pacs.008 ``UETR`` (docs/foreign-currency.md §1)


class NoticeKind(str, Enum):
    """What a CorpLink notification reports (docs/protocol.md §4 ``NTFY``)."""

    CREDIT = "CREDIT"  # an incoming credit to an enrolled account (docs/clearing-link.md §6)
    STATUS = "STATUS"  # a payment reached a final state (SETTLED / REJECTED)
    INQUIRY = "INQUIRY"  # another bank asked about a payment (ccms.314); answer with RPLY
    REPLY = "REPLY"  # the answer to this corporate's INQ arrived (ccms.315)
    DRAFT = "DRAFT"  # a draft this corporate applied for changed state (docs/bank-drafts.md §2)


@dataclass(frozen=True, slots=True)
class Notice:
    """One notification as NTFY returns it; fields not relevant to ``kind`` are None.

    CREDIT: ``gw_ref`` (the gateway's reference of the credit), ``acct`` (the
    enrolled creditor account), ``amount`` in ``ccy`` (None: CNY), ``counterparty_acct`` /
    ``counterparty_name`` / ``counterparty_bank`` (the payer), ``engine``,
    ``work_date``, ``text`` (remittance information).
    STATUS: ``orig_msg_id``, ``seq_no``, ``state``, ``reason_code``, ``text``
    (reason text), ``engine``, ``work_date``.
    INQUIRY: ``inq_id`` (to quote in RPLY), ``orig_msg_id``/``seq_no`` (our
    payment asked about) or ``gw_ref`` (the incoming credit asked about),
    ``text``.
    REPLY: ``inq_id`` (from the INQ response's GwRef), ``orig_msg_id``,
    ``seq_no``, ``text``.
    DRAFT: ``orig_msg_id`` (the DRAFT request), ``draft_no``, ``draft_state``
    (ISSUED, PAID, SETTLED, REFUNDED or REJECTED), ``amount`` (the
    SettleAmount when PAID, the Remainder when SETTLED), ``reason_code``
    (REJECTED).
    """

    ntfy_id: int
    kind: NoticeKind
    at: datetime
    orig_msg_id: str | None = None
    seq_no: int | None = None
    gw_ref: str | None = None
    inq_id: str | None = None
    state: State | None = None
    reason_code: str | None = None
    engine: Engine | None = None
    work_date: date | None = None
    acct: str | None = None
    amount: Decimal | None = None
    counterparty_acct: str | None = None
    counterparty_name: str | None = None
    counterparty_bank: str | None = None
    text: str | None = None
    draft_no: str | None = None
    draft_state: str | None = None
    ccy: str | None = None  # CREDIT from SWIFT: the amount's currency (None: CNY)


@dataclass(frozen=True, slots=True)
class Notices:
    """The NTFY response Body: notifications after the cursor, oldest first.

    ``last`` is the NtfyId to send as ``After`` next time (the request's
    ``After`` when nothing was new); ``more`` says another pull would return more.
    """

    notices: tuple[Notice, ...]
    last: int
    more: bool


@dataclass(frozen=True, slots=True)
class Balance:
    """The BAL response Body, from the core's ``BalRsp`` (docs/clearing-link.md §5)."""

    acct: str
    ccy: str
    balance: Decimal
    available: Decimal


@dataclass(frozen=True, slots=True)
class DraftStep:
    """One ``History/Step`` of a draft: the state reached, when, why (docs/bank-drafts.md §2)."""

    state: str
    at: datetime
    reason_code: str | None = None


@dataclass(frozen=True, slots=True)
class DraftView:
    """The ``Draft`` element of DRAFT and STATUS responses (docs/bank-drafts.md §2).

    ``state`` is a register state (PENDING … REJECTED).  ``code`` is the
    16-digit Code (密押), recomputed for the applicant's own response and
    STATUS, never stored.  ``history`` is filled for STATUS only.
    """

    draft_no: str
    issue_date: date
    expiry_date: date
    amount: Decimal
    code: str
    state: str
    history: tuple[DraftStep, ...] = ()


@dataclass(frozen=True, slots=True)
class Response:
    """A CorpLink response before rendering, docs/protocol.md §5.

    ``corp_id`` and ``msg_id`` are empty when the request could not be parsed
    far enough (docs/protocol.md §8).
    """

    trn_code: str
    corp_id: str
    msg_id: str
    rsp_time: datetime
    ret_code: str
    ret_msg: str
    gw_ref: str | None = None
    dup: bool = False
    retry_after_ms: int | None = None
    status: StatusView | None = None
    encoding: str = "UTF-8"
    extra: dict[str, str] = field(default_factory=dict)
    items: tuple[StatusView, ...] | None = None  # batch responses: Body/Items, one per item
    notices: Notices | None = None  # NTFY responses: Body/Notifications
    balance: Balance | None = None  # BAL responses: Body/Balance
    draft: DraftView | None = None  # DRAFT responses and STATUS of a DRAFT: Body/Draft


DUPLICATE_TEXT = "duplicate of an accepted request"
"""``RetMsg`` of the original answer replayed with ``Dup`` true (docs/protocol.md §7)."""


def ok_response(
    req: Request,
    now: datetime,
    gw_ref: str | None,
    *,
    ret_msg: str | None = None,
    status: StatusView | None = None,
    dup: bool = False,
) -> Response:
    """A ``0000`` answer to ``req`` (docs/protocol.md §5): its TrnCode, CorpId and MsgId, in
    its encoding.  ``ret_msg`` defaults to "accepted", or :data:`DUPLICATE_TEXT` for a
    replay; callers add a Body (``items``, ``notices``, ``balance``) with ``replace``."""
    if ret_msg is None:
        ret_msg = DUPLICATE_TEXT if dup else RetCode.OK.text
    return Response(
        trn_code=req.head.trn_code,
        corp_id=req.head.corp_id,
        msg_id=req.head.msg_id,
        rsp_time=now,
        ret_code=RetCode.OK.value,
        ret_msg=ret_msg,
        gw_ref=gw_ref,
        dup=dup,
        status=status,
        encoding=req.encoding,
    )
