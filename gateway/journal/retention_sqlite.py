"""The retention pass on SQLite: its reads and deletes (:class:`SqliteOps`).

A separate connection on the journal file, with ``busy_timeout``
(``schema.connect``): WAL lets the gateway's writer and readers go on, and
its group-commit writer waits (its own ``busy_timeout``) for at most one
batch's delete, because every batch is its own short transaction.  All of it
runs on the pass's worker thread (:class:`~gateway.journal.retention_ops.Serial`),
so the event loop never waits on SQLite.

A request qualifies when it is older than the cutoff and no item of it is
outside a final state (docs/protocol.md §7).  SQLite takes id lists as one JSON
array parameter (``json_each``), so every statement is a constant.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from gateway.clock import SHANGHAI
from gateway.journal import schema
from gateway.journal.retention_ops import (
    ITEM_COLUMNS,
    NOT_FINAL,
    OUTBOUND_COLUMNS,
    TOTALS,
    Batch,
    Serial,
    assemble,
)
from gateway.journal.retention_tables import STATEMENTS, Rows, Table

_SQ_CANDIDATES = f"""
SELECT id, corp_id, msg_id, oper_id, trn_code, digest, gw_ref, received_at FROM requests r
 WHERE received_at < ?1 AND (received_at, id) > (?2, ?3) AND NOT EXISTS ({NOT_FINAL})
 ORDER BY received_at, id LIMIT ?4
"""  # noqa: S608 (constant fragments; values are parameters)
_SQ_ITEMS = f"""
SELECT {ITEM_COLUMNS} FROM items
 WHERE request_id IN (SELECT value FROM json_each(?1)) ORDER BY id
"""  # noqa: S608 (constant fragments; values are parameters)
_SQ_TRAILS = """
SELECT item_id, state, at, detail, NULL, seq, prev_hash, hash FROM transitions
 WHERE item_id IN (SELECT value FROM json_each(?1)) ORDER BY id
"""
_SQ_OUTBOUND = f"""
SELECT {OUTBOUND_COLUMNS} FROM outbound
 WHERE msg_id IN (SELECT value FROM json_each(?1)) ORDER BY created_at, msg_id
"""  # noqa: S608 (constant fragments; values are parameters)
_SQ_STILL = f"""
SELECT id FROM requests r
 WHERE id IN (SELECT value FROM json_each(?1)) AND received_at < ?2 AND NOT EXISTS ({NOT_FINAL})
"""  # noqa: S608 (constant fragments; values are parameters)
_SQ_OUTS_OF = """
SELECT DISTINCT out_msg_id FROM items
 WHERE request_id IN (SELECT value FROM json_each(?1)) AND out_msg_id IS NOT NULL
"""
_SQ_DELETE = (
    "DELETE FROM transitions WHERE item_id IN"
    " (SELECT id FROM items WHERE request_id IN (SELECT value FROM json_each(?1)))",
    "DELETE FROM items WHERE request_id IN (SELECT value FROM json_each(?1))",
    "DELETE FROM requests WHERE id IN (SELECT value FROM json_each(?1))",
)
_SQ_ORPHANS = """
DELETE FROM outbound WHERE msg_id IN (SELECT value FROM json_each(?1))
   AND NOT EXISTS (SELECT 1 FROM items i WHERE i.out_msg_id = outbound.msg_id)
