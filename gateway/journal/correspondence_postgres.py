"""The PostgreSQL journal's correspondence: notifications, inquiries, incoming credits, netting.

Mixed into :class:`~gateway.journal.postgres.PostgresStore`, with the SQLite
journal's semantics (``correspondence_sqlite.py`` is the reference).  Every
change is one transaction (``_commit``: committed with ``synchronous_commit =
on`` before the call returns); a notification is inserted in the same
transaction as the change it reports.

Several nodes, one database:

- **The NTFY cursor** (docs/protocol.md §4): ``ntfy_id`` comes from an identity
  sequence, and sequence values are handed out in one order but committed in
  another.  A client that read id 11 before id 10 committed would skip 10
  for ever.  So every transaction that inserts notifications first takes a
  transaction-scoped advisory lock per corporate (:func:`lock_notices`,
  sorted, so two transactions never wait on each other in a cycle) and
  inserts them as its last write: one corporate's notifications are numbered
  and made visible in the same order, while different corporates proceed in
  parallel.  The lock is released only after the commit is visible.
- **Inquiries** are keyed by (direction, InqId); a re-delivered ccms.314 that
  races another node's insert loses on the key (``ON CONFLICT DO NOTHING``)
  and returns the winner's record.  RPLY and ccms.315 lock the inquiry row
  (``FOR UPDATE``), so it is answered once.
- **Incoming credits**: (sender, TxId) is unique (``ON CONFLICT DO
  NOTHING``); state changes are ``UPDATE ... WHERE state = 'CHECKING'``, so
  when two nodes check the same credit, one posts (or suspends) it and the
  other gets False — one notification, one automatic inquiry.
- **Netting**: one (work date, counterparty) is reconciled by one node at a
  time (advisory lock); the ledger's rows are locked ``FOR NO KEY UPDATE``
  in id order, counted, and exactly those move (one transaction per
  counterparty: its ``netting_rounds`` row makes a re-delivery a no-op).
  Settlement locks the round's NETTED items in id order too, as a ccms.900
  does its message's, a chunk (``settle_chunk``) per transaction.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterable
from datetime import date, datetime
from typing import TYPE_CHECKING, Final, TypeVar

import asyncpg

from gateway.journal import postgres_schema as pg
from gateway.journal import schema
from gateway.journal.correspondence_rows import (
    CREDIT_COLUMNS,
    CREDITS_IN_STATE,
    INQUIRY_COLUMNS,
    INQUIRY_INSERT_COLUMNS,
    NOTICE_COLUMNS,
    NOTICE_FIELDS,
    OPEN_INQUIRIES_ORDER,
    ROUND_COLUMNS,
    ROUND_VIEW_COLUMNS,
    SETTLE_CHUNK,
    Decoding,
    InquiryLinks,
    asked_links,
    credit_currency,
    credit_of,
    inquiry_of,
    inquiry_params,
    item_ref_of,
    ledger_figures,
    notices_of,
    recorded_outcome,
    round_view_of,
    suspense_links,
)
from gateway.journal.records import (
    AcceptOutcome,
    CreditState,
    Figures,
    IncomingCredit,
    InquiryDirection,
    InquiryRecord,
    InquiryState,
    ItemRef,
    NettingOutcome,
    NettingRoundView,
    NewIncomingCredit,
    NewInquiry,
    NewOutbound,
    NewRequest,
    RequestRecord,
    SettlementOutcome,
)
from gateway.model import Notice, NoticeKind

Conn = asyncpg.pool.PoolConnectionProxy
T = TypeVar("T")
Build = Callable[[asyncpg.Record, Decoding], T]
"""A record from a row (``correspondence_rows``)."""

_DECODING = Decoding(instant=pg.shanghai, day=lambda day: day)
"""``timestamptz`` read back in the clock's zone; a ``date`` column is already a date."""

