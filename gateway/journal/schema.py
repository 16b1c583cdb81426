"""The SQLite journal's layout: tables, value encoding, identifiers, row mapping.

The column order of :data:`ITEM_INSERT` / :data:`QUEUED_SELECT` and of the
functions that build or read those rows is kept here, in one place.

Schema versions are counted by ``PRAGMA user_version``: ``MIGRATIONS[n]``
brings a file from version ``n`` to ``n + 1`` inside one transaction, so a
crash mid-migration leaves the old version intact.  A file newer than this
code is refused rather than guessed at.

Value encoding (chosen so that SQL can compare and the round trip is exact):

- instants are INTEGER microseconds since the UNIX epoch, so ``release_at <=
  now`` and "oldest first" are plain integer comparisons whatever offset the
  caller used; they are read back as aware datetimes in Asia/Shanghai (the
  clock's zone, docs/architecture.md §7, principle 5), equal to what was written;
- dates (work dates) are ISO ``YYYY-MM-DD`` text, which sorts correctly;
- amounts are INTEGER fen: ``Decimal`` in, ``Decimal`` with two places out;
  an amount with more than two decimals is refused, never rounded
  (docs/protocol.md §4 allows at most two).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from gateway.clock import SHANGHAI
from gateway.journal import audit_chain
from gateway.journal.records import (
    Figures,
    InquiryDirection,
    NewInquiry,
    NewItem,
    NewOutbound,
    NewRequest,
    OutboundRecord,
    OutState,
    QueuedItem,
    RequestRecord,
)
from gateway.model import BizType, Engine, Priority, State

# -- value encoding ---------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def to_micros(at: datetime) -> int:
    """An aware datetime as integer microseconds since the epoch (exact)."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("journal times must carry a UTC offset")
    return (at - _EPOCH) // _MICRO


def from_micros(us: int) -> datetime:
    """The inverse of :func:`to_micros`, in Asia/Shanghai."""
    return (_EPOCH + timedelta(microseconds=us)).astimezone(SHANGHAI)


def opt_micros(at: datetime | None) -> int | None:
    return None if at is None else to_micros(at)


def opt_datetime(us: int | None) -> datetime | None:
    return None if us is None else from_micros(us)


#: Amounts are stored as 64-bit integers of fen (SQLite INTEGER, PostgreSQL bigint).
MAX_FEN = 2**63 - 1


def to_fen(amount: Decimal) -> int:
    """A CNY amount as integer fen; more than two decimals is an error, not a rounding."""
    if not amount.is_finite():
        raise ValueError("amount must be a finite number")
    fen = amount.scaleb(2)
    if fen != fen.to_integral_value():
        raise ValueError("amount has more than two decimals")
    if abs(fen) > MAX_FEN:
        raise ValueError("amount does not fit a 64-bit count of fen")
    return int(fen)


def from_fen(fen: int) -> Decimal:
    """Integer fen back to a ``Decimal`` with exactly two places."""
    return Decimal(fen).scaleb(-2)


def to_minor(amount: Decimal, minor_units: int) -> int:
    """An amount as an integer count of its currency's minor units (docs/foreign-currency.md
    §2): 1500 JPY (0 units) is 1500, 250.50 USD (2 units) is 25050.  More decimals than
    the currency has is an error, never a rounding; with 2 units this is :func:`to_fen`."""
    if not amount.is_finite():
        raise ValueError("amount must be a finite number")
    units = amount.scaleb(minor_units)
    if units != units.to_integral_value():
        raise ValueError(f"amount has more than {minor_units} decimals")
    if abs(units) > MAX_FEN:
        raise ValueError("amount does not fit a 64-bit count of minor units")
    return int(units)


def from_minor(count: int, minor_units: int) -> Decimal:
    """A count of minor units back to a ``Decimal`` with exactly ``minor_units`` places."""
    return Decimal(count).scaleb(-minor_units)


def date_text(day: object) -> str:
    """A work date as ISO text; accepts a ``date`` or an ISO ``YYYY-MM-DD`` string."""
    if isinstance(day, datetime):
        raise TypeError("a work date is a date, not a datetime")
    if isinstance(day, date):
        return day.isoformat()
    if isinstance(day, str):
        return date.fromisoformat(day).isoformat()
    raise TypeError("a work date must be a date or an ISO date string")


def opt_date(text: str | None) -> date | None:
    return None if text is None else date.fromisoformat(text)


# -- identifiers --------------------------------------------------------------

NODE_RE = re.compile(r"[A-Z]")
"""A node letter: one of A-Z, so a GwRef stays 20 characters (docs/protocol.md §5 example)."""

MAX_ISO_ID = 35
"""ISO 20022 ``Max35Text``: the limit of PmtId/TxId and PmtId/EndToEndId (docs/clearing-link.md
§4)."""


def gw_ref(received_at: datetime, node: str, request_id: int) -> str:
    """``GW`` + received date (Asia/Shanghai) + node letter + 9-digit request id.

    docs/protocol.md §5 shows ``GW20261127A000000042``.  The date is the calendar
    date in Asia/Shanghai of the moment the request was received, whatever
    offset the caller's datetime carried.  Ids beyond 999,999,999 widen the
    number rather than wrap (still unique, still ≤ 35 characters).
    """
    day = received_at.astimezone(SHANGHAI).strftime("%Y%m%d")
    return f"GW{day}{node}{request_id:09d}"


