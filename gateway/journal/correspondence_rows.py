"""Journal rows → correspondence records, one reading for both backends (migration 4).

The SQLite and PostgreSQL journals keep notifications, inquiries, incoming
credits and netting rounds in tables with the same columns under the same
names (``schema.py`` and ``postgres_schema.py``, migration 4).  They differ
only in how a row hands back an instant (integer microseconds or
``timestamptz``) and a work date (ISO text or ``date``): each backend passes
its :class:`Decoding`, and both build the very same records, so what NTFY,
INQ and the netting reconciliation read cannot drift apart between backends
(corplink.md §4, clearing.md §4-§6).  The SQL itself stays per backend.
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
)  # fmt: skip
"""A notification's optional columns: what a change may say about itself."""
NOTICE_COLUMNS: Final = ", ".join(("ntfy_id", "kind", "at", *NOTICE_FIELDS))
"""What :func:`notice_of` reads (``SELECT {NOTICE_COLUMNS} FROM notifications``)."""
INQUIRY_COLUMNS: Final = (
    "inq_id, direction, state, counterparty, text, created_at, corp_id, msg_id, seq_no,"
    " credit_ref, orgnl_msg_id, orgnl_tx_id, request_msg_id, reply_text, replied_at"
)
"""What :func:`inquiry_of` reads."""
CREDIT_COLUMNS: Final = (
    "gw_ref, engine, msg_id, tx_id, sender, work_date, creditor_acct, creditor_name,"
    " debtor_acct, debtor_name, debtor_bank, amount_fen, purpose, corp_id, state,"
    " check_attempts, next_check_at"
)
"""What :func:`credit_of` reads."""
ROUND_COLUMNS: Final = (
    "our_dbt_cnt, our_dbt_fen, our_cdt_cnt, our_cdt_fen, their_dbt_cnt, their_dbt_fen,"
    " their_cdt_cnt, their_cdt_fen, matched, items_netted"
)
"""What :func:`recorded_outcome` reads from ``netting_rounds``."""


@dataclass(frozen=True)
class Decoding:
    """How one backend hands back the values SQL types differ on."""

    instant: Callable[[Any], datetime]
    """A stored instant, as an aware datetime in Asia/Shanghai."""
    day: Callable[[Any], date]
    """A stored work date."""


def _opt(convert: Callable[[Any], T], value: Any) -> T | None:
    return None if value is None else convert(value)


def notice_of(row: Row, dec: Decoding) -> Notice:
    d = dict(row)
    fen = d.pop("amount_fen")
    return Notice(**{
        **d, "kind": NoticeKind(d["kind"]), "at": dec.instant(d["at"]),
        "state": _opt(State, d["state"]), "engine": _opt(Engine, d["engine"]),
        "work_date": _opt(dec.day, d["work_date"]), "amount": _opt(schema.from_fen, fen),
    })  # fmt: skip


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
        "replied_at": _opt(dec.instant, d["replied_at"]),
    })  # fmt: skip


def credit_of(row: Row, dec: Decoding) -> IncomingCredit:
    d = dict(row)
    fen = d.pop("amount_fen")
    return IncomingCredit(**{
        **d, "engine": Engine(d["engine"]), "work_date": dec.day(d["work_date"]),
        "amount": schema.from_fen(fen), "state": CreditState(d["state"]),
        "next_check_at": _opt(dec.instant, d["next_check_at"]),
    })  # fmt: skip


def recorded_outcome(row: Row) -> NettingOutcome:
    """A round already reconciled (``ROUND_COLUMNS``): the same answer again, applied once."""
    d = dict(row)
    sides = ("dbt_cnt", "dbt_fen", "cdt_cnt", "cdt_fen")
    return NettingOutcome(
        matched=bool(d["matched"]),
        ours=schema.fen_figures(*(d[f"our_{c}"] for c in sides)),
        theirs=schema.fen_figures(*(d[f"their_{c}"] for c in sides)),
        items_netted=int(d["items_netted"]),
        already_applied=True,
    )


def ledger_figures(items: Iterable[Row], credits: Iterable[Row]) -> Figures:
    """Our side of a position from the ledger's rows: items (``biz_type``, ``amount_fen``)
    and incoming credits (``amount_fen``), as :func:`schema.ledger_figures` counts them."""
    return schema.ledger_figures(
        ((r["biz_type"], r["amount_fen"]) for r in items), (r["amount_fen"] for r in credits)
    )


__all__ = [
    "CREDIT_COLUMNS",
    "INQUIRY_COLUMNS",
    "NOTICE_COLUMNS",
    "NOTICE_FIELDS",
    "ROUND_COLUMNS",
    "Decoding",
    "credit_of",
    "inquiry_of",
    "item_ref_of",
    "ledger_figures",
    "notice_of",
    "recorded_outcome",
]
