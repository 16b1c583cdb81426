"""The SQLite journal's draft register (the ``DraftStore`` protocol, docs/bank-drafts.md).

Mixed into :class:`~gateway.journal.sqlite.SqliteStore`.  Every change runs
as one function on the store's group-commit writer: one transaction, durable
before the call returns, with its step rows, its DRAFT notification and its
outbound message.  SQLite has one writer, so "read the draft, check its
state, write" inside that function is already exact: no other change can
slip in between, which is what makes a presentment's ACCP and each draft
message happen once (docs/bank-drafts.md §3).

Rules beyond the protocol's docstrings:

- A DRAFT / DRAFTRFND request is a ``requests`` row without items, with its
  GwRef; a DRAFT's amount counts into the operator's daily total exactly as
  a PAY's items do (``schema.ADD_DAILY_TOTAL``, docs/protocol.md §6).
- A DRAFTRFND is linked to its draft in ``draft_refunds`` with its number
  (``attempt``): the refund message of the latest one is the one due.
- A draft message's ccms.900 is applied once (``draft_messages.status``);
  one that does not fit the register's table is recorded and changes nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, TypeVar

from gateway.clock import SHANGHAI
from gateway.drafts.numbers import make_draft_no
from gateway.drafts.records import Answer, DraftState, Presentment
from gateway.drafts.register import DraftEvent, TransitionError, next_state, refundable
from gateway.journal import schema
from gateway.journal.correspondence_rows import Decoding
from gateway.journal.correspondence_sqlite import (
    _insert_outbound,
    _insert_request,
    _named,
    _notify,
)
from gateway.journal.draft_records import (
    DraftMessage,
    DraftOpenOutcome,
    DraftOutboundNeed,
    DraftRecord,
    DraftStatusResult,
    NewDraft,
    PresentmentOutcome,
    PresentmentVerdict,
    RefundOutcome,
    RefundRefusal,
)
from gateway.journal.drafts_rows import (
    DRAFT_COLUMNS,
    DRAFT_COLUMNS_D,
    DRAFT_SEQUENCE,
    STEP_COLUMNS,
    answer_of,
    check_bare,
    check_message,
    check_new_draft,
    check_status,
    draft_of,
    paid_state,
    status_change,
    step_of,
)
from gateway.journal.records import NewOutbound, NewRequest
from gateway.journal.schema import to_micros
from gateway.model import NoticeKind

T = TypeVar("T")

_DECODING = Decoding(instant=schema.from_micros, day=date.fromisoformat)

_DRAFT = f"SELECT {DRAFT_COLUMNS} FROM drafts WHERE draft_no = ?"  # noqa: S608 (constant)
_STEPS = f"SELECT {STEP_COLUMNS} FROM draft_steps WHERE draft_no = ? ORDER BY id"  # noqa: S608
_FOR_REQUEST = f"""
SELECT {DRAFT_COLUMNS} FROM drafts WHERE corp_id = ?1 AND msg_id = ?2
UNION ALL
SELECT {DRAFT_COLUMNS_D} FROM draft_refunds f JOIN drafts d ON d.draft_no = f.draft_no
 WHERE f.corp_id = ?1 AND f.msg_id = ?2
"""  # noqa: S608 (constant fragments)
_INSERT_DRAFT = """
INSERT INTO drafts (draft_no, corp_id, msg_id, scope, amount_fen, payer_acct, payer_name,
                    payee_name, purpose, issue_date, expiry_date, code_key, state, release_at,
                    created_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'PENDING', ?, ?)
"""
_STEP = (
    "INSERT INTO draft_steps (draft_no, state, at, reason_code, reason_text) VALUES (?, ?, ?, ?, ?)"
)
_NEEDS = f"""
SELECT 'issue' AS need, 1 AS attempt, {DRAFT_COLUMNS_D} FROM drafts d
 WHERE d.state = 'PENDING' AND d.issue_date <= ?1 AND (d.release_at IS NULL OR d.release_at <= ?2)
   AND NOT EXISTS (SELECT 1 FROM draft_messages m WHERE m.draft_no = d.draft_no
                      AND m.kind = 'issue')