def tx_id(ref: str, seq_no: int | None) -> str:
    """PmtId/TxId: the GwRef for a single transfer, ``GwRef-SeqNo`` for a batch item.

    Unique per item by construction (GwRef is unique); at most
    20 + 1 + 5 = 26 characters for a 50,000-item batch (docs/protocol.md §4).
    """
    return ref if seq_no is None else f"{ref}-{seq_no}"


def end_to_end_id(msg_id: str, seq_no: int | None) -> str:
    """PmtId/EndToEndId: the corporate's MsgId, ``MsgId-SeqNo`` for a batch item.

    MsgId is at most 35 characters (docs/protocol.md §2) but ``-SeqNo`` can take it
    past ISO's Max35Text.  Rule: the ``-SeqNo`` suffix is always kept whole
    and the MsgId is cut at its end to fit, so items of one batch stay
    distinguishable; the full MsgId is still in the journal, and the
    clearing side matches by TxId first (docs/clearing-link.md §4).
    """
    if seq_no is None:
        return msg_id[:MAX_ISO_ID]
    suffix = f"-{seq_no}"
    return msg_id[: MAX_ISO_ID - len(suffix)] + suffix


# -- the netting ledger (both backends) ------------------------------------------


def ledger_figures(items: Iterable[tuple[str, int]], credits: Iterable[int]) -> Figures:
    """Our side of a bilateral position (docs/routing-rules.md §5) from the ledger's rows.

    ``items``: (biz_type, fen) of our BEPS items; a CREDIT we send is paid by
    us (dbt), a DEBIT (truncated cheque, beps.127) is paid to us (cdt).
    ``credits``: fen of the incoming credits from the counterparty (cdt).
    """
    dbt_cnt = dbt_fen = cdt_cnt = cdt_fen = 0
    for biz, fen in items:
        if biz == BizType.DEBIT.value:
            cdt_cnt, cdt_fen = cdt_cnt + 1, cdt_fen + fen
        else:
            dbt_cnt, dbt_fen = dbt_cnt + 1, dbt_fen + fen
    for fen in credits:
        cdt_cnt, cdt_fen = cdt_cnt + 1, cdt_fen + fen
    return Figures(dbt_cnt, from_fen(dbt_fen), cdt_cnt, from_fen(cdt_fen))


def figures_fen(figures: Figures) -> tuple[int, int, int, int]:
    """(dbt_cnt, dbt fen, cdt_cnt, cdt fen): how a position is stored; refuses sub-fen sums."""
    if min(figures.dbt_cnt, figures.cdt_cnt) < 0:
        raise ValueError("a netting count cannot be negative")
    return figures.dbt_cnt, to_fen(figures.dbt_sum), figures.cdt_cnt, to_fen(figures.cdt_sum)


def fen_figures(dbt_cnt: int, dbt_fen: int, cdt_cnt: int, cdt_fen: int) -> Figures:
    """The inverse of :func:`figures_fen`."""
    return Figures(int(dbt_cnt), from_fen(int(dbt_fen)), int(cdt_cnt), from_fen(int(cdt_fen)))


def check_open_inquiry(request: NewRequest, inquiry: NewInquiry, outbound: NewOutbound) -> None:
    """INQ: a request without items opening an OUT inquiry about its own corporate's payment."""
    check_bare(request, outbound)
    if inquiry.direction is not InquiryDirection.OUT:
        raise ValueError("an INQ opens an OUT inquiry")
    if inquiry.corp_id not in (None, request.corp_id):
        raise ValueError("an INQ asks about its own corporate's payment")


def check_auto_inquiry(gw_ref: str, inquiry: NewInquiry, outbound: NewOutbound) -> None:
    """The automatic ccms.314 about a suspended credit (docs/clearing-link.md §6 有疑必查)."""
    if inquiry.direction is not InquiryDirection.OUT:
        raise ValueError("the automatic inquiry is an OUT inquiry")
    if inquiry.credit_ref not in (None, gw_ref):
        raise ValueError("the automatic inquiry must name the suspended credit")
    if outbound.item_ids:
        raise ValueError("a ccms.314 carries no items")


def check_bare(request: NewRequest, outbound: NewOutbound) -> None:
    """INQ / RPLY requests move no money: no items, and their ccms.314 / 315 carries none."""
    if request.items:
        raise ValueError("an INQ or RPLY request has no items")
    if outbound.item_ids:
        raise ValueError("a ccms.314 / ccms.315 carries no items")


def netting_detail(day: str, round_no: int) -> str:
    """The transition ``detail`` of NETTED / SETTLED moves: which round did it."""
    return f"{day} round {round_no}"


# -- rows <-> records --------------------------------------------------------

FIND_REQUEST = (
    "SELECT corp_id, msg_id, oper_id, trn_code, digest, gw_ref, received_at"
    " FROM requests WHERE corp_id = ? AND msg_id = ?"
)
"""The (CorpId, MsgId) lookup of dedupe (docs/protocol.md §7); rows for :func:`request_record`."""

ADD_DAILY_TOTAL = (
    "INSERT INTO daily_totals (corp_id, oper_id, day, total_fen)"
    " VALUES (:corp, :oper, :day, :fen)"
    " ON CONFLICT (corp_id, oper_id, day) DO UPDATE"
    " SET total_fen = total_fen + excluded.total_fen"
    " WHERE :cap IS NULL OR daily_totals.total_fen + excluded.total_fen <= :cap"
    " RETURNING total_fen"
)
"""Add ``:fen`` to an operator's daily total while it stays within ``:cap`` (NULL: no cap);
no row back means over the cap (docs/protocol.md §6).  PAY items and drafts share it."""