"""


class SqliteJournal:
    """The journal file as the pass sees it: synchronous, on the worker thread (:class:`Serial`)."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise FileNotFoundError(f"no journal file at {path}")
        self.conn = schema.connect(path)  # busy_timeout, foreign keys, synchronous=FULL
        version = int(self.conn.execute("PRAGMA user_version").fetchone()[0])
        if version != schema.SCHEMA_VERSION:
            self.conn.close()
            raise RuntimeError(
                f"journal schema version {version}, archive expects {schema.SCHEMA_VERSION}:"
                " start the gateway once to migrate"
            )

    def close(self) -> None:
        self.conn.close()

    def read(self, before: int, after: tuple[object, int] | None, limit: int) -> Batch:
        c = self.conn
        key = after or (-(2**63), -1)  # before any instant
        c.execute("BEGIN")  # one snapshot for the whole batch
        try:
            requests = c.execute(_SQ_CANDIDATES, (before, key[0], key[1], limit)).fetchall()
            ids = json.dumps([int(r[0]) for r in requests])
            items = c.execute(_SQ_ITEMS, (ids,)).fetchall()
            trails = c.execute(_SQ_TRAILS, (json.dumps([int(r[0]) for r in items]),)).fetchall()
            outs = json.dumps(sorted({str(r[22]) for r in items if r[22] is not None}))
            outbound = c.execute(_SQ_OUTBOUND, (outs,)).fetchall()
        finally:
            c.execute("COMMIT")
        # SQLite keeps no node column: the node letter is the GwRef's 11th character
        nodes = {int(r[0]): (str(r[6])[10] if r[6] and len(str(r[6])) > 10 else None)
                 for r in requests}  # fmt: skip
        return assemble(requests, items, trails, outbound, nodes)

    def old_totals(self, before_day: str) -> list[Sequence[Any]]:
        return self.conn.execute(TOTALS.format(p="?"), (before_day,)).fetchall()

    def delete(self, ids: Sequence[int], before: int) -> tuple[int, int, int, int]:
        """One short write transaction: requests ``ids`` that still qualify, and orphans."""
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            ok = json.dumps(
                [int(r[0]) for r in c.execute(_SQ_STILL, (json.dumps(list(ids)), before))]
            )
            outs = json.dumps([str(r[0]) for r in c.execute(_SQ_OUTS_OF, (ok,))])
            trails, items, requests = (c.execute(sql, (ok,)).rowcount for sql in _SQ_DELETE)
            outbound = c.execute(_SQ_ORPHANS, (outs,)).rowcount
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        return requests, items, trails, outbound

    def delete_totals(self, before_day: str) -> int:
        return self._write("DELETE FROM daily_totals WHERE day < ?", (before_day,))

    def read_table(
        self, t: Table, bound: object, after: tuple[Any, ...] | None, limit: int
    ) -> Rows:
        first, rest, _ = STATEMENTS[t.line, "?"]
        sql = first if after is None else rest
        return t.rows(self.conn.execute(sql, (bound, limit, *(after or ()))).fetchall())

    def delete_table(self, t: Table, bound: object, matches: Sequence[tuple[Any, ...]]) -> int:
        return self._write(STATEMENTS[t.line, "?"][2], (json.dumps(list(matches)), bound))

    def _write(self, sql: str, params: Sequence[object]) -> int:
        """One statement in its own short write transaction; the rows it changed."""
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            n = c.execute(sql, params).rowcount
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        return n


class SqliteOps:
    """The pass's operations on SQLite, each on the worker thread."""

    def __init__(self, db: SqliteJournal, before: datetime, call: Serial) -> None:
        self.db = db
        self.call = call
        self.cutoff = schema.to_micros(before)
        self.before_day = before.astimezone(SHANGHAI).date().isoformat()

    async def read(self, after: tuple[object, int] | None, limit: int) -> Batch:
        return await self.call(self.db.read, self.cutoff, after, limit)

    async def totals(self) -> list[Sequence[Any]]:
        return await self.call(self.db.old_totals, self.before_day)

    async def delete(self, ids: Sequence[int]) -> tuple[int, int, int, int]:
        return await self.call(self.db.delete, ids, self.cutoff)

    async def delete_totals(self) -> int:
        return await self.call(self.db.delete_totals, self.before_day)

    async def read_table(self, t: Table, after: tuple[Any, ...] | None, limit: int) -> Rows:
        bound = self.before_day if t.by_day else self.cutoff
        return await self.call(self.db.read_table, t, bound, after, limit)

    async def delete_table(self, t: Table, matches: Sequence[tuple[Any, ...]]) -> int:
        bound = self.before_day if t.by_day else self.cutoff
        return await self.call(self.db.delete_table, t, bound, matches)


__all__ = ["SqliteJournal", "SqliteOps"]
