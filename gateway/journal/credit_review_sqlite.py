"""SWIFT credits held by screening, on the SQLite journal (:mod:`.credit_review_sql`).

Mixed into :class:`~gateway.journal.sqlite.SqliteStore`; every step is one
function on the group-commit writer, so its conditions, the state change and
its operator action are one transaction (docs/foreign-currency.md §5).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from gateway.journal import credit_review_sql as sql
from gateway.journal import ops_queries as q
from gateway.journal.credit_review_sql import CreditReviewOutcome
from gateway.journal.ops_records import OperatorAction
from gateway.journal.ops_sqlite import CODEC
from gateway.journal.records import CreditReview, CreditState
from gateway.journal.review_records import APPROVALS_SQL
from gateway.journal.schema import from_micros, to_micros

T = TypeVar("T")


class SqliteCreditReview:
    """The credit review methods of :class:`~gateway.journal.sqlite.SqliteStore`."""

    if TYPE_CHECKING:

        async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

        async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

    async def approve_credit_review(
        self, gw_ref: str, action: OperatorAction, *, seen: tuple[str, ...]
    ) -> CreditReviewOutcome:
        sql.check_action("approve", gw_ref, action)
        return await self._step(gw_ref, action, seen, None, ())

    async def release_credit_review(
        self, gw_ref: str, action: OperatorAction, *, seen: tuple[str, ...]
    ) -> CreditReviewOutcome:
        sql.check_action("release", gw_ref, action)
        when = to_micros(action.at)
        return await self._step(gw_ref, action, seen, sql.RELEASE, (when, when, gw_ref))

    async def reject_credit_review(
        self, gw_ref: str, action: OperatorAction, *, seen: tuple[str, ...]
    ) -> CreditReviewOutcome:
        sql.check_action("reject", gw_ref, action)
        return await self._step(gw_ref, action, seen, sql.REJECT, (to_micros(action.at), gw_ref))

    async def _step(
        self,
        gw_ref: str,
        action: OperatorAction,
        seen: tuple[str, ...],
        update: str | None,
        params: tuple[object, ...],
    ) -> CreditReviewOutcome:
        args = q.action_args(action, CODEC, int)

        def write(conn: sqlite3.Connection) -> CreditReviewOutcome:
            row = conn.execute(sql.STATE, (gw_ref,)).fetchone()
            approvals = [str(r[0]) for r in conn.execute(APPROVALS_SQL, (gw_ref,))]
            refused = sql.refusal(action, None if row is None else row[0], approvals, seen)
            if refused is not None:
                return refused
            if update is not None:
                conn.execute(update, params).fetchone()  # in REVIEW: checked just above
            conn.execute(q.INSERT_ACTION, args)
            return CreditReviewOutcome.DONE

        return await self._write(write)

    async def suspend_credit_unasked(self, gw_ref: str, at: datetime) -> bool:
        params = (to_micros(at), gw_ref)
        return await self._write(
            lambda conn: conn.execute(sql.SUSPEND_UNASKED, params).fetchone() is not None
        )

    async def pending_credit_reviews(self, limit: int) -> list[CreditReview]:
        def read(conn: sqlite3.Connection) -> list[CreditReview]:
            rows = conn.execute(sql.PENDING, (max(limit, 0),)).fetchall()
            return [CreditReview(ref, from_micros(at), found) for ref, at, found in rows]

        return await self._read(read)

    async def credit_reviews_ever(self, limit: int) -> list[CreditReview]:
        def read(conn: sqlite3.Connection) -> list[CreditReview]:
            rows = conn.execute(sql.EVER, (max(limit, 0),)).fetchall()
            return [
                CreditReview(ref, from_micros(at), found, CreditState(state))
                for ref, at, found, state in rows
            ]

        return await self._read(read)