_FIRST_STATES = frozenset({State.QUEUED, State.HELD, State.REJECTED, State.REVIEW})

QUEUED_SELECT = """
SELECT i.id, i.tx_id, i.end_to_end_id, r.corp_id, r.msg_id, i.seq_no, i.engine, i.receiver,
       i.work_date, i.payer_acct, i.payer_name, i.payee_acct, i.payee_name, i.payee_bank_code,
       i.amount_fen, i.ccy, i.priority, i.biz_type, i.purpose, i.queued_at,
       i.payee_bic, i.payee_country, i.chrg_br
  FROM items i JOIN requests r ON r.id = i.request_id
 WHERE i.engine = ? AND i.state = 'QUEUED' AND i.out_msg_id IS NULL
"""
ITEM_INSERT = """
INSERT INTO items (request_id, seq_no, tx_id, end_to_end_id, engine, receiver, payee_bank_code,
                   work_date, state, release_at, payer_acct, payer_name, payee_acct, payee_name,
                   amount_fen, ccy, priority, biz_type, purpose, reason_code, reason_text,
                   queued_at, updated_at, payee_bic, payee_country, chrg_br, screening)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""


def check_seq_nos(items: Iterable[NewItem]) -> None:
    """A single transfer has no SeqNo; batch items have unique ones (docs/protocol.md §4)."""
    seqs = [item.seq_no for item in items]
    if None in seqs:
        if len(seqs) != 1:
            raise ValueError("only a single-transfer request may have an item without SeqNo")
    elif len(set(seqs)) != len(seqs):
        raise ValueError("SeqNo values must be unique within a request")


def item_params(item: NewItem, received: int) -> tuple[int | None, tuple[object, ...]]:
    """Check an item's first state and turn it into column values (after id, tx ids)."""
    if item.state not in _FIRST_STATES:
        raise ValueError(f"an item cannot be journaled as {item.state.value}")
    if item.state is not State.REJECTED and (
        item.engine is None or item.receiver is None or item.work_date is None
    ):
        raise ValueError("a routed item needs engine, receiver and work date")
    if item.state is State.HELD and item.release_at is None:
        raise ValueError("a HELD item needs release_at")
    if item.state is State.REJECTED and not item.reason_code:
        raise ValueError("a REJECTED item needs a reason code")
    return item.seq_no, (
        None if item.engine is None else item.engine.value,
        item.receiver,
        item.payee_bank_code,
        None if item.work_date is None else date_text(item.work_date),
        item.state.value,
        opt_micros(item.release_at),
        item.payer_acct,
        item.payer_name,
        item.payee_acct,
        item.payee_name,
        to_fen(item.amount),
        item.ccy,
        item.priority.value,
        item.biz_type.value,
        item.purpose,
        item.reason_code,
        item.reason_text,
        received if item.state is State.QUEUED else None,
        received,
        item.payee_bic,
        item.payee_country,
        item.chrg_br,
        item.screening,
    )


def request_record(row: Sequence[Any]) -> RequestRecord:
    corp_id, msg_id, oper_id, trn_code, digest, ref, received = row
    return RequestRecord(
        corp_id=str(corp_id),
        msg_id=str(msg_id),
        oper_id=str(oper_id),
        trn_code=str(trn_code),
        digest=str(digest),
        gw_ref=str(ref),
        received_at=from_micros(int(received)),
    )


def queued_item(row: Sequence[Any]) -> QueuedItem:
    (item_id, tx, e2e, corp_id, msg_id, seq, engine, receiver, day, payer_acct, payer_name,
     payee_acct, payee_name, bank, fen, ccy, priority, biz, purpose, queued,
     payee_bic, payee_country, chrg_br) = row  # fmt: skip
    return QueuedItem(
        item_id=int(item_id),
        tx_id=str(tx),
        end_to_end_id=str(e2e),
        corp_id=str(corp_id),
        msg_id=str(msg_id),
        seq_no=None if seq is None else int(seq),
        engine=Engine(engine),
        receiver=str(receiver),
        work_date=date.fromisoformat(str(day)),
        payer_acct=str(payer_acct),
        payer_name=str(payer_name),
        payee_acct=str(payee_acct),
        payee_name=str(payee_name),
        payee_bank_code=str(bank),
        amount=from_fen(int(fen)),
        ccy=str(ccy),
        priority=Priority(priority),
        biz_type=BizType(biz),
        purpose=None if purpose is None else str(purpose),
        queued_at=from_micros(int(queued)),
        payee_bic=payee_bic,
        payee_country=payee_country,
        chrg_br=chrg_br,
    )


def outbound_record(row: Sequence[Any]) -> OutboundRecord:
    msg_id, engine, msg_tp, topic, receiver, day, payload, state, attempts, created, sent = row
    return OutboundRecord(
        msg_id=str(msg_id),
        engine=Engine(engine),
        msg_tp=str(msg_tp),
        topic=str(topic),
        receiver=str(receiver),
        work_date=date.fromisoformat(str(day)),
        payload=bytes(payload),
        state=OutState(state),
        attempts=int(attempts),
        created_at=from_micros(int(created)),
        last_sent_at=None if sent is None else from_micros(int(sent)),
    )


# -- the schema -------------------------------------------------------------

