"""The retention pass reads only old rows, through migration 5's indexes (corplink.md §7).

Every hour the pass asks each correspondence table for its rows older than
the retention period.  Without an index on the time its rule bounds, that
question reads the whole table (400 days of notifications) to find the one
hour that just aged out.  Here each selection statement of the pass is put to
the database's own planner, on a journal that holds what a running gateway
holds between passes: many young rows and nothing old.  A plan that reads
the table start to end, or sorts what it read, fails the test.

The young rows are written with plain SQL in bulk: the point is their
number, which the planner's statistics see, not how the gateway made them.
Behaviour with equal instants (the keyset's tie-break on the key) is checked
through the store protocol, like the neighbouring retention tests.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import asyncpg

from gateway.journal import schema
from gateway.journal.retention import (
    ArchivedCredit,
    ArchivedNotification,
    archive_once,
    read_archive,
)
from gateway.journal.retention_tables import STATEMENTS, TABLES, Table
from tests.faults import test_retention as base
from tests.faults import test_retention_correspondence as corr
from tests.faults.test_retention import BEFORE, NOW, OLD, Journal

# the parametrized journal (sqlite, postgres); its PostgreSQL server is the suite's `pg`
journal = base.journal

YOUNG_ROWS = 2000
"""Rows per table, one a minute before NOW: a day and a half of traffic, none of it old."""

INDEX = {
    "notifications": "notifications_at",
    "inquiries": "inquiries_created",
    "incoming_credits": "credits_final",
    "outbound": "outbound_acked",
    "exchanges": "exchanges_at",
    "inbound_messages": "inbound_received",
    "operator_actions": "operator_actions_at",
    "state_changes": "state_changes_at",
}
"""Migration 5's index for each table (migration 8's for the operators' tables, 9's for the audit chain's state changes); netting rounds go by their primary key (work_date first)."""

# {t}: a young instant (i minutes before NOW), {d}: a young work date, {node}: its column and
# value on PostgreSQL only, {blob}: a payload
_YOUNG = {
    "notifications": "INSERT INTO notifications (corp_id, kind, at, text)"
    " SELECT 'C100000001', 'STATUS', {t}, 'young' FROM {n}",
    "inquiries": "INSERT INTO inquiries (direction, inq_id, state, counterparty, text, created_at)"
    " SELECT 'IN', 'IQ' || i, 'OPEN', '104100000004', 'young', {t} FROM {n}",
    "incoming_credits": "INSERT INTO incoming_credits (gw_ref, engine, msg_id, tx_id,"
    " end_to_end_id, sender, work_date, debtor_acct, debtor_name, debtor_bank, creditor_acct,"
    " creditor_name, amount_fen, received_at, state, updated_at{node})"
    " SELECT 'GI' || i, 'BEPS', 'M' || i, 'T' || i, 'E' || i, '104100000004', {d}, '1', 'a',"
    " '104100000004', '2', 'b', 100, {t}, 'POSTED', {t}{node_value} FROM {n}",
    "netting_rounds": "INSERT INTO netting_rounds (work_date, round, counterparty, our_dbt_cnt,"
    " our_dbt_fen, our_cdt_cnt, our_cdt_fen, their_dbt_cnt, their_dbt_fen, their_cdt_cnt,"
    " their_cdt_fen, matched, items_netted, at{node})"
    " SELECT {d}, i, '104100000004', 0, 0, 0, 0, 0, 0, 0, 0, {true}, 0, {t}{node_value} FROM {n}",
    "outbound": "INSERT INTO outbound (msg_id, engine, msg_tp, topic, receiver, work_date,"
    " payload, state, created_at{node})"
    " SELECT 'OUT' || i, 'BEPS', 'ccms.314', 'clearing/beps/out', '104100000004', {d}, {blob},"
    " 'ACKED', {t}{node_value} FROM {n}",
    "exchanges": "INSERT INTO exchanges (gw_ref, request, response, at)"
    " SELECT 'GW' || i, {blob}, {blob}, {t} FROM {n}",
    "inbound_messages": "INSERT INTO inbound_messages (msg_id, msg_tp, sndr, topic, payload,"
    " received_at) SELECT 'IN' || i, 'ccms.990', '000000000000', 'clearing/beps/in', {blob},"
    " {t} FROM {n}",
    "operator_actions": "INSERT INTO operator_actions (at, uid, operator, action, target,"
    " reason, forced) SELECT {t}, 0, 'root', 'resend', 'OUT' || i, 'young', {true} FROM {n}",
}  # fmt: skip


