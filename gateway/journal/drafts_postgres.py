"""The PostgreSQL journal's draft register (the ``DraftStore`` protocol, docs/bank-drafts.md).

Mixed into :class:`~gateway.journal.postgres.PostgresStore`, with the SQLite
journal's semantics (``drafts_sqlite.py`` is the reference).  Every change is
one transaction (``_commit``), with its step rows, its DRAFT notification and
its outbound message.

Several nodes, one database:

- **DraftNo**: the ``draft`` row of ``sequences`` is incremented inside
  ``open_draft``'s transaction (as ``next_sequence`` does), so a number is
  handed to one node only and a rolled-back request gives its number back.
- **Dedupe**: the DRAFT / DRAFTRFND request row is inserted first, ``ON
  CONFLICT DO NOTHING`` on (CorpId, MsgId), so a loser adds nothing to the
  daily total and answers as a replay.
- **One answer per presentment, one ACCP per draft**: ``record_presentment``
  locks the draft row (``SELECT ... FOR UPDATE``) before it compares the state
  with ``expected``, so of two presentments of one draft on two nodes the
  second waits, then finds it PAID (STALE: the caller checks again and
  answers PD).  The answer's row is inserted ``ON CONFLICT DO NOTHING`` on
  (AgentBank, PrsntmtId); a loser rolls back and returns the winner's answer.
  The partial unique index on ACCP rows is the last line of defence.
- **Draft messages and ccms.900s** lock the draft row, or the
  ``draft_messages`` row, first: each (kind, attempt) is journaled once and
  each status applied once, whichever node gets there first.
- Notifications take the NTFY ordering lock of the corporate as their last
  lock (``correspondence_postgres.lock_notices``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Final

import asyncpg

from gateway.clock import SHANGHAI
from gateway.drafts.numbers import make_draft_no
from gateway.drafts.records import Answer, DraftState, Presentment
from gateway.drafts.register import DraftEvent, TransitionError, next_state, refundable
from gateway.journal import postgres_schema as pg
from gateway.journal import schema
from gateway.journal.correspondence_postgres import (
    _insert_outbound,
    _insert_request,
    _notify,
    lock_notices,
)
from gateway.journal.correspondence_rows import Decoding
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
from gateway.journal.records import AcceptOutcome, NewOutbound, NewRequest, RequestRecord
from gateway.model import NoticeKind

Conn = asyncpg.pool.PoolConnectionProxy

_DECODING: Final = Decoding(instant=pg.shanghai, day=lambda day: day)

_DRAFT = f"SELECT {DRAFT_COLUMNS} FROM drafts WHERE draft_no = $1"  # noqa: S608 (constant)
_STEPS = f"SELECT {STEP_COLUMNS} FROM draft_steps WHERE draft_no = $1 ORDER BY id"  # noqa: S608
_LOCK_DRAFT = "SELECT state, corp_id, msg_id FROM drafts WHERE draft_no = $1 FOR UPDATE"
_FOR_REQUEST = f"""
SELECT {DRAFT_COLUMNS} FROM drafts WHERE corp_id = $1 AND msg_id = $2
UNION ALL
SELECT {DRAFT_COLUMNS_D} FROM draft_refunds f JOIN drafts d ON d.draft_no = f.draft_no
 WHERE f.corp_id = $1 AND f.msg_id = $2
"""  # noqa: S608 (constant fragments)
_ADD_TOTAL = """
INSERT INTO daily_totals (corp_id, oper_id, day, total_fen)
SELECT $1, $2, $3, $4 WHERE $5::bigint IS NULL OR $4 <= $5::bigint
ON CONFLICT (corp_id, oper_id, day) DO UPDATE
   SET total_fen = daily_totals.total_fen + excluded.total_fen
 WHERE $5::bigint IS NULL OR daily_totals.total_fen + excluded.total_fen <= $5::bigint