_V1 = """
CREATE TABLE requests (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: it is in the GwRef
    corp_id     TEXT    NOT NULL,
    msg_id      TEXT    NOT NULL,
    oper_id     TEXT    NOT NULL,
    trn_code    TEXT    NOT NULL,
    digest      TEXT    NOT NULL,
    gw_ref      TEXT    UNIQUE,                     -- set in the inserting transaction
    received_at INTEGER NOT NULL,
    UNIQUE (corp_id, msg_id)                        -- docs/protocol.md §7
) STRICT;

CREATE TABLE outbound (
    msg_id       TEXT    PRIMARY KEY,               -- assigned once, reused on re-send
    engine       TEXT    NOT NULL,
    msg_tp       TEXT    NOT NULL,
    topic        TEXT    NOT NULL,
    receiver     TEXT    NOT NULL,
    work_date    TEXT    NOT NULL,
    payload      BLOB    NOT NULL,
    state        TEXT    NOT NULL CHECK (state IN ('PENDING', 'SENT', 'ACKED')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL,
    last_sent_at INTEGER,
    acked_at     INTEGER
) STRICT, WITHOUT ROWID;

CREATE TABLE items (
    id              INTEGER PRIMARY KEY,
    request_id      INTEGER NOT NULL REFERENCES requests (id),
    seq_no          INTEGER,
    tx_id           TEXT    NOT NULL UNIQUE,
    end_to_end_id   TEXT    NOT NULL,
    engine          TEXT,
    receiver        TEXT,
    payee_bank_code TEXT    NOT NULL,
    work_date       TEXT,
    state           TEXT    NOT NULL CHECK (state IN ('ACCEPTED', 'HELD', 'QUEUED', 'SENT',
                                                      'ACKED', 'NETTED', 'SETTLED', 'REJECTED')),
    release_at      INTEGER,
    payer_acct      TEXT    NOT NULL,
    payer_name      TEXT    NOT NULL,
    payee_acct      TEXT    NOT NULL,
    payee_name      TEXT    NOT NULL,
    amount_fen      INTEGER NOT NULL,
    ccy             TEXT    NOT NULL,
    priority        TEXT    NOT NULL,
    biz_type        TEXT    NOT NULL,
    purpose         TEXT,
    reason_code     TEXT,
    reason_text     TEXT,
    out_msg_id      TEXT    REFERENCES outbound (msg_id),
    queued_at       INTEGER,
    updated_at      INTEGER NOT NULL,
    UNIQUE (request_id, seq_no)
) STRICT;

-- Partial indexes hold only the live rows the engines poll, so they stay
-- small while the table keeps 400 days of history (docs/protocol.md §7).
CREATE INDEX items_unpackaged ON items (engine, queued_at, id)
    WHERE state = 'QUEUED' AND out_msg_id IS NULL;
CREATE INDEX items_held ON items (release_at, id) WHERE state = 'HELD';
CREATE INDEX items_by_outbound ON items (out_msg_id) WHERE out_msg_id IS NOT NULL;
CREATE INDEX items_summary ON items (engine, state, reason_code);

CREATE TABLE transitions (
    id      INTEGER PRIMARY KEY,
    item_id INTEGER NOT NULL REFERENCES items (id),
    state   TEXT    NOT NULL,
    at      INTEGER NOT NULL,
    detail  TEXT
) STRICT;
CREATE INDEX transitions_by_item ON transitions (item_id, id);

CREATE INDEX outbound_pending ON outbound (created_at) WHERE state = 'PENDING';
CREATE INDEX outbound_sent ON outbound (last_sent_at) WHERE state = 'SENT';

CREATE TABLE sequences (
    name  TEXT    PRIMARY KEY,
    value INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
"""

_V2 = """
CREATE TABLE daily_totals (
    corp_id   TEXT    NOT NULL,
    oper_id   TEXT    NOT NULL,
    day       TEXT    NOT NULL,
    total_fen INTEGER NOT NULL,
    PRIMARY KEY (corp_id, oper_id, day)
) STRICT, WITHOUT ROWID;
"""

_V3 = """
-- retention passes (gateway.journal.retention) select requests by age
CREATE INDEX requests_received ON requests (received_at, id);
"""

