"""Migration 11: an item may be in state REVIEW and on engine SWIFT (docs/foreign-currency.md
§1, §5), on both backends, and a journal of the release before comes up with it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import asyncpg
import pytest

from gateway.journal import postgres_schema, schema
from gateway.model import Engine, State

from .conftest import StoreFactory
from .helpers import build_journal_at, journal_of

_ITEM = (
    "INSERT INTO items (request_id, tx_id, end_to_end_id, engine, payee_bank_code, state,"
    " payer_acct, payer_name, payee_acct, payee_name, amount_fen, ccy, priority, biz_type,"
    " updated_at) VALUES (1, ?, 'E2E', ?, '', ?, '6222000000000001', 'payer',"
    " '12345678', 'payee', 150000, 'USD', 'NORM', 'CREDIT', 0)"
)


def test_both_backends_count_the_same_migrations() -> None:
    assert schema.SCHEMA_VERSION == postgres_schema.SCHEMA_VERSION >= 11


@pytest.fixture
def journal(backend: str, request: pytest.FixtureRequest) -> Path | str:
    return journal_of(backend, request)


async def _version_10(journal: Path | str) -> None:
    def no_sqlite_rows(conn: sqlite3.Connection) -> None:
        return None

    async def no_pg_rows(sql: asyncpg.Connection) -> None:
        return None

    await build_journal_at(journal, 10, sqlite_rows=no_sqlite_rows, pg_rows=no_pg_rows)


def _sqlite_accepts(path: Path, tx_id: str, engine: str, state: str) -> bool:
    """Whether the items CHECKs take the row (foreign keys off: only the CHECKs judge)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute(_ITEM, (tx_id, engine, state))
    except sqlite3.IntegrityError:
        return False
    finally:
        conn.close()
    return True


async def _pg_checks(dsn: str) -> dict[str, str]:
    sql = await asyncpg.connect(dsn)
    try:
        rows = await sql.fetch(
            "SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint"
            " WHERE conname IN ('items_state_check', 'items_engine_check',"
            " 'incoming_credits_engine_check')"
            " AND connamespace = current_schema()::regnamespace"
        )
    finally:
        await sql.close()
    return {str(r["conname"]): str(r["def"]) for r in rows}


async def test_a_version_10_journal_takes_review_and_swift(
    backend: str, journal: Path | str, make_store: StoreFactory
) -> None:
    await _version_10(journal)
    if isinstance(journal, Path):
        assert not _sqlite_accepts(journal, "T-0", Engine.SWIFT.value, State.REVIEW.value)
    await (await make_store(node="A")).close()
    if isinstance(journal, Path):
        assert _sqlite_accepts(journal, "T-1", Engine.SWIFT.value, State.REVIEW.value)
        assert _sqlite_accepts(journal, "T-2", Engine.HVPS.value, State.SETTLED.value)
        assert not _sqlite_accepts(journal, "T-3", Engine.SWIFT.value, "BOGUS")
        conn = sqlite3.connect(journal)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
        finally:
            conn.close()
    else:
        checks = await _pg_checks(journal)
        assert "'REVIEW'" in checks["items_state_check"]
        assert "'SWIFT'" in checks["items_engine_check"]
        assert "'SWIFT'" in checks["incoming_credits_engine_check"]
    # starting again finds the schema current and changes nothing
    await (await make_store(node="A")).close()