UNION ALL
SELECT 'settle', 1, {DRAFT_COLUMNS_D} FROM drafts d
 WHERE d.state = 'PAID' AND d.paid_on < ?1
   AND NOT EXISTS (SELECT 1 FROM draft_messages m WHERE m.draft_no = d.draft_no
                      AND m.kind = 'settle')
UNION ALL
SELECT 'refund', f.attempt, {DRAFT_COLUMNS_D} FROM drafts d
  JOIN draft_refunds f ON f.draft_no = d.draft_no
 WHERE d.state = 'REFUNDING'
   AND f.attempt = (SELECT max(g.attempt) FROM draft_refunds g WHERE g.draft_no = d.draft_no)
   AND NOT EXISTS (SELECT 1 FROM draft_messages m WHERE m.draft_no = d.draft_no
                      AND m.kind = 'refund' AND m.attempt = f.attempt)
 ORDER BY created_at, draft_no LIMIT ?3
"""  # noqa: S608 (constant fragments)
_SETTLE_LIST = f"""
SELECT {DRAFT_COLUMNS_D} FROM drafts d
 WHERE EXISTS (SELECT 1 FROM draft_messages m JOIN outbound o ON o.msg_id = m.msg_id
                WHERE m.draft_no = d.draft_no AND m.kind = 'settle' AND o.work_date = ?1)
    OR (d.state = 'PAID' AND d.paid_on < ?1
        AND NOT EXISTS (SELECT 1 FROM draft_messages m WHERE m.draft_no = d.draft_no
                           AND m.kind = 'settle'))
 ORDER BY d.paid_on, d.draft_no
"""  # noqa: S608 (constant fragments)
_LIST = f"""
SELECT {DRAFT_COLUMNS} FROM drafts
 WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR expiry_date < ?2)
 ORDER BY created_at DESC, draft_no DESC LIMIT ?3