_V4 = """
-- correspondence (docs/protocol.md §4 NTFY/INQ/RPLY, docs/clearing-link.md §4-§6,
-- docs/routing-rules.md §5)

-- The BEPS netting round an item was netted in (with its work_date, the round's key).
ALTER TABLE items ADD COLUMN netting_round INTEGER;
-- The bilateral ledger (docs/routing-rules.md §5) reads BEPS items receipted, not yet netted;
-- settlement reads a round's NETTED items.
CREATE INDEX items_ledger ON items (receiver, work_date, id)
    WHERE engine = 'BEPS' AND state = 'ACKED';
CREATE INDEX items_netted ON items (work_date, netting_round, id) WHERE state = 'NETTED';

-- NTFY (docs/protocol.md §4): ntfy_id is the client's cursor, so it is never reused.
-- Columns are the union of what the kinds carry (gateway.model.Notice).
CREATE TABLE notifications (
    ntfy_id           INTEGER PRIMARY KEY AUTOINCREMENT,
    corp_id           TEXT    NOT NULL,
    kind              TEXT    NOT NULL CHECK (kind IN ('CREDIT', 'STATUS', 'INQUIRY', 'REPLY')),
    at                INTEGER NOT NULL,
    orig_msg_id       TEXT,
    seq_no            INTEGER,
    gw_ref            TEXT,
    inq_id            TEXT,
    state             TEXT,
    reason_code       TEXT,
    engine            TEXT,
    work_date         TEXT,
    acct              TEXT,
    amount_fen        INTEGER,
    counterparty_acct TEXT,
    counterparty_name TEXT,
    counterparty_bank TEXT,
    text              TEXT
) STRICT;
CREATE INDEX notifications_by_corp ON notifications (corp_id, ntfy_id);

-- ccms.314 / ccms.315 (docs/clearing-link.md §4), both directions.  No foreign keys to
-- requests or items: the retention pass may archive those first.
CREATE TABLE inquiries (
    direction      TEXT    NOT NULL CHECK (direction IN ('OUT', 'IN')),
    inq_id         TEXT    NOT NULL,
    state          TEXT    NOT NULL CHECK (state IN ('OPEN', 'REPLIED')),
    counterparty   TEXT    NOT NULL,
    text           TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    corp_id        TEXT,
    msg_id         TEXT,
    seq_no         INTEGER,
    credit_ref     TEXT,
    orgnl_msg_id   TEXT,
    orgnl_tx_id    TEXT,
    request_msg_id TEXT,                            -- the INQ (OUT) or RPLY (IN) request
    out_msg_id     TEXT,                            -- our ccms.314 (OUT) or ccms.315 (IN)
    reply_text     TEXT,
    replied_at     INTEGER,
    PRIMARY KEY (direction, inq_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX inquiries_by_request ON inquiries (corp_id, request_msg_id)
    WHERE request_msg_id IS NOT NULL;

-- Incoming credits (docs/clearing-link.md §6), keyed by our GI reference.
CREATE TABLE incoming_credits (
    gw_ref         TEXT    PRIMARY KEY,
    engine         TEXT    NOT NULL,
    msg_id         TEXT    NOT NULL,
    tx_id          TEXT    NOT NULL,
    end_to_end_id  TEXT    NOT NULL,
    sender         TEXT    NOT NULL,
    work_date      TEXT    NOT NULL,
    debtor_acct    TEXT    NOT NULL,
    debtor_name    TEXT    NOT NULL,
    debtor_bank    TEXT    NOT NULL,
    creditor_acct  TEXT    NOT NULL,
    creditor_name  TEXT    NOT NULL,
    amount_fen     INTEGER NOT NULL,
    purpose        TEXT,
    received_at    INTEGER NOT NULL,
    corp_id        TEXT,
    state          TEXT    NOT NULL CHECK (state IN ('CHECKING', 'POSTED', 'SUSPENSE')),
    check_attempts INTEGER NOT NULL DEFAULT 0,
    next_check_at  INTEGER,
    netting_round  INTEGER,                         -- BEPS: the round it was netted in
    updated_at     INTEGER NOT NULL,
    UNIQUE (sender, tx_id)                          -- one credit across re-deliveries
) STRICT, WITHOUT ROWID;
CREATE INDEX credits_checking ON incoming_credits (received_at, gw_ref)
    WHERE state = 'CHECKING';
CREATE INDEX credits_ledger ON incoming_credits (sender, work_date)
    WHERE engine = 'BEPS' AND netting_round IS NULL;

-- One row per reconciled CptyPos of a beps.netting round (docs/routing-rules.md §5).
CREATE TABLE netting_rounds (
    work_date     TEXT    NOT NULL,
    round         INTEGER NOT NULL,
    counterparty  TEXT    NOT NULL,
    our_dbt_cnt   INTEGER NOT NULL,
    our_dbt_fen   INTEGER NOT NULL,
    our_cdt_cnt   INTEGER NOT NULL,
    our_cdt_fen   INTEGER NOT NULL,
    their_dbt_cnt INTEGER NOT NULL,
    their_dbt_fen INTEGER NOT NULL,
    their_cdt_cnt INTEGER NOT NULL,
    their_cdt_fen INTEGER NOT NULL,
    matched       INTEGER NOT NULL CHECK (matched IN (0, 1)),
    items_netted  INTEGER NOT NULL,
    at            INTEGER NOT NULL,
    PRIMARY KEY (work_date, round, counterparty)
) STRICT, WITHOUT ROWID;
"""

_V5 = """
-- retention passes (gateway.journal.retention_tables) select each correspondence table by
-- the time column its rule bounds, oldest first, in keyset batches of (time, primary key):
-- one index each, so a pass reads only the old rows, never the whole table (docs/protocol.md §7)
CREATE INDEX notifications_at ON notifications (at, ntfy_id);
CREATE INDEX inquiries_created ON inquiries (created_at, direction, inq_id);
-- only final credits leave (docs/clearing-link.md §6); the query repeats this WHERE word for word
CREATE INDEX credits_final ON incoming_credits (received_at, gw_ref)
    WHERE state IN ('POSTED', 'SUSPENSE');
-- item-less ccms.314 / 315 leave once receipted; the pass checks "item-less" per row
CREATE INDEX outbound_acked ON outbound (created_at, msg_id) WHERE state = 'ACKED';
"""

_V6 = """
-- the clearing link an inquiry travels on (docs/clearing-link.md §2): an IN inquiry's ccms.315 goes
-- back on the link its ccms.314 arrived on.  Rows from before stay NULL: the reply then
-- falls back to the payment's engine, else the counterparty's (gateway.correspondence).
ALTER TABLE inquiries ADD COLUMN engine TEXT;
"""

