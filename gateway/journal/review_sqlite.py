"""The four-eyes review on the SQLite journal (mixed into ``SqliteStore``).

docs/foreign-currency.md §5; the records and conditions are
:mod:`gateway.journal.review_records`.  A step runs on the writer thread in one
transaction: the operator action, the item's transition (in the audit chain)
and, when the review ends, the item's new state and route and, for a
rejection, its STATUS notification.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from gateway.journal import ops_queries as q
from gateway.journal.correspondence_sqlite import notify_status
from gateway.journal.ops_records import MessageHit
from gateway.journal.ops_sqlite import CODEC
from gateway.journal.review_records import (
    APPROVALS_SQL,
    REVIEW_ALL_SQL,
    REVIEW_LIST_SQL,
    ReviewOutcome,
    ReviewStep,
    step_is_current,
)
from gateway.journal.schema import date_text, opt_micros, to_micros
from gateway.model import State

T = TypeVar("T")


class SqliteReview:
    """``review list`` and the review steps."""

    if TYPE_CHECKING:

        async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

        async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

    async def review_list(self, *, everything: bool, limit: int) -> list[MessageHit]:
        sql = REVIEW_ALL_SQL if everything else REVIEW_LIST_SQL
        rows = await self._read(lambda conn: conn.execute(sql, (limit,)).fetchall())
        return [q.hit(r, CODEC) for r in rows]

    async def review_approvals(self, tx_id: str) -> list[str]:
        rows = await self._read(lambda conn: conn.execute(APPROVALS_SQL, (tx_id,)).fetchall())
        return [str(r[0]) for r in rows]

    async def review_step(self, step: ReviewStep) -> ReviewOutcome:
        when = to_micros(step.action.at)
        action = q.action_args(step.action, CODEC, int)

        def write(conn: sqlite3.Connection) -> ReviewOutcome:
            row = conn.execute(
                "SELECT id, state FROM items WHERE tx_id = ?", (step.tx_id,)
            ).fetchone()
            if row is None:
                return ReviewOutcome.UNKNOWN
            item_id, state = row
            if state != State.REVIEW.value:
                return ReviewOutcome.NOT_IN_REVIEW
            approvals = [str(r[0]) for r in conn.execute(APPROVALS_SQL, (step.tx_id,))]
            refused = step_is_current(step, approvals)
            if refused is not None:
                return refused
            conn.execute(q.INSERT_ACTION, action)
            if step.state is not State.REVIEW:
                conn.execute(
                    "UPDATE items SET state = ?, engine = coalesce(?, engine),"
                    " receiver = coalesce(?, receiver),"
                    " payee_bank_code = coalesce(?, payee_bank_code),"
                    " work_date = coalesce(?, work_date), release_at = ?, reason_code = ?,"
                    " reason_text = ?, queued_at = ?, updated_at = ? WHERE id = ?",
                    (
                        step.state.value,
                        None if step.engine is None else step.engine.value,
                        step.receiver,
                        step.payee_bank_code,
                        None if step.work_date is None else date_text(step.work_date),
                        opt_micros(step.release_at),
                        step.reason_code,
                        step.reason_text,
                        when if step.state is State.QUEUED else None,
                        when,
                        item_id,
                    ),
                )
            conn.execute(
                "INSERT INTO transitions (item_id, state, at, detail) VALUES (?, ?, ?, ?)",
                (item_id, step.state.value, when, step.detail),
            )
            if step.state is State.REJECTED:
                notify_status(conn, [item_id], when)
            return ReviewOutcome.DONE

        return await self._write(write)
