"""The SQLite journal's correspondence: notifications, inquiries, incoming credits, netting.

Mixed into :class:`~gateway.journal.sqlite.SqliteStore` (the ``Store``
protocol's "correspondence" part, docs/protocol.md §4 NTFY/INQ/RPLY, docs/clearing-link.md
§4-§6, docs/routing-rules.md §5).  Every change runs as one function on the store's
group-commit writer, so it is one transaction and durable before the call
returns; a notification is written in the same function as the change it
reports.  SQLite has one writer, so ``ntfy_id`` values (AUTOINCREMENT, never
reused) become visible in increasing order: the NTFY cursor never skips one.

Rules beyond the protocol's docstrings:

- An INQ / RPLY request is journaled like a PAY (requests row, GwRef,
  (CorpId, MsgId) unique) but with no items and no daily total: it moves no
  money (docs/protocol.md §6 counts amounts).  Its ccms.314 / ccms.315 is an
  outbound message without items, so the outbox publishes, re-sends and
  receipts it exactly like a payment message (docs/clearing-link.md §1).
- An inbound ccms.314 concerns our item whose TxId is its ``OrgnlTxId``;
  failing that, the incoming credit with that TxId from the asking
  participant (the credit's sender).  Without either it is not journaled.
- Netting moves exactly the rows it counted: the ledger's items and credits
  are read once, compared, and those ids are updated in the same transaction.
  It stays one transaction per counterparty (~0.1-0.15 s for 2,500 items):
  its ``netting_rounds`` row is what makes a re-delivery a no-op, and a
  half-netted ledger would no longer match the clearing's figures.
- Settlement is the exception to "one change, one transaction": it runs in
  chunks of ``settle_chunk`` items (``correspondence_rows.SETTLE_CHUNK``),
  so PAYs are journaled (and answered) while a large round settles.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, TypeVar

from gateway.journal import schema
from gateway.journal.correspondence_rows import (
    CREDIT_COLUMNS,
    CREDITS_IN_STATE,
    INQUIRY_COLUMNS,
    INQUIRY_INSERT_COLUMNS,
    NOTICE_COLUMNS,
    NOTICE_FIELDS,
    OPEN_INQUIRIES_ORDER,
    ROUND_COLUMNS,
    ROUND_VIEW_COLUMNS,
    SETTLE_CHUNK,
    Decoding,
    InquiryLinks,
    asked_links,
    credit_currency,
    credit_of,
    inquiry_of,
    inquiry_params,
    item_ref_of,
    ledger_figures,
    notices_of,
    recorded_outcome,
    round_view_of,
    suspense_links,
)
from gateway.journal.records import (
    AcceptOutcome,
    CreditState,
    Figures,
    IncomingCredit,
    InquiryDirection,
    InquiryRecord,
    InquiryState,
    ItemRef,
    NettingOutcome,
    NettingRoundView,
    NewIncomingCredit,
    NewInquiry,
    NewOutbound,
    NewRequest,
    RequestRecord,
    SettlementOutcome,
)
from gateway.journal.schema import from_micros, to_micros
from gateway.model import Notice, NoticeKind, State

T = TypeVar("T")

_DECODING = Decoding(instant=from_micros, day=date.fromisoformat)
"""Instants are integer microseconds, work dates ISO text (``schema.py``)."""

_NOTICE_INSERT = (
    "INSERT INTO notifications (corp_id, kind, at, orig_msg_id, seq_no, gw_ref, inq_id, state,"
    " reason_code, engine, work_date, acct, amount_fen, counterparty_acct, counterparty_name,"
    " counterparty_bank, text, draft_no, ccy, minor_units) VALUES (:corp_id, :kind, :at,"
    " :orig_msg_id, :seq_no, :gw_ref, :inq_id, :state, :reason_code, :engine, :work_date, :acct,"
    " :amount_fen, :counterparty_acct, :counterparty_name, :counterparty_bank, :text, :draft_no,"
    " :ccy, :minor_units)"
)
_STATUS_NOTICE = """
INSERT INTO notifications (corp_id, kind, at, orig_msg_id, seq_no, state, reason_code, text,
                           engine, work_date)
