"""Retention and archive: journal rows past retention go to compressed files, then away.

docs/protocol.md §7: ``(CorpId, MsgId)`` is unique *for the retention period*
(default 400 days).  So a request may leave the journal only when it is older
than the retention period **and** every item of it is final (SETTLED or
REJECTED: nothing will ever change it again).  Once it has left, its MsgId is
free: a replay of it is treated as a new request.  That is the spec's
retention semantics, not a leak — and in practice such a replay already
fails freshness (3002: its SendTime is 400 days old), while a re-sent MsgId
with a fresh SendTime is different content, which was 3001 before and is a
new payment after.  Banks keep the archive files for their audit period.

:func:`archive_once` runs one pass, in two phases, so that a crash at any
moment loses nothing:

1. **Export.**  Eligible requests are read in small keyset batches (oldest
   first) with their items, each item's transitions, the outbound messages
   those items went out in, and the operators' daily totals of those days;
   they are written as gzip JSON lines to a temporary file in ``out_dir``,
   which is fsynced, renamed to its final name and the folder fsynced.
2. **Remove.**  Only then are the exported requests deleted, again in small
   batches, each its own short transaction that re-checks the rule (older
   than ``before``, every item final).  An outbound message is deleted with
   the last item that references it; a daily total with its day.

The correspondence tables (migration 4) and item-less outbound messages
have no items to wait for; each leaves by its own rule of "old and final",
in the same two phases (exported in keyset batches, oldest first, through
each table's migration-5 index; deleted in batches that re-check the rule
and that the row did not change since it was exported):

- notifications (NTFY, docs/protocol.md §4) by ``at``: the NtfyId cursor is never
  reused (AUTOINCREMENT / identity), so a client's ``After`` stays valid;
- inquiries (ccms.314 / 315, docs/clearing-link.md §4) by ``created_at``, in any
  state: one unanswered for the whole retention period is history too;
- incoming credits (docs/clearing-link.md §6) by ``received_at``, only POSTED or
  SUSPENSE: a CHECKING credit still waits for the core and never leaves;
- netting rounds (docs/routing-rules.md §5) by work date before the cutoff's date,
  unless an item the round netted still waits (NETTED) for its beps.settle;
- outbound messages without items (ccms.314 / 315) by ``created_at``, once
  receipted (ACKED): the outbox is done with them;
- (migration 8) manual actions by ``at``, inbound clearing messages by
  ``received_at``, and a request's signed bytes with its response's by
  ``at`` once the request itself has left (so a pass after the request's).
- state changes (the audit chain's links, journal migration 9) by ``at``.

Archiving scatters the audit chain (:mod:`gateway.journal.audit_chain`): an
old request's transitions leave while younger ones stay.  Every archived
link keeps its ``seq``, ``prev_hash`` and ``hash`` (a transition's as its
``chain``), so :mod:`gateway.journal.audit` stitches files and journal
together by ``seq``.

A crash between the phases leaves rows that are already archived: the next
pass archives them again (archive files are at-least-once; readers dedupe by
GwRef, outbound MsgId, NtfyId, (direction, InqId), credit GwRef and
(work date, round, counterparty)).  A crash inside phase 1 leaves a ``*.tmp``
file and no deletion.  These tables have no foreign keys between them, so a
crash between two of their batches leaves a journal as consistent as before.

Not blocking the hot path: every batch is its own short transaction, on a
connection of the pass's own (``retention_sqlite.py``: WAL, ``busy_timeout``,
the work in a thread; ``retention_postgres.py``: ``lock_timeout``, and an
advisory lock so that one node archives at a time, the others return
``skipped``).

The file format (``format`` 7, gzip JSON lines) and :func:`read_archive`,
which reads a file back into records, are in :mod:`gateway.journal.archive`;
the row-by-row tables' rules in :mod:`gateway.journal.retention_tables`.
Everything a caller needs is importable from here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from gateway.clock import SHANGHAI
from gateway.journal import retention_postgres
from gateway.journal.archive import (
    FORMAT,
    READABLE_FORMATS,
    Archived,
    ArchivedCredit,
    ArchivedDailyTotal,
    ArchivedInquiry,
    ArchivedItem,
    ArchivedNettingRound,
    ArchivedNotification,
    ArchivedOutbound,
    ArchivedRequest,
    ArchivedStateChange,
    ArchivedTransition,
    ArchiveFile,
    daily_total_line,
    read_archive,
)
from gateway.journal.retention_ops import Ops, Serial
from gateway.journal.retention_postgres import ARCHIVE_LOCK, LOCK_TIMEOUT_MS, PgOps
from gateway.journal.retention_sqlite import SqliteJournal, SqliteOps
from gateway.journal.retention_tables import TABLES, Table


@dataclass(frozen=True)
class ArchiveResult:
    """One pass: rows removed (all of them are in ``path``), or ``skipped``.

    ``outbound`` counts every outbound row removed: the messages of archived
    requests and the item-less ones (ccms.314 / ccms.315).
    """

    requests: int = 0
    items: int = 0
    transitions: int = 0
    outbound: int = 0
    daily_totals: int = 0
    path: Path | None = None  # None: nothing was old and final enough
    first_received: datetime | None = None  # of the requests archived
    last_received: datetime | None = None
    skipped: bool = False  # PostgreSQL: another node was archiving
    notifications: int = 0
    inquiries: int = 0
    incoming_credits: int = 0
    netting_rounds: int = 0
    exchanges: int = 0
    inbound_messages: int = 0
    operator_actions: int = 0
    state_changes: int = 0

    def counts(self) -> dict[str, int]:
        """Rows removed per kind, for the pass's one log line."""
        return {
            "requests": self.requests, "items": self.items, "transitions": self.transitions,
            "outbound": self.outbound, "daily_totals": self.daily_totals,
            "notifications": self.notifications, "inquiries": self.inquiries,
            "incoming_credits": self.incoming_credits, "netting_rounds": self.netting_rounds,
            "exchanges": self.exchanges, "inbound_messages": self.inbound_messages,
            "operator_actions": self.operator_actions,
            "state_changes": self.state_changes,
        }  # fmt: skip

    @property
    def removed(self) -> int:
        """Rows removed in all; 0 when the pass found nothing (or was skipped)."""
        return sum(self.counts().values())