NOTICE_LOCK: Final = 0x6E_74_66_79  # "ntfy": advisory lock class, object = hashtext(corp_id)
NETTING_LOCK: Final = 0x6E_65_74_67  # "netg": advisory lock class, object = hashtext(day|cpty)
"""Two-key advisory locks live apart from the one-key locks (migration, retention)."""

_LOCK_NOTICES = """
SELECT pg_advisory_xact_lock($1, s.k)
  FROM (SELECT DISTINCT hashtext(c) AS k FROM unnest($2::text[]) AS c ORDER BY k) AS s
"""
_NOTICE_INSERT = (
    f"INSERT INTO notifications (corp_id, kind, at, {', '.join(NOTICE_FIELDS)})"  # noqa: S608
    f" VALUES ($1, $2, $3, {', '.join(f'${n}' for n in range(4, 4 + len(NOTICE_FIELDS)))})"
)
STATUS_NOTICES: Final = """
INSERT INTO notifications (corp_id, kind, at, orig_msg_id, seq_no, state, reason_code, text,
                           engine, work_date)
SELECT r.corp_id, 'STATUS', {at}, r.msg_id, i.seq_no, u.state,
       CASE WHEN u.state = 'REJECTED' THEN u.code END,
       CASE WHEN u.state = 'REJECTED' THEN u.text END, i.engine, i.work_date
  FROM u JOIN items i ON i.id = u.id JOIN requests r ON r.id = i.request_id
 ORDER BY u.ord
"""
"""A STATUS notification per row of CTE ``u`` (id, state, code, text, ord): the
items' new final states (``{at}``: the parameter holding the time)."""

_FIND_INQUIRY = (
    f"SELECT {INQUIRY_COLUMNS} FROM inquiries"  # noqa: S608 (constant fragments)
    " WHERE direction = $1 AND inq_id = $2"
)
_INSERT_INQUIRY = f"""
INSERT INTO inquiries ({INQUIRY_INSERT_COLUMNS})
VALUES ($1, $2, 'OPEN', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
ON CONFLICT (direction, inq_id) DO NOTHING
RETURNING inq_id
"""  # noqa: S608 (constant fragments)
_INSERT_CREDIT = """
INSERT INTO incoming_credits (gw_ref, engine, msg_id, tx_id, end_to_end_id, sender, work_date,
                              debtor_acct, debtor_name, debtor_bank, creditor_acct,
                              creditor_name, amount_fen, purpose, received_at, corp_id, state,
                              ccy, minor_units, screening, check_attempts, next_check_at,
                              updated_at, node)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $18, $19, $20,
        $21, 0, CASE WHEN $18 = 'REVIEW' THEN NULL ELSE $15::timestamptz END, $15, $17)
ON CONFLICT (sender, tx_id) DO NOTHING
"""
_BARE_REQUEST = """
INSERT INTO requests (id, corp_id, msg_id, oper_id, trn_code, digest, gw_ref, received_at, node)
SELECT n.id, $1, $2, $3, $4, $5, $6 || lpad(n.id::text, greatest(9, length(n.id::text)), '0'),
       $7, $8
  FROM (SELECT nextval('request_ids') AS id) AS n
 WHERE NOT EXISTS (SELECT 1 FROM requests WHERE corp_id = $1 AND msg_id = $2)
ON CONFLICT (corp_id, msg_id) DO NOTHING
RETURNING gw_ref
"""
"""``postgres_schema.ACCEPT`` without items and daily total: an INQ / RPLY moves no money."""
_ITEM_REF = """
SELECT i.id AS item_id, r.corp_id, r.msg_id, i.seq_no, i.tx_id, i.end_to_end_id, i.engine,
       i.receiver, i.work_date, i.state, i.out_msg_id
  FROM requests r JOIN items i ON i.request_id = r.id
 WHERE r.corp_id = $1 AND r.msg_id = $2 {seq}
 ORDER BY i.id LIMIT 1
"""
_LEDGER_ITEMS = (
    "SELECT id, biz_type, amount_fen FROM items WHERE engine = 'BEPS' AND state = 'ACKED'"
    " AND receiver = $1 AND work_date = $2 ORDER BY id"
)
_LEDGER_CREDITS = (
    "SELECT gw_ref, amount_fen FROM incoming_credits WHERE engine = 'BEPS'"
    " AND netting_round IS NULL AND sender = $1 AND work_date = $2 ORDER BY gw_ref"
)
_LOCKED = " FOR NO KEY UPDATE"
_NET = """
WITH moved AS (
    UPDATE items SET state = 'NETTED', netting_round = $2, updated_at = $3
     WHERE id = ANY($1::bigint[]) AND state = 'ACKED'
    RETURNING id
), trail AS (
    INSERT INTO transitions (item_id, state, at, detail)
    SELECT id, 'NETTED', $3, $4 FROM moved ORDER BY id
)
SELECT count(*) FROM moved
"""
_ROUND = (
    f"SELECT {ROUND_COLUMNS} FROM netting_rounds"  # noqa: S608 (constant fragments)
    " WHERE work_date = $1 AND round = $2 AND counterparty = $3"
)
_NETTED = """
SELECT i.id, r.corp_id FROM items i JOIN requests r ON r.id = i.request_id
 WHERE i.work_date = $1 AND i.netting_round = $2 AND i.state = 'NETTED'
 ORDER BY i.id LIMIT $3
   FOR NO KEY UPDATE OF i
"""
"""The next chunk of a round to settle, locked (a row settled meanwhile is skipped)."""
_SETTLE = f"""
WITH u AS (
    SELECT id, 'SETTLED'::text AS state, NULL::text AS code, NULL::text AS text, ord
      FROM unnest($1::bigint[]) WITH ORDINALITY AS u(id, ord)
), moved AS (
    UPDATE items i SET state = 'SETTLED', updated_at = $2 FROM u WHERE i.id = u.id
), trail AS (
    INSERT INTO transitions (item_id, state, at, detail)
    SELECT id, 'SETTLED', $2, $3 FROM u ORDER BY ord
)
{STATUS_NOTICES.format(at="$2")}
"""  # noqa: S608 (built from our own constants; values are $n parameters)


