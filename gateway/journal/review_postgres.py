"""The four-eyes review on the PostgreSQL journal (mixed into ``PostgresStore``).

The same steps as SQLite (:mod:`gateway.journal.review_sqlite`): one
transaction that locks the item row first, so two reviewers on two nodes
acting at once are serialised and the second sees the first's approval
(``ReviewOutcome.CHANGED`` or ``SAME_USER``), never a double release.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

import asyncpg

from gateway.journal import ops_queries as q
from gateway.journal import postgres_schema as pg
from gateway.journal.correspondence_postgres import STATUS_NOTICES, lock_notices
from gateway.journal.ops_postgres import CODEC
from gateway.journal.ops_records import MessageHit
from gateway.journal.review_records import (
    APPROVALS_SQL,
    REVIEW_ALL_SQL,
    REVIEW_LIST_SQL,
    ReviewOutcome,
    ReviewStep,
    step_is_current,
)
from gateway.model import State

Conn = asyncpg.pool.PoolConnectionProxy

_LOCK_ITEM = """
SELECT i.id, i.state, r.corp_id FROM items i JOIN requests r ON r.id = i.request_id
 WHERE i.tx_id = $1 FOR NO KEY UPDATE OF i
"""
_END = """
UPDATE items SET state = $2, engine = coalesce($3, engine), receiver = coalesce($4, receiver),
       payee_bank_code = coalesce($5, payee_bank_code), work_date = coalesce($6, work_date),
       release_at = $7, reason_code = $8, reason_text = $9, queued_at = $10, updated_at = $11
 WHERE id = $1
"""
_NOTICE = f"""
WITH u AS (SELECT $1::bigint AS id, $2::text AS state, $3::text AS code, $4::text AS text,
                  1 AS ord)
{STATUS_NOTICES.format(at="$5")}
"""


class PostgresReview:
    """``review list`` and the review steps."""

    if TYPE_CHECKING:
        _conn: Callable[[], contextlib.AbstractAsyncContextManager[Conn]]
        _commit: Callable[[], contextlib.AbstractAsyncContextManager[Conn]]

    async def review_list(self, *, everything: bool, limit: int) -> list[MessageHit]:
        sql = REVIEW_ALL_SQL if everything else REVIEW_LIST_SQL
        async with self._conn() as conn:
            rows = await conn.fetch(q.numbered(sql), limit)
        return [q.hit(tuple(r), CODEC) for r in rows]

    async def review_approvals(self, tx_id: str) -> list[str]:
        async with self._conn() as conn:
            rows = await conn.fetch(q.numbered(APPROVALS_SQL), tx_id)
        return [str(r[0]) for r in rows]

    async def review_step(self, step: ReviewStep) -> ReviewOutcome:
        when = pg.aware(step.action.at)
        async with self._commit() as conn:
            row = await conn.fetchrow(_LOCK_ITEM, step.tx_id)
            if row is None:
                return ReviewOutcome.UNKNOWN
            item_id, state, corp_id = row
            if state != State.REVIEW.value:
                return ReviewOutcome.NOT_IN_REVIEW
            approvals = [str(r[0]) for r in await conn.fetch(q.numbered(APPROVALS_SQL), step.tx_id)]
            refused = step_is_current(step, approvals)
            if refused is not None:
                return refused
            await conn.execute(
                q.numbered(q.INSERT_ACTION), *q.action_args(step.action, CODEC, bool)
            )
            if step.state is not State.REVIEW:
                await conn.execute(
                    _END,
                    item_id,
                    step.state.value,
                    None if step.engine is None else step.engine.value,
                    step.receiver,
                    step.payee_bank_code,
                    None if step.work_date is None else pg.work_day(step.work_date),
                    None if step.release_at is None else pg.aware(step.release_at),
                    step.reason_code,
                    step.reason_text,
                    when if step.state is State.QUEUED else None,
                    when,
                )
            await conn.execute(
                "INSERT INTO transitions (item_id, state, at, detail) VALUES ($1, $2, $3, $4)",
                item_id,
                step.state.value,
                when,
                step.detail,
            )
            if step.state is State.REJECTED:
                await lock_notices(conn, [corp_id])
                await conn.execute(
                    _NOTICE, item_id, step.state.value, step.reason_code, step.reason_text, when
                )
            return ReviewOutcome.DONE