"""  # noqa: S608 (constant fragments)
_PRESENTMENT = (
    "SELECT result, reason, msg_id FROM draft_presentments WHERE agent_bank = ? AND prsntmt_id = ?"
)
_INSERT_PRESENTMENT = """
INSERT INTO draft_presentments (agent_bank, prsntmt_id, draft_no, result, reason, msg_id,
                                settle_amount_fen, holder_acct, holder_name, received_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""


class SqliteDrafts:
    """The draft register's methods of :class:`~gateway.journal.sqlite.SqliteStore`."""

    node: str

    if TYPE_CHECKING:

        async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

        async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

    # -- the request side ---------------------------------------------------
    async def open_draft(self, request: NewRequest, draft: NewDraft) -> DraftOpenOutcome:
        fen = check_new_draft(request, draft)
        received = to_micros(request.received_at)
        limit = request.daily_limit
        day = (limit.day if limit else request.received_at.astimezone(SHANGHAI).date()).isoformat()
        cap = schema.to_fen(limit.cap) if limit else None
        release = None if draft.release_at is None else to_micros(draft.release_at)
        node = self.node

        def write(conn: sqlite3.Connection) -> DraftOpenOutcome:
            row = conn.execute(schema.FIND_REQUEST, (request.corp_id, request.msg_id)).fetchone()
            if row is not None:
                found = _for_request(conn, request.corp_id, request.msg_id)
                return DraftOpenOutcome(False, schema.request_record(row), found)
            if cap is not None and fen > cap:
                return DraftOpenOutcome(False, None, None, over_limit=True)
            total = conn.execute(
                schema.ADD_DAILY_TOTAL,
                {"corp": request.corp_id, "oper": request.oper_id, "day": day, "fen": fen,
                 "cap": cap},
            ).fetchone()  # fmt: skip
            if total is None:
                return DraftOpenOutcome(False, None, None, over_limit=True)
            (seq,) = conn.execute(
                "INSERT INTO sequences (name, value) VALUES (?, 1) ON CONFLICT (name)"
                " DO UPDATE SET value = value + 1 RETURNING value",
                (DRAFT_SEQUENCE,),
            ).fetchone()
            draft_no = make_draft_no(draft.participant, int(seq))
            record = _insert_request(conn, request, node)
            conn.execute(
                _INSERT_DRAFT,
                (draft_no, request.corp_id, request.msg_id, draft.scope.value, fen,
                 draft.payer_acct, draft.payer_name, draft.payee_name, draft.purpose,
                 draft.issue_date.isoformat(), draft.expiry_date.isoformat(), draft.code_key,
                 release, received),
            )  # fmt: skip
            conn.execute(_STEP, (draft_no, DraftState.PENDING.value, received, None, None))
            return DraftOpenOutcome(True, record, _draft(conn, draft_no))

        return await self._write(write)

    async def open_refund(self, request: NewRequest, draft_no: str) -> RefundOutcome:
        check_bare(request)
        received = to_micros(request.received_at)
        node = self.node

        def write(conn: sqlite3.Connection) -> RefundOutcome:
            row = conn.execute(schema.FIND_REQUEST, (request.corp_id, request.msg_id)).fetchone()
            if row is not None:
                found = _for_request(conn, request.corp_id, request.msg_id)
                return RefundOutcome(False, schema.request_record(row), found)
            current = _draft(conn, draft_no)
            if current is None:
                return RefundOutcome(False, None, None, RefundRefusal.UNKNOWN)
            if current.corp_id != request.corp_id:
                return RefundOutcome(False, None, None, RefundRefusal.NOT_YOURS)
            if not refundable(current.entry):
                return RefundOutcome(False, None, current, RefundRefusal.NOT_ISSUED)
            after = next_state(current.state, DraftEvent.REFUND_REQUEST)
            record = _insert_request(conn, request, node)
            conn.execute(
                "INSERT INTO draft_refunds (corp_id, msg_id, draft_no, attempt)"
                " SELECT ?1, ?2, ?3, coalesce(max(attempt), 0) + 1 FROM draft_refunds"
                " WHERE draft_no = ?3",
                (request.corp_id, request.msg_id, draft_no),
            )
            _move(conn, draft_no, after, received)
            return RefundOutcome(True, record, _draft(conn, draft_no))

        return await self._write(write)

    async def draft_for_request(self, corp_id: str, msg_id: str) -> DraftRecord | None:
        return await self._read(lambda conn: _for_request(conn, corp_id, msg_id))

    async def find_draft(self, draft_no: str) -> DraftRecord | None:
        return await self._read(lambda conn: _draft(conn, draft_no))

    # -- the INTRA side -----------------------------------------------------
    async def drafts_needing_message(
        self, work_date: date, now: datetime, limit: int
    ) -> list[DraftOutboundNeed]:
        params = (schema.date_text(work_date), to_micros(now), max(limit, 0))

        def read(conn: sqlite3.Connection) -> list[DraftOutboundNeed]:
            return [
                DraftOutboundNeed(
                    DraftMessage(r["need"]), int(r["attempt"]), draft_of(r, _DECODING)
                )
                for r in _named(conn, _NEEDS, params)
            ]

        return await self._read(read)

    async def add_draft_message(
        self, draft_no: str, kind: DraftMessage, attempt: int, outbound: NewOutbound
    ) -> bool:
        check_message(kind, attempt, outbound)

        def write(conn: sqlite3.Connection) -> bool:
            known = conn.execute("SELECT 1 FROM drafts WHERE draft_no = ?", (draft_no,))
            if known.fetchone() is None:
                raise KeyError(draft_no)
            taken = conn.execute(
                "SELECT 1 FROM draft_messages WHERE draft_no = ? AND kind = ? AND attempt = ?",
                (draft_no, kind.value, attempt),
            ).fetchone()
            if taken is not None:
                return False
            _insert_outbound(conn, outbound)
            conn.execute(
                "INSERT INTO draft_messages (msg_id, draft_no, kind, attempt) VALUES (?, ?, ?, ?)",
                (outbound.msg_id, draft_no, kind.value, attempt),
            )
            return True

        return await self._write(write)

    async def apply_draft_status(
        self,
        msg_id: str,
        status: str,
        reason_code: str | None,
        reason_text: str | None,
        at: datetime,
    ) -> DraftStatusResult | None:
        check_status(status)
        when = to_micros(at)

        def write(conn: sqlite3.Connection) -> DraftStatusResult | None:
            row = conn.execute(
                "SELECT draft_no, kind, status FROM draft_messages WHERE msg_id = ?", (msg_id,)
            ).fetchone()
            if row is None or row[2] is not None:
                return None
            draft_no, kind = str(row[0]), DraftMessage(row[1])
            conn.execute(  # a ccms.900 implies the ccms.990: the outbox stops re-sending
                "UPDATE outbound SET state = 'ACKED', acked_at = ? WHERE msg_id = ?"
                " AND state != 'ACKED'",
                (when, msg_id),
            )
            conn.execute(
                "UPDATE draft_messages SET status = ?, status_at = ? WHERE msg_id = ?",
                (status, when, msg_id),
            )
            current = _draft(conn, draft_no, history=False)
            assert current is not None  # noqa: S101 - draft_messages.draft_no is a foreign key
            try:
                change = status_change(current, kind, status, reason_code, reason_text)
            except TransitionError:
                return None  # recorded, but it moves nothing (the register's table says so)
            _move(conn, draft_no, change.after, when, change.reason_code, change.reason_text)
            if change.notify:
                _notify(
                    conn, current.corp_id, NoticeKind.DRAFT, when, orig_msg_id=current.msg_id,
                    draft_no=draft_no, state=change.after.value,
                    amount_fen=_opt_fen(change.notice_amount), reason_code=change.notice_reason,
                )  # fmt: skip
            after = _draft(conn, draft_no)
            assert after is not None  # noqa: S101 - just written
            return DraftStatusResult(after, change.before, change.after, kind)

        return await self._write(write)

    async def record_presentment(
        self,
        presentment: Presentment,
        answer: Answer,
        expected: DraftState | None,
        outbound: NewOutbound,
        work_date: date,
        at: datetime,
    ) -> PresentmentOutcome:
        if outbound.item_ids:
            raise ValueError("a presentment answer carries no items")
        paid = paid_state(expected) if answer.accepted else None
        when = to_micros(at)
        settle = schema.to_fen(presentment.settle_amount)
        p = presentment

        def write(conn: sqlite3.Connection) -> PresentmentOutcome:
            first = conn.execute(_PRESENTMENT, (p.agent_bank, p.prsntmt_id)).fetchone()
            if first is not None:
                return PresentmentOutcome(
                    PresentmentVerdict.EXISTING, answer_of(first[0], first[1]), str(first[2])
                )
            row = conn.execute("SELECT state FROM drafts WHERE draft_no = ?", (p.draft_no,))
            found = row.fetchone()
            if (None if found is None else DraftState(found[0])) is not expected:
                return PresentmentOutcome(PresentmentVerdict.STALE)
            _insert_outbound(conn, outbound)
            conn.execute(
                _INSERT_PRESENTMENT,
                (p.agent_bank, p.prsntmt_id, p.draft_no, answer.result.value,
                 None if answer.reason is None else answer.reason.value, outbound.msg_id, settle,
                 p.holder_acct, p.holder_name, when),
            )  # fmt: skip
            if paid is not None:
                conn.execute(
                    "UPDATE drafts SET paid_on = ?, settle_amount_fen = ? WHERE draft_no = ?",
                    (schema.date_text(work_date), settle, p.draft_no),
                )
                _move(conn, p.draft_no, paid, when)
                corp_id, msg_id = conn.execute(
                    "SELECT corp_id, msg_id FROM drafts WHERE draft_no = ?", (p.draft_no,)
                ).fetchone()
                _notify(
                    conn, corp_id, NoticeKind.DRAFT, when, orig_msg_id=msg_id,
                    draft_no=p.draft_no, state=paid.value, amount_fen=settle,
                )  # fmt: skip
            return PresentmentOutcome(PresentmentVerdict.RECORDED)

        return await self._write(write)

    # -- operations views (read only) ---------------------------------------
    async def list_drafts(
        self, state: DraftState | None, expiring_before: date | None, limit: int
    ) -> list[DraftRecord]:
        params = (
            None if state is None else state.value,
            None if expiring_before is None else schema.date_text(expiring_before),
            max(limit, 0),
        )
        return await self._read(
            lambda conn: [draft_of(r, _DECODING) for r in _named(conn, _LIST, params)]
        )

    async def outstanding_drafts(self) -> tuple[int, Decimal]:
        def read(conn: sqlite3.Connection) -> tuple[int, Decimal]:
            count, fen = conn.execute(
                "SELECT count(*), coalesce(sum(amount_fen), 0) FROM drafts WHERE state = 'ISSUED'"
            ).fetchone()
            return int(count), schema.from_fen(int(fen))

        return await self._read(read)

    async def settle_list(self, work_date: date) -> list[DraftRecord]:
        day = schema.date_text(work_date)
        return await self._read(
            lambda conn: [draft_of(r, _DECODING) for r in _named(conn, _SETTLE_LIST, (day,))]
        )

    async def draft_counts(self) -> dict[DraftState, tuple[int, Decimal]]:
        def read(conn: sqlite3.Connection) -> dict[DraftState, tuple[int, Decimal]]:
            rows = conn.execute(
                "SELECT state, count(*), sum(amount_fen) FROM drafts GROUP BY state"
            ).fetchall()
            counts = dict.fromkeys(DraftState, (0, schema.from_fen(0)))
            for state, count, fen in rows:
                counts[DraftState(state)] = (int(count), schema.from_fen(int(fen)))
            return counts

        return await self._read(read)

    async def unsettled_paid(self, paid_before: date) -> int:
        day = schema.date_text(paid_before)
        return await self._read(
            lambda conn: int(
                conn.execute(
                    "SELECT count(*) FROM drafts WHERE state = 'PAID' AND paid_on < ?", (day,)
                ).fetchone()[0]
            )
        )


# -- helpers (on the writer or a reader thread, inside its transaction) ------------------


def _draft(conn: sqlite3.Connection, draft_no: str, *, history: bool = True) -> DraftRecord | None:
    found = _named(conn, _DRAFT, (draft_no,))
    if not found:
        return None
    steps = [step_of(r, _DECODING) for r in _named(conn, _STEPS, (draft_no,))] if history else []
    return draft_of(found[0], _DECODING, steps)


def _for_request(conn: sqlite3.Connection, corp_id: str, msg_id: str) -> DraftRecord | None:
    found = _named(conn, _FOR_REQUEST, (corp_id, msg_id))
    return None if not found else _draft(conn, str(found[0]["draft_no"]))


def _move(
    conn: sqlite3.Connection,
    draft_no: str,
    state: DraftState,
    when: int,
    reason_code: str | None = None,
    reason_text: str | None = None,
) -> None:
    """The draft's new state and its step (a step that keeps the state records a reason)."""
    conn.execute("UPDATE drafts SET state = ? WHERE draft_no = ?", (state.value, draft_no))
    conn.execute(_STEP, (draft_no, state.value, when, reason_code, reason_text))


def _opt_fen(amount: Decimal | None) -> int | None:
    return None if amount is None else schema.to_fen(amount)


__all__ = ["SqliteDrafts"]
