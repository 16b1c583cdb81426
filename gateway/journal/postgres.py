"""The scale-out journal: PostgreSQL (asyncpg), shared by several gateway nodes.

Implements :class:`gateway.journal.store.Store` with the SQLite journal's
semantics (``sqlite.py`` is the reference: same GwRef/TxId/EndToEndId, same
state rules, same idempotency, same errors) on one database that several
nodes use at once (docs/architecture.md §7 "Storage").  Nothing here replicates data: high
availability is PostgreSQL's (streaming replication, ``synchronous_standby_names``).

Durability (docs/protocol.md §5): every method that changes state returns after
its transaction committed with ``synchronous_commit = on`` (set on every
connection), i.e. after the WAL was flushed (and, with synchronous standbys
configured, confirmed by them).  Group commit is PostgreSQL's own: concurrent
commits share WAL flushes (``commit_delay`` can widen the window).  An accept
is one statement — one round trip, one commit.

Several nodes, one database:

- **Dedupe** is the ``(corp_id, msg_id)`` unique key with ``ON CONFLICT DO
  NOTHING``: two nodes accepting the same MsgId at once create it once; the
  other gets ``created=False`` and the winner's record (docs/protocol.md §7).
- **GwRef numbers** come from one sequence, so they are unique across nodes;
  the node letter in the GwRef says which node accepted (docs/protocol.md §5).
- **Sequences** (``next_sequence``) are rows updated atomically
  (``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``): a range is never
  handed to two nodes, so outbound MsgIds never collide (docs/clearing-link.md §1).
- **Claiming work** (docs/clearing-link.md §1: one payment, one MsgId): the payload of
  an outbound message is built and signed *between* ``claim_queued`` and
  ``create_outbound``, so the claim cannot live in ``create_outbound``'s
  transaction.  Instead ``claim_queued`` picks rows ``FOR NO KEY UPDATE SKIP
  LOCKED`` (the row lock an UPDATE takes, so it does not block foreign-key
  checks; concurrent claimers skip each other's rows instead of waiting) and,
  in the same statement, leases them to this node until the database's
  ``now() + lease``.  Other nodes skip rows under a live lease — in
  ``claim_queued`` and in ``pending_groups`` — until it ends; the lessee
  itself may claim them again (that renews the lease), so a restarted node
  resumes its own work at once.  ``create_outbound`` links only items that
  are still QUEUED, unlinked and not under another node's live lease, and
  otherwise raises ``ValueError`` with nothing written.  A node that dies
  between claim and ``create_outbound`` leaves leases that simply expire;
  then any node takes the items.  Even if a lease expires while its holder
  is still signing, no item can end in two messages: linking is an
  ``UPDATE ... WHERE out_msg_id IS NULL`` under the row lock, and the
  slower node's ``create_outbound`` fails whole.  Lease times use the
  database clock, never the nodes' (the store reads no business clock).
- **Receipts** lock their outbound row first, so two nodes applying the same
  ccms.990/900 at once apply it once.  A ccms.900 that makes items final
  writes their STATUS notifications in the same statement (docs/protocol.md §4
  NTFY), under the per-corporate NTFY ordering locks
  (``correspondence_postgres``, which holds the rest of the correspondence
  part: inquiries, incoming credits, netting).
- **The draft register** (``drafts_postgres``) locks a draft's row for every
  change to it, so one presentment of a draft is accepted and each draft
  message journaled once, whichever node runs it.

What this does not share out: ``unsent_outbound`` / ``due_for_resend``
return the same messages to every node, so two nodes may re-publish one
message; that is allowed (same MsgId, receivers dedupe, docs/clearing-link.md §1).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Final

import asyncpg

from gateway.journal import audit_chain, gauges, schema
from gateway.journal import postgres_schema as pg
from gateway.journal.correspondence_postgres import (
    STATUS_NOTICES,
    PostgresCorrespondence,
    lock_notices,
)
from gateway.journal.credit_review_postgres import PostgresCreditReview
from gateway.journal.drafts_postgres import PostgresDrafts
from gateway.journal.gauges import LiveCounts
from gateway.journal.ops_postgres import PostgresOperations
from gateway.journal.records import (
    AcceptOutcome,
    NewOutbound,
    NewRequest,
    OutboundRecord,
    PendingGroup,
    QueuedItem,
    RequestRecord,
    StateCount,
    TxResult,
)
from gateway.journal.review_postgres import PostgresReview
from gateway.journal.store import Store
from gateway.model import BizType, Engine, State, StatusView, Transition
from gateway.ops.metrics import JOURNAL_COMMIT_SECONDS, JOURNAL_COMMIT_SIZE, JOURNAL_COMMITS

_TX_STATUSES = frozenset({"ACSC", "ACSP", "RJCT"})
_CLOSE_GRACE: Final = 30.0
"""Seconds ``close()`` waits for calls in flight before closing connections anyway."""

_FREE = "(claimed_until IS NULL OR claimed_by = $2 OR claimed_until <= now())"
"""Not under another node's live lease ($2 is this node)."""

