"""Migration 13: incoming credits gain their currency, minor units, screening decision and
state REVIEW; notifications their currency (docs/foreign-currency.md §4-§5).  A journal of
the release before comes up with its CNY credits and CREDIT notices read as before, on
both backends."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest

from gateway.journal import audit_chain, schema
from gateway.journal.records import CreditState
from gateway.model import NoticeKind

from .conftest import StoreFactory
from .helpers import T0, build_journal_at, journal_of

_COLUMNS = (
    "gw_ref, engine, msg_id, tx_id, end_to_end_id, sender, work_date, debtor_acct, debtor_name,"
    " debtor_bank, creditor_acct, creditor_name, amount_fen, purpose, received_at, corp_id,"
    " state, check_attempts, next_check_at, updated_at"
)
_VALUES = (
    "GI1", "BEPS", "M-1", "T-1", "E-1", "105100000017", "2026-11-27", "6228480000000001",
    "Li Si", "105100000017", "6222000011112222", "Acme", 30000, None,
)  # fmt: skip


@pytest.fixture
def journal(backend: str, request: pytest.FixtureRequest) -> Path | str:
    return journal_of(backend, request)


async def _version_12(journal: Path | str) -> None:
    def sqlite_rows(conn: sqlite3.Connection) -> None:
        audit_chain.register(conn)  # the credit's insert is chained (migration 9)
        us = schema.to_micros(T0)
        conn.execute(
            f"INSERT INTO incoming_credits ({_COLUMNS}) VALUES"  # noqa: S608 (constant)
            " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'C1', 'CHECKING', 0, ?, ?)",
            (*_VALUES, us, us, us),
        )
        conn.execute(
            "INSERT INTO notifications (corp_id, kind, at, gw_ref, amount_fen)"
            " VALUES ('C1', 'CREDIT', ?, 'GI0', 88000)",
            (us,),
        )

    async def pg_rows(sql: asyncpg.Connection) -> None:
        await sql.execute("SET LOCAL gateway.node = 'A'")  # the audit chain's node
        day = T0.date()
        await sql.execute(
            f"INSERT INTO incoming_credits ({_COLUMNS}, node) VALUES"  # noqa: S608 (constant)
            " ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, 'C1',"
            " 'CHECKING', 0, $15, $15, 'A')",
            *_VALUES[:6], day, *_VALUES[7:], T0,
        )  # fmt: skip
        await sql.execute(
            "INSERT INTO notifications (corp_id, kind, at, gw_ref, amount_fen)"
            " VALUES ('C1', 'CREDIT', $1, 'GI0', 88000)",
            T0,
        )

    await build_journal_at(journal, 12, sqlite_rows=sqlite_rows, pg_rows=pg_rows)


async def test_a_version_12_journal_keeps_its_cny_credits_and_notices(
    journal: Path | str, make_store: StoreFactory
) -> None:
    await _version_12(journal)
    store = await make_store(node="A")
    try:
        (credit,) = await store.credits_to_check(T0, 10)
        assert (credit.gw_ref, credit.amount, credit.ccy, credit.screening) == (
            "GI1", Decimal("300.00"), "CNY", None,
        )  # fmt: skip
        (notice,) = await store.pull_notices("C1", 0, 10)
        assert (notice.kind, notice.amount, notice.ccy) == (
            NoticeKind.CREDIT, Decimal("880.00"), None,
        )  # fmt: skip
        assert (await store.live_counts()).credits[CreditState.REVIEW] == 0
    finally:
        await store.close()