# -- the pass, the same for both backends ----------------------------------------------------


def _write_once(lines: Sequence[dict[str, Any]], seen_out: set[str]) -> list[dict[str, Any]]:
    """Lines without outbound messages already in the file (shared by several requests)."""
    kept = [ln for ln in lines if ln["kind"] != "outbound" or ln["msg_id"] not in seen_out]
    seen_out.update(ln["msg_id"] for ln in kept if ln["kind"] == "outbound")
    return kept


async def _export_table(
    ops: Ops, call: Serial, file: ArchiveFile, t: Table, pace: tuple[int, int, float],
    seen_out: set[str],
) -> tuple[list[tuple[Any, ...]], list[str]]:  # fmt: skip
    """Phase 1 for one of :data:`TABLES`: its rows to delete, the dates of their lines."""
    batch, limit, pause = pace
    matches: list[tuple[Any, ...]] = []
    days: list[str] = []
    after: tuple[Any, ...] | None = None
    while len(matches) < limit:
        got = await ops.read_table(t, after, min(batch, limit - len(matches)))
        if not got.matches:
            break
        await call(file.write, _write_once(got.lines, seen_out))
        matches.extend(got.matches)
        days.extend(str(ln[t.day_of])[:10] for ln in got.lines)
        after = got.last
        await asyncio.sleep(pause)
    return matches, days


