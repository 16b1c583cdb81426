"""The embedded journal: SQLite in WAL mode with one group-committing writer.

Implements :class:`gateway.journal.store.Store` (docs/architecture.md §7 "Storage").  All
writes go through :class:`~gateway.journal.writer.GroupCommitWriter`, so every
method that changes state returns only after its transaction is fsynced
(``synchronous=FULL``): the caller may then answer 0000 (docs/protocol.md §5).
Reads run on a small pool of read-only connections; WAL lets them proceed
while the writer commits, and a read started after a write returned sees it.

State rules (docs/architecture.md §7, principle 2), one transition row per change:

- accept writes ACCEPTED, then the item's first state (QUEUED, HELD or
  REJECTED), both at ``received_at``; QUEUED items get ``queued_at``.
- SETTLED and REJECTED are final: nothing moves an item out of them.
- Receipts are idempotent: re-applying one changes nothing and writes no row.
- Receipts may overtake each other: the clearing side can answer before our
  PUBACK bookkeeping, and a ccms.990 can be lost while the ccms.900 arrives.
  Skipped states are filled in at the receipt's time, so every trail reads
  QUEUED → SENT → ACKED → …  A ccms.990 for a message still PENDING moves
  its items QUEUED → SENT → ACKED.  A ccms.900 first counts as the message's
  ccms.990 (the clearing system evidently has it, so re-sending stops,
  docs/clearing-link.md §1), then ACSC → SETTLED and RJCT → REJECTED (with its reason)
  from ACKED or NETTED; ACSP leaves the item ACKED (NETTED comes from
  beps.netting, SETTLED also from beps.settle: ``correspondence_sqlite``).
- A move to SETTLED or REJECTED after acceptance writes a STATUS
  notification for the corporate in the same transaction (docs/protocol.md §4 NTFY).

The correspondence part of the protocol (notifications, inquiries, incoming
credits, netting) lives in :mod:`gateway.journal.correspondence_sqlite`, the
draft register in :mod:`gateway.journal.drafts_sqlite`.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from pathlib import Path
from typing import TypeVar

from gateway.clock import SHANGHAI
from gateway.journal import gauges, schema
from gateway.journal.correspondence_sqlite import SqliteCorrespondence, notify_status
from gateway.journal.credit_review_sqlite import SqliteCreditReview
from gateway.journal.drafts_sqlite import SqliteDrafts
from gateway.journal.gauges import LiveCounts
from gateway.journal.ops_sqlite import SqliteOperations
from gateway.journal.records import (
    AcceptOutcome,
    NewOutbound,
    NewRequest,
    OutboundRecord,
    OutState,
    PendingGroup,
    QueuedItem,
    RequestRecord,
    StateCount,
    TxResult,
)
from gateway.journal.review_sqlite import SqliteReview
from gateway.journal.schema import from_micros, opt_date, opt_datetime, to_micros
from gateway.journal.store import Store
from gateway.journal.writer import GroupCommitWriter
from gateway.model import BizType, Engine, State, StatusView, Transition

T = TypeVar("T")

_TX_STATUSES = frozenset({"ACSC", "ACSP", "RJCT"})
_READ_THREADS = 2

_FIND_REQUEST = schema.FIND_REQUEST
_UNSENT = (
    "SELECT msg_id, engine, msg_tp, topic, receiver, work_date, payload, state, attempts,"
    " created_at, last_sent_at FROM outbound WHERE state = 'PENDING'"
    " ORDER BY created_at, msg_id LIMIT ?"
)
_DUE = (
    "SELECT msg_id, engine, msg_tp, topic, receiver, work_date, payload, state, attempts,"
    " created_at, last_sent_at FROM outbound WHERE state = 'SENT' AND last_sent_at <= ?"
    " ORDER BY last_sent_at, msg_id LIMIT ?"
)
_TRANSITION_INSERT = "INSERT INTO transitions (item_id, state, at, detail) VALUES (?, ?, ?, ?)"


class SqliteStore(
    SqliteCreditReview,
    SqliteOperations,
    SqliteReview,
    SqliteCorrespondence,
    SqliteDrafts,
):
    """The SQLite journal.  ``node`` is the letter in every GwRef (docs/protocol.md §5).

    ``await start()`` before use; ``await close()`` drains queued writes.
    Any call before ``start`` or after ``close`` raises ``RuntimeError``.
    """

    def __init__(
        self, path: Path, *, node: str = "A", max_batch: int = 512, readonly: bool = False
    ) -> None:
        if not schema.NODE_RE.fullmatch(node):
            raise ValueError("node must be one letter A-Z")
        self.path = Path(path)
        self.readonly = readonly
        """Read-only (``gatewayctl`` with the daemon stopped): no writer, no migration,
        the file opened ``mode=ro``; every write raises ``RuntimeError``."""
        self.node = node
        self._writer = GroupCommitWriter(self._open_writer, max_batch=max_batch)
        self._readers: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._read_conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._state = "new"

    # -- lifecycle --------------------------------------------------------
    async def start(self) -> None:
        if self._state != "new":
            raise RuntimeError(f"journal store is {self._state}")
        self._state = "starting"
        try:
            if self.readonly:
                await asyncio.to_thread(self._check_readable)
            else:
                await asyncio.wrap_future(self._writer.start())
        except BaseException:
            self._state = "closed"
            raise
        self._readers = ThreadPoolExecutor(_READ_THREADS, thread_name_prefix="journal-read")
        self._state = "open"

    async def close(self) -> None:
        if self._state in ("closed", "closing"):
            return
        self._state = "closing"
        if not self.readonly:
            await asyncio.to_thread(self._writer.stop)
        if self._readers is not None:
            await asyncio.to_thread(self._readers.shutdown, wait=True)
        with self._conns_lock:
            for conn in self._read_conns:
                conn.close()
            self._read_conns.clear()
        self._state = "closed"

    @property
    def pending_writes(self) -> int:
        """Writes queued for the next group commit (approximate), for 5002 load
        shedding before the journal queue grows past its bound
        (docs/architecture.md §7, principle 4)."""
        return self._writer.pending

    def _open_writer(self) -> sqlite3.Connection:
        conn = schema.connect(self.path)
        try:
            schema.migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _check_readable(self) -> None:
        """A read-only open never creates or migrates: the file must be there, current."""
        if not self.path.is_file():
            raise FileNotFoundError(f"no journal at {self.path}")
        conn = schema.connect(self.path, readonly=True, file_readonly=True)
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        finally:
            conn.close()
        if version != schema.SCHEMA_VERSION:
            raise RuntimeError(
                f"journal {self.path} has schema version {version}, this gateway reads"
                f" {schema.SCHEMA_VERSION}: start gatewayd once to migrate it"
            )

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self.readonly:
            raise RuntimeError("journal store is open read-only")
        if self._state != "open":
            raise RuntimeError("journal store is not open")
        return await self._writer.submit(fn)

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._state != "open" or self._readers is None:
            raise RuntimeError("journal store is not open")
        return await asyncio.get_running_loop().run_in_executor(self._readers, self._on_reader, fn)

    def _on_reader(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = schema.connect(self.path, readonly=True, file_readonly=self.readonly)
            self._local.conn = conn
            with self._conns_lock:
                self._read_conns.append(conn)
        # One read transaction, so multi-statement reads see one snapshot.
        conn.execute("BEGIN")
        try:
            return fn(conn)
        finally:
            conn.execute("COMMIT")

    # -- the request side -------------------------------------------------
    async def find_request(self, corp_id: str, msg_id: str) -> RequestRecord | None:
        def read(conn: sqlite3.Connection) -> RequestRecord | None:
            row = conn.execute(_FIND_REQUEST, (corp_id, msg_id)).fetchone()
            return None if row is None else schema.request_record(row)

        return await self._read(read)

    async def accept(self, request: NewRequest) -> AcceptOutcome:
        received = to_micros(request.received_at)
        schema.check_seq_nos(request.items)
        items = [schema.item_params(item, received) for item in request.items]
        node = self.node

        counted = sum(
            schema.to_fen(item.amount) for item in request.items if item.state is not State.REJECTED
        )
        limit = request.daily_limit
        day = (limit.day if limit else request.received_at.astimezone(SHANGHAI).date()).isoformat()

        def write(conn: sqlite3.Connection) -> AcceptOutcome:
            row = conn.execute(_FIND_REQUEST, (request.corp_id, request.msg_id)).fetchone()
            if row is not None:
                return AcceptOutcome(created=False, record=schema.request_record(row))
            cap = schema.to_fen(limit.cap) if limit else None
            if cap is not None and counted > cap:
                return AcceptOutcome(created=False, record=None, over_limit=True)
            total = conn.execute(
                schema.ADD_DAILY_TOTAL,
                {
                    "corp": request.corp_id,
                    "oper": request.oper_id,
                    "day": day,
                    "fen": counted,
                    "cap": cap,
                },
            ).fetchone()
            if total is None:
                return AcceptOutcome(created=False, record=None, over_limit=True)
            (request_id,) = conn.execute(
                "INSERT INTO requests (corp_id, msg_id, oper_id, trn_code, digest, received_at)"
                " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    request.corp_id,
                    request.msg_id,
                    request.oper_id,
                    request.trn_code,
                    request.digest,
                    received,
                ),
            ).fetchone()
            ref = schema.gw_ref(request.received_at, node, request_id)
            conn.execute("UPDATE requests SET gw_ref = ? WHERE id = ?", (ref, request_id))
            conn.executemany(
                schema.ITEM_INSERT,
                (
                    (
                        request_id,
                        seq,
                        schema.tx_id(ref, seq),
                        schema.end_to_end_id(request.msg_id, seq),
                        *rest,
                    )
                    for seq, rest in items
                ),
            )
            # ACCEPTED for every item first, then each first state: per item the
            # ACCEPTED row always has the smaller id (history order).
            conn.execute(
                "INSERT INTO transitions (item_id, state, at, detail)"
                " SELECT id, 'ACCEPTED', ?, NULL FROM items WHERE request_id = ? ORDER BY id",
                (received, request_id),
            )
            conn.execute(
                "INSERT INTO transitions (item_id, state, at, detail)"
                " SELECT id, state, ?, reason_code FROM items WHERE request_id = ? ORDER BY id",
                (received, request_id),
            )
            record = request.record(ref, from_micros(received))
            return AcceptOutcome(created=True, record=record)

        return await self._write(write)

    async def item_status(
        self, corp_id: str, msg_id: str, seq_no: int | None = None
    ) -> StatusView | None:
        sql = (
            "SELECT i.id, i.state, i.engine, i.work_date, i.release_at, i.reason_code,"
            " i.reason_text, i.seq_no, i.uetr FROM requests r JOIN items i ON i.request_id = r.id"
            " WHERE r.corp_id = ? AND r.msg_id = ?"
        )
        params: tuple[object, ...] = (corp_id, msg_id)
        if seq_no is not None:
            sql += " AND i.seq_no = ?"
            params += (seq_no,)
        sql += " ORDER BY i.id LIMIT 1"

        def read(conn: sqlite3.Connection) -> StatusView | None:
            row = conn.execute(sql, params).fetchone()
            if row is None:
                return None
            item_id, state, engine, work_date, release_at, code, text, seq, uetr = row
            history = tuple(
                Transition(State(s), from_micros(at))
                for s, at in conn.execute(
                    "SELECT state, at FROM transitions WHERE item_id = ? ORDER BY id", (item_id,)
                )
            )
            return StatusView(
                state=State(state),
                engine=None if engine is None else Engine(engine),
                work_date=opt_date(work_date),
                release_at=opt_datetime(release_at),
                reason_code=code,
                reason_text=text,
                seq_no=seq,
                history=history,
                uetr=uetr,
            )

        return await self._read(read)

    # -- the engine side --------------------------------------------------
    async def release_held(self, now: datetime, limit: int, engine: Engine | None = None) -> int:
        at = to_micros(now)
        if limit <= 0:
            return 0

        def write(conn: sqlite3.Connection) -> int:
            ids = conn.execute(
                "UPDATE items SET state = 'QUEUED', queued_at = ?1, updated_at = ?1"
                " WHERE id IN (SELECT id FROM items WHERE state = 'HELD' AND release_at <= ?1"
                " AND (?3 IS NULL OR engine = ?3) ORDER BY release_at, id LIMIT ?2) RETURNING id",
                (at, limit, None if engine is None else engine.value),
            ).fetchall()
            _transitions(conn, sorted(item_id for (item_id,) in ids), State.QUEUED, at, None)
            return len(ids)

        return await self._write(write)

    async def pending_groups(self, engine: Engine) -> list[PendingGroup]:
        def read(conn: sqlite3.Connection) -> list[PendingGroup]:
            rows = conn.execute(
                "SELECT receiver, biz_type, work_date, COUNT(*), MIN(queued_at) FROM items"
                " WHERE engine = ? AND state = 'QUEUED' AND out_msg_id IS NULL"
                " GROUP BY receiver, biz_type, work_date ORDER BY MIN(queued_at), receiver",
                (engine.value,),
            ).fetchall()
            return [
                PendingGroup(
                    engine=engine,
                    receiver=receiver,
                    biz_type=BizType(biz),
                    work_date=date.fromisoformat(day),
                    count=count,
                    oldest_queued_at=from_micros(oldest),
                )
                for receiver, biz, day, count, oldest in rows
            ]

        return await self._read(read)

    async def claim_queued(
        self,
        engine: Engine,
        limit: int,
        *,
        receiver: str | None = None,
        biz_type: BizType | None = None,
        work_date: object | None = None,
    ) -> list[QueuedItem]:
        """Selecting is enough to claim here: one node owns this file, and
        :meth:`create_outbound` refuses an item that got linked meanwhile."""
        sql = schema.QUEUED_SELECT
        params: list[object] = [engine.value]
        if receiver is not None:
            sql += " AND i.receiver = ?"
            params.append(receiver)
        if biz_type is not None:
            sql += " AND i.biz_type = ?"
            params.append(biz_type.value)
        if work_date is not None:
            sql += " AND i.work_date = ?"
            params.append(schema.date_text(work_date))
        sql += " ORDER BY i.queued_at, i.id LIMIT ?"
        params.append(max(limit, 0))

        def read(conn: sqlite3.Connection) -> list[QueuedItem]:
            return [schema.queued_item(row) for row in conn.execute(sql, params)]

        return await self._read(read)

    async def next_sequence(self, name: str, count: int = 1) -> int:
        if count < 1:
            raise ValueError("count must be at least 1")

        def write(conn: sqlite3.Connection) -> int:
            (last,) = conn.execute(
                "INSERT INTO sequences (name, value) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET value = value + excluded.value"
                " RETURNING value",
                (name, count),
            ).fetchone()
            return int(last) - count + 1

        return await self._write(write)

    async def create_outbound(self, messages: Sequence[NewOutbound]) -> None:
        """All messages of one call are written together or not at all."""
        prepared = [(m, schema.date_text(m.work_date), to_micros(m.created_at)) for m in messages]

        def write(conn: sqlite3.Connection) -> None:
            for m, day, created in prepared:
                try:
                    conn.execute(
                        "INSERT INTO outbound (msg_id, engine, msg_tp, topic, receiver, work_date,"
                        " payload, state, attempts, created_at)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, 'PENDING', 0, ?)",
                        (m.msg_id, m.engine.value, m.msg_tp, m.topic, m.receiver, day,
                         m.payload, created),
                    )  # fmt: skip
                except sqlite3.IntegrityError as exc:
                    raise ValueError(f"outbound MsgId {m.msg_id} is already journaled") from exc
                for item_id in m.item_ids:
                    cur = conn.execute(
                        "UPDATE items SET out_msg_id = ?, updated_at = ? WHERE id = ?"
                        " AND engine = ? AND state = 'QUEUED' AND out_msg_id IS NULL",
                        (m.msg_id, created, item_id, m.engine.value),
                    )
                    if cur.rowcount != 1:
                        raise ValueError(
                            f"item {item_id} is not a QUEUED, unlinked item of {m.engine.value}"
                        )
                    if m.uetr is not None:  # docs/foreign-currency.md §4: with the message
                        conn.execute("UPDATE items SET uetr = ? WHERE id = ?", (m.uetr, item_id))

        await self._write(write)

    async def reject_queued(
        self, item_id: int, engine: Engine, reason_code: str, reason_text: str, at: datetime
    ) -> bool:
        when = to_micros(at)

        def write(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE items SET state = 'REJECTED', updated_at = ?, reason_code = ?,"
                " reason_text = ? WHERE id = ? AND engine = ? AND state = 'QUEUED'"
                " AND out_msg_id IS NULL",
                (when, reason_code, reason_text, item_id, engine.value),
            )
            if cur.rowcount != 1:
                return False
            _transitions(conn, [item_id], State.REJECTED, when, reason_code)
            notify_status(conn, [item_id], when)
            return True

        return await self._write(write)

    async def unsent_outbound(self, limit: int) -> list[OutboundRecord]:
        def read(conn: sqlite3.Connection) -> list[OutboundRecord]:
            rows = conn.execute(_UNSENT, (max(limit, 0),))
            return [schema.outbound_record(row) for row in rows]

        return await self._read(read)

    async def mark_sent(self, msg_id: str, at: datetime) -> None:
        """The first PUBACK of ``msg_id``; later calls change nothing.

        ``KeyError`` for an unknown MsgId.
        """
        when = to_micros(at)
        await self._write(lambda conn: _first_puback(conn, msg_id, when))

    async def mark_sent_many(self, msg_ids: Sequence[str], at: datetime) -> None:
        """``mark_sent`` for a burst of PUBACKs: one write operation, one savepoint."""
        when = to_micros(at)
        ids = list(msg_ids)

        def write(conn: sqlite3.Connection) -> None:
            for msg_id in ids:
                _first_puback(conn, msg_id, when)

        await self._write(write)

    async def due_for_resend(self, sent_before: datetime, limit: int) -> list[OutboundRecord]:
        cutoff = to_micros(sent_before)

        def read(conn: sqlite3.Connection) -> list[OutboundRecord]:
            rows = conn.execute(_DUE, (cutoff, max(limit, 0)))
            return [schema.outbound_record(row) for row in rows]

        return await self._read(read)

    async def mark_resent(self, msg_id: str, at: datetime) -> None:
        """Counts a re-publish once per ``at``: a repeat with the same or an
        older time is a no-op.  Before any PUBACK it acts as :meth:`mark_sent`.
        ``KeyError`` for an unknown MsgId."""
        when = to_micros(at)

        def write(conn: sqlite3.Connection) -> None:
            if _first_puback(conn, msg_id, when):
                return
            conn.execute(
                "UPDATE outbound SET attempts = attempts + 1, last_sent_at = ?"
                " WHERE msg_id = ? AND last_sent_at < ?",
                (when, msg_id, when),
            )

        await self._write(write)

    async def apply_receipt(self, msg_id: str, at: datetime) -> bool:
        when = to_micros(at)

        def write(conn: sqlite3.Connection) -> bool:
            return _receipt(conn, msg_id, when) is not None

        return await self._write(write)

    async def apply_tx_status(self, msg_id: str, results: Sequence[TxResult], at: datetime) -> int:
        """A result that matches no item of ``msg_id`` (or, by EndToEndId alone,
        more than one) is skipped.  Unknown ``msg_id``: 0."""
        when = to_micros(at)
        for result in results:
            if result.status not in _TX_STATUSES:
                raise ValueError(f"unknown transaction status {result.status!r}")

        def write(conn: sqlite3.Connection) -> int:
            changed = _receipt(conn, msg_id, when)  # a ccms.900 implies the ccms.990
            if changed is None:
                return 0
            for result in results:
                found = _match_item(conn, msg_id, result)
                if found is not None and _apply_status(conn, msg_id, found, result, when):
                    changed.add(found[0])
            return len(changed)

        return await self._write(write)

    async def summary(self) -> list[StateCount]:
        def read(conn: sqlite3.Connection) -> list[StateCount]:
            rows = conn.execute(
                "SELECT engine, state, reason_code, COUNT(*) FROM items"
                " GROUP BY engine, state, reason_code ORDER BY engine, state, reason_code"
            )
            return [
                StateCount(
                    engine=None if engine is None else Engine(engine),
                    state=State(state),
                    reason_code=code,
                    count=count,
                )
                for engine, state, code, count in rows
            ]

        return await self._read(read)

    async def live_counts(self) -> LiveCounts:
        def read(conn: sqlite3.Connection) -> LiveCounts:
            items = conn.execute(gauges.ITEMS_SQL).fetchall()
            pending, item_since, credit_since = conn.execute(gauges.REVIEW_SQL).fetchone()
            review = (
                int(pending),
                None if item_since is None else schema.from_micros(int(item_since)),
                None if credit_since is None else schema.from_micros(int(credit_since)),
            )
            return gauges.live_counts(items, conn.execute(gauges.CREDITS_SQL).fetchone(), review)

        return await self._read(read)


# -- write helpers (run on the writer thread, inside its transaction) ---------


def _first_puback(conn: sqlite3.Connection, msg_id: str, when: int) -> bool:
    """Record the first PUBACK; False if one was already recorded."""
    row = conn.execute("SELECT last_sent_at FROM outbound WHERE msg_id = ?", (msg_id,)).fetchone()
    if row is None:
        raise KeyError(msg_id)
    if row[0] is not None:
        return False
    conn.execute(
        "UPDATE outbound SET attempts = attempts + 1, last_sent_at = ?,"
        " state = CASE state WHEN 'PENDING' THEN 'SENT' ELSE state END WHERE msg_id = ?",
        (when, msg_id),
    )
    _advance_linked(conn, msg_id, State.QUEUED, State.SENT, when)
    return True


def _receipt(conn: sqlite3.Connection, msg_id: str, when: int) -> set[int] | None:
    """The clearing system has ``msg_id``: message ACKED, its items QUEUED/SENT → ACKED.

    Returns the ids of items that moved (none on a repeat); None if the MsgId is unknown.
    """
    row = conn.execute("SELECT state FROM outbound WHERE msg_id = ?", (msg_id,)).fetchone()
    if row is None:
        return None
    if row[0] != OutState.ACKED.value:
        conn.execute(
            "UPDATE outbound SET state = 'ACKED', acked_at = ? WHERE msg_id = ?", (when, msg_id)
        )
    moved = set(_advance_linked(conn, msg_id, State.QUEUED, State.SENT, when))
    moved.update(_advance_linked(conn, msg_id, State.SENT, State.ACKED, when))
    return moved


def _advance_linked(
    conn: sqlite3.Connection, msg_id: str, src: State, dst: State, when: int
) -> list[int]:
    """Move every item of outbound ``msg_id`` in ``src`` to ``dst``; returns their ids."""
    rows = conn.execute(
        "UPDATE items SET state = ?, updated_at = ? WHERE out_msg_id = ? AND state = ?"
        " RETURNING id",
        (dst.value, when, msg_id, src.value),
    ).fetchall()
    ids = sorted(item_id for (item_id,) in rows)
    _transitions(conn, ids, dst, when, msg_id)
    return ids


def _transitions(
    conn: sqlite3.Connection, ids: Sequence[int], state: State, when: int, detail: str | None
) -> None:
    conn.executemany(_TRANSITION_INSERT, ((i, state.value, when, detail) for i in ids))


def _match_item(
    conn: sqlite3.Connection, msg_id: str, result: TxResult
) -> tuple[int, State] | None:
    """The item of ``msg_id`` a ccms.900 line is about: by TxId, else a unique EndToEndId."""
    if result.tx_id is not None:
        row = conn.execute(
            "SELECT id, state FROM items WHERE tx_id = ? AND out_msg_id = ?",
            (result.tx_id, msg_id),
        ).fetchone()
        if row is not None:
            return int(row[0]), State(row[1])
    if result.end_to_end_id is not None:
        # EndToEndId is the corporate's MsgId, unique only per CorpId: two
        # corporates' items in one package may share it.  Ambiguous → skip.
        rows = conn.execute(
            "SELECT id, state FROM items WHERE out_msg_id = ? AND end_to_end_id = ? LIMIT 2",
            (msg_id, result.end_to_end_id),
        ).fetchall()
        if len(rows) == 1:
            return int(rows[0][0]), State(rows[0][1])
    return None


def _apply_status(
    conn: sqlite3.Connection, msg_id: str, item: tuple[int, State], result: TxResult, when: int
) -> bool:
    """Apply one ACSC / RJCT to an ACKED or NETTED item; True if its state changed.

    ACSP changes nothing here: the implied receipt already made the item ACKED.
    """
    item_id, state = item
    if state.final or result.status == "ACSP":
        return False
    if result.status == "ACSC":
        conn.execute(
            "UPDATE items SET state = 'SETTLED', updated_at = ? WHERE id = ?", (when, item_id)
        )
        _transitions(conn, [item_id], State.SETTLED, when, msg_id)
        notify_status(conn, [item_id], when)
    else:
        conn.execute(
            "UPDATE items SET state = 'REJECTED', updated_at = ?, reason_code = ?,"
            " reason_text = ? WHERE id = ?",
            (when, result.reason_code, result.reason_text, item_id),
        )
        _transitions(conn, [item_id], State.REJECTED, when, result.reason_code)
        notify_status(conn, [item_id], when)
    return True


def _conforms(store: SqliteStore) -> Store:
    """Never called: makes mypy check SqliteStore against the Store protocol."""
    return store
