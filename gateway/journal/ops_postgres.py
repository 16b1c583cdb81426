"""The operators' message tools on the PostgreSQL journal (mixed into ``PostgresStore``).

The same statements as SQLite (:mod:`gateway.journal.ops_queries`, numbered
placeholders).  A detail is read in one read-only REPEATABLE READ transaction,
so its parts agree.  A manual release locks the item row, so a release pass
of another node and the operator cannot both move it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

import asyncpg

from gateway.journal import ops_queries as q
from gateway.journal import postgres_schema as pg
from gateway.journal.ops_records import (
    Exchange,
    InboundMessage,
    MessageDetail,
    MessageHit,
    MessageQuery,
    OperatorAction,
    ReleaseOutcome,
)
from gateway.journal.records import OutboundRecord

Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy

CODEC: Final = q.Codec(
    instant_in=pg.aware,
    instant_out=pg.shanghai,
    date_out=lambda v: v,
    flag_out=bool,
)
_RELEASE: Final = """
WITH moved AS (
    UPDATE items SET state = 'QUEUED', queued_at = $2, updated_at = $2
     WHERE tx_id = $1 AND state = 'HELD'
    RETURNING id
), trail AS (
    INSERT INTO transitions (item_id, state, at, detail) SELECT id, 'QUEUED', $2, $3 FROM moved
)
SELECT id FROM moved
"""


def _fetcher(conn: Conn) -> q.Fetch:
    async def fetch(sql: str, args: Sequence[object]) -> Sequence[Sequence[Any]]:
        return [tuple(r) for r in await conn.fetch(q.numbered(sql), *args)]

    return fetch


class PostgresOperations:
    """``messages search|show``, ``held release``, ``resend`` and the inbound archive."""

    if TYPE_CHECKING:
        _conn: Callable[[], contextlib.AbstractAsyncContextManager[Conn]]
        _commit: Callable[[], contextlib.AbstractAsyncContextManager[Conn]]

    async def search_messages(self, query: MessageQuery, limit: int) -> list[MessageHit]:
        async with self._conn() as conn:
            return await q.search(_fetcher(conn), CODEC, query, limit)

    async def message_detail(self, ref: str) -> MessageDetail | None:
        async with (
            self._conn() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            return await q.detail(_fetcher(conn), CODEC, ref)

    async def message_links(
        self, refs: Sequence[str], targets: Sequence[str]
    ) -> tuple[list[InboundMessage], list[OperatorAction]]:
        async with self._conn() as conn:
            return await q.links(_fetcher(conn), CODEC, refs, targets)

    async def outbound_message(self, msg_id: str) -> OutboundRecord | None:
        async with self._conn() as conn:
            row = await conn.fetchrow(
                f"SELECT {pg.OUTBOUND_COLUMNS} FROM outbound WHERE msg_id = $1",  # noqa: S608
                msg_id,
            )
        return None if row is None else pg.outbound_record(row)

    async def record_inbound(self, msg: InboundMessage) -> None:
        async with self._commit() as conn:
            await conn.execute(
                "INSERT INTO inbound_messages (msg_id, msg_tp, sndr, topic, ref, payload,"
                " received_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                msg.msg_id, msg.msg_tp, msg.sndr, msg.topic, msg.ref, msg.payload,
                pg.aware(msg.received_at),
            )  # fmt: skip

    async def record_exchange(self, ex: Exchange) -> None:
        async with self._commit() as conn:
            await conn.execute(
                q.numbered(q.INSERT_EXCHANGE), ex.gw_ref, ex.request, ex.response, pg.aware(ex.at)
            )

    async def record_exchanges(self, exs: Sequence[Exchange]) -> None:
        if not exs:
            return
        async with self._commit() as conn:
            await conn.executemany(
                q.numbered(q.INSERT_EXCHANGE),
                [(ex.gw_ref, ex.request, ex.response, pg.aware(ex.at)) for ex in exs],
            )

    async def exchange(self, gw_ref: str) -> Exchange | None:
        async with self._conn() as conn:
            return await q.exchange(_fetcher(conn), CODEC, gw_ref)

    async def record_action(self, action: OperatorAction) -> None:
        async with self._commit() as conn:
            await conn.execute(q.numbered(q.INSERT_ACTION), *q.action_args(action, CODEC, bool))

    async def release_item(self, tx_id: str, action: OperatorAction) -> ReleaseOutcome:
        async with self._commit() as conn:
            moved = await conn.fetchval(
                _RELEASE, tx_id, pg.aware(action.at), q.release_detail(action)
            )
            if moved is None:
                known = await conn.fetchval("SELECT 1 FROM items WHERE tx_id = $1", tx_id)
                return ReleaseOutcome.NOT_HELD if known else ReleaseOutcome.UNKNOWN
            await conn.execute(q.numbered(q.INSERT_ACTION), *q.action_args(action, CODEC, bool))
            return ReleaseOutcome.RELEASED