async def _run(
    ops: Ops, call: Serial, backend: str, out_dir: Path, before: datetime, batch: int,
    max_requests: int, pause: float,
) -> ArchiveResult:  # fmt: skip
    """Phase 1 (export, durable file), then phase 2 (delete in batches): module docstring."""
    header: dict[str, Any] = {
        "kind": "archive",
        "format": FORMAT,
        "backend": backend,
        "before": before.astimezone(SHANGHAI).isoformat(timespec="microseconds"),
    }
    exported: list[int] = []
    received: list[datetime] = []
    days: list[str] = []  # of every record in the file: its name
    rows: dict[str, list[tuple[Any, ...]]] = {}  # per table: what phase 2 deletes
    # Shielded: a cancel while the thread creates the temp file must still discard it.
    creating = asyncio.ensure_future(call(ArchiveFile, out_dir, header))
    try:
        file = await asyncio.shield(creating)
    except BaseException:
        with contextlib.suppress(Exception):
            await call((await creating).discard)
        raise
    try:
        after: tuple[object, int] | None = None
        seen_out: set[str] = set()
        while len(exported) < max_requests:
            got = await ops.read(after, min(batch, max_requests - len(exported)))
            if not got.keys:
                break
            await call(file.write, _write_once(got.lines, seen_out))
            exported.extend(rid for _, rid in got.keys)
            received.extend(got.received)
            after = got.keys[-1]
            await asyncio.sleep(pause)
        days.extend(at.date().isoformat() for at in received)
        for t in TABLES:
            rows[t.field], more = await _export_table(
                ops, call, file, t, (batch, max_requests, pause), seen_out
            )
            days.extend(more)
        old_totals = await ops.totals()
        if not exported and not old_totals and not any(rows.values()):
            await call(file.discard)
            return ArchiveResult()
        await call(file.write, [daily_total_line(row) for row in old_totals])
        first = min(days) if days else header["before"][:10]
        path = await call(file.commit, first, max(days) if days else first)
    except BaseException:
        await call(file.discard)
        raise
    counts = [0, 0, 0, 0]
    for start in range(0, len(exported), batch):
        done = await ops.delete(exported[start : start + batch])
        counts = [a + b for a, b in zip(counts, done, strict=True)]
        await asyncio.sleep(pause)
    removed: dict[str, int] = {}
    for t in TABLES:
        removed[t.field] = 0
        for start in range(0, len(rows[t.field]), batch):
            removed[t.field] += await ops.delete_table(t, rows[t.field][start : start + batch])
            await asyncio.sleep(pause)
    totals_removed = await ops.delete_totals() if old_totals else 0
    return ArchiveResult(
        requests=counts[0],
        items=counts[1],
        transitions=counts[2],
        outbound=counts[3] + removed["outbound"],
        daily_totals=totals_removed,
        path=path,
        first_received=min(received) if received else None,
        last_received=max(received) if received else None,
        notifications=removed["notifications"],
        inquiries=removed["inquiries"],
        incoming_credits=removed["incoming_credits"],
        netting_rounds=removed["netting_rounds"],
        exchanges=removed["exchanges"],
        inbound_messages=removed["inbound_messages"],
        operator_actions=removed["operator_actions"],
        state_changes=removed["state_changes"],
    )


async def archive_once(
    backend: str,
    target: Path | str,
    out_dir: Path,
    *,
    before: datetime,
    batch: int = 500,
    max_requests: int = 100_000,
    pause: float = 0.01,
) -> ArchiveResult:
    """Archive and remove the requests received before ``before`` whose items are all final,
    and the correspondence rows and item-less outbound messages old and final enough
    (module docstring).

    ``backend`` is ``"sqlite"`` (``target``: the journal file) or ``"postgres"``
    (``target``: the DSN, without a password).  The caller passes ``before`` =
    now − retention (docs/protocol.md §7, default 400 days); it must be an aware
    datetime.  At most ``max_requests`` requests, and as many rows of each other
    table, per pass; ``batch`` per transaction, ``pause`` seconds between batches
    (room for the hot path's writer).
    """
    if before.tzinfo is None or before.utcoffset() is None:
        raise ValueError("before must carry a UTC offset")
    if not 1 <= batch <= 10_000:
        raise ValueError("batch must be 1..10000")
    if max_requests < 1:
        raise ValueError("max_requests must be at least 1")
    if backend not in ("sqlite", "postgres"):
        raise ValueError("backend must be sqlite or postgres")
    call = Serial()
    try:
        if backend == "sqlite":
            db = await call(SqliteJournal, Path(target))
            try:
                ops: Ops = SqliteOps(db, before, call)
                return await _run(ops, call, backend, out_dir, before, batch, max_requests, pause)
            finally:
                await call(db.close)
        conn = await retention_postgres.connect(str(target))
        try:
            if not await retention_postgres.try_lock(conn):
                return ArchiveResult(skipped=True)
            ops = PgOps(conn, before)
            return await _run(ops, call, backend, out_dir, before, batch, max_requests, pause)
        finally:
            await conn.close()  # also releases the advisory lock
    finally:
        call.close()


__all__ = [
    "ARCHIVE_LOCK",
    "FORMAT",
    "LOCK_TIMEOUT_MS",
    "READABLE_FORMATS",
    "ArchiveResult",
    "Archived",
    "ArchivedCredit",
    "ArchivedDailyTotal",
    "ArchivedInquiry",
    "ArchivedItem",
    "ArchivedNettingRound",
    "ArchivedNotification",
    "ArchivedOutbound",
    "ArchivedRequest",
    "ArchivedStateChange",
    "ArchivedTransition",
    "archive_once",
    "read_archive",
]