async def lock_notices(conn: Conn, corp_ids: Iterable[str | None]) -> None:
    """Take the NTFY ordering locks of these corporates (module docstring).

    Call it after every other lock the transaction takes, right before
    inserting the notifications.
    """
    corps = sorted({c for c in corp_ids if c is not None})
    if corps:
        await conn.execute(_LOCK_NOTICES, NOTICE_LOCK, corps)


class PostgresCorrespondence:
    """The correspondence methods of :class:`~gateway.journal.postgres.PostgresStore`."""

    node: str
    settle_chunk: int = SETTLE_CHUNK
    """Items per settlement transaction (``SETTLE_CHUNK``); tests and the bench change it."""

    if TYPE_CHECKING:
        _conn: Callable[[], contextlib.AbstractAsyncContextManager[Conn]]
        _commit: Callable[[], contextlib.AbstractAsyncContextManager[Conn]]

    async def _all(self, build: Build[T], sql: str, *args: object) -> list[T]:
        """The records of every row ``sql`` reads (no transaction: one statement)."""
        async with self._conn() as conn:
            rows = await conn.fetch(sql, *args)
        return [build(r, _DECODING) for r in rows]

    async def _one(self, build: Build[T], sql: str, *args: object) -> T | None:
        """The record of the first row ``sql`` reads, or None."""
        async with self._conn() as conn:
            row = await conn.fetchrow(sql, *args)
        return None if row is None else build(row, _DECODING)

    # -- notifications ------------------------------------------------------
    async def pull_notices(self, corp_id: str, after: int, limit: int) -> list[Notice]:
        if limit <= 0:
            return []
        async with self._conn() as conn:
            rows = await conn.fetch(
                f"SELECT {NOTICE_COLUMNS} FROM notifications"  # noqa: S608 (constant)
                " WHERE corp_id = $1 AND ntfy_id > $2 ORDER BY ntfy_id LIMIT $3",
                corp_id, after, limit,
            )  # fmt: skip
        return notices_of(rows, _DECODING)

    async def item_ref(self, corp_id: str, msg_id: str, seq_no: int | None) -> ItemRef | None:
        args: list[object] = [corp_id, msg_id]
        if seq_no is not None:
            args.append(seq_no)
        sql = _ITEM_REF.format(seq="" if seq_no is None else "AND i.seq_no = $3")
        return await self._one(item_ref_of, sql, *args)

    # -- inquiries ----------------------------------------------------------
    async def open_inquiry(
        self, request: NewRequest, inquiry: NewInquiry, outbound: NewOutbound
    ) -> AcceptOutcome:
        schema.check_open_inquiry(request, inquiry, outbound)
        async with self._commit() as conn:
            record = await _insert_request(conn, request, self.node)
            if isinstance(record, AcceptOutcome):
                return record
            await _insert_inquiry(conn, inquiry, asked_links(request, inquiry, outbound))
            await _insert_outbound(conn, outbound, self.node)
        return AcceptOutcome(created=True, record=record)

    async def inquiry_for_request(self, corp_id: str, msg_id: str) -> InquiryRecord | None:
        return await self._one(
            inquiry_of,
            f"SELECT {INQUIRY_COLUMNS} FROM inquiries"  # noqa: S608 (constant)
            " WHERE corp_id = $1 AND request_msg_id = $2 AND direction = 'OUT'",
            corp_id, msg_id,
        )  # fmt: skip

    async def find_inquiry(self, inq_id: str, direction: InquiryDirection) -> InquiryRecord | None:
        return await self._one(inquiry_of, _FIND_INQUIRY, direction.value, inq_id)

    async def answer_inquiry(
        self, request: NewRequest, inq_id: str, text: str, outbound: NewOutbound
    ) -> AcceptOutcome:
        """The inquiry row is locked, so two RPLYs (on any nodes) answer it once."""
        schema.check_bare(request, outbound)
        replied = pg.aware(request.received_at)
        async with self._commit() as conn:
            record = await _insert_request(conn, request, self.node)
            if isinstance(record, AcceptOutcome):
                return record
            found = await conn.fetchrow(
                "SELECT state, corp_id FROM inquiries WHERE direction = 'IN' AND inq_id = $1"
                " FOR UPDATE",
                inq_id,
            )
            # Raising rolls the whole transaction back: the request row too.
            if found is None or found["corp_id"] != request.corp_id:
                raise LookupError(f"no inquiry {inq_id} for this corporate")
            if found["state"] != InquiryState.OPEN.value:
                raise ValueError(f"inquiry {inq_id} is already replied")
            await conn.execute(
                "UPDATE inquiries SET state = 'REPLIED', reply_text = $2, replied_at = $3,"
                " request_msg_id = $4, out_msg_id = $5 WHERE direction = 'IN' AND inq_id = $1",
                inq_id, text, replied, request.msg_id, outbound.msg_id,
            )  # fmt: skip
            await _insert_outbound(conn, outbound, self.node)
        return AcceptOutcome(created=True, record=record)

    async def receive_inquiry(self, inquiry: NewInquiry) -> InquiryRecord | None:
        if inquiry.direction is not InquiryDirection.IN:
            raise ValueError("an inbound ccms.314 is an IN inquiry")
        at = pg.aware(inquiry.created_at)
        async with self._commit() as conn:
            existing = await conn.fetchrow(_FIND_INQUIRY, "IN", inquiry.inq_id)
            if existing is not None or inquiry.orgnl_tx_id is None:
                return None if existing is None else inquiry_of(existing, _DECODING)
            corp_id: str | None
            msg_id: str | None = None
            seq_no: int | None = None
            credit_ref: str | None = None
            ours = await conn.fetchrow(
                "SELECT r.corp_id, r.msg_id, i.seq_no FROM items i"
                " JOIN requests r ON r.id = i.request_id WHERE i.tx_id = $1",
                inquiry.orgnl_tx_id,
            )
            if ours is not None:
                corp_id, msg_id, seq_no = ours["corp_id"], ours["msg_id"], ours["seq_no"]
            else:
                credit = await conn.fetchrow(
                    "SELECT corp_id, gw_ref FROM incoming_credits WHERE sender = $1 AND tx_id = $2",
                    inquiry.counterparty,
                    inquiry.orgnl_tx_id,
                )
                if credit is None:
                    return None
                corp_id, credit_ref = credit["corp_id"], credit["gw_ref"]
            links = InquiryLinks(corp_id, msg_id, seq_no, credit_ref)
            inserted = await _insert_inquiry(conn, inquiry, links, on_conflict_nothing=True)
            if inserted and corp_id is not None:
                await lock_notices(conn, [corp_id])
                await _notify(
                    conn, corp_id, NoticeKind.INQUIRY, at,
                    inq_id=inquiry.inq_id, orig_msg_id=msg_id, seq_no=seq_no,
                    gw_ref=credit_ref, text=inquiry.text,
                )  # fmt: skip
            # Lost a race with another node: its committed row is visible to a new statement.
            row = await conn.fetchrow(_FIND_INQUIRY, "IN", inquiry.inq_id)
        return None if row is None else inquiry_of(row, _DECODING)

    async def receive_reply(self, inq_id: str, text: str, at: datetime) -> InquiryRecord | None:
        when = pg.aware(at)
        async with self._commit() as conn:
            row = await conn.fetchrow(_FIND_INQUIRY + " FOR UPDATE", "OUT", inq_id)
            if row is None:
                return None
            found = inquiry_of(row, _DECODING)
            if found.state is InquiryState.REPLIED:
                return found
            await conn.execute(
                "UPDATE inquiries SET state = 'REPLIED', reply_text = $2, replied_at = $3"
                " WHERE direction = 'OUT' AND inq_id = $1",
                inq_id,
                text,
                when,
            )
            if found.corp_id is not None:
                await lock_notices(conn, [found.corp_id])
                await _notify(
                    conn, found.corp_id, NoticeKind.REPLY, when,
                    inq_id=inq_id, orig_msg_id=found.msg_id, seq_no=found.seq_no, text=text,
                )  # fmt: skip
        return dataclasses.replace(
            found, state=InquiryState.REPLIED, reply_text=text, replied_at=pg.shanghai(when)
        )

    # -- incoming credits ---------------------------------------------------
    async def receive_credit(self, credit: NewIncomingCredit) -> IncomingCredit:
        args = (
            credit.gw_ref, credit.engine.value, credit.msg_id, credit.tx_id,
            credit.end_to_end_id, credit.sender, pg.work_day(credit.work_date),
            credit.debtor_acct, credit.debtor_name, credit.debtor_bank, credit.creditor_acct,
            credit.creditor_name, schema.to_minor(credit.amount, credit.minor_units),
            credit.purpose, pg.aware(credit.received_at), credit.corp_id, self.node,
            credit.state.value, credit.ccy, credit.minor_units, credit.screening,
        )  # fmt: skip
        async with self._commit() as conn:
            try:
                await conn.execute(_INSERT_CREDIT, *args)
            except asyncpg.UniqueViolationError as exc:
                raise ValueError(f"incoming credit {credit.gw_ref} is already journaled") from exc
            row = await conn.fetchrow(
                f"SELECT {CREDIT_COLUMNS} FROM incoming_credits"  # noqa: S608 (constant)
                " WHERE sender = $1 AND tx_id = $2",
                credit.sender,
                credit.tx_id,
            )
        if row is None:  # pragma: no cover (inserted, or the conflicting row is committed)
            raise RuntimeError("incoming credit vanished")
        return credit_of(row, _DECODING)

    async def credits_to_check(self, now: datetime, limit: int) -> list[IncomingCredit]:
        """Every node gets the same credits: checking twice is harmless (module docstring)."""
        return await self._all(
            credit_of,
            f"SELECT {CREDIT_COLUMNS} FROM incoming_credits"  # noqa: S608 (constant)
            " WHERE state = 'CHECKING' AND next_check_at <= $1"
            " ORDER BY received_at, gw_ref LIMIT $2",
            pg.aware(now), max(limit, 0),
        )  # fmt: skip

    async def postpone_credit_check(self, gw_ref: str, next_at: datetime) -> None:
        """A credit no longer CHECKING is left alone; ``KeyError`` for an unknown one."""
        when = pg.aware(next_at)
        async with self._commit() as conn:
            done = await conn.fetchval(
                "UPDATE incoming_credits SET check_attempts = check_attempts + 1,"
                " next_check_at = $2 WHERE gw_ref = $1 AND state = 'CHECKING' RETURNING 1",
                gw_ref,
                when,
            )
            if done is None and await _credit_state(conn, gw_ref) is None:
                raise KeyError(gw_ref)

    async def post_credit(self, gw_ref: str, at: datetime) -> bool:
        when = pg.aware(at)
        async with self._commit() as conn:
            row = await conn.fetchrow(
                "UPDATE incoming_credits SET state = 'POSTED', next_check_at = NULL,"
                " updated_at = $2 WHERE gw_ref = $1 AND state = 'CHECKING'"
                " RETURNING corp_id, creditor_acct, amount_fen, debtor_acct, debtor_name,"
                " debtor_bank, engine, work_date, purpose, ccy, minor_units",
                gw_ref,
                when,
            )
            if row is None:
                return False
            if (corp_id := row["corp_id"]) is not None:
                await lock_notices(conn, [corp_id])
                await _notify(
                    conn, corp_id, NoticeKind.CREDIT, when,
                    gw_ref=gw_ref, acct=row["creditor_acct"], amount_fen=row["amount_fen"],
                    counterparty_acct=row["debtor_acct"], counterparty_name=row["debtor_name"],
                    counterparty_bank=row["debtor_bank"], engine=row["engine"],
                    work_date=row["work_date"], text=row["purpose"],
                    **credit_currency(row["ccy"], row["minor_units"]),
                )  # fmt: skip
        return True

    async def suspend_credit(
        self, gw_ref: str, at: datetime, inquiry: NewInquiry, outbound: NewOutbound
    ) -> bool:
        when = pg.aware(at)
        schema.check_auto_inquiry(gw_ref, inquiry, outbound)
        async with self._commit() as conn:
            moved = await conn.fetchval(
                "UPDATE incoming_credits SET state = 'SUSPENSE', next_check_at = NULL,"
                " updated_at = $2 WHERE gw_ref = $1 AND state = 'CHECKING' RETURNING 1",
                gw_ref,
                when,
            )
            if moved is None:
                return False
            await _insert_inquiry(conn, inquiry, suspense_links(inquiry, gw_ref, outbound))
            await _insert_outbound(conn, outbound, self.node)
        return True

    async def credit_state(self, gw_ref: str) -> CreditState | None:
        async with self._conn() as conn:
            return await _credit_state(conn, gw_ref)

    # -- BEPS netting -------------------------------------------------------
    async def ledger(self, work_date: object, counterparty: str) -> Figures:
        day = pg.work_day(work_date)
        async with self._conn() as conn, conn.transaction(isolation="repeatable_read"):
            items = await conn.fetch(_LEDGER_ITEMS, counterparty, day)  # one snapshot for both
            credits = await conn.fetch(_LEDGER_CREDITS, counterparty, day)
        return ledger_figures(items, credits)

    async def apply_netting(
        self, work_date: object, round_no: int, counterparty: str, theirs: Figures, at: datetime
    ) -> NettingOutcome:
        day = pg.work_day(work_date)
        when = pg.aware(at)
        their_fen = schema.figures_fen(theirs)
        detail = schema.netting_detail(day.isoformat(), round_no)
        async with self._commit() as conn:
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                NETTING_LOCK,
                f"{day.isoformat()}|{counterparty}",
            )
            recorded = await conn.fetchrow(_ROUND, day, round_no, counterparty)
            if recorded is not None:
                return recorded_outcome(recorded)
            items = await conn.fetch(_LEDGER_ITEMS + _LOCKED, counterparty, day)
            credits = await conn.fetch(_LEDGER_CREDITS + _LOCKED, counterparty, day)
            ours = ledger_figures(items, credits)
            matched = ours == theirs
            netted = 0
            if matched:
                ids = [r["id"] for r in items]
                netted = int(await conn.fetchval(_NET, ids, round_no, when, detail))
                await conn.execute(
                    "UPDATE incoming_credits SET netting_round = $2 WHERE gw_ref = ANY($1::text[])",
                    [r["gw_ref"] for r in credits],
                    round_no,
                )
            await conn.execute(
                "INSERT INTO netting_rounds VALUES"
                " ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
                day, round_no, counterparty, *schema.figures_fen(ours), *their_fen, matched,
                netted, when, self.node,
            )  # fmt: skip
        return NettingOutcome(matched=matched, ours=ours, theirs=theirs, items_netted=netted)

    async def apply_settlement(
        self, work_date: object, round_no: int, at: datetime
    ) -> SettlementOutcome:
        """In chunks of ``settle_chunk`` items, one transaction each (``SETTLE_CHUNK``),
        as the SQLite journal does: a round is settled when none of its items is NETTED
        any more, and a re-delivered beps.settle continues an interrupted one.

        Two nodes settling the same round lock its NETTED items in id order, one
        chunk at a time: each waits for the other's locked rows, skips them once
        they are SETTLED and goes on; the one whose chunk comes up short stops
        (what is left is in the other's chunk).
        """
        day = pg.work_day(work_date)
        when = pg.aware(at)
        detail = schema.netting_detail(day.isoformat(), round_no)
        chunk = self.settle_chunk
        if chunk < 1:
            raise ValueError("settle_chunk must be at least 1")
        async with self._commit() as conn:
            rounds = await conn.fetch(
                "SELECT matched, our_dbt_fen, our_cdt_fen FROM netting_rounds"
                " WHERE work_date = $1 AND round = $2",
                day,
                round_no,
            )
            moved = await settle_next(conn, day, round_no, when, detail, chunk)
        settled = moved
        while moved == chunk:  # a short chunk was the last: nothing NETTED was left
            async with self._commit() as conn:
                moved = await settle_next(conn, day, round_no, when, detail, chunk)
            settled += moved
        net = sum(r["our_cdt_fen"] - r["our_dbt_fen"] for r in rounds if r["matched"])
        return SettlementOutcome(
            items_settled=settled, our_net=schema.from_fen(net), rounds_known=bool(rounds)
        )

    # -- operations views (read only) ---------------------------------------
    async def credits_in_state(self, state: CreditState, limit: int) -> list[IncomingCredit]:
        return await self._all(
            credit_of,
            f"SELECT {CREDIT_COLUMNS} FROM incoming_credits"  # noqa: S608 (constant fragments)
            f" WHERE {CREDITS_IN_STATE[state]} ORDER BY received_at, gw_ref LIMIT $1",
            max(limit, 0),
        )

    async def open_inquiries(self, limit: int) -> list[InquiryRecord]:
        return await self._all(
            inquiry_of,
            f"SELECT {INQUIRY_COLUMNS} FROM inquiries"  # noqa: S608 (constant fragments)
            f" WHERE state = 'OPEN' {OPEN_INQUIRIES_ORDER} LIMIT $1",
            max(limit, 0),
        )

    async def netting_rounds(self, work_date: object) -> list[NettingRoundView]:
        return await self._all(
            round_view_of,
            f"SELECT {ROUND_VIEW_COLUMNS} FROM netting_rounds"  # noqa: S608 (constant fragments)
            " WHERE work_date = $1 ORDER BY round, counterparty",
            pg.work_day(work_date),
        )


