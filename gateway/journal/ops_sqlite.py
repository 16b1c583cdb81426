"""The operators' message tools on the SQLite journal (mixed into ``SqliteStore``).

Reads are :mod:`gateway.journal.ops_queries`; a detail's few statements each
run on a reader connection (an operator view need not be one snapshot).
A manual release moves the item, writes its transition (detail: who and why)
and the :class:`~gateway.journal.ops_records.OperatorAction` in one
transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any, Final, TypeVar

from gateway.journal import ops_queries as q
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
from gateway.journal.schema import from_micros, outbound_record, to_micros

T = TypeVar("T")

CODEC: Final = q.Codec(
    instant_in=to_micros,
    instant_out=lambda v: from_micros(int(v)),
    date_out=lambda v: date.fromisoformat(str(v)),
    flag_out=bool,
)


class SqliteOperations:
    """``messages search|show``, ``held release``, ``resend`` and the inbound archive."""

    if TYPE_CHECKING:

        async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

        async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

    async def _fetch(self, sql: str, args: Sequence[object]) -> list[Any]:
        return await self._read(lambda conn: conn.execute(sql, tuple(args)).fetchall())

    async def search_messages(self, query: MessageQuery, limit: int) -> list[MessageHit]:
        return await q.search(self._fetch, CODEC, query, limit)

    async def message_detail(self, ref: str) -> MessageDetail | None:
        return await q.detail(self._fetch, CODEC, ref)

    async def message_links(
        self, refs: Sequence[str], targets: Sequence[str]
    ) -> tuple[list[InboundMessage], list[OperatorAction]]:
        return await q.links(self._fetch, CODEC, refs, targets)

    async def outbound_message(self, msg_id: str) -> OutboundRecord | None:
        def read(conn: sqlite3.Connection) -> OutboundRecord | None:
            row = conn.execute(
                "SELECT msg_id, engine, msg_tp, topic, receiver, work_date, payload, state,"
                " attempts, created_at, last_sent_at FROM outbound WHERE msg_id = ?",
                (msg_id,),
            ).fetchone()
            return None if row is None else outbound_record(row)

        return await self._read(read)

    async def record_inbound(self, msg: InboundMessage) -> None:
        row = (msg.msg_id, msg.msg_tp, msg.sndr, msg.topic, msg.ref, msg.payload,
               to_micros(msg.received_at))  # fmt: skip

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO inbound_messages (msg_id, msg_tp, sndr, topic, ref, payload,"
                " received_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                row,
            )

        await self._write(write)

    async def record_exchange(self, ex: Exchange) -> None:
        row = (ex.gw_ref, ex.request, ex.response, to_micros(ex.at))
        await self._write(lambda conn: conn.execute(q.INSERT_EXCHANGE, row) and None)

    async def record_exchanges(self, exs: Sequence[Exchange]) -> None:
        rows = [(ex.gw_ref, ex.request, ex.response, to_micros(ex.at)) for ex in exs]
        if rows:
            await self._write(lambda conn: conn.executemany(q.INSERT_EXCHANGE, rows) and None)

    async def exchange(self, gw_ref: str) -> Exchange | None:
        return await q.exchange(self._fetch, CODEC, gw_ref)

    async def record_action(self, action: OperatorAction) -> None:
        args = q.action_args(action, CODEC, int)
        await self._write(lambda conn: conn.execute(q.INSERT_ACTION, args) and None)

    async def release_item(self, tx_id: str, action: OperatorAction) -> ReleaseOutcome:
        when = to_micros(action.at)
        args = q.action_args(action, CODEC, int)
        note = q.release_detail(action)

        def write(conn: sqlite3.Connection) -> ReleaseOutcome:
            row = conn.execute(
                "UPDATE items SET state = 'QUEUED', queued_at = ?1, updated_at = ?1"
                " WHERE tx_id = ?2 AND state = 'HELD' RETURNING id",
                (when, tx_id),
            ).fetchone()
            if row is None:
                known = conn.execute("SELECT 1 FROM items WHERE tx_id = ?", (tx_id,)).fetchone()
                return ReleaseOutcome.NOT_HELD if known else ReleaseOutcome.UNKNOWN
            conn.execute(
                "INSERT INTO transitions (item_id, state, at, detail) VALUES (?, 'QUEUED', ?, ?)",
                (row[0], when, note),
            )
            conn.execute(q.INSERT_ACTION, args)
            return ReleaseOutcome.RELEASED

        return await self._write(write)