RETURNING total_fen
"""
"""``postgres_schema.ACCEPT``'s daily total for one amount (docs/protocol.md §6)."""
_NEXT_SEQUENCE = """
INSERT INTO sequences (name, value) VALUES ($1, 1)
    ON CONFLICT (name) DO UPDATE SET value = sequences.value + 1
RETURNING value
"""
_INSERT_DRAFT = """
INSERT INTO drafts (draft_no, corp_id, msg_id, scope, amount_fen, payer_acct, payer_name,
                    payee_name, purpose, issue_date, expiry_date, code_key, state, release_at,
                    created_at, node)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'PENDING', $13, $14, $15)
"""
_STEP = (
    "INSERT INTO draft_steps (draft_no, state, at, reason_code, reason_text)"
    " VALUES ($1, $2, $3, $4, $5)"
)
_NEEDS = f"""
SELECT 'issue'::text AS need, 1 AS attempt, {DRAFT_COLUMNS_D} FROM drafts d
 WHERE d.state = 'PENDING' AND d.issue_date <= $1 AND (d.release_at IS NULL OR d.release_at <= $2)
   AND NOT EXISTS (SELECT 1 FROM draft_messages m WHERE m.draft_no = d.draft_no
                      AND m.kind = 'issue')
UNION ALL
SELECT 'settle', 1, {DRAFT_COLUMNS_D} FROM drafts d
 WHERE d.state = 'PAID' AND d.paid_on < $1
   AND NOT EXISTS (SELECT 1 FROM draft_messages m WHERE m.draft_no = d.draft_no
                      AND m.kind = 'settle')
UNION ALL
SELECT 'refund', f.attempt, {DRAFT_COLUMNS_D} FROM drafts d
  JOIN draft_refunds f ON f.draft_no = d.draft_no
 WHERE d.state = 'REFUNDING'
   AND f.attempt = (SELECT max(g.attempt) FROM draft_refunds g WHERE g.draft_no = d.draft_no)
   AND NOT EXISTS (SELECT 1 FROM draft_messages m WHERE m.draft_no = d.draft_no
                      AND m.kind = 'refund' AND m.attempt = f.attempt)
 ORDER BY created_at, draft_no LIMIT $3
"""  # noqa: S608 (constant fragments)
_SETTLE_LIST = f"""
SELECT {DRAFT_COLUMNS_D} FROM drafts d
 WHERE EXISTS (SELECT 1 FROM draft_messages m JOIN outbound o ON o.msg_id = m.msg_id
                WHERE m.draft_no = d.draft_no AND m.kind = 'settle' AND o.work_date = $1)
    OR (d.state = 'PAID' AND d.paid_on < $1
        AND NOT EXISTS (SELECT 1 FROM draft_messages m WHERE m.draft_no = d.draft_no
                           AND m.kind = 'settle'))
 ORDER BY d.paid_on, d.draft_no
"""  # noqa: S608 (constant fragments)
_LIST = f"""
SELECT {DRAFT_COLUMNS} FROM drafts
 WHERE ($1::text IS NULL OR state = $1) AND ($2::date IS NULL OR expiry_date < $2)
 ORDER BY created_at DESC, draft_no DESC LIMIT $3
"""  # noqa: S608 (constant fragments)
_PRESENTMENT = (
    "SELECT result, reason, msg_id FROM draft_presentments"
    " WHERE agent_bank = $1 AND prsntmt_id = $2"
)
_INSERT_PRESENTMENT = """
INSERT INTO draft_presentments (agent_bank, prsntmt_id, draft_no, result, reason, msg_id,
                                settle_amount_fen, holder_acct, holder_name, received_at, node)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (agent_bank, prsntmt_id) DO NOTHING
RETURNING msg_id
"""


class _Undo(Exception):
    """Raised inside a transaction to roll it back (over the limit, a lost race)."""


