"""Journal rows → correspondence records, one reading for both backends (migration 4).

The SQLite and PostgreSQL journals keep notifications, inquiries, incoming
credits and netting rounds in tables with the same columns under the same
names (``schema.py`` and ``postgres_schema.py``, migration 4).  They differ
only in how a row hands back an instant (integer microseconds or
``timestamptz``) and a work date (ISO text or ``date``): each backend passes
its :class:`Decoding`, and both build the very same records, so what NTFY,
INQ and the netting reconciliation read cannot drift apart between backends
(docs/protocol.md §4, docs/clearing-link.md §4-§6).  The SQL itself stays per backend;
the one policy both share, how many items a settlement transaction moves
(:data:`SETTLE_CHUNK`), is here too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Final, TypeVar

from gateway.journal import schema
from gateway.journal.records import (
    CreditState,
    Figures,
    IncomingCredit,
    InquiryDirection,
    InquiryRecord,
    InquiryState,
    ItemRef,
    NettingOutcome,
    NettingRoundView,
    NewInquiry,
    NewOutbound,
    NewRequest,
)
from gateway.model import Engine, Notice, NoticeKind, State

if TYPE_CHECKING:
    from _typeshed import SupportsKeysAndGetItem

    Row = SupportsKeysAndGetItem[str, Any]
    """A row addressable by column name: ``sqlite3.Row`` or ``asyncpg.Record``."""

T = TypeVar("T")

NOTICE_FIELDS: Final = (
    "orig_msg_id", "seq_no", "gw_ref", "inq_id", "state", "reason_code", "engine", "work_date",
    "acct", "amount_fen", "counterparty_acct", "counterparty_name", "counterparty_bank", "text",
    "draft_no", "ccy", "minor_units",
)  # fmt: skip
"""A notification's optional columns: what a change may say about itself (``draft_no``:
migration 10; a DRAFT notice keeps its draft state in ``state``; ``ccy`` and
``minor_units``: migration 13, a SWIFT credit's currency, NULL for CNY)."""
NOTICE_COLUMNS: Final = ", ".join(("ntfy_id", "kind", "at", *NOTICE_FIELDS))
"""What :func:`notices_of` reads (``SELECT {NOTICE_COLUMNS} FROM notifications``), in
this order: ``Notice``'s own field order, with ``amount_fen`` for its ``amount``."""
INQUIRY_COLUMNS: Final = (
    "inq_id, direction, state, counterparty, text, created_at, corp_id, msg_id, seq_no,"
    " credit_ref, orgnl_msg_id, orgnl_tx_id, request_msg_id, reply_text, replied_at, engine"
)
"""What :func:`inquiry_of` reads."""
CREDIT_COLUMNS: Final = (
    "gw_ref, engine, msg_id, tx_id, sender, work_date, creditor_acct, creditor_name,"
    " debtor_acct, debtor_name, debtor_bank, amount_fen, purpose, corp_id, state,"
    " check_attempts, next_check_at, ccy, minor_units, screening"
)
"""What :func:`credit_of` reads."""
ROUND_COLUMNS: Final = (
    "our_dbt_cnt, our_dbt_fen, our_cdt_cnt, our_cdt_fen, their_dbt_cnt, their_dbt_fen,"
    " their_cdt_cnt, their_cdt_fen, matched, items_netted"
)
"""What :func:`recorded_outcome` reads from ``netting_rounds``."""
ROUND_VIEW_COLUMNS: Final = f"work_date, round, counterparty, {ROUND_COLUMNS}, at"
"""What :func:`round_view_of` reads from ``netting_rounds``."""
OPEN_INQUIRIES_ORDER: Final = "ORDER BY created_at, direction, inq_id"
"""``open_inquiries``' order: the retention index ``inquiries_created`` (migration 5)
read in its own order, so a page stops after ``limit`` OPEN rows instead of sorting."""
CREDITS_IN_STATE: Final = {
    CreditState.CHECKING: "state = 'CHECKING'",
    CreditState.POSTED: "state IN ('POSTED', 'SUSPENSE') AND state = 'POSTED'",
    CreditState.SUSPENSE: "state IN ('POSTED', 'SUSPENSE') AND state = 'SUSPENSE'",
    CreditState.REVIEW: "state = 'REVIEW'",
}
"""``credits_in_state``' WHERE per state (literals, never a parameter): each repeats
word for word the condition of a partial index on (received_at, gw_ref),
``credits_checking`` (migration 4), ``credits_final`` (migration 5) or
``credits_review`` (migration 13), because
SQLite uses a partial index only for a query whose WHERE contains the index's
own; read in index order, oldest first, a page costs ``limit`` rows, not a
sort of every credit ever received."""


SETTLE_CHUNK: Final = 500
"""Items a ``beps.settle`` moves per transaction (``apply_settlement``, docs/routing-rules.md §5).

A round can hold tens of thousands of items; settled in one transaction
(measured ~0.4-0.8 s for 10,000, ``bench/bench_correspondence.py``), SQLite's
single writer would journal no PAY meanwhile, and no 0000 can precede its
journal write (docs/protocol.md §5).  Chunks of 500 (~20-40 ms each) let other
writes commit in between.  Each chunk is atomic (items, their transitions
and STATUS notifications), and a later chunk picks up whatever is still
NETTED, so an interrupted settlement is finished by re-applying it.
"""

