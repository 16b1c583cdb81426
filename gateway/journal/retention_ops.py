"""What a retention pass asks of a journal backend, and what both backends share.

:mod:`gateway.journal.retention` runs one pass the same way on SQLite and
PostgreSQL; each backend (``retention_sqlite.py``, ``retention_postgres.py``)
implements :class:`Ops`, the reads and deletes of the pass, with its own SQL.
Shared here: the rule a request must meet to leave (docs/protocol.md §7: older
than the cutoff, every item final), the column lists both read in the same
order, the turning of a batch's rows into archive lines (:func:`assemble`),
and the one worker thread that runs a pass's blocking work (:class:`Serial`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol, TypeVar

from gateway.journal.archive import item_line, outbound_line, request_line, transition_line
from gateway.journal.retention_tables import Rows, Table

T = TypeVar("T")

ITEM_COLUMNS: Final = (
    "id, request_id, seq_no, tx_id, end_to_end_id, engine, receiver, payee_bank_code,"
    " work_date, state, release_at, payer_acct, payer_name, payee_acct, payee_name,"
    " amount_fen, ccy, priority, biz_type, purpose, reason_code, reason_text, out_msg_id,"
    " queued_at, updated_at, screening, uetr, payee_bic, payee_country, chrg_br"
)
"""An item's columns, in the order :func:`~gateway.journal.archive.item_line` reads them."""

OUTBOUND_COLUMNS: Final = (
    "msg_id, engine, msg_tp, topic, receiver, work_date, payload, state, attempts,"
    " created_at, last_sent_at, acked_at"
)
"""An outbound message's columns, as :func:`~gateway.journal.archive.outbound_line` reads them."""

NOT_FINAL: Final = (
    "SELECT 1 FROM items i WHERE i.request_id = r.id AND i.state NOT IN ('SETTLED', 'REJECTED')"
    " UNION ALL SELECT 1 FROM drafts d WHERE d.corp_id = r.corp_id AND d.msg_id = r.msg_id"
    " AND d.state NOT IN ('SETTLED', 'REFUNDED', 'REJECTED')"
    " UNION ALL SELECT 1 FROM draft_refunds f JOIN drafts d ON d.draft_no = f.draft_no"
    " WHERE f.corp_id = r.corp_id AND f.msg_id = r.msg_id"
    " AND d.state NOT IN ('SETTLED', 'REFUNDED', 'REJECTED')"
)
"""A request ``r`` may leave only when this finds nothing: every item final (docs/protocol.md
§7), and a DRAFT or DRAFTRFND request's draft closed (SETTLED, REFUNDED or REJECTED,
docs/bank-drafts.md §1).  The register's own tables never leave (retention_tables)."""

TOTALS: Final = (
    "SELECT corp_id, oper_id, day, total_fen FROM daily_totals WHERE day < {p}"
    " ORDER BY day, corp_id, oper_id"
)
"""The operators' daily totals (docs/protocol.md §6) of days before the cutoff's date; ``{p}``:
mark."""


@dataclass
class Batch:
    """One batch of requests read for export: its lines and what phase 2 needs."""

    keys: list[tuple[object, int]]  # (received_at as stored, request id), keyset order
    lines: list[dict[str, Any]]
    received: list[datetime]  # of the requests, Asia/Shanghai: the file name, the result


def assemble(
    requests: Sequence[Sequence[Any]],
    items: Sequence[Sequence[Any]],
    trails: Sequence[Sequence[Any]],
    outbound: Sequence[Sequence[Any]],
    node_of: dict[int, str | None],
) -> Batch:
    """Rows of both backends (same column order) → archive lines."""
    by_item: dict[int, list[dict[str, Any]]] = {}
    for row in trails:
        by_item.setdefault(int(row[0]), []).append(transition_line(row))
    by_request: dict[int, list[dict[str, Any]]] = {}
    for row in items:
        by_request.setdefault(int(row[1]), []).append(item_line(row, by_item.get(int(row[0]), [])))
    lines: list[dict[str, Any]] = []
    keys: list[tuple[object, int]] = []
    instants: list[datetime] = []
    for row in requests:
        rid = int(row[0])
        line = request_line(row, node_of.get(rid), by_request.get(rid, []))
        keys.append((row[7], rid))
        instants.append(datetime.fromisoformat(str(line["received_at"])))
        lines.append(line)
    lines.extend(outbound_line(row) for row in outbound)
    return Batch(keys, lines, instants)


class Ops(Protocol):
    """The reads and deletes of one pass on one backend; every call is its own transaction."""

    async def read(self, after: tuple[object, int] | None, limit: int) -> Batch:
        """Requests old and final enough, after ``after`` in (received_at, id) order."""
        ...

    async def totals(self) -> list[Sequence[Any]]:
        """Daily totals of days before the cutoff's date."""
        ...

    async def delete(self, ids: Sequence[int]) -> tuple[int, int, int, int]:
        """Requests ``ids`` that still qualify: (requests, items, transitions, outbound)."""
        ...

    async def delete_totals(self) -> int: ...

    async def read_table(self, t: Table, after: tuple[Any, ...] | None, limit: int) -> Rows:
        """One keyset batch of ``t``'s rows that meet its rule."""
        ...

    async def delete_table(self, t: Table, matches: Sequence[tuple[Any, ...]]) -> int:
        """The exported rows of ``t`` that still match and still qualify."""
        ...


class Serial:
    """One worker thread for a pass's blocking work (SQLite, the file).

    Serial on purpose: when the pass is cancelled (gateway shutdown), the
    call in progress still runs to its end in the thread, and the clean-up
    (discard the temp file, close the connection) queues behind it instead
    of racing it.
    """

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="journal-archive")

    async def __call__(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=False)  # callers awaited their last call


__all__ = [
    "ITEM_COLUMNS",
    "NOT_FINAL",
    "OUTBOUND_COLUMNS",
    "TOTALS",
    "Batch",
    "Ops",
    "Serial",
    "assemble",
]