_V7 = """
-- the suspense account's credits (docs/clearing-link.md §6, 暂收款) for the gateway_credits gauge,
-- counted every few seconds (gateway.journal.gauges): only SUSPENSE rows, never the
-- POSTED bulk.  The gauge's query repeats this WHERE word for word.
CREATE INDEX credits_suspense ON incoming_credits (received_at, gw_ref)
    WHERE state = 'SUSPENSE';
"""

_V8_OPERATOR_ACTIONS = """
-- operators' message tools (docs/operations.md): who did what manually, and why; the
-- verified inbound clearing messages and the corporates' signed requests with the signed
-- responses, as exact bytes, so that ``gatewayctl messages show`` can hand them to xmlsec1
-- (docs/clearing-link.md §3, docs/protocol.md §3).  Rowid tables: their rows are large.
CREATE TABLE operator_actions (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at       INTEGER NOT NULL,
    uid      INTEGER NOT NULL,
    operator TEXT    NOT NULL,
    action   TEXT    NOT NULL CHECK (action IN ('release', 'resend')),
    target   TEXT    NOT NULL,                      -- an item's TxId or an outbound MsgId
    reason   TEXT    NOT NULL,
    forced   INTEGER NOT NULL CHECK (forced IN (0, 1))
) STRICT;
CREATE INDEX operator_actions_target ON operator_actions (target, id);
CREATE INDEX operator_actions_at ON operator_actions (at, id);

CREATE TABLE inbound_messages (
    id          INTEGER PRIMARY KEY,
    msg_id      TEXT    NOT NULL,
    msg_tp      TEXT    NOT NULL,
    sndr        TEXT    NOT NULL,
    topic       TEXT    NOT NULL,
    ref         TEXT,                               -- OrgnlMsgId, or "<work date> round <n>"
    payload     BLOB    NOT NULL,
    received_at INTEGER NOT NULL,
    UNIQUE (sndr, msg_id)                           -- re-deliveries are kept once
) STRICT;
CREATE INDEX inbound_by_ref ON inbound_messages (ref) WHERE ref IS NOT NULL;
CREATE INDEX inbound_received ON inbound_messages (received_at, id);

CREATE TABLE exchanges (
    id       INTEGER PRIMARY KEY,
    gw_ref   TEXT    NOT NULL UNIQUE,               -- the journaled request's
    request  BLOB    NOT NULL,                      -- as received (signed)
    response BLOB    NOT NULL,                      -- the 0000 as sent (signed)
    at       INTEGER NOT NULL
) STRICT;
CREATE INDEX exchanges_at ON exchanges (at, id);
"""

_V9_AUDIT_CHAIN = audit_chain.SQLITE_V9_AUDIT_CHAIN

_DRAFT_STATES = "'PENDING', 'ISSUED', 'PAID', 'SETTLED', 'REFUNDING', 'REFUNDED', 'REJECTED'"