class PostgresDrafts:
    """The draft register's methods of :class:`~gateway.journal.postgres.PostgresStore`."""

    node: str

    if TYPE_CHECKING:
        _conn: Callable[[], contextlib.AbstractAsyncContextManager[Conn]]
        _commit: Callable[[], contextlib.AbstractAsyncContextManager[Conn]]

    # -- the request side ---------------------------------------------------
    async def open_draft(self, request: NewRequest, draft: NewDraft) -> DraftOpenOutcome:
        fen = check_new_draft(request, draft)
        received = pg.aware(request.received_at)
        limit = request.daily_limit
        day = limit.day if limit else received.astimezone(SHANGHAI).date()
        cap = None if limit is None else pg.fen(limit.cap)
        release = None if draft.release_at is None else pg.aware(draft.release_at)
        draft_no = ""
        try:
            async with self._commit() as conn:
                inserted = await _insert_request(conn, request, self.node)
                if isinstance(inserted, RequestRecord):
                    total = await conn.fetchval(
                        _ADD_TOTAL, request.corp_id, request.oper_id, day, fen, cap
                    )
                    if total is None:
                        raise _Undo
                    seq = await conn.fetchval(_NEXT_SEQUENCE, DRAFT_SEQUENCE)
                    draft_no = make_draft_no(draft.participant, int(seq))
                    await conn.execute(
                        _INSERT_DRAFT,
                        draft_no, request.corp_id, request.msg_id, draft.scope.value, fen,
                        draft.payer_acct, draft.payer_name, draft.payee_name, draft.purpose,
                        draft.issue_date, draft.expiry_date, draft.code_key, release, received,
                        self.node,
                    )  # fmt: skip
                    await conn.execute(
                        _STEP, draft_no, DraftState.PENDING.value, received, None, None
                    )
        except _Undo:
            return DraftOpenOutcome(False, None, None, over_limit=True)
        async with self._conn() as conn:
            if isinstance(inserted, AcceptOutcome):
                found = await _for_request(conn, request.corp_id, request.msg_id)
                return DraftOpenOutcome(False, inserted.record, found)
            return DraftOpenOutcome(True, inserted, await _draft(conn, draft_no))

    async def open_refund(self, request: NewRequest, draft_no: str) -> RefundOutcome:
        check_bare(request)
        received = pg.aware(request.received_at)
        async with self._commit() as conn:
            row = await conn.fetchrow(pg.FIND_REQUEST, request.corp_id, request.msg_id)
            if row is not None:
                found = await _for_request(conn, request.corp_id, request.msg_id)
                return RefundOutcome(False, pg.request_record(row), found)
            locked = await conn.fetchrow(_LOCK_DRAFT, draft_no)
            if locked is None:
                return RefundOutcome(False, None, None, RefundRefusal.UNKNOWN)
            if locked["corp_id"] != request.corp_id:
                return RefundOutcome(False, None, None, RefundRefusal.NOT_YOURS)
            current = await _draft(conn, draft_no)
            assert current is not None  # noqa: S101 - locked above
            if not refundable(current.entry):
                return RefundOutcome(False, None, current, RefundRefusal.NOT_ISSUED)
            after = next_state(current.state, DraftEvent.REFUND_REQUEST)
            inserted = await _insert_request(conn, request, self.node)
            if isinstance(inserted, AcceptOutcome):  # another node journaled it meanwhile
                found = await _for_request(conn, request.corp_id, request.msg_id)
                return RefundOutcome(False, inserted.record, found)
            await conn.execute(
                "INSERT INTO draft_refunds (corp_id, msg_id, draft_no, attempt)"
                " SELECT $1, $2, $3, coalesce(max(attempt), 0) + 1 FROM draft_refunds"
                " WHERE draft_no = $3",
                request.corp_id, request.msg_id, draft_no,
            )  # fmt: skip
            await _move(conn, draft_no, after, received)
            return RefundOutcome(True, inserted, await _draft(conn, draft_no))

    async def draft_for_request(self, corp_id: str, msg_id: str) -> DraftRecord | None:
        async with self._conn() as conn, conn.transaction(readonly=True):
            return await _for_request(conn, corp_id, msg_id)

    async def find_draft(self, draft_no: str) -> DraftRecord | None:
        async with self._conn() as conn, conn.transaction(readonly=True):
            return await _draft(conn, draft_no)

    # -- the INTRA side -----------------------------------------------------
    async def drafts_needing_message(
        self, work_date: date, now: datetime, limit: int
    ) -> list[DraftOutboundNeed]:
        async with self._conn() as conn:
            rows = await conn.fetch(_NEEDS, pg.work_day(work_date), pg.aware(now), max(limit, 0))
        return [
            DraftOutboundNeed(DraftMessage(r["need"]), int(r["attempt"]), draft_of(r, _DECODING))
            for r in rows
        ]

    async def add_draft_message(
        self, draft_no: str, kind: DraftMessage, attempt: int, outbound: NewOutbound
    ) -> bool:
        check_message(kind, attempt, outbound)
        async with self._commit() as conn:
            if await conn.fetchrow(_LOCK_DRAFT, draft_no) is None:
                raise KeyError(draft_no)
            taken = await conn.fetchval(
                "SELECT 1 FROM draft_messages WHERE draft_no = $1 AND kind = $2 AND attempt = $3",
                draft_no, kind.value, attempt,
            )  # fmt: skip
            if taken is not None:
                return False
            await _insert_outbound(conn, outbound, self.node)
            await conn.execute(
                "INSERT INTO draft_messages (msg_id, draft_no, kind, attempt)"
                " VALUES ($1, $2, $3, $4)",
                outbound.msg_id, draft_no, kind.value, attempt,
            )  # fmt: skip
            return True

    async def apply_draft_status(
        self,
        msg_id: str,
        status: str,
        reason_code: str | None,
        reason_text: str | None,
        at: datetime,
    ) -> DraftStatusResult | None:
        check_status(status)
        when = pg.aware(at)
        async with self._commit() as conn:
            row = await conn.fetchrow(
                "SELECT draft_no, kind, status FROM draft_messages WHERE msg_id = $1 FOR UPDATE",
                msg_id,
            )
            if row is None or row["status"] is not None:
                return None
            draft_no, kind = str(row["draft_no"]), DraftMessage(row["kind"])
            await conn.execute(  # a ccms.900 implies the ccms.990: the outbox stops re-sending
                "UPDATE outbound SET state = 'ACKED', acked_at = $2 WHERE msg_id = $1"
                " AND state <> 'ACKED'",
                msg_id, when,
            )  # fmt: skip
            await conn.execute(
                "UPDATE draft_messages SET status = $2, status_at = $3 WHERE msg_id = $1",
                msg_id, status, when,
            )  # fmt: skip
            await conn.fetchrow(_LOCK_DRAFT, draft_no)
            current = await _draft(conn, draft_no, history=False)
            assert current is not None  # noqa: S101 - draft_messages.draft_no is a foreign key
            try:
                change = status_change(current, kind, status, reason_code, reason_text)
            except TransitionError:
                return None  # recorded, but it moves nothing (the register's table says so)
            await _move(conn, draft_no, change.after, when, change.reason_code, change.reason_text)
            if change.notify:
                await lock_notices(conn, [current.corp_id])
                await _notify(
                    conn, current.corp_id, NoticeKind.DRAFT, when, orig_msg_id=current.msg_id,
                    draft_no=draft_no, state=change.after.value,
                    amount_fen=None if change.notice_amount is None
                    else pg.fen(change.notice_amount),
                    reason_code=change.notice_reason,
                )  # fmt: skip
            after = await _draft(conn, draft_no)
            assert after is not None  # noqa: S101 - just written
            return DraftStatusResult(after, change.before, change.after, kind)

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
        when = pg.aware(at)
        settle = pg.fen(presentment.settle_amount)
        p = presentment
        try:
            async with self._commit() as conn:
                first = await conn.fetchrow(_PRESENTMENT, p.agent_bank, p.prsntmt_id)
                if first is not None:
                    return _existing(first)
                locked = await conn.fetchrow(_LOCK_DRAFT, p.draft_no)
                if (None if locked is None else DraftState(locked["state"])) is not expected:
                    return PresentmentOutcome(PresentmentVerdict.STALE)
                await _insert_outbound(conn, outbound, self.node)
                recorded = await conn.fetchval(
                    _INSERT_PRESENTMENT,
                    p.agent_bank, p.prsntmt_id, p.draft_no, answer.result.value,
                    None if answer.reason is None else answer.reason.value, outbound.msg_id,
                    settle, p.holder_acct, p.holder_name, when, self.node,
                )  # fmt: skip
                if recorded is None:
                    raise _Undo  # the same presentment, answered meanwhile on another node
                if paid is not None and locked is not None:
                    await conn.execute(
                        "UPDATE drafts SET paid_on = $2, settle_amount_fen = $3"
                        " WHERE draft_no = $1",
                        p.draft_no, pg.work_day(work_date), settle,
                    )  # fmt: skip
                    await _move(conn, p.draft_no, paid, when)
                    await lock_notices(conn, [locked["corp_id"]])
                    await _notify(
                        conn, locked["corp_id"], NoticeKind.DRAFT, when,
                        orig_msg_id=locked["msg_id"], draft_no=p.draft_no, state=paid.value,
                        amount_fen=settle,
                    )  # fmt: skip
                return PresentmentOutcome(PresentmentVerdict.RECORDED)
        except _Undo:
            async with self._conn() as conn:
                first = await conn.fetchrow(_PRESENTMENT, p.agent_bank, p.prsntmt_id)
            if first is None:  # pragma: no cover (the conflicting row is committed by now)
                raise RuntimeError("answered presentment vanished") from None
            return _existing(first)

    # -- operations views (read only) ---------------------------------------
    async def list_drafts(
        self, state: DraftState | None, expiring_before: date | None, limit: int
    ) -> list[DraftRecord]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                _LIST,
                None if state is None else state.value,
                None if expiring_before is None else pg.work_day(expiring_before),
                max(limit, 0),
            )
        return [draft_of(r, _DECODING) for r in rows]

    async def outstanding_drafts(self) -> tuple[int, Decimal]:
        async with self._conn() as conn:
            row = await conn.fetchrow(
                "SELECT count(*) AS n, coalesce(sum(amount_fen), 0)::bigint AS fen FROM drafts"
                " WHERE state = 'ISSUED'"
            )
        assert row is not None  # noqa: S101 - an aggregate: always one row
        return int(row["n"]), schema.from_fen(int(row["fen"]))

    async def settle_list(self, work_date: date) -> list[DraftRecord]:
        async with self._conn() as conn:
            rows = await conn.fetch(_SETTLE_LIST, pg.work_day(work_date))
        return [draft_of(r, _DECODING) for r in rows]

    async def draft_counts(self) -> dict[DraftState, tuple[int, Decimal]]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT state, count(*) AS n, sum(amount_fen)::bigint AS fen FROM drafts"
                " GROUP BY state"
            )
        counts = dict.fromkeys(DraftState, (0, schema.from_fen(0)))
        for r in rows:
            counts[DraftState(r["state"])] = (int(r["n"]), schema.from_fen(int(r["fen"])))
        return counts

    async def unsettled_paid(self, paid_before: date) -> int:
        async with self._conn() as conn:
            n = await conn.fetchval(
                "SELECT count(*) FROM drafts WHERE state = 'PAID' AND paid_on < $1",
                pg.work_day(paid_before),
            )
        return int(n)