_FIND_REQUEST = pg.FIND_REQUEST
_STATUS = """
SELECT i.id, i.state, i.engine, i.work_date, i.release_at, i.reason_code, i.reason_text,
       i.seq_no, i.uetr, t.state AS t_state, t.at AS t_at
  FROM (SELECT i.* FROM requests r JOIN items i ON i.request_id = r.id
         WHERE r.corp_id = $1 AND r.msg_id = $2 {seq} ORDER BY i.id LIMIT 1) AS i
  LEFT JOIN transitions t ON t.item_id = i.id
 ORDER BY t.id
"""
_RELEASE = """
WITH due AS (
    SELECT id FROM items WHERE state = 'HELD' AND release_at <= $1
       AND ($3::text IS NULL OR engine = $3)
     ORDER BY release_at, id LIMIT $2
       FOR NO KEY UPDATE SKIP LOCKED
), moved AS (
    UPDATE items i SET state = 'QUEUED', queued_at = $1, updated_at = $1
      FROM due WHERE i.id = due.id AND i.state = 'HELD'
    RETURNING i.id
), trail AS (
    INSERT INTO transitions (item_id, state, at)
    SELECT id, 'QUEUED', $1 FROM moved ORDER BY id
)
SELECT count(*) FROM moved
"""
_GROUPS = f"""
SELECT receiver, biz_type, work_date, count(*) AS n, min(queued_at) AS oldest FROM items
 WHERE engine = $1 AND state = 'QUEUED' AND out_msg_id IS NULL AND {_FREE}
 GROUP BY receiver, biz_type, work_date
 ORDER BY min(queued_at), receiver, biz_type, work_date
"""  # noqa: S608 (built from our own constants; values are $n parameters)
_CLAIM = """
WITH picked AS (
    SELECT id FROM items
     WHERE engine = $1 AND state = 'QUEUED' AND out_msg_id IS NULL AND {free} {filters}
     ORDER BY queued_at, id LIMIT $3
       FOR NO KEY UPDATE SKIP LOCKED
), leased AS (
    UPDATE items i SET claimed_by = $2, claimed_until = now() + $4::interval
      FROM picked WHERE i.id = picked.id
    RETURNING i.*
)
SELECT {columns} FROM leased i JOIN requests r ON r.id = i.request_id ORDER BY i.queued_at, i.id
"""
_NEXT_SEQUENCE = """
INSERT INTO sequences (name, value) VALUES ($1, $2)
    ON CONFLICT (name) DO UPDATE SET value = sequences.value + excluded.value
RETURNING value
"""
_LINK = f"""
UPDATE items SET out_msg_id = $1, updated_at = $3, claimed_by = NULL, claimed_until = NULL
 WHERE id = ANY($4::bigint[]) AND engine = $5 AND state = 'QUEUED' AND out_msg_id IS NULL
   AND {_FREE}
RETURNING id
"""  # noqa: S608 (built from our own constants; values are $n parameters)
_LOCK_QUEUED = """
SELECT r.corp_id FROM items i JOIN requests r ON r.id = i.request_id
 WHERE i.id = $1 AND i.engine = $3 AND i.state = 'QUEUED' AND i.out_msg_id IS NULL
   AND (i.claimed_until IS NULL OR i.claimed_by = $2 OR i.claimed_until <= now())
   FOR NO KEY UPDATE OF i
"""
_REJECT_QUEUED = f"""
WITH u AS (SELECT $1::bigint AS id, 'REJECTED'::text AS state, $2::text AS code,
                  $3::text AS text, 1 AS ord),
changed AS (
    UPDATE items SET state = 'REJECTED', updated_at = $4, reason_code = $2, reason_text = $3,
           claimed_by = NULL, claimed_until = NULL
     WHERE id = $1
), trail AS (
    INSERT INTO transitions (item_id, state, at, detail) VALUES ($1, 'REJECTED', $4, $2)
)
{STATUS_NOTICES.format(at="$4")}
"""  # noqa: S608 (built from our own constants; values are $n parameters)
"""A leased QUEUED item → REJECTED, its transition and STATUS notification, one statement."""
_UNSENT = (
    f"SELECT {pg.OUTBOUND_COLUMNS} FROM outbound WHERE state = 'PENDING'"  # noqa: S608
    " ORDER BY created_at, msg_id LIMIT $1"
)
_DUE = (
    f"SELECT {pg.OUTBOUND_COLUMNS} FROM outbound"  # noqa: S608 (constant fragments)
    " WHERE state = 'SENT' AND last_sent_at <= $1"
    " ORDER BY last_sent_at, msg_id LIMIT $2"
)
_LOCK_OUTBOUND = "SELECT state, last_sent_at FROM outbound WHERE msg_id = $1 FOR NO KEY UPDATE"
_ADVANCE = """
WITH moved AS (
    UPDATE items SET state = $3, updated_at = $4 WHERE out_msg_id = $1 AND state = $2
    RETURNING id
), trail AS (
    INSERT INTO transitions (item_id, state, at, detail)
    SELECT id, $3, $4, $1 FROM moved ORDER BY id
)
SELECT id FROM moved
"""
_FINISH = f"""
WITH u AS (
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY
        AS u(id, state, code, text, ord)
), changed AS (
    UPDATE items i SET state = u.state, updated_at = $5,
           reason_code = CASE WHEN u.state = 'REJECTED' THEN u.code ELSE i.reason_code END,
           reason_text = CASE WHEN u.state = 'REJECTED' THEN u.text ELSE i.reason_text END
      FROM u WHERE i.id = u.id
), trail AS (
    INSERT INTO transitions (item_id, state, at, detail)
    SELECT id, state, $5, CASE WHEN state = 'SETTLED' THEN $6 ELSE code END FROM u ORDER BY ord
)
{STATUS_NOTICES.format(at="$5")}
"""  # noqa: S608 (built from our own constants; values are $n parameters)
_TX_ITEMS = """
SELECT i.id, i.tx_id, i.end_to_end_id, i.state, r.corp_id
  FROM items i JOIN requests r ON r.id = i.request_id
 WHERE i.out_msg_id = $1
 ORDER BY i.id
   FOR NO KEY UPDATE OF i
"""
"""A ccms.900's candidate items, locked in id order (as netting and settlement lock
theirs), so a concurrent beps.settle cannot slip between reading and updating."""
_SUMMARY = """
SELECT engine, state, reason_code, count(*) AS n FROM items
 GROUP BY engine, state, reason_code
 ORDER BY engine NULLS FIRST, state, reason_code NULLS FIRST
"""