_V10_DRAFTS = f"""
-- the draft register (银行汇票登记簿, docs/bank-drafts.md §1-§3): kept for ever, never archived.
-- A DRAFT / DRAFTRFND request is a requests row without items.  The Code is never stored.
CREATE TABLE drafts (
    draft_no          TEXT    PRIMARY KEY,            -- participant + 8-digit 'draft' sequence
    corp_id           TEXT    NOT NULL,
    msg_id            TEXT    NOT NULL,               -- the DRAFT request
    scope             TEXT    NOT NULL CHECK (scope IN ('NATIONAL', 'PROVINCIAL')),
    amount_fen        INTEGER NOT NULL CHECK (amount_fen > 0),
    payer_acct        TEXT    NOT NULL,
    payer_name        TEXT    NOT NULL,
    payee_name        TEXT    NOT NULL,
    purpose           TEXT,
    issue_date        TEXT    NOT NULL,
    expiry_date       TEXT    NOT NULL,
    code_key          TEXT    NOT NULL,               -- id of the draft key the Code is made under
    state             TEXT    NOT NULL CHECK (state IN ({_DRAFT_STATES})),
    release_at        INTEGER,                        -- held to the next working day
    paid_on           TEXT,                           -- work date of the accepted presentment
    settle_amount_fen INTEGER,
    created_at        INTEGER NOT NULL,
    UNIQUE (corp_id, msg_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX drafts_state ON drafts (state, created_at, draft_no);
CREATE INDEX drafts_created ON drafts (created_at, draft_no);

-- a draft's History: one row per state reached
CREATE TABLE draft_steps (
    id          INTEGER PRIMARY KEY,
    draft_no    TEXT    NOT NULL REFERENCES drafts (draft_no),
    state       TEXT    NOT NULL CHECK (state IN ({_DRAFT_STATES})),
    at          INTEGER NOT NULL,
    reason_code TEXT,
    reason_text TEXT
) STRICT;
CREATE INDEX draft_steps_by_draft ON draft_steps (draft_no, id);

-- the DRAFTRFND requests of a draft, numbered: a refund rejected back to ISSUED may be asked again
CREATE TABLE draft_refunds (
    corp_id  TEXT    NOT NULL,
    msg_id   TEXT    NOT NULL,                        -- the DRAFTRFND request
    draft_no TEXT    NOT NULL REFERENCES drafts (draft_no),
    attempt  INTEGER NOT NULL,
    PRIMARY KEY (corp_id, msg_id),
    UNIQUE (draft_no, attempt)
) STRICT, WITHOUT ROWID;

-- the outbound INTRA messages of a draft: one per (kind, attempt), for ever
CREATE TABLE draft_messages (
    msg_id    TEXT    PRIMARY KEY REFERENCES outbound (msg_id),
    draft_no  TEXT    NOT NULL REFERENCES drafts (draft_no),
    kind      TEXT    NOT NULL CHECK (kind IN ('issue', 'settle', 'refund')),
    attempt   INTEGER NOT NULL,
    status    TEXT    CHECK (status IN ('ACSC', 'RJCT')),  -- its ccms.900, once applied
    status_at INTEGER,
    UNIQUE (draft_no, kind, attempt)
) STRICT, WITHOUT ROWID;

-- every presentment answered, exactly once per (AgentBank, PrsntmtId); at most one ACCP a draft
CREATE TABLE draft_presentments (
    agent_bank        TEXT    NOT NULL,
    prsntmt_id        TEXT    NOT NULL,
    draft_no          TEXT    NOT NULL,               -- as presented: may be unknown (NF)
    result            TEXT    NOT NULL CHECK (result IN ('ACCP', 'RJCT')),
    reason            TEXT,
    msg_id            TEXT    NOT NULL REFERENCES outbound (msg_id),  -- the answer
    settle_amount_fen INTEGER NOT NULL,
    holder_acct       TEXT    NOT NULL,
    holder_name       TEXT    NOT NULL,
    received_at       INTEGER NOT NULL,
    PRIMARY KEY (agent_bank, prsntmt_id)
) STRICT, WITHOUT ROWID;
CREATE UNIQUE INDEX draft_presentments_one_accp ON draft_presentments (draft_no)
    WHERE result = 'ACCP';
-- retention keeps an answer's outbound row (it asks for each candidate), and FK checks
CREATE INDEX draft_presentments_by_msg ON draft_presentments (msg_id);

-- NTFY kind DRAFT (docs/bank-drafts.md §2).  SQLite cannot change a CHECK: the table is
-- rebuilt with every row and its ntfy_id, and AUTOINCREMENT's high-water mark is carried
-- over, so the NTFY cursor never sees an id again even if retention removed the newest rows.
CREATE TABLE notifications_v10 (
    ntfy_id           INTEGER PRIMARY KEY AUTOINCREMENT,
    corp_id           TEXT    NOT NULL,
    kind              TEXT    NOT NULL CHECK (kind IN ('CREDIT', 'STATUS', 'INQUIRY', 'REPLY',
                                                       'DRAFT')),
    at                INTEGER NOT NULL,
    orig_msg_id       TEXT,
    seq_no            INTEGER,
    gw_ref            TEXT,
    inq_id            TEXT,
    state             TEXT,
    reason_code       TEXT,
    engine            TEXT,
    work_date         TEXT,
    acct              TEXT,
    amount_fen        INTEGER,
    counterparty_acct TEXT,
    counterparty_name TEXT,
    counterparty_bank TEXT,
    text              TEXT,
    draft_no          TEXT
) STRICT;
INSERT INTO notifications_v10 (ntfy_id, corp_id, kind, at, orig_msg_id, seq_no, gw_ref, inq_id,
                               state, reason_code, engine, work_date, acct, amount_fen,
                               counterparty_acct, counterparty_name, counterparty_bank, text)
SELECT ntfy_id, corp_id, kind, at, orig_msg_id, seq_no, gw_ref, inq_id, state, reason_code,
       engine, work_date, acct, amount_fen, counterparty_acct, counterparty_name,
       counterparty_bank, text
  FROM notifications ORDER BY ntfy_id;
DELETE FROM sqlite_sequence WHERE name = 'notifications_v10';
INSERT INTO sqlite_sequence (name, seq)
SELECT 'notifications_v10', seq FROM sqlite_sequence WHERE name = 'notifications';
DROP TABLE notifications;
ALTER TABLE notifications_v10 RENAME TO notifications;
CREATE INDEX notifications_by_corp ON notifications (corp_id, ntfy_id);
CREATE INDEX notifications_at ON notifications (at, ntfy_id);
"""  # noqa: S608 (DDL from our own constants)

_V11_FX_STATES = """
-- State REVIEW (docs/foreign-currency.md §5: a screened payment waiting for operators).
-- SQLite cannot ALTER a CHECK, and rebuilding items is impossible here: transitions refer
-- to it and foreign keys cannot be switched off inside the migration's transaction.  A
-- constraint that only admits one value more leaves every stored row valid, so the
-- table's definition is widened in place (SQLite's documented procedure for relaxing a
-- constraint), then a throwaway table bumps the schema cookie so that every connection,
-- of this process or another, reloads it.  Engine SWIFT needs nothing: items.engine has
-- no CHECK in this backend.
PRAGMA writable_schema = ON;
UPDATE sqlite_schema
   SET sql = replace(sql, '''SETTLED'', ''REJECTED'')', '''SETTLED'', ''REJECTED'', ''REVIEW'')')
 WHERE type = 'table' AND name = 'items';
PRAGMA writable_schema = RESET;
CREATE TABLE schema_cookie_bump (x INTEGER) STRICT;
DROP TABLE schema_cookie_bump;
"""

_V12_FX_ITEMS = """
-- docs/foreign-currency.md §1, §4: the payee's BIC and country, who bears the charges, and
-- the SWIFT payment's UETR (set with its swift.008).  NULL on CNY items.
ALTER TABLE items ADD COLUMN payee_bic TEXT;
ALTER TABLE items ADD COLUMN payee_country TEXT;
ALTER TABLE items ADD COLUMN chrg_br TEXT;
ALTER TABLE items ADD COLUMN uetr TEXT;
"""

