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
from .helpers import build_journal_at, journal_of, version_and_names

AT = datetime(2025, 7, 15, 10, 0, tzinfo=SHANGHAI)
CORP = "C100000001"
V5_INDEXES = {"notifications_at", "inquiries_created", "credits_final", "outbound_acked"}

_NOTICE = "INSERT INTO notifications (corp_id, kind, at, gw_ref, text) VALUES ({p})"


def test_both_backends_count_the_same_migrations() -> None:
    assert schema.SCHEMA_VERSION == postgres_schema.SCHEMA_VERSION >= 5


@pytest.fixture
def journal(backend: str, request: pytest.FixtureRequest) -> Path | str:
    return journal_of(backend, request)


async def _version_4(journal: Path | str) -> None:
    """Build a journal as the release before migration 5 left it, with one notification."""

    def sqlite_rows(conn: sqlite3.Connection) -> None:
        conn.execute(
            _NOTICE.format(p="?, 'CREDIT', ?, 'GI-1', 'old'"), (CORP, schema.to_micros(AT))
        )

    async def pg_rows(sql: asyncpg.Connection) -> None:
        await sql.execute(_NOTICE.format(p="$1, 'CREDIT', $2, 'GI-1', 'old'"), CORP, AT)

    await build_journal_at(journal, 4, sqlite_rows=sqlite_rows, pg_rows=pg_rows)


async def _version_and_indexes(journal: Path | str) -> tuple[int, set[str]]:
    return await version_and_names(
        journal,
        sqlite_query="SELECT name FROM sqlite_master",
        pg_query="SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()",
    )


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