class _OverLimit(Exception):
    """Raised inside a capped accept's transaction to roll it back."""


class PostgresStore(
    PostgresCreditReview,
    PostgresOperations,
    PostgresReview,
    PostgresCorrespondence,
    PostgresDrafts,
):
    """The PostgreSQL journal.  ``node`` is the letter in every GwRef (docs/protocol.md §5).

    ``dsn`` is a libpq-style URL (``postgresql://user@host:port/db``); the
    password, if any, comes from the usual places (``PGPASSWORD``,
    ``~/.pgpass``), never from the gateway config.  ``pool_size`` bounds the
    connections this node opens.  ``lease`` is how long (seconds) a claim
    keeps QUEUED items from other nodes (module docstring): long enough to
    sign a package, short enough that a dead node's work is soon picked up.

    ``await start()`` before use (it migrates the schema); ``await close()``
    waits for calls in flight.  Any call before ``start`` or after ``close``
    raises ``RuntimeError``.
    """

    def __init__(
        self,
        dsn: str,
        *,
        node: str = "A",
        pool_size: int = 10,
        lease: float = 30.0,
        readonly: bool = False,
    ) -> None:
        if not schema.NODE_RE.fullmatch(node):
            raise ValueError("node must be one letter A-Z")
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        self.dsn = dsn
        self.readonly = readonly
        """Read-only (``gatewayctl`` with the daemon stopped): no migration, and every
        transaction read-only (``default_transaction_read_only``)."""
        self.node = node
        self.pool_size = pool_size
        self._lease = pg.lease_interval(lease)
        self._pool: asyncpg.Pool | None = None
        self._state = "new"
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    # -- lifecycle --------------------------------------------------------
    async def start(self) -> None:
        if self._state != "new":
            raise RuntimeError(f"journal store is {self._state}")
        self._state = "starting"
        settings = {
            "synchronous_commit": "on",  # the 0000 promise, whatever the server default
            "application_name": f"gateway-{self.node}",
            "jit": "off",  # short OLTP statements: compiling costs more than it saves
            "gateway.node": self.node,  # whose audit chain this connection writes
        }
        if self.readonly:
            settings["default_transaction_read_only"] = "on"
        try:
            conn = await asyncpg.connect(self.dsn, server_settings=settings)
            try:
                if self.readonly:
                    await pg.check_version(conn)
                else:
                    await pg.migrate(conn, self.node)
            finally:
                await conn.close()
            self._pool = await asyncpg.create_pool(
                self.dsn,
                min_size=min(2, self.pool_size),
                max_size=self.pool_size,
                server_settings=settings,
            )
        except BaseException:
            self._state = "closed"
            raise
        self._state = "open"

    async def close(self) -> None:
        if self._state in ("closed", "closing"):
            return
        self._state = "closing"
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_CLOSE_GRACE):  # not wait_for: it can eat a cancel
                await self._idle.wait()
        if self._pool is not None:
            if self._inflight:
                self._pool.terminate()
            else:
                await self._pool.close()
        self._state = "closed"

    @property
    def pending_writes(self) -> int:
        """Calls waiting for a connection (approximate), for 5002 load shedding
        before the journal queue grows past its bound (docs/architecture.md §7, principle 4)."""
        return max(0, self._inflight - self.pool_size)

    @contextlib.asynccontextmanager
    async def _conn(self) -> AsyncIterator[asyncpg.pool.PoolConnectionProxy]:
        if self._state != "open" or self._pool is None:
            raise RuntimeError("journal store is not open")
        self._inflight += 1
        self._idle.clear()
        try:
            async with self._pool.acquire() as conn:
                yield conn
        finally:
            self._inflight -= 1
            if self._inflight == 0:
                self._idle.set()

    @contextlib.asynccontextmanager
    async def _commit(self) -> AsyncIterator[asyncpg.pool.PoolConnectionProxy]:
        """A connection inside a transaction; counted as one journal commit when it commits.

        The transaction takes this node's audit chain counter first (``audit_chain.PG_BEGIN``).
        """
        async with self._conn() as conn:
            started = time.perf_counter()
            async with conn.transaction():
                await conn.execute(audit_chain.PG_BEGIN)
                yield conn
            _committed(started)

    # -- the request side -------------------------------------------------
    async def find_request(self, corp_id: str, msg_id: str) -> RequestRecord | None:
        async with self._conn() as conn:
            row = await conn.fetchrow(_FIND_REQUEST, corp_id, msg_id)
        return None if row is None else pg.request_record(row)

    async def accept(self, request: NewRequest) -> AcceptOutcome:
        """One statement (``postgres_schema.ACCEPT``); in a transaction when capped,
        so that going over the daily limit can undo it (nothing written)."""
        args, capped = pg.accept_args(request, self.node)
        async with self._conn() as conn:
            started = time.perf_counter()
            if capped:
                try:
                    async with conn.transaction():
                        row = await conn.fetchrow(pg.ACCEPT, *args)
                        if row is not None and not row["within_limit"]:
                            raise _OverLimit  # rolls the request back: nothing written
                except _OverLimit:
                    return AcceptOutcome(created=False, record=None, over_limit=True)
            else:
                row = await conn.fetchrow(pg.ACCEPT, *args)  # autocommit: one statement
            _committed(started)
            if row is not None:
                record = request.record(row["gw_ref"], pg.shanghai(request.received_at))
                return AcceptOutcome(created=True, record=record)
            # A duplicate, or lost the race: a new statement sees the winner.
            found = await conn.fetchrow(_FIND_REQUEST, request.corp_id, request.msg_id)
        if found is None:  # pragma: no cover (the conflicting row is committed by now)
            raise RuntimeError("duplicate request vanished")
        return AcceptOutcome(created=False, record=pg.request_record(found))

    async def item_status(
        self, corp_id: str, msg_id: str, seq_no: int | None = None
    ) -> StatusView | None:
        args: list[object] = [corp_id, msg_id]
        if seq_no is None:
            sql = _STATUS.format(seq="")
        else:
            sql = _STATUS.format(seq="AND i.seq_no = $3")
            args.append(seq_no)
        async with self._conn() as conn:
            rows = await conn.fetch(sql, *args)  # one statement: one snapshot
        if not rows:
            return None
        first = rows[0]
        return StatusView(
            state=State(first["state"]),
            engine=None if first["engine"] is None else Engine(first["engine"]),
            work_date=first["work_date"],
            release_at=pg.opt_shanghai(first["release_at"]),
            reason_code=first["reason_code"],
            reason_text=first["reason_text"],
            seq_no=first["seq_no"],
            uetr=first["uetr"],
            history=tuple(
                Transition(State(r["t_state"]), pg.shanghai(r["t_at"]))
                for r in rows
                if r["t_state"] is not None
            ),
        )

    # -- the engine side --------------------------------------------------
    async def release_held(self, now: datetime, limit: int, engine: Engine | None = None) -> int:
        """``SKIP LOCKED``: two nodes releasing at once take different rows."""
        at = pg.aware(now)
        if limit <= 0:
            return 0
        async with self._conn() as conn:
            started = time.perf_counter()
            moved = await conn.fetchval(
                _RELEASE, at, limit, None if engine is None else engine.value
            )
            _committed(started)
        return int(moved)

    async def pending_groups(self, engine: Engine) -> list[PendingGroup]:
        """Only items this node could claim now: other nodes' leased rows are left out."""
        async with self._conn() as conn:
            rows = await conn.fetch(_GROUPS, engine.value, self.node)
        return [
            PendingGroup(
                engine=engine,
                receiver=r["receiver"],
                biz_type=BizType(r["biz_type"]),
                work_date=r["work_date"],
                count=r["n"],
                oldest_queued_at=pg.shanghai(r["oldest"]),
            )
            for r in rows
        ]

    async def claim_queued(
        self,
        engine: Engine,
        limit: int,
        *,
        receiver: str | None = None,
        biz_type: BizType | None = None,
        work_date: object | None = None,
    ) -> list[QueuedItem]:
        """Pick and lease (module docstring) up to ``limit`` QUEUED, unlinked
        items, oldest first, that no other node holds a live lease on."""
        args: list[object] = [engine.value, self.node, max(limit, 0), self._lease]
        filters = ""
        for column, value in (
            ("receiver", receiver),
            ("biz_type", None if biz_type is None else biz_type.value),
            ("work_date", None if work_date is None else pg.work_day(work_date)),
        ):
            if value is not None:
                args.append(value)
                filters += f" AND {column} = ${len(args)}"
        sql = _CLAIM.format(free=_FREE, filters=filters, columns=pg.QUEUED_COLUMNS)
        async with self._conn() as conn:
            rows = await conn.fetch(sql, *args)
        return [pg.queued_item(r) for r in rows]

    async def next_sequence(self, name: str, count: int = 1) -> int:
        if count < 1:
            raise ValueError("count must be at least 1")
        async with self._conn() as conn:
            started = time.perf_counter()
            last = await conn.fetchval(_NEXT_SEQUENCE, name, count)
            _committed(started)
        return int(last) - count + 1

    async def create_outbound(self, messages: Sequence[NewOutbound]) -> None:
        """All messages of one call are written together or not at all.

        Items are locked in id order first, so concurrent calls over the same
        items queue instead of deadlocking; the loser then finds them linked.
        """
        prepared = [
            (m, pg.work_day(m.work_date), pg.aware(m.created_at), list(m.item_ids))
            for m in messages
        ]
        every = sorted({i for m in messages for i in m.item_ids})
        async with self._commit() as conn:
            await conn.execute(
                "SELECT 1 FROM items WHERE id = ANY($1::bigint[]) ORDER BY id FOR NO KEY UPDATE",
                every,
            )
            for m, day, created, ids in prepared:
                try:
                    await conn.execute(
                        "INSERT INTO outbound (msg_id, engine, msg_tp, topic, receiver, work_date,"
                        " payload, state, attempts, created_at, node)"
                        " VALUES ($1, $2, $3, $4, $5, $6, $7, 'PENDING', 0, $8, $9)",
                        m.msg_id, m.engine.value, m.msg_tp, m.topic, m.receiver, day,
                        m.payload, created, self.node,
                    )  # fmt: skip
                except asyncpg.UniqueViolationError as exc:
                    raise ValueError(f"outbound MsgId {m.msg_id} is already journaled") from exc
                rows = await conn.fetch(_LINK, m.msg_id, self.node, created, ids, m.engine.value)
                linked = {r["id"] for r in rows}
                for item_id in ids:
                    if item_id not in linked:
                        raise ValueError(
                            f"item {item_id} is not a QUEUED, unlinked item of {m.engine.value}"
                            " free for this node"
                        )
                    linked.discard(item_id)  # an item listed twice fails on its second turn
                if m.uetr is not None:  # docs/foreign-currency.md §4: with the message
                    await conn.execute(
                        "UPDATE items SET uetr = $1 WHERE id = ANY($2::bigint[])", m.uetr, ids
                    )

    async def reject_queued(
        self, item_id: int, engine: Engine, reason_code: str, reason_text: str, at: datetime
    ) -> bool:
        """Locks the item (under this node's lease or none) before the NTFY lock."""
        when = pg.aware(at)
        async with self._commit() as conn:
            row = await conn.fetchrow(_LOCK_QUEUED, item_id, self.node, engine.value)
            if row is None:
                return False
            await lock_notices(conn, [row["corp_id"]])
            await conn.execute(_REJECT_QUEUED, item_id, reason_code, reason_text, when)
            return True

    async def unsent_outbound(self, limit: int) -> list[OutboundRecord]:
        async with self._conn() as conn:
            rows = await conn.fetch(_UNSENT, max(limit, 0))
        return [pg.outbound_record(r) for r in rows]

    async def mark_sent(self, msg_id: str, at: datetime) -> None:
        """The first PUBACK of ``msg_id``; later calls change nothing.

        ``KeyError`` for an unknown MsgId.
        """
        when = pg.aware(at)
        async with self._commit() as conn:
            await _first_puback(conn, msg_id, when)

    async def mark_sent_many(self, msg_ids: Sequence[str], at: datetime) -> None:
        """``mark_sent`` for a burst of PUBACKs in one transaction."""
        when = pg.aware(at)
        async with self._commit() as conn:
            for msg_id in msg_ids:
                await _first_puback(conn, msg_id, when)

    async def due_for_resend(self, sent_before: datetime, limit: int) -> list[OutboundRecord]:
        cutoff = pg.aware(sent_before)
        async with self._conn() as conn:
            rows = await conn.fetch(_DUE, cutoff, max(limit, 0))
        return [pg.outbound_record(r) for r in rows]

    async def mark_resent(self, msg_id: str, at: datetime) -> None:
        """Counts a re-publish once per ``at``: a repeat with the same or an
        older time is a no-op.  Before any PUBACK it acts as :meth:`mark_sent`.
        ``KeyError`` for an unknown MsgId."""
        when = pg.aware(at)
        async with self._commit() as conn:
            if await _first_puback(conn, msg_id, when):
                return
            await conn.execute(
                "UPDATE outbound SET attempts = attempts + 1, last_sent_at = $2"
                " WHERE msg_id = $1 AND last_sent_at < $2",
                msg_id,
                when,
            )

    async def apply_receipt(self, msg_id: str, at: datetime) -> bool:
        when = pg.aware(at)
        async with self._commit() as conn:
            return await _receipt(conn, msg_id, when) is not None

    async def apply_tx_status(self, msg_id: str, results: Sequence[TxResult], at: datetime) -> int:
        """A result that matches no item of ``msg_id`` (or, by EndToEndId alone,
        more than one) is skipped.  Unknown ``msg_id``: 0."""
        when = pg.aware(at)
        for result in results:
            if result.status not in _TX_STATUSES:
                raise ValueError(f"unknown transaction status {result.status!r}")
        async with self._commit() as conn:
            changed = await _receipt(conn, msg_id, when)  # a ccms.900 implies the ccms.990
            if changed is None:
                return 0
            rows = await conn.fetch(_TX_ITEMS, msg_id)
            updates = pg.tx_status_changes(rows, results)
            if updates:
                ids, states, codes, texts = (list(col) for col in zip(*updates, strict=True))
                corps = {r["id"]: r["corp_id"] for r in rows}
                await lock_notices(conn, (corps[i] for i in ids))
                await conn.execute(_FINISH, ids, states, codes, texts, when, msg_id)
                changed.update(ids)
            return len(changed)

    async def summary(self) -> list[StateCount]:
        async with self._conn() as conn:
            rows = await conn.fetch(_SUMMARY)
        return [
            StateCount(
                engine=None if r["engine"] is None else Engine(r["engine"]),
                state=State(r["state"]),
                reason_code=r["reason_code"],
                count=r["n"],
            )
            for r in rows
        ]

    async def live_counts(self) -> LiveCounts:
        async with self._conn() as conn, conn.transaction(readonly=True):
            items = await conn.fetch(gauges.ITEMS_SQL)
            credits = await conn.fetchrow(gauges.CREDITS_SQL)
            review = await conn.fetchrow(gauges.REVIEW_SQL)
        assert credits is not None  # noqa: S101 - two scalar subqueries: always one row
        assert review is not None  # noqa: S101 - an aggregate: always one row
        pending = (int(review[0]), review[1], review[2])
        return gauges.live_counts((tuple(r) for r in items), tuple(credits), pending)