_V13_SWIFT_CREDITS = """
-- Incoming SWIFT credits (docs/foreign-currency.md §4-§5): their currency, its minor units
-- (amount_fen then counts minor units of ccy: 1500 JPY is 1500, 250.50 USD is 25050; CNY
-- rows keep fen), the screening decision as JSON, and state REVIEW for a credit the
-- screening flagged.  A CREDIT notification carries the currency the same way (NULL: CNY).
-- The CHECKs are widened in place as in migration 11 (a replace that finds nothing is a
-- no-op, so widening operator_actions twice is harmless); the cookie bump makes every
-- connection reload the schema.
PRAGMA writable_schema = ON;
UPDATE sqlite_schema
   SET sql = replace(sql, '''CHECKING'', ''POSTED'', ''SUSPENSE'')',
                     '''CHECKING'', ''POSTED'', ''SUSPENSE'', ''REVIEW'')')
 WHERE type = 'table' AND name = 'incoming_credits';
UPDATE sqlite_schema
   SET sql = replace(sql, '''release'', ''resend'')',
                     '''release'', ''resend'', ''approve'', ''reject'')')
 WHERE type = 'table' AND name = 'operator_actions';
PRAGMA writable_schema = RESET;
CREATE TABLE schema_cookie_bump (x INTEGER) STRICT;
DROP TABLE schema_cookie_bump;
ALTER TABLE incoming_credits ADD COLUMN ccy TEXT NOT NULL DEFAULT 'CNY';
ALTER TABLE incoming_credits ADD COLUMN minor_units INTEGER NOT NULL DEFAULT 2;
ALTER TABLE incoming_credits ADD COLUMN screening TEXT;
ALTER TABLE notifications ADD COLUMN ccy TEXT;
ALTER TABLE notifications ADD COLUMN minor_units INTEGER;
-- review list reads the pending credits oldest first (its query repeats this WHERE)
CREATE INDEX credits_review ON incoming_credits (received_at, gw_ref) WHERE state = 'REVIEW';
"""

_V14_ITEM_SCREENING = """
-- docs/foreign-currency.md §5: every screened outbound item records the list versions that
-- decided it and its hits (JSON; NULL when not screened), read by `gatewayctl messages show`
-- and `review`; the pending reviews and every item ever reviewed are found by partial
-- indexes.  (Version 13 already admits the operator actions approve and reject.)
ALTER TABLE items ADD COLUMN screening TEXT;
CREATE INDEX items_review ON items (updated_at, id) WHERE state = 'REVIEW';
CREATE INDEX transitions_review ON transitions (item_id) WHERE state = 'REVIEW';
"""

MIGRATIONS: tuple[str, ...] = (
    _V1,
    _V2,
    _V3,
    _V4,
    _V5,
    _V6,
    _V7,
    _V8_OPERATOR_ACTIONS,
    _V9_AUDIT_CHAIN,
    _V10_DRAFTS + audit_chain.SQLITE_V10_DRAFT_CHAIN,
    _V11_FX_STATES,
    _V12_FX_ITEMS,
    _V13_SWIFT_CREDITS,
    _V14_ITEM_SCREENING,  # keep last; renumber on merge if another migration lands first
)
"""``MIGRATIONS[n]`` takes ``user_version`` n to n + 1.  Append, never edit."""

SCHEMA_VERSION = len(MIGRATIONS)

BUSY_TIMEOUT_MS = 5000
"""How long a connection waits for another process's lock (e.g. an operator tool)."""


def connect(
    path: Path, *, readonly: bool = False, file_readonly: bool = False
) -> sqlite3.Connection:
    """Open a connection with the journal's pragmas.

    ``file_readonly`` opens the file itself read-only (URI ``mode=ro``), for
    ``gatewayctl`` views with the daemon stopped: nothing can be written or
    created, not even an empty journal.

    ``isolation_level=None``: we issue BEGIN/COMMIT ourselves (the group-commit
    writer needs explicit transactions and savepoints).  ``synchronous=FULL``
    makes every commit fsync the WAL: the 0000 promise (docs/protocol.md §5).
    ``audit_hash`` is installed for the chain's triggers (:mod:`.audit_chain`).
    """
    target = f"{Path(path).resolve().as_uri()}?mode=ro" if file_readonly else path
    conn = sqlite3.connect(
        target,
        isolation_level=None,
        check_same_thread=False,
        cached_statements=128,
        uri=file_readonly,
    )
    try:
        audit_chain.register(conn)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = FULL")
        if readonly:
            conn.execute("PRAGMA query_only = ON")
    except BaseException:
        conn.close()
        raise
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Switch to WAL and bring the schema to :data:`SCHEMA_VERSION`; returns the old version."""
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise RuntimeError(f"journal could not switch to WAL mode (got {mode})")
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise RuntimeError(
            f"journal schema version {version} is newer than this gateway ({SCHEMA_VERSION})"
        )
    for target in range(version + 1, SCHEMA_VERSION + 1):
        # executescript runs the whole script, BEGIN to COMMIT, as one transaction;
        # user_version lives in the file header and is part of it.
        try:
            conn.executescript(
                f"BEGIN IMMEDIATE;\n{MIGRATIONS[target - 1]}\n"
                f"PRAGMA user_version = {target};\nCOMMIT;"
            )
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return version