SELECT r.corp_id, 'STATUS', ?1, r.msg_id, i.seq_no, i.state,
       CASE WHEN i.state = 'REJECTED' THEN i.reason_code END,
       CASE WHEN i.state = 'REJECTED' THEN i.reason_text END, i.engine, i.work_date
  FROM items i JOIN requests r ON r.id = i.request_id
 WHERE i.id = ?2
"""
_FIND_INQUIRY = (
    f"SELECT {INQUIRY_COLUMNS} FROM inquiries"  # noqa: S608 (constant fragments)
    " WHERE direction = ? AND inq_id = ?"
)
_ITEM_REF = """
SELECT i.id AS item_id, r.corp_id, r.msg_id, i.seq_no, i.tx_id, i.end_to_end_id, i.engine,
       i.receiver, i.work_date, i.state, i.out_msg_id
  FROM requests r JOIN items i ON i.request_id = r.id
 WHERE r.corp_id = ? AND r.msg_id = ?
"""
_LEDGER_ITEMS = (
    "SELECT id, biz_type, amount_fen FROM items WHERE engine = 'BEPS' AND state = 'ACKED'"
    " AND receiver = ? AND work_date = ? ORDER BY id"
)
_LEDGER_CREDITS = (
    "SELECT gw_ref, amount_fen FROM incoming_credits WHERE engine = 'BEPS'"
    " AND netting_round IS NULL AND sender = ? AND work_date = ? ORDER BY gw_ref"
)
_ROUND = (
    f"SELECT {ROUND_COLUMNS} FROM netting_rounds"  # noqa: S608 (constant fragments)
    " WHERE work_date = ? AND round = ? AND counterparty = ?"
)


class SqliteCorrespondence:
    """The correspondence methods of :class:`~gateway.journal.sqlite.SqliteStore`."""

    node: str
    settle_chunk: int = SETTLE_CHUNK
    """Items per settlement transaction (``SETTLE_CHUNK``); tests and the bench change it."""

    if TYPE_CHECKING:

        async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

        async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

    # -- notifications ------------------------------------------------------
    async def pull_notices(self, corp_id: str, after: int, limit: int) -> list[Notice]:
        if limit <= 0:
            return []

        def read(conn: sqlite3.Connection) -> list[Notice]:
            found = conn.execute(
                f"SELECT {NOTICE_COLUMNS} FROM notifications"  # noqa: S608 (constant)
                " WHERE corp_id = ? AND ntfy_id > ? ORDER BY ntfy_id LIMIT ?",
                (corp_id, after, limit),
            )
            return notices_of(found, _DECODING)  # plain tuples: read by position

        return await self._read(read)

    async def item_ref(self, corp_id: str, msg_id: str, seq_no: int | None) -> ItemRef | None:
        sql = _ITEM_REF + ("" if seq_no is None else " AND i.seq_no = ?") + " ORDER BY i.id LIMIT 1"
        params: tuple[object, ...] = (corp_id, msg_id) + (() if seq_no is None else (seq_no,))

        def read(conn: sqlite3.Connection) -> ItemRef | None:
            return _first(item_ref_of, _named(conn, sql, params))

        return await self._read(read)

    # -- inquiries ----------------------------------------------------------
    async def open_inquiry(
        self, request: NewRequest, inquiry: NewInquiry, outbound: NewOutbound
    ) -> AcceptOutcome:
        schema.check_open_inquiry(request, inquiry, outbound)
        node = self.node

        def write(conn: sqlite3.Connection) -> AcceptOutcome:
            row = conn.execute(schema.FIND_REQUEST, (request.corp_id, request.msg_id)).fetchone()
            if row is not None:
                return AcceptOutcome(created=False, record=schema.request_record(row))
            record = _insert_request(conn, request, node)
            _insert_inquiry(conn, inquiry, asked_links(request, inquiry, outbound))
            _insert_outbound(conn, outbound)
            return AcceptOutcome(created=True, record=record)

        return await self._write(write)

    async def inquiry_for_request(self, corp_id: str, msg_id: str) -> InquiryRecord | None:
        def read(conn: sqlite3.Connection) -> InquiryRecord | None:
            found = _named(
                conn,
                f"SELECT {INQUIRY_COLUMNS} FROM inquiries"  # noqa: S608 (constant)
                " WHERE corp_id = ? AND request_msg_id = ? AND direction = 'OUT'",
                (corp_id, msg_id),
            )
            return _first(inquiry_of, found)

        return await self._read(read)

    async def find_inquiry(self, inq_id: str, direction: InquiryDirection) -> InquiryRecord | None:
        def read(conn: sqlite3.Connection) -> InquiryRecord | None:
            return _find_inquiry(conn, direction, inq_id)

        return await self._read(read)

    async def answer_inquiry(
        self, request: NewRequest, inq_id: str, text: str, outbound: NewOutbound
    ) -> AcceptOutcome:
        schema.check_bare(request, outbound)
        node = self.node
        replied = to_micros(request.received_at)

        def write(conn: sqlite3.Connection) -> AcceptOutcome:
            row = conn.execute(schema.FIND_REQUEST, (request.corp_id, request.msg_id)).fetchone()
            if row is not None:
                return AcceptOutcome(created=False, record=schema.request_record(row))
            found = conn.execute(
                "SELECT state, corp_id FROM inquiries WHERE direction = 'IN' AND inq_id = ?",
                (inq_id,),
            ).fetchone()
            if found is None or found[1] != request.corp_id:
                raise LookupError(f"no inquiry {inq_id} for this corporate")
            if found[0] != InquiryState.OPEN.value:
                raise ValueError(f"inquiry {inq_id} is already replied")
            record = _insert_request(conn, request, node)
            conn.execute(
                "UPDATE inquiries SET state = 'REPLIED', reply_text = ?, replied_at = ?,"
                " request_msg_id = ?, out_msg_id = ? WHERE direction = 'IN' AND inq_id = ?",
                (text, replied, request.msg_id, outbound.msg_id, inq_id),
            )
            _insert_outbound(conn, outbound)
            return AcceptOutcome(created=True, record=record)

        return await self._write(write)

    async def receive_inquiry(self, inquiry: NewInquiry) -> InquiryRecord | None:
        if inquiry.direction is not InquiryDirection.IN:
            raise ValueError("an inbound ccms.314 is an IN inquiry")
        at = to_micros(inquiry.created_at)

        def write(conn: sqlite3.Connection) -> InquiryRecord | None:
            existing = _find_inquiry(conn, InquiryDirection.IN, inquiry.inq_id)
            if existing is not None or inquiry.orgnl_tx_id is None:
                return existing
            corp_id: str | None
            msg_id = seq_no = credit_ref = None
            ours = conn.execute(
                "SELECT r.corp_id, r.msg_id, i.seq_no FROM items i"
                " JOIN requests r ON r.id = i.request_id WHERE i.tx_id = ?",
                (inquiry.orgnl_tx_id,),
            ).fetchone()
            if ours is not None:
                corp_id, msg_id, seq_no = ours
            else:
                credit = conn.execute(
                    "SELECT corp_id, gw_ref FROM incoming_credits WHERE sender = ? AND tx_id = ?",
                    (inquiry.counterparty, inquiry.orgnl_tx_id),
                ).fetchone()
                if credit is None:
                    return None
                corp_id, credit_ref = credit
            _insert_inquiry(conn, inquiry, InquiryLinks(corp_id, msg_id, seq_no, credit_ref))
            if corp_id is not None:
                _notify(
                    conn, corp_id, NoticeKind.INQUIRY, at,
                    inq_id=inquiry.inq_id, orig_msg_id=msg_id, seq_no=seq_no,
                    gw_ref=credit_ref, text=inquiry.text,
                )  # fmt: skip
            return _find_inquiry(conn, InquiryDirection.IN, inquiry.inq_id)

        return await self._write(write)

    async def receive_reply(self, inq_id: str, text: str, at: datetime) -> InquiryRecord | None:
        when = to_micros(at)

        def write(conn: sqlite3.Connection) -> InquiryRecord | None:
            found = _find_inquiry(conn, InquiryDirection.OUT, inq_id)
            if found is None or found.state is InquiryState.REPLIED:
                return found
            conn.execute(
                "UPDATE inquiries SET state = 'REPLIED', reply_text = ?, replied_at = ?"
                " WHERE direction = 'OUT' AND inq_id = ?",
                (text, when, inq_id),
            )
            if found.corp_id is not None:
                _notify(
                    conn, found.corp_id, NoticeKind.REPLY, when,
                    inq_id=inq_id, orig_msg_id=found.msg_id, seq_no=found.seq_no, text=text,
                )  # fmt: skip
            return _find_inquiry(conn, InquiryDirection.OUT, inq_id)

        return await self._write(write)

    # -- incoming credits ---------------------------------------------------
    async def receive_credit(self, credit: NewIncomingCredit) -> IncomingCredit:
        received = to_micros(credit.received_at)
        params = (
            credit.gw_ref, credit.engine.value, credit.msg_id, credit.tx_id, credit.end_to_end_id,
            credit.sender, schema.date_text(credit.work_date), credit.debtor_acct,
            credit.debtor_name, credit.debtor_bank, credit.creditor_acct, credit.creditor_name,
            schema.to_minor(credit.amount, credit.minor_units), credit.purpose, received,
            credit.corp_id, credit.state.value, credit.ccy, credit.minor_units, credit.screening,
            None if credit.state is CreditState.REVIEW else received,
        )  # fmt: skip

        def write(conn: sqlite3.Connection) -> IncomingCredit:
            try:
                conn.execute(
                    "INSERT INTO incoming_credits (gw_ref, engine, msg_id, tx_id, end_to_end_id,"
                    " sender, work_date, debtor_acct, debtor_name, debtor_bank, creditor_acct,"
                    " creditor_name, amount_fen, purpose, received_at, corp_id, state,"
                    " ccy, minor_units, screening, check_attempts, next_check_at, updated_at)"
                    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,"
                    " ?16, ?17, ?18, ?19, ?20, 0, ?21, ?15) ON CONFLICT (sender, tx_id) DO NOTHING",
                    params,
                )
            except sqlite3.IntegrityError as exc:
                raise ValueError(f"incoming credit {credit.gw_ref} is already journaled") from exc
            (row,) = _named(
                conn,
                f"SELECT {CREDIT_COLUMNS} FROM incoming_credits"  # noqa: S608 (constant)
                " WHERE sender = ? AND tx_id = ?",
                (credit.sender, credit.tx_id),
            )
            return credit_of(row, _DECODING)

        return await self._write(write)

    async def credits_to_check(self, now: datetime, limit: int) -> list[IncomingCredit]:
        due = to_micros(now)

        def read(conn: sqlite3.Connection) -> list[IncomingCredit]:
            found = _named(
                conn,
                f"SELECT {CREDIT_COLUMNS} FROM incoming_credits"  # noqa: S608 (constant)
                " WHERE state = 'CHECKING' AND next_check_at <= ?"
                " ORDER BY received_at, gw_ref LIMIT ?",
                (due, max(limit, 0)),
            )
            return [credit_of(row, _DECODING) for row in found]

        return await self._read(read)

    async def postpone_credit_check(self, gw_ref: str, next_at: datetime) -> None:
        """A credit no longer CHECKING is left alone; ``KeyError`` for an unknown one."""
        when = to_micros(next_at)

        def write(conn: sqlite3.Connection) -> None:
            cur = conn.execute(
                "UPDATE incoming_credits SET check_attempts = check_attempts + 1,"
                " next_check_at = ? WHERE gw_ref = ? AND state = 'CHECKING'",
                (when, gw_ref),
            )
            if cur.rowcount == 0 and _credit_state(conn, gw_ref) is None:
                raise KeyError(gw_ref)

        await self._write(write)

    async def post_credit(self, gw_ref: str, at: datetime) -> bool:
        when = to_micros(at)

        def write(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "UPDATE incoming_credits SET state = 'POSTED', next_check_at = NULL,"
                " updated_at = ? WHERE gw_ref = ? AND state = 'CHECKING'"
                " RETURNING corp_id, creditor_acct, amount_fen, debtor_acct, debtor_name,"
                " debtor_bank, engine, work_date, purpose, ccy, minor_units",
                (when, gw_ref),
            ).fetchone()
            if row is None:
                return False
            corp_id, acct, fen, d_acct, d_name, d_bank, engine, day, purpose, ccy, units = row
            if corp_id is not None:
                _notify(
                    conn, corp_id, NoticeKind.CREDIT, when,
                    gw_ref=gw_ref, acct=acct, amount_fen=fen, counterparty_acct=d_acct,
                    counterparty_name=d_name, counterparty_bank=d_bank, engine=engine,
                    work_date=day, text=purpose, **credit_currency(ccy, units),
                )  # fmt: skip
            return True

        return await self._write(write)

    async def suspend_credit(
        self, gw_ref: str, at: datetime, inquiry: NewInquiry, outbound: NewOutbound
    ) -> bool:
        when = to_micros(at)
        schema.check_auto_inquiry(gw_ref, inquiry, outbound)

        def write(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "UPDATE incoming_credits SET state = 'SUSPENSE', next_check_at = NULL,"
                " updated_at = ? WHERE gw_ref = ? AND state = 'CHECKING' RETURNING gw_ref",
                (when, gw_ref),
            ).fetchone()
            if row is None:
                return False
            _insert_inquiry(conn, inquiry, suspense_links(inquiry, gw_ref, outbound))
            _insert_outbound(conn, outbound)
            return True

        return await self._write(write)

    async def credit_state(self, gw_ref: str) -> CreditState | None:
        return await self._read(lambda conn: _credit_state(conn, gw_ref))

    # -- BEPS netting -------------------------------------------------------
    async def ledger(self, work_date: object, counterparty: str) -> Figures:
        day = schema.date_text(work_date)

        def read(conn: sqlite3.Connection) -> Figures:
            return ledger_figures(*_ledger_rows(conn, day, counterparty))

        return await self._read(read)

    async def apply_netting(
        self, work_date: object, round_no: int, counterparty: str, theirs: Figures, at: datetime
    ) -> NettingOutcome:
        day = schema.date_text(work_date)
        when = to_micros(at)
        their_fen = schema.figures_fen(theirs)
        detail = schema.netting_detail(day, round_no)

        def write(conn: sqlite3.Connection) -> NettingOutcome:
            recorded = _named(conn, _ROUND, (day, round_no, counterparty))
            if recorded:
                return recorded_outcome(recorded[0])
            items, credits = _ledger_rows(conn, day, counterparty)
            ours = ledger_figures(items, credits)
            matched = ours == theirs
            netted = 0
            if matched:
                ids = json.dumps([r["id"] for r in items])
                moved = conn.execute(
                    "UPDATE items SET state = 'NETTED', netting_round = ?, updated_at = ?"
                    " WHERE id IN (SELECT value FROM json_each(?)) AND state = 'ACKED'"
                    " RETURNING id",
                    (round_no, when, ids),
                ).fetchall()
                netted = len(moved)
                _transitions(conn, sorted(i for (i,) in moved), State.NETTED, when, detail)
                conn.execute(
                    "UPDATE incoming_credits SET netting_round = ?"
                    " WHERE gw_ref IN (SELECT value FROM json_each(?))",
                    (round_no, json.dumps([r["gw_ref"] for r in credits])),
                )
            conn.execute(
                "INSERT INTO netting_rounds VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (day, round_no, counterparty, *schema.figures_fen(ours), *their_fen,
                 int(matched), netted, when),
            )  # fmt: skip
            return NettingOutcome(matched=matched, ours=ours, theirs=theirs, items_netted=netted)

        return await self._write(write)

    async def apply_settlement(
        self, work_date: object, round_no: int, at: datetime
    ) -> SettlementOutcome:
        """In chunks of ``settle_chunk`` items, one transaction each (``SETTLE_CHUNK``).

        Nothing marks a round "settled": it is settled when none of its items
        is NETTED any more, so a crash between chunks leaves a state that the
        re-delivered beps.settle (at least once, docs/clearing-link.md §1) simply
        continues.  ``our_net`` is read with the first chunk.
        """
        day = schema.date_text(work_date)
        when = to_micros(at)
        detail = schema.netting_detail(day, round_no)
        chunk = self.settle_chunk
        if chunk < 1:
            raise ValueError("settle_chunk must be at least 1")

        def first(conn: sqlite3.Connection) -> tuple[list[tuple[int, int, int]], int]:
            rounds = conn.execute(
                "SELECT matched, our_dbt_fen, our_cdt_fen FROM netting_rounds"
                " WHERE work_date = ? AND round = ?",
                (day, round_no),
            ).fetchall()
            return rounds, settle_next(conn, day, round_no, when, detail, chunk)

        def more(conn: sqlite3.Connection) -> int:
            return settle_next(conn, day, round_no, when, detail, chunk)

        rounds, moved = await self._write(first)
        settled = moved
        while moved == chunk:  # a short chunk was the last: nothing NETTED was left
            moved = await self._write(more)
            settled += moved
        net = sum(cdt - dbt for matched, dbt, cdt in rounds if matched)
        return SettlementOutcome(
            items_settled=settled, our_net=schema.from_fen(net), rounds_known=bool(rounds)
        )

    # -- operations views (read only) ---------------------------------------
    async def credits_in_state(self, state: CreditState, limit: int) -> list[IncomingCredit]:
        sql = (
            f"SELECT {CREDIT_COLUMNS} FROM incoming_credits"  # noqa: S608 (constant fragments)
            f" WHERE {CREDITS_IN_STATE[state]} ORDER BY received_at, gw_ref LIMIT ?"
        )
        return await self._read(lambda conn: _all(credit_of, _named(conn, sql, (max(limit, 0),))))

    async def open_inquiries(self, limit: int) -> list[InquiryRecord]:
        sql = (
            f"SELECT {INQUIRY_COLUMNS} FROM inquiries"  # noqa: S608 (constant fragments)
            f" WHERE state = 'OPEN' {OPEN_INQUIRIES_ORDER} LIMIT ?"
        )
        return await self._read(lambda conn: _all(inquiry_of, _named(conn, sql, (max(limit, 0),))))

    async def netting_rounds(self, work_date: object) -> list[NettingRoundView]:
        sql = (
            f"SELECT {ROUND_VIEW_COLUMNS} FROM netting_rounds"  # noqa: S608 (constant fragments)
            " WHERE work_date = ? ORDER BY round, counterparty"
        )
        day = schema.date_text(work_date)
        return await self._read(lambda conn: _all(round_view_of, _named(conn, sql, (day,))))


# -- write helpers (on the writer thread, inside its transaction) --------------


def settle_next(
    conn: sqlite3.Connection, day: str, round_no: int, when: int, detail: str, limit: int
) -> int:
    """One chunk of a settlement: at most ``limit`` of the round's NETTED items, lowest
    ids first (index ``items_netted``), to SETTLED with their transitions and STATUS
    notifications.  Returns how many moved."""
    moved = conn.execute(
        "UPDATE items SET state = 'SETTLED', updated_at = ?1 WHERE id IN (SELECT id FROM items"
        " WHERE work_date = ?2 AND netting_round = ?3 AND state = 'NETTED' ORDER BY id LIMIT ?4)"
        " RETURNING id",
        (when, day, round_no, limit),
    ).fetchall()
    ids = sorted(i for (i,) in moved)
    _transitions(conn, ids, State.SETTLED, when, detail)
    notify_status(conn, ids, when)
    return len(ids)


def notify_status(conn: sqlite3.Connection, item_ids: Sequence[int], when: int) -> None:
    """A STATUS notification for each item (already moved to SETTLED / REJECTED)."""
    conn.executemany(_STATUS_NOTICE, ((when, item_id) for item_id in item_ids))


def _transitions(
    conn: sqlite3.Connection, ids: Sequence[int], state: State, when: int, detail: str
) -> None:
    conn.executemany(
        "INSERT INTO transitions (item_id, state, at, detail) VALUES (?, ?, ?, ?)",
        ((i, state.value, when, detail) for i in ids),
    )


def _notify(
    conn: sqlite3.Connection, corp_id: str, kind: NoticeKind, when: int, **fields: object
) -> None:
    values: dict[str, object] = dict.fromkeys(NOTICE_FIELDS)
    values.update(fields, corp_id=corp_id, kind=kind.value, at=when)
    conn.execute(_NOTICE_INSERT, values)


def _insert_request(conn: sqlite3.Connection, request: NewRequest, node: str) -> RequestRecord:
    """The requests row and its GwRef, as ``accept`` writes them (no items, no daily total)."""
    received = to_micros(request.received_at)
    (request_id,) = conn.execute(
        "INSERT INTO requests (corp_id, msg_id, oper_id, trn_code, digest, received_at)"
        " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        (request.corp_id, request.msg_id, request.oper_id, request.trn_code, request.digest,
         received),
    ).fetchone()  # fmt: skip
    ref = schema.gw_ref(request.received_at, node, request_id)
    conn.execute("UPDATE requests SET gw_ref = ? WHERE id = ?", (ref, request_id))
    return request.record(ref, from_micros(received))


def _insert_inquiry(conn: sqlite3.Connection, inquiry: NewInquiry, links: InquiryLinks) -> None:
    try:
        conn.execute(
            f"INSERT INTO inquiries ({INQUIRY_INSERT_COLUMNS})"  # noqa: S608 (constant)
            " VALUES (?, ?, 'OPEN', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            inquiry_params(inquiry, links, to_micros),
        )
    except sqlite3.IntegrityError as exc:
        raise ValueError(f"inquiry {inquiry.inq_id} is already journaled") from exc


def _insert_outbound(conn: sqlite3.Connection, m: NewOutbound) -> None:
    """An outbound message without items (a ccms.314 / ccms.315), PENDING."""
    try:
        conn.execute(
            "INSERT INTO outbound (msg_id, engine, msg_tp, topic, receiver, work_date, payload,"
            " state, attempts, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'PENDING', 0, ?)",
            (m.msg_id, m.engine.value, m.msg_tp, m.topic, m.receiver,
             schema.date_text(m.work_date), m.payload, to_micros(m.created_at)),
        )  # fmt: skip
    except sqlite3.IntegrityError as exc:
        raise ValueError(f"outbound MsgId {m.msg_id} is already journaled") from exc


def _ledger_rows(
    conn: sqlite3.Connection, day: str, counterparty: str
) -> tuple[list[sqlite3.Row], list[sqlite3.Row]]:
    """The ledger's items (id, biz_type, amount_fen) and credits (gw_ref, amount_fen), not
    yet netted."""
    return (
        _named(conn, _LEDGER_ITEMS, (counterparty, day)),
        _named(conn, _LEDGER_CREDITS, (counterparty, day)),
    )


# -- rows -> records ----------------------------------------------------------------


def _find_inquiry(
    conn: sqlite3.Connection, direction: InquiryDirection, inq_id: str
) -> InquiryRecord | None:
    return _first(inquiry_of, _named(conn, _FIND_INQUIRY, (direction.value, inq_id)))


def _credit_state(conn: sqlite3.Connection, gw_ref: str) -> CreditState | None:
    row = conn.execute("SELECT state FROM incoming_credits WHERE gw_ref = ?", (gw_ref,)).fetchone()
    return None if row is None else CreditState(row[0])


def _named(conn: sqlite3.Connection, sql: str, params: Sequence[object]) -> list[sqlite3.Row]:
    """Rows addressable by column name (the record mappers below use the names)."""
    cur = conn.cursor()
    cur.row_factory = sqlite3.Row
    return cur.execute(sql, params).fetchall()


def _first(build: Callable[[sqlite3.Row, Decoding], T], found: list[sqlite3.Row]) -> T | None:
    return build(found[0], _DECODING) if found else None


def _all(build: Callable[[sqlite3.Row, Decoding], T], found: list[sqlite3.Row]) -> list[T]:
    return [build(row, _DECODING) for row in found]