_KINDS: Final = {k.value: k for k in NoticeKind}
_STATES: Final[dict[str | None, State | None]] = {None: None, **{s.value: s for s in State}}
_ENGINES: Final[dict[str | None, Engine | None]] = {None: None, **{e.value: e for e in Engine}}
"""Stored text → enum member, for :func:`notices_of` (NULL stays None)."""


@dataclass(frozen=True)
class Decoding:
    """How one backend hands back the values SQL types differ on."""

    instant: Callable[[Any], datetime]
    """A stored instant, as an aware datetime in Asia/Shanghai."""
    day: Callable[[Any], date]
    """A stored work date."""


def _opt(convert: Callable[[Any], T], value: Any) -> T | None:
    return None if value is None else convert(value)


def notices_of(rows: Iterable[Iterable[Any]], dec: Decoding) -> list[Notice]:
    """NTFY's page: rows read as ``SELECT {NOTICE_COLUMNS}``, by position, in order.

    The hot read of docs/protocol.md §4 (a page of up to 500 notifications per
    pull), so it is cheaper than the other mappers: positional rows (plain
    tuples or ``asyncpg.Record``), enums from prebuilt maps instead of a
    lookup by value, and each distinct instant and work date converted once
    per page (a settlement writes thousands of notices with the same time
    and date).  What remains is mostly building the frozen ``Notice`` itself.
    """
    instants: dict[Any, datetime] = {}
    days: dict[Any, date | None] = {None: None}
    notices: list[Notice] = []
    append = notices.append
    from_fen = schema.from_fen
    for (
        ntfy_id, kind, at, orig_msg_id, seq_no, gw_ref, inq_id, state, reason_code, engine,
        work_date, acct, amount_fen, counterparty_acct, counterparty_name, counterparty_bank,
        text, draft_no, ccy, minor_units,
    ) in rows:  # fmt: skip
        when = instants.get(at)
        if when is None:
            when = instants[at] = dec.instant(at)
        if work_date in days:
            day = days[work_date]
        else:
            day = days[work_date] = dec.day(work_date)
        if amount_fen is None:
            amount = None
        elif minor_units is None:
            amount = from_fen(amount_fen)
        else:  # a SWIFT credit's amount counts minor units of its currency (migration 13)
            amount = schema.from_minor(amount_fen, minor_units)
        # a DRAFT notice's state is the draft's (docs/bank-drafts.md §1), not an item's
        draft = kind == "DRAFT"
        notice = Notice(
            ntfy_id, _KINDS[kind], when, orig_msg_id, seq_no, gw_ref, inq_id,
            None if draft else _STATES[state], reason_code, _ENGINES[engine], day, acct, amount,
            counterparty_acct, counterparty_name, counterparty_bank, text, draft_no,
            state if draft else None, ccy,
        )  # fmt: skip
        append(notice)
    return notices


def item_ref_of(row: Row, dec: Decoding) -> ItemRef:
    d = dict(row)
    return ItemRef(**{
        **d, "engine": _opt(Engine, d["engine"]), "work_date": _opt(dec.day, d["work_date"]),
        "state": State(d["state"]),
    })  # fmt: skip


def inquiry_of(row: Row, dec: Decoding) -> InquiryRecord:
    d = dict(row)
    return InquiryRecord(**{
        **d, "direction": InquiryDirection(d["direction"]), "state": InquiryState(d["state"]),
        "created_at": dec.instant(d["created_at"]),
        "replied_at": _opt(dec.instant, d["replied_at"]), "engine": _ENGINES[d["engine"]],
    })  # fmt: skip


def credit_of(row: Row, dec: Decoding) -> IncomingCredit:
    d = dict(row)
    count, units = d.pop("amount_fen"), d.pop("minor_units")
    return IncomingCredit(**{
        **d, "engine": Engine(d["engine"]), "work_date": dec.day(d["work_date"]),
        "amount": schema.from_minor(count, units), "state": CreditState(d["state"]),
        "next_check_at": _opt(dec.instant, d["next_check_at"]),
    })  # fmt: skip


def credit_currency(ccy: str, minor_units: int) -> dict[str, object]:
    """A CREDIT notification's currency columns: NULL for CNY (fen, as before migration 13),
    else the credit's currency and the minor units its amount counts."""
    if ccy == "CNY" and minor_units == 2:
        return {"ccy": None, "minor_units": None}
    return {"ccy": ccy, "minor_units": minor_units}


_SIDES: Final = ("dbt_cnt", "dbt_fen", "cdt_cnt", "cdt_fen")


def _round_figures(d: dict[str, Any]) -> tuple[Figures, Figures]:
    """Our and their figures of a ``netting_rounds`` row (``ROUND_COLUMNS``)."""
    return (
        schema.fen_figures(*(d[f"our_{c}"] for c in _SIDES)),
        schema.fen_figures(*(d[f"their_{c}"] for c in _SIDES)),
    )