def _sqlite_young(path: Path) -> list[tuple[str, str, tuple[object, ...]]]:
    """Fill the journal file, ANALYZE it, and plan each selection statement."""
    conn = schema.connect(path)
    try:
        series = (
            "(WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s"  # noqa: S608 (constant)
            f" WHERE i < {YOUNG_ROWS}) SELECT i FROM s)"
        )
        fill = {
            "t": f"{schema.to_micros(NOW)} - i * 60000000", "d": f"'{NOW.date().isoformat()}'",
            "n": series, "node": "", "node_value": "", "blob": "x'3c3e'", "true": "1",
        }  # fmt: skip
        for statement in _YOUNG.values():
            conn.execute(statement.format(**fill))
        conn.execute("ANALYZE")
        plans = []
        cutoff, day = schema.to_micros(BEFORE), BEFORE.date().isoformat()
        for t in TABLES:
            first, rest, _ = STATEMENTS[t.line, "?"]
            bound = day if t.by_day else cutoff
            position = (bound,) * len(t.seek)  # any values of the right kind do
            for name, sql, args in (("first", first, (bound, 500)),
                                    ("rest", rest, (bound, 500, *position))):  # fmt: skip
                plan = conn.execute(f"EXPLAIN QUERY PLAN {sql}", args).fetchall()
                plans.append((t.table, name, tuple(str(row[3]) for row in plan)))
        return [(table, name, "\n".join(rows)) for table, name, rows in plans]
    finally:
        conn.close()


async def _postgres_young(dsn: str) -> list[tuple[str, str, str]]:
    # a journal writer names its node: the audit chain's triggers need it
    conn = await asyncpg.connect(dsn, server_settings={"gateway.node": "B"})
    try:
        fill = {
            "t": "$1::timestamptz - i * interval '1 minute'", "d": "$1::timestamptz::date",
            "n": f"generate_series(1, {YOUNG_ROWS}) AS i", "node": ", node",
            "node_value": ", 'B'", "blob": "'\\x3c3e'::bytea", "true": "true",
        }  # fmt: skip
        for statement in _YOUNG.values():
            await conn.execute(statement.format(**fill), NOW)
        await conn.execute("ANALYZE")
        plans = []
        for t in TABLES:
            first, rest, _ = STATEMENTS[t.line, "$"]
            bound = BEFORE.date() if t.by_day else BEFORE
            position = [_pg_value(ty) for ty in t.seek_types]
            for name, sql, args in (("first", first, (bound, 500)),
                                    ("rest", rest, (bound, 500, *position))):  # fmt: skip
                plan = await conn.fetch(f"EXPLAIN {sql}", *args)
                plans.append((t.table, name, "\n".join(str(row[0]) for row in plan)))
        return plans
    finally:
        await conn.close()


def _pg_value(ty: str) -> object:
    """A keyset position value of PostgreSQL type ``ty``, from before the cutoff."""
    return {"timestamptz": OLD, "date": OLD.date(), "bigint": 1, "integer": 1, "text": "A"}[ty]


def _check_sqlite(t: Table, name: str, plan: str) -> None:
    index = INDEX.get(t.table)
    used = f"USING INDEX {index} " if index else "USING PRIMARY KEY "
    (first, *_) = plan.splitlines()
    assert first.startswith(f"SEARCH {t.table} {used}"), (name, plan)
    # the range is bounded by the cutoff, and no sort: the index gives the keyset order
    assert f"{(t.since or t.seek[0])}<?" in first, (name, plan)
    assert "TEMP B-TREE" not in plan, (name, plan)


def _check_postgres(t: Table, name: str, plan: str) -> None:
    index = INDEX.get(t.table, f"{t.table}_pkey")
    assert f"Index Scan using {index} on {t.table}" in plan, (name, plan)
    assert f"Seq Scan on {t.table}" not in plan, (name, plan)
    assert "Sort" not in plan, (name, plan)
    assert f"({t.since or t.seek[0]} < " in plan, (name, plan)  # the cutoff bounds the scan


async def test_each_selection_of_the_pass_reads_its_index_not_the_table(
    journal: Journal,
) -> None:
    if journal.backend == "sqlite":
        plans = _sqlite_young(Path(journal.target))
        check = _check_sqlite
    else:
        plans = await _postgres_young(str(journal.target))
        check = _check_postgres
    by_table = {t.table: t for t in TABLES}
    assert {table for table, _, _ in plans} == set(by_table)
    for table, name, plan in plans:
        check(by_table[table], name, plan)


async def test_rows_of_one_instant_leave_once_each_in_batches_of_one(
    journal: Journal, tmp_path: Path
) -> None:
    """The keyset is (time, key): equal times are told apart by the key, none is skipped."""
    s = journal.store
    refs = [f"GI-TIE-{n}" for n in range(4)]
    for ref in refs:
        await s.receive_credit(corr.credit(ref, OLD))
        assert await s.post_credit(ref, OLD)  # a CREDIT notice each, all at OLD
    await s.receive_credit(corr.credit("GI-YOUNG", NOW - timedelta(days=1)))
    assert await s.post_credit("GI-YOUNG", NOW - timedelta(days=1))

    res = await archive_once(journal.backend, journal.target, tmp_path, before=BEFORE, batch=1)
    assert (res.incoming_credits, res.notifications) == (4, 4)
    assert res.path is not None
    found = list(read_archive(res.path))
    assert sorted(c.gw_ref for c in corr.of(ArchivedCredit, found)) == refs
    notes = [n.notice for n in corr.of(ArchivedNotification, found)]
    assert sorted(n.gw_ref or "" for n in notes) == refs
    assert [n.ntfy_id for n in notes] == sorted(n.ntfy_id for n in notes)  # ties: key order
    for ref in refs:
        assert await s.credit_state(ref) is None
    assert [n.gw_ref for n in await s.pull_notices(corr.CORP, 0, 10)] == ["GI-YOUNG"]
