"""The retention pass on PostgreSQL: its reads and deletes (:class:`PgOps`).

A separate asyncpg connection on the journal's DSN (:func:`connect`), with
``synchronous_commit = on`` (a delete is as durable as the archive file
before it) and a ``lock_timeout``, so a batch gives up rather than hold up
the hot path; every batch is its own short transaction.  A session advisory
lock (:data:`ARCHIVE_LOCK`) makes one node archive at a time: the others
skip the pass.

A request qualifies when it is older than the cutoff and no item of it is
outside a final state (docs/protocol.md §7); id lists are array parameters.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

import asyncpg

from gateway.clock import SHANGHAI
from gateway.journal.retention_ops import (
    ITEM_COLUMNS,
    NOT_FINAL,
    OUTBOUND_COLUMNS,
    TOTALS,
    Batch,
    assemble,
)
from gateway.journal.retention_tables import STATEMENTS, Rows, Table

ARCHIVE_LOCK: Final = 0x67_77_61_72_63_68  # "gwarch": PostgreSQL advisory lock key
"""Held for a whole pass, so two nodes never archive at once (PostgreSQL)."""

LOCK_TIMEOUT_MS: Final = 2000
"""PostgreSQL: a batch gives up rather than wait longer for a row the hot path holds."""

_PG_CANDIDATES = f"""
SELECT id, corp_id, msg_id, oper_id, trn_code, digest, gw_ref, received_at, node FROM requests r
 WHERE received_at < $1 AND ($2::timestamptz IS NULL OR (received_at, id) > ($2, $3))
   AND NOT EXISTS ({NOT_FINAL})
 ORDER BY received_at, id LIMIT $4
"""  # noqa: S608 (constant fragments; values are parameters)
_PG_ITEMS = f"""
SELECT {ITEM_COLUMNS} FROM items WHERE request_id = ANY($1::bigint[]) ORDER BY id
"""  # noqa: S608 (constant fragments; values are parameters)
_PG_TRAILS = """
SELECT item_id, state, at, detail, node, seq, prev_hash, hash FROM transitions
 WHERE item_id = ANY($1::bigint[]) ORDER BY id
"""
_PG_OUTBOUND = f"""
SELECT {OUTBOUND_COLUMNS} FROM outbound WHERE msg_id = ANY($1::text[]) ORDER BY created_at, msg_id
"""  # noqa: S608 (constant fragments; values are parameters)
_PG_STILL = f"""
SELECT id FROM requests r
 WHERE id = ANY($1::bigint[]) AND received_at < $2 AND NOT EXISTS ({NOT_FINAL})
   FOR UPDATE
"""  # noqa: S608 (constant fragments; values are parameters)
_PG_OUTS_OF = """
SELECT DISTINCT out_msg_id FROM items WHERE request_id = ANY($1::bigint[])
   AND out_msg_id IS NOT NULL
"""
_PG_DELETE = (
    "DELETE FROM transitions WHERE item_id IN"
    " (SELECT id FROM items WHERE request_id = ANY($1::bigint[]))",
    "DELETE FROM items WHERE request_id = ANY($1::bigint[])",
    "DELETE FROM requests WHERE id = ANY($1::bigint[])",
)
_PG_ORPHANS = """
DELETE FROM outbound o WHERE msg_id = ANY($1::text[])
   AND NOT EXISTS (SELECT 1 FROM items i WHERE i.out_msg_id = o.msg_id)
"""


async def connect(dsn: str) -> asyncpg.Connection:
    """The pass's own connection, apart from the gateway's pool (module docstring)."""
    settings = {
        "synchronous_commit": "on",  # a delete is as durable as the archive before it
        "application_name": "gateway-archive",
        "lock_timeout": f"{LOCK_TIMEOUT_MS}ms",
    }
    return await asyncpg.connect(dsn, server_settings=settings)


async def try_lock(conn: asyncpg.Connection) -> bool:
    """Take :data:`ARCHIVE_LOCK` for the session; False when another node holds it."""
    return bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", ARCHIVE_LOCK))


class PgOps:
    """The pass's operations on PostgreSQL, on one dedicated connection."""

    def __init__(self, conn: asyncpg.Connection, before: datetime) -> None:
        self.conn = conn
        self.before = before
        self.before_day = before.astimezone(SHANGHAI).date()

    async def read(self, after: tuple[object, int] | None, limit: int) -> Batch:
        conn = self.conn
        key = after or (None, -1)
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            requests = await conn.fetch(_PG_CANDIDATES, self.before, key[0], key[1], limit)
            items = await conn.fetch(_PG_ITEMS, [r["id"] for r in requests])
            trails = await conn.fetch(_PG_TRAILS, [r["id"] for r in items])
            outs = sorted({r["out_msg_id"] for r in items if r["out_msg_id"] is not None})
            outbound = await conn.fetch(_PG_OUTBOUND, outs)
        nodes = {int(r["id"]): r["node"] for r in requests}
        return await asyncio.to_thread(
            assemble, [tuple(r)[:8] for r in requests], [tuple(r) for r in items],
            [tuple(r) for r in trails], [tuple(r) for r in outbound], nodes,
        )  # fmt: skip

    async def totals(self) -> list[Sequence[Any]]:
        return [tuple(r) for r in await self.conn.fetch(TOTALS.format(p="$1"), self.before_day)]

    async def delete(self, ids: Sequence[int]) -> tuple[int, int, int, int]:
        conn = self.conn
        async with conn.transaction():
            ok = [r["id"] for r in await conn.fetch(_PG_STILL, list(ids), self.before)]
            outs = [r[0] for r in await conn.fetch(_PG_OUTS_OF, ok)]
            trails, items, requests = [_count(await conn.execute(sql, ok)) for sql in _PG_DELETE]
            outbound = _count(await conn.execute(_PG_ORPHANS, outs))
        return requests, items, trails, outbound

    async def delete_totals(self) -> int:
        status = await self.conn.execute("DELETE FROM daily_totals WHERE day < $1", self.before_day)
        return _count(status)

    async def read_table(self, t: Table, after: tuple[Any, ...] | None, limit: int) -> Rows:
        first, rest, _ = STATEMENTS[t.line, "$"]
        bound = self.before_day if t.by_day else self.before
        if after is None:
            rows = await self.conn.fetch(first, bound, limit)
        else:
            rows = await self.conn.fetch(rest, bound, limit, *after)
        return await asyncio.to_thread(t.rows, [tuple(r) for r in rows])

    async def delete_table(self, t: Table, matches: Sequence[tuple[Any, ...]]) -> int:
        """One statement: PostgreSQL re-checks the rule and the guard on the row it locks."""
        bound = self.before_day if t.by_day else self.before
        columns = [list(c) for c in zip(*matches, strict=True)]
        return _count(await self.conn.execute(STATEMENTS[t.line, "$"][2], *columns, bound))


def _count(status: str) -> int:
    """``DELETE 12`` → 12 (asyncpg returns the command tag)."""
    return int(status.rsplit(" ", 1)[-1])


__all__ = ["ARCHIVE_LOCK", "LOCK_TIMEOUT_MS", "PgOps", "connect", "try_lock"]