def recorded_outcome(row: Row) -> NettingOutcome:
    """A round already reconciled (``ROUND_COLUMNS``): the same answer again, applied once."""
    d = dict(row)
    ours, theirs = _round_figures(d)
    return NettingOutcome(
        matched=bool(d["matched"]),
        ours=ours,
        theirs=theirs,
        items_netted=int(d["items_netted"]),
        already_applied=True,
    )


def round_view_of(row: Row, dec: Decoding) -> NettingRoundView:
    """A ``netting_rounds`` row (``ROUND_VIEW_COLUMNS``) for operations."""
    d = dict(row)
    ours, theirs = _round_figures(d)
    return NettingRoundView(
        work_date=dec.day(d["work_date"]),
        round_no=int(d["round"]),
        counterparty=d["counterparty"],
        ours=ours,
        theirs=theirs,
        matched=bool(d["matched"]),
        items_netted=int(d["items_netted"]),
        at=dec.instant(d["at"]),
    )


@dataclass(frozen=True)
class InquiryLinks:
    """What an inquiry row points at besides the inquiry: the corporate and payment
    (or incoming credit) it is about, and the messages that carried it.

    Each of the three ways an inquiry is journaled fills them in its own way
    (:func:`asked_links`, :func:`suspense_links`, and a received ccms.314's
    lookup); both backends insert exactly these (:func:`inquiry_params`).
    """

    corp_id: str | None
    msg_id: str | None
    seq_no: int | None
    credit_ref: str | None
    request_msg_id: str | None = None
    """The corporate's INQ request, for an inquiry it asked for."""
    out_msg_id: str | None = None
    """Our ccms.314 carrying an OUT inquiry."""


def asked_links(request: NewRequest, inquiry: NewInquiry, outbound: NewOutbound) -> InquiryLinks:
    """An OUT inquiry a corporate asked for with INQ (docs/protocol.md §4), sent as ``outbound``."""
    return InquiryLinks(
        corp_id=request.corp_id,
        msg_id=inquiry.msg_id,
        seq_no=inquiry.seq_no,
        credit_ref=inquiry.credit_ref,
        request_msg_id=request.msg_id,
        out_msg_id=outbound.msg_id,
    )


def suspense_links(inquiry: NewInquiry, gw_ref: str, outbound: NewOutbound) -> InquiryLinks:
    """The automatic OUT inquiry about incoming credit ``gw_ref`` put in suspense
    (docs/clearing-link.md §6), sent as ``outbound``."""
    return InquiryLinks(
        corp_id=inquiry.corp_id,
        msg_id=inquiry.msg_id,
        seq_no=inquiry.seq_no,
        credit_ref=gw_ref,
        out_msg_id=outbound.msg_id,
    )


INQUIRY_INSERT_COLUMNS: Final = (
    "direction, inq_id, state, counterparty, text, created_at, corp_id, msg_id, seq_no,"
    " credit_ref, orgnl_msg_id, orgnl_tx_id, request_msg_id, out_msg_id, engine"
)
"""What an inserted inquiry fills: ``state`` is the literal ``'OPEN'``, the rest
:func:`inquiry_params` in this order."""


def inquiry_params(
    inquiry: NewInquiry, links: InquiryLinks, instant: Callable[[datetime], object]
) -> tuple[object, ...]:
    """An inquiry's insert parameters (``INQUIRY_INSERT_COLUMNS`` but ``state``);
    ``instant`` stores ``created_at`` the backend's way."""
    return (
        inquiry.direction.value, inquiry.inq_id, inquiry.counterparty, inquiry.text,
        instant(inquiry.created_at), links.corp_id, links.msg_id, links.seq_no,
        links.credit_ref, inquiry.orgnl_msg_id, inquiry.orgnl_tx_id, links.request_msg_id,
        links.out_msg_id, None if inquiry.engine is None else inquiry.engine.value,
    )  # fmt: skip


def ledger_figures(items: Iterable[Row], credits: Iterable[Row]) -> Figures:
    """Our side of a position from the ledger's rows: items (``biz_type``, ``amount_fen``)
    and incoming credits (``amount_fen``), as :func:`schema.ledger_figures` counts them."""
    return schema.ledger_figures(
        ((r["biz_type"], r["amount_fen"]) for r in items), (r["amount_fen"] for r in credits)
    )


__all__ = [
    "CREDITS_IN_STATE",
    "CREDIT_COLUMNS",
    "INQUIRY_COLUMNS",
    "INQUIRY_INSERT_COLUMNS",
    "NOTICE_COLUMNS",
    "NOTICE_FIELDS",
    "OPEN_INQUIRIES_ORDER",
    "ROUND_COLUMNS",
    "ROUND_VIEW_COLUMNS",
    "SETTLE_CHUNK",
    "Decoding",
    "InquiryLinks",
    "asked_links",
    "credit_currency",
    "credit_of",
    "inquiry_of",
    "inquiry_params",
    "item_ref_of",
    "ledger_figures",
    "notices_of",
    "recorded_outcome",
    "round_view_of",
    "suspense_links",
]
