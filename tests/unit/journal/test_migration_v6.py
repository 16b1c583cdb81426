"""Migration 6: inquiries record the clearing link they travel on; old rows keep theirs.

A ccms.315 goes back on the link its ccms.314 arrived on (clearing.md §2),
so version 6 gives ``inquiries`` an ``engine`` column.  A journal written by
the previous release must come up on this one with its inquiries whole,
their engine unknown (NULL: the reply then falls back to the payment's
link), on both backends.  The retention pass archives the new column, and an
archive line written before it (no ``engine``) still reads back
(corplink.md §7: archives outlive releases).
"""

from __future__ import annotations

import gzip
import json
import sqlite3
from dataclasses import fields
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest

from gateway.clock import SHANGHAI
from gateway.journal import postgres_schema, schema
from gateway.journal.archive import ArchivedInquiry, read_archive
from gateway.journal.records import (
    InquiryDirection,
    InquiryRecord,
    InquiryState,
    NewIncomingCredit,
    NewInquiry,
)
from gateway.journal.retention import archive_once
from gateway.model import Engine, NoticeKind

from .conftest import StoreFactory
from .helpers import build_journal_at, journal_of, version_and_names

AT = datetime(2025, 7, 15, 10, 0, tzinfo=SHANGHAI)
CORP = "C100000001"
BANK = "104100000004"

# An IN inquiry about an incoming credit, as version 5 journaled it (with its notification).
_INQUIRY = (
    "INSERT INTO inquiries (direction, inq_id, state, counterparty, text, created_at, corp_id,"
    " credit_ref, orgnl_msg_id, orgnl_tx_id) VALUES ({p})"
)
_NOTICE = "INSERT INTO notifications (corp_id, kind, at, gw_ref, inq_id, text) VALUES ({p})"


def test_both_backends_count_the_same_migrations() -> None:
    assert schema.SCHEMA_VERSION == postgres_schema.SCHEMA_VERSION >= 6


@pytest.fixture
def journal(backend: str, request: pytest.FixtureRequest) -> Path | str:
    return journal_of(backend, request)


async def _version_5(journal: Path | str) -> None:
    """Build a journal as the release before migration 6 left it, with one IN inquiry."""

    def sqlite_rows(conn: sqlite3.Connection) -> None:
        at = schema.to_micros(AT)
        conn.execute(
            _INQUIRY.format(p="'IN', 'SQ-OLD', 'OPEN', ?, 'is it yours?', ?, ?, 'GI-1',"
                              " 'M-1', 'T-1'"),
            (BANK, at, CORP),
        )  # fmt: skip
        conn.execute(
            _NOTICE.format(p="?, 'INQUIRY', ?, 'GI-1', 'SQ-OLD', 'is it yours?'"), (CORP, at)
        )

    async def pg_rows(sql: asyncpg.Connection) -> None:
        await sql.execute(
            _INQUIRY.format(p="'IN', 'SQ-OLD', 'OPEN', $1, 'is it yours?', $2, $3, 'GI-1',"
                              " 'M-1', 'T-1'"),
            BANK, AT, CORP,
        )  # fmt: skip
        await sql.execute(
            _NOTICE.format(p="$1, 'INQUIRY', $2, 'GI-1', 'SQ-OLD', 'is it yours?'"), CORP, AT
        )

    await build_journal_at(journal, 5, sqlite_rows=sqlite_rows, pg_rows=pg_rows)


async def _version_and_columns(journal: Path | str) -> tuple[int, set[str]]:
    """The schema version and the columns of ``inquiries``."""
    return await version_and_names(
        journal,
        sqlite_query="SELECT name FROM pragma_table_info('inquiries')",
        pg_query=(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = 'inquiries'"
        ),
    )


async def test_a_version_5_journal_gains_inquiry_engines_and_keeps_its_rows(
    journal: Path | str, make_store: StoreFactory
) -> None:
    await _version_5(journal)
    version, columns = await _version_and_columns(journal)
    assert version == 5 and "engine" not in columns

    store = await make_store(node="A")
    version, columns = await _version_and_columns(journal)
    assert version == schema.SCHEMA_VERSION and "engine" in columns
    old = await store.find_inquiry("SQ-OLD", InquiryDirection.IN)
    assert old is not None
    assert (old.state, old.counterparty, old.corp_id, old.credit_ref, old.orgnl_tx_id) == (
        InquiryState.OPEN, BANK, CORP, "GI-1", "T-1",
    )  # fmt: skip
    assert (old.created_at, old.engine) == (AT, None)  # journaled before its link was kept
    (notice,) = await store.pull_notices(CORP, 0, 10)
    assert (notice.ntfy_id, notice.kind, notice.inq_id) == (1, NoticeKind.INQUIRY, "SQ-OLD")
    # an inquiry journaled now keeps its link next to the old one
    await store.receive_credit(_credit("GI-2", "T-2"))
    new = await store.receive_inquiry(_in_inquiry("SQ-NEW", "T-2", Engine.HVPS))
    assert new is not None and (new.credit_ref, new.engine) == ("GI-2", Engine.HVPS)
    assert await store.find_inquiry("SQ-OLD", InquiryDirection.IN) == old
    await store.close()
    # starting again finds the schema current and changes nothing
    await (await make_store(node="A")).close()
    assert await _version_and_columns(journal) == (version, columns)


