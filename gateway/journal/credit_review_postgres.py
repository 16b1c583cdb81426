"""SWIFT credits held by screening, on the PostgreSQL journal (:mod:`.credit_review_sql`).

Mixed into :class:`~gateway.journal.postgres.PostgresStore`; each step runs
in one transaction with its operator action (docs/foreign-currency.md §5).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Final

import asyncpg

from gateway.journal import credit_review_sql as sql
from gateway.journal import ops_queries as q
from gateway.journal import postgres_schema as pg
from gateway.journal.credit_review_sql import CreditReviewOutcome
from gateway.journal.ops_postgres import CODEC
from gateway.journal.ops_records import OperatorAction
from gateway.journal.records import CreditReview, CreditState
from gateway.journal.review_records import APPROVALS_SQL

Conn = asyncpg.pool.PoolConnectionProxy

_RELEASE: Final = q.numbered(sql.RELEASE)
_REJECT: Final = q.numbered(sql.REJECT)
_SUSPEND_UNASKED: Final = q.numbered(sql.SUSPEND_UNASKED)
_LOCK: Final = q.numbered(sql.STATE) + " FOR NO KEY UPDATE"
_APPROVALS: Final = q.numbered(APPROVALS_SQL)
_PENDING: Final = q.numbered(sql.PENDING)
_EVER: Final = q.numbered(sql.EVER)
_ACTION: Final = q.numbered(q.INSERT_ACTION)


class PostgresCreditReview:
    """The credit review methods of :class:`~gateway.journal.postgres.PostgresStore`."""

    if TYPE_CHECKING:
        _conn: Callable[[], contextlib.AbstractAsyncContextManager[Conn]]
        _commit: Callable[[], contextlib.AbstractAsyncContextManager[Conn]]

    async def approve_credit_review(
        self, gw_ref: str, action: OperatorAction, *, seen: tuple[str, ...]
    ) -> CreditReviewOutcome:
        sql.check_action("approve", gw_ref, action)
        return await self._step(gw_ref, action, seen, None, ())

    async def release_credit_review(
        self, gw_ref: str, action: OperatorAction, *, seen: tuple[str, ...]
    ) -> CreditReviewOutcome:
        sql.check_action("release", gw_ref, action)
        when = pg.aware(action.at)
        return await self._step(gw_ref, action, seen, _RELEASE, (when, when, gw_ref))

    async def reject_credit_review(
        self, gw_ref: str, action: OperatorAction, *, seen: tuple[str, ...]
    ) -> CreditReviewOutcome:
        sql.check_action("reject", gw_ref, action)
        return await self._step(gw_ref, action, seen, _REJECT, (pg.aware(action.at), gw_ref))

    async def _step(
        self,
        gw_ref: str,
        action: OperatorAction,
        seen: tuple[str, ...],
        update: str | None,
        params: tuple[object, ...],
    ) -> CreditReviewOutcome:
        """The row lock makes concurrent steps on one credit (two nodes) take turns; the
        approvals are read after it, so each sees the other's committed action."""
        async with self._commit() as conn:
            state = await conn.fetchval(_LOCK, gw_ref)
            approvals = [str(r[0]) for r in await conn.fetch(_APPROVALS, gw_ref)]
            refused = sql.refusal(action, state, approvals, seen)
            if refused is not None:
                return refused
            if update is not None:
                await conn.fetchval(update, *params)  # in REVIEW: checked under the lock
            await conn.execute(_ACTION, *q.action_args(action, CODEC, bool))
            return CreditReviewOutcome.DONE

    async def suspend_credit_unasked(self, gw_ref: str, at: datetime) -> bool:
        async with self._commit() as conn:
            return await conn.fetchval(_SUSPEND_UNASKED, pg.aware(at), gw_ref) is not None

    async def pending_credit_reviews(self, limit: int) -> list[CreditReview]:
        async with self._conn() as conn:
            rows = await conn.fetch(_PENDING, max(limit, 0))
        return [
            CreditReview(r["gw_ref"], pg.shanghai(r["received_at"]), r["screening"]) for r in rows
        ]

    async def credit_reviews_ever(self, limit: int) -> list[CreditReview]:
        async with self._conn() as conn:
            rows = await conn.fetch(_EVER, max(limit, 0))
        return [
            CreditReview(
                r["gw_ref"], pg.shanghai(r["received_at"]), r["screening"], CreditState(r["state"])
            )
            for r in rows
        ]
