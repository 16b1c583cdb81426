"""Migration 5: a version-4 journal gains the retention indexes and keeps its rows.

Version 5 adds one index per correspondence table on the time its retention
rule bounds (corplink.md §7; ``gateway.journal.retention_tables``).  A
journal written by the previous release must come up on this one with its
notifications, cursors and all, where they were, on both backends; that the
pass's queries then use the indexes is tests/faults/test_retention_indexes.py.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path

import asyncpg
import pytest

from gateway.clock import SHANGHAI
from gateway.journal import postgres_schema, schema
from gateway.model import NoticeKind

from .conftest import StoreFactory

AT = datetime(2025, 7, 15, 10, 0, tzinfo=SHANGHAI)
CORP = "C100000001"
V5_INDEXES = {"notifications_at", "inquiries_created", "credits_final", "outbound_acked"}

_NOTICE = "INSERT INTO notifications (corp_id, kind, at, gw_ref, text) VALUES ({p})"


def test_both_backends_count_the_same_migrations() -> None:
    assert schema.SCHEMA_VERSION == postgres_schema.SCHEMA_VERSION >= 5


@pytest.fixture
def journal(backend: str, request: pytest.FixtureRequest) -> Path | str:
    """The test's journal: the SQLite file, or the DSN of the PostgreSQL schema."""
    if backend == "sqlite":
        path: Path = request.getfixturevalue("db_path")
        return path
    dsn: str = request.getfixturevalue("dsn")
    return dsn


async def _version_4(journal: Path | str) -> None:
    """Build a journal as the release before migration 5 left it, with one notification."""
    if isinstance(journal, Path):
        conn = sqlite3.connect(journal, isolation_level=None)
        try:
            conn.executescript(
                "BEGIN;\n"
                + "\n".join(schema.MIGRATIONS[:4])
                + "\nPRAGMA user_version = 4;\nCOMMIT;"
            )
            conn.execute(
                _NOTICE.format(p="?, 'CREDIT', ?, 'GI-1', 'old'"), (CORP, schema.to_micros(AT))
            )
        finally:
            conn.close()
        return
    sql = await asyncpg.connect(journal)
    try:
        async with sql.transaction():
            await sql.execute(postgres_schema._VERSION_TABLE)
            for version, migration in enumerate(postgres_schema.MIGRATIONS[:4], start=1):
                await sql.execute(migration)
                await sql.execute(
                    "INSERT INTO schema_version (version, node) VALUES ($1, 'A')", version
                )
            await sql.execute(_NOTICE.format(p="$1, 'CREDIT', $2, 'GI-1', 'old'"), CORP, AT)
    finally:
        await sql.close()


async def _version_and_indexes(journal: Path | str) -> tuple[int, set[str]]:
    if isinstance(journal, Path):
        conn = sqlite3.connect(journal)
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            names = {str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master")}
        finally:
            conn.close()
        return version, names
    sql = await asyncpg.connect(journal)
    try:
        version = int(await sql.fetchval("SELECT max(version) FROM schema_version"))
        query = "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
        return version, {str(r["indexname"]) for r in await sql.fetch(query)}
    finally:
        await sql.close()


async def test_a_version_4_journal_gains_the_retention_indexes_and_keeps_its_rows(
    journal: Path | str, make_store: StoreFactory
) -> None:
    await _version_4(journal)
    version, names = await _version_and_indexes(journal)
    assert version == 4 and not names & V5_INDEXES

    store = await make_store(node="A")
    version, names = await _version_and_indexes(journal)
    assert version == schema.SCHEMA_VERSION
    assert names >= V5_INDEXES
    (notice,) = await store.pull_notices(CORP, 0, 10)
    assert (notice.ntfy_id, notice.kind, notice.at, notice.gw_ref) == (
        1, NoticeKind.CREDIT, AT, "GI-1",
    )  # fmt: skip
    await store.close()
    # starting again finds the schema current and changes nothing
    await (await make_store(node="A")).close()
    assert await _version_and_indexes(journal) == (version, names)