# -- write helpers (inside the caller's transaction) ----------------------------


async def settle_next(
    conn: Conn, day: date, round_no: int, when: datetime, detail: str, limit: int
) -> int:
    """One chunk of a settlement: at most ``limit`` of the round's NETTED items, locked
    in id order (index ``items_netted``), to SETTLED with their transitions and STATUS
    notifications.  Returns how many moved."""
    rows = await conn.fetch(_NETTED, day, round_no, limit)
    if rows:
        await lock_notices(conn, (r["corp_id"] for r in rows))
        await conn.execute(_SETTLE, [r["id"] for r in rows], when, detail)
    return len(rows)


async def _insert_request(
    conn: Conn, request: NewRequest, node: str
) -> RequestRecord | AcceptOutcome:
    """The requests row with its GwRef (no items, no daily total), or the existing
    request's ``AcceptOutcome`` (``created`` False) when (CorpId, MsgId) exists."""
    received = pg.aware(request.received_at)
    prefix = schema.gw_ref(received, node, 0)[:-9]
    ref = await conn.fetchval(
        _BARE_REQUEST,
        request.corp_id, request.msg_id, request.oper_id, request.trn_code, request.digest,
        prefix, received, node,
    )  # fmt: skip
    if ref is None:
        # A duplicate, or lost the race: the conflicting row is committed, and a
        # new statement (READ COMMITTED) sees it.
        found = await conn.fetchrow(pg.FIND_REQUEST, request.corp_id, request.msg_id)
        if found is None:  # pragma: no cover (the conflicting row is committed by now)
            raise RuntimeError("duplicate request vanished")
        return AcceptOutcome(created=False, record=pg.request_record(found))
    return request.record(ref, pg.shanghai(received))