# -- helpers (inside the caller's transaction) ------------------------------------------


async def _draft(conn: Conn, draft_no: str, *, history: bool = True) -> DraftRecord | None:
    row = await conn.fetchrow(_DRAFT, draft_no)
    if row is None:
        return None
    steps = [step_of(r, _DECODING) for r in await conn.fetch(_STEPS, draft_no)] if history else []
    return draft_of(row, _DECODING, steps)


async def _for_request(conn: Conn, corp_id: str, msg_id: str) -> DraftRecord | None:
    row = await conn.fetchrow(_FOR_REQUEST, corp_id, msg_id)
    return None if row is None else await _draft(conn, str(row["draft_no"]))


async def _move(
    conn: Conn,
    draft_no: str,
    state: DraftState,
    when: datetime,
    reason_code: str | None = None,
    reason_text: str | None = None,
) -> None:
    """The draft's new state and its step (a step that keeps the state records a reason)."""
    await conn.execute("UPDATE drafts SET state = $2 WHERE draft_no = $1", draft_no, state.value)
    await conn.execute(_STEP, draft_no, state.value, when, reason_code, reason_text)


def _existing(row: asyncpg.Record) -> PresentmentOutcome:
    return PresentmentOutcome(
        PresentmentVerdict.EXISTING, answer_of(row["result"], row["reason"]), row["msg_id"]
    )


__all__ = ["PostgresDrafts"]