# -- write helpers (inside the caller's transaction) ----------------------------

Conn = asyncpg.pool.PoolConnectionProxy


def _committed(started: float) -> None:
    """One committed write; PostgreSQL groups commits itself, so each counts as one."""
    JOURNAL_COMMITS.inc()
    JOURNAL_COMMIT_SIZE.observe(1)
    JOURNAL_COMMIT_SECONDS.observe(time.perf_counter() - started)


async def _first_puback(conn: Conn, msg_id: str, when: datetime) -> bool:
    """Record the first PUBACK; False if one was already recorded.  Locks the message."""
    row = await conn.fetchrow(_LOCK_OUTBOUND, msg_id)
    if row is None:
        raise KeyError(msg_id)
    if row["last_sent_at"] is not None:
        return False
    await conn.execute(
        "UPDATE outbound SET attempts = attempts + 1, last_sent_at = $2,"
        " state = CASE state WHEN 'PENDING' THEN 'SENT' ELSE state END WHERE msg_id = $1",
        msg_id,
        when,
    )
    await _advance(conn, msg_id, State.QUEUED, State.SENT, when)
    return True


async def _receipt(conn: Conn, msg_id: str, when: datetime) -> set[int] | None:
    """The clearing system has ``msg_id``: message ACKED, its items QUEUED/SENT → ACKED.

    Returns the ids of items that moved (none on a repeat); None if the MsgId
    is unknown.  The outbound row lock serialises receipts across nodes.
    """
    row = await conn.fetchrow(_LOCK_OUTBOUND, msg_id)
    if row is None:
        return None
    if row["state"] != "ACKED":
        await conn.execute(
            "UPDATE outbound SET state = 'ACKED', acked_at = $2 WHERE msg_id = $1", msg_id, when
        )
    moved = set(await _advance(conn, msg_id, State.QUEUED, State.SENT, when))
    moved.update(await _advance(conn, msg_id, State.SENT, State.ACKED, when))
    return moved


async def _advance(conn: Conn, msg_id: str, src: State, dst: State, when: datetime) -> list[int]:
    """Move every item of outbound ``msg_id`` in ``src`` to ``dst``, with transition rows."""
    rows = await conn.fetch(_ADVANCE, msg_id, src.value, dst.value, when)
    return [r["id"] for r in rows]


def _conforms(store: PostgresStore) -> Store:
    """Never called: makes mypy check PostgresStore against the Store protocol."""
    return store