async def _insert_inquiry(
    conn: Conn, inquiry: NewInquiry, links: InquiryLinks, *, on_conflict_nothing: bool = False
) -> bool:
    """Insert an inquiry (OPEN); a taken (direction, InqId) is ``ValueError``, or
    False with ``on_conflict_nothing``."""
    inserted = await conn.fetchval(_INSERT_INQUIRY, *inquiry_params(inquiry, links, pg.aware))
    if inserted is None and not on_conflict_nothing:
        raise ValueError(f"inquiry {inquiry.inq_id} is already journaled")
    return inserted is not None


async def _insert_outbound(conn: Conn, m: NewOutbound, node: str) -> None:
    """An outbound message without items (a ccms.314 / ccms.315), PENDING."""
    try:
        await conn.execute(
            "INSERT INTO outbound (msg_id, engine, msg_tp, topic, receiver, work_date, payload,"
            " state, attempts, created_at, node)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, 'PENDING', 0, $8, $9)",
            m.msg_id, m.engine.value, m.msg_tp, m.topic, m.receiver, pg.work_day(m.work_date),
            m.payload, pg.aware(m.created_at), node,
        )  # fmt: skip
    except asyncpg.UniqueViolationError as exc:
        raise ValueError(f"outbound MsgId {m.msg_id} is already journaled") from exc


async def _notify(
    conn: Conn, corp_id: str, kind: NoticeKind, when: datetime, **fields: object
) -> None:
    """Insert one notification; the caller holds :func:`lock_notices` for ``corp_id``."""
    await conn.execute(
        _NOTICE_INSERT, corp_id, kind.value, when, *(fields.get(f) for f in NOTICE_FIELDS)
    )


async def _credit_state(conn: Conn, gw_ref: str) -> CreditState | None:
    state = await conn.fetchval("SELECT state FROM incoming_credits WHERE gw_ref = $1", gw_ref)
    return None if state is None else CreditState(state)