async def test_archived_inquiries_keep_their_link(
    backend: str, journal: Path | str, make_store: StoreFactory, tmp_path: Path
) -> None:
    """The retention pass writes ``engine`` on the inquiry line; it reads back as journaled."""
    store = await make_store(node="A")
    await store.receive_credit(_credit("GI-1", "T-1"))
    shown: dict[str, InquiryRecord] = {}
    for inq_id, engine in (("SQ-HVPS", Engine.HVPS), ("SQ-NONE", None)):
        got = await store.receive_inquiry(_in_inquiry(inq_id, "T-1", engine))
        assert got is not None and got.engine is engine
        shown[inq_id] = got
    res = await archive_once(backend, journal, tmp_path / "archive", before=AT + timedelta(days=1))
    assert res.inquiries == 2 and res.path is not None
    archived = {r.inq_id: r for r in read_archive(res.path) if isinstance(r, ArchivedInquiry)}
    assert set(archived) == set(shown)
    for inq_id, got in archived.items():
        as_journaled = {f.name: getattr(got, f.name) for f in fields(InquiryRecord)}
        assert InquiryRecord(**as_journaled) == shown[inq_id]
    assert archived["SQ-HVPS"].engine is Engine.HVPS
    assert await store.find_inquiry("SQ-HVPS", InquiryDirection.IN) is None
    await store.close()


def _credit(gw_ref: str, tx_id: str) -> NewIncomingCredit:
    """An incoming HVPS credit from :data:`BANK` to an account of :data:`CORP`."""
    return NewIncomingCredit(
        gw_ref=gw_ref, engine=Engine.HVPS, msg_id=f"M-{tx_id}", tx_id=tx_id,
        end_to_end_id=f"E-{tx_id}", sender=BANK, work_date=AT.date(),
        debtor_acct="6228480000000001", debtor_name="Li Si", debtor_bank=BANK,
        creditor_acct="6222000011112222", creditor_name="Acme Trading Co",
        amount=Decimal("300.00"), purpose=None, received_at=AT, corp_id=CORP,
    )  # fmt: skip


def _in_inquiry(inq_id: str, tx_id: str, engine: Engine | None) -> NewInquiry:
    """A ccms.314 from :data:`BANK` about its credit ``tx_id``, arrived on ``engine``."""
    return NewInquiry(
        inq_id, InquiryDirection.IN, BANK, "is it yours?", AT, orgnl_msg_id=f"M-{tx_id}",
        orgnl_tx_id=tx_id, engine=engine,
    )  # fmt: skip


def test_an_inquiry_line_written_before_migration_6_reads_back_without_a_link(
    tmp_path: Path,
) -> None:
    line = {
        "kind": "inquiry", "direction": "IN", "inq_id": "SQ-OLD", "state": "REPLIED",
        "counterparty": BANK, "text": "is it yours?",
        "created_at": AT.isoformat(timespec="microseconds"), "corp_id": CORP, "msg_id": None,
        "seq_no": None, "credit_ref": "GI-1", "orgnl_msg_id": "M-1", "orgnl_tx_id": "T-1",
        "request_msg_id": "RPLY-1", "out_msg_id": "OUT-315", "reply_text": "yes",
        "replied_at": (AT + timedelta(hours=1)).isoformat(timespec="microseconds"),
    }  # fmt: skip
    path = tmp_path / "journal-20250715-20250715-000000000000.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write(json.dumps({"kind": "archive", "format": 2}) + "\n")
        fh.write(json.dumps(line) + "\n")
    (got,) = read_archive(path)
    assert isinstance(got, ArchivedInquiry)
    assert (got.inq_id, got.state, got.reply_text, got.out_msg_id, got.engine) == (
        "SQ-OLD", InquiryState.REPLIED, "yes", "OUT-315", None,
    )  # fmt: skip
