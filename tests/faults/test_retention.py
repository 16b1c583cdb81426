"""Retention and archive (corplink.md §7), on both journal backends.

Rows leave the journal only when the request is older than the retention
period and all its items are final; they are in a durable archive file
first; the file reads back as what STATUS showed; and once archived, the
MsgId is free again (the spec's retention semantics).  Each test builds the
journal through the store protocol with explicit times, like the pipeline
and the engines do.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from gateway.clock import SHANGHAI
from gateway.journal.ops_records import ActionKind, OperatorAction
from gateway.journal.postgres import PostgresStore
from gateway.journal.records import DailyLimit, NewItem, NewOutbound, NewRequest, TxResult
from gateway.journal.retention import (
    ArchivedDailyTotal,
    ArchivedOutbound,
    ArchivedRequest,
    archive_once,
    read_archive,
)
from gateway.journal.review_records import REJECT_CODE, ReviewOutcome, ReviewStep
from gateway.journal.sqlite import SqliteStore
from gateway.journal.store import Store
from gateway.model import BizType, Engine, Priority, State
from gateway.testing_pg import PgServer
from tests.faults.test_outages import fill, small_disk

NOW = datetime(2026, 11, 27, 10, 0, tzinfo=SHANGHAI)
RETENTION = timedelta(days=400)  # corplink.md §7 default
BEFORE = NOW - RETENTION
OLD = NOW - timedelta(days=500)


@dataclass
class Journal:
    store: Store
    backend: str
    target: str | Path


@pytest.fixture(params=["sqlite", "postgres"])
async def journal(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Journal]:
    if request.param == "sqlite":
        path = tmp_path / "journal.sqlite3"
        store: Store = SqliteStore(path, node="A")
        target: str | Path = path
    else:
        server: PgServer = request.getfixturevalue("pg")
        name = f"ret_{uuid.uuid4().hex[:10]}"
        conn = await asyncpg.connect(server.dsn())
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        target = server.dsn(name)
        store = PostgresStore(target, node="B", lease=1.0)
    await store.start()
    try:
        yield Journal(store, request.param, target)
    finally:
        await store.close()


def item(
    seq: int | None = None,
    *,
    code: str = "102290000011",
    state: State = State.QUEUED,
    amount: str = "100.00",
    release_at: datetime | None = None,
    work_date: date | None = None,
) -> NewItem:
    rejected = state is State.REJECTED
    return NewItem(
        seq_no=seq, payer_acct="6222000000000001", payer_name="付款人",
        payee_acct=f"6217{seq or 0:012d}", payee_name="收款人", payee_bank_code=code,
        amount=Decimal(amount), ccy="CNY", priority=Priority.NORM, biz_type=BizType.CREDIT,
        purpose="货款", state=state, engine=None if rejected else Engine.BEPS,
        receiver=None if rejected else "102100099996", work_date=work_date or OLD.date(),
        release_at=release_at, reason_code="4001" if rejected else None,
        reason_text="unknown bank code" if rejected else None,
    )  # fmt: skip


async def accept(j: Journal, msg_id: str, at: datetime, *items: NewItem) -> str:
    trn = "PAY" if len(items) == 1 and items[0].seq_no is None else "PAYROLL"
    out = await j.store.accept(
        NewRequest("C100000001", msg_id, "op01", trn, f"digest-{msg_id}", at, items,
                   DailyLimit(at.date(), Decimal("10000000.00")))
    )  # fmt: skip
    assert out.created and out.record is not None
    return out.record.gw_ref


async def package(j: Journal, out_id: str, at: datetime, msg_ids: set[str]) -> list[TxResult]:
    """Claim the QUEUED items of ``msg_ids`` into one journaled, PUBACKed package."""
    queued = [q for q in await j.store.claim_queued(Engine.BEPS, 1000) if q.msg_id in msg_ids]
    await j.store.create_outbound([
        NewOutbound(out_id, Engine.BEPS, "beps.121", "clearing/beps/out", "102100099996",
                    queued[0].work_date, f"<signed {out_id}/>".encode(),
                    tuple(q.item_id for q in queued), at)
    ])  # fmt: skip
    await j.store.mark_sent(out_id, at)
    return [TxResult(q.tx_id, q.end_to_end_id, "ACSC") for q in queued]


async def build(j: Journal) -> dict[str, Any]:
    """The journal every test starts from; returns what STATUS showed before archiving."""
    s = j.store
    at = OLD
    # old and final: settled alone in its package
    await accept(j, "OLD-SETTLED", at, item())
    settle = await package(j, "103100000019202507140000000001", at, {"OLD-SETTLED"})
    await s.apply_tx_status("103100000019202507140000000001", settle, at + timedelta(seconds=5))
    # old and final at once: refused at routing
    await accept(j, "OLD-ROUTING", at, item(state=State.REJECTED))
    # old batch, every item final: two settled, one rejected by the clearing side
    await accept(j, "OLD-BATCH", at, item(1), item(2), item(3))
    res = await package(j, "103100000019202507140000000002", at, {"OLD-BATCH"})
    res[2] = TxResult(res[2].tx_id, res[2].end_to_end_id, "RJCT", "AC01", "incorrect account")
    await s.apply_tx_status("103100000019202507140000000002", res, at + timedelta(seconds=5))
    # old but not final: SENT without an answer, a half-final batch, HELD
    await accept(j, "OLD-SENT", at, item())
    await package(j, "103100000019202507140000000003", at, {"OLD-SENT"})
    await accept(j, "OLD-HALF", at, item(1), item(2))
    half = await package(j, "103100000019202507140000000004", at, {"OLD-HALF"})
    await s.apply_tx_status("103100000019202507140000000004", half[:1], at + timedelta(seconds=5))
    await accept(j, "OLD-HELD", at, item(state=State.HELD, release_at=NOW + timedelta(days=1)))
    # an old and a young request in one package: the package must stay for the young one
    await accept(j, "OLD-SHARED", at, item())
    await accept(j, "YOUNG-SHARED", NOW - timedelta(days=10), item(work_date=OLD.date()))
    shared = await package(j, "103100000019202507140000000005", at, {"OLD-SHARED", "YOUNG-SHARED"})
    await s.apply_tx_status("103100000019202507140000000005", shared, at + timedelta(seconds=5))
    # exactly at the edge: not older than retention, kept
    await accept(j, "EDGE", BEFORE, item(state=State.REJECTED))
    before: dict[str, Any] = {}
    for m in ("OLD-SETTLED", "OLD-ROUTING", "OLD-SHARED"):
        before[m] = (await s.find_request("C100000001", m), await s.item_status("C100000001", m))
    for seq in (1, 2, 3):
        before[f"OLD-BATCH/{seq}"] = await s.item_status("C100000001", "OLD-BATCH", seq)
    before["OLD-BATCH"] = await s.find_request("C100000001", "OLD-BATCH")
    return before


ARCHIVED = {"OLD-SETTLED", "OLD-ROUTING", "OLD-BATCH", "OLD-SHARED"}
KEPT = {"OLD-SENT", "OLD-HALF", "OLD-HELD", "YOUNG-SHARED", "EDGE"}


async def test_old_final_requests_are_archived_and_removed_the_rest_stays(
    journal: Journal, tmp_path: Path
) -> None:
    shown = await build(journal)
    out = tmp_path / "archive"
    res = await archive_once(journal.backend, journal.target, out, before=BEFORE, batch=2)

    assert res.requests == len(ARCHIVED)
    assert res.items == 6 and res.transitions > 0
    assert res.path is not None and res.path.parent == out
    assert re.fullmatch(r"journal-\d{8}-\d{8}-[0-9a-f]{12}\.jsonl\.gz", res.path.name)
    assert res.first_received == OLD and res.last_received == OLD
    assert [p.name for p in out.iterdir()] == [res.path.name]  # no temp file left
    s = journal.store
    for m in ARCHIVED:
        assert await s.find_request("C100000001", m) is None, m
    for m in KEPT:
        assert await s.find_request("C100000001", m) is not None, m
    assert (await s.item_status("C100000001", "OLD-SENT")).state is State.SENT  # type: ignore[union-attr]
    # the package of OLD-SETTLED went with it; the one shared with a young request stayed
    assert res.outbound == 2
    assert not await s.apply_receipt("103100000019202507140000000001", NOW)
    assert await s.apply_receipt("103100000019202507140000000005", NOW)
    assert await s.apply_receipt("103100000019202507140000000003", NOW)  # OLD-SENT's: kept

    # the file reads back as what STATUS showed (corplink.md §5)
    records = list(read_archive(res.path))
    requests = {r.record.msg_id: r for r in records if isinstance(r, ArchivedRequest)}
    assert set(requests) == ARCHIVED
    for m in ("OLD-SETTLED", "OLD-ROUTING", "OLD-SHARED"):
        record, view = shown[m]
        assert requests[m].record == record
        assert requests[m].items[0].view() == view
    assert requests["OLD-BATCH"].record == shown["OLD-BATCH"]
    for seq, it in zip((1, 2, 3), requests["OLD-BATCH"].items, strict=True):
        assert it.view() == shown[f"OLD-BATCH/{seq}"]
    assert [it.state for it in requests["OLD-BATCH"].items] == [
        State.SETTLED, State.SETTLED, State.REJECTED,
    ]  # fmt: skip
    assert requests["OLD-BATCH"].items[2].reason_code == "AC01"
    assert requests["OLD-SETTLED"].items[0].amount == Decimal("100.00")
    assert requests["OLD-SETTLED"].node == ("A" if journal.backend == "sqlite" else "B")
    outs = {r.msg_id: r for r in records if isinstance(r, ArchivedOutbound)}
    assert set(outs) == {
        "103100000019202507140000000001",
        "103100000019202507140000000002",
        "103100000019202507140000000005",
    }
    assert outs["103100000019202507140000000001"].payload == (
        b"<signed 103100000019202507140000000001/>"
    )
    totals = [r for r in records if isinstance(r, ArchivedDailyTotal)]
    assert [(t.day, t.total) for t in totals] == [
        (OLD.date(), Decimal("900.00"))
    ]  # rejected at routing: not counted

    # a second pass finds nothing more
    again = await archive_once(journal.backend, journal.target, out, before=BEFORE)
    assert again.requests == 0 and again.path is None
    assert len(list(out.iterdir())) == 1


async def test_an_archived_msgid_replayed_after_retention_is_a_new_request(
    journal: Journal, tmp_path: Path
) -> None:
    """corplink.md §7: (CorpId, MsgId) is unique *for the retention period*.  After it,
    the journal no longer knows the MsgId: a replay is accepted as new (new GwRef)."""
    await build(journal)
    old = await journal.store.find_request("C100000001", "OLD-SETTLED")
    assert old is not None
    await archive_once(journal.backend, journal.target, tmp_path / "a", before=BEFORE)
    ref = await accept(journal, "OLD-SETTLED", NOW, item())
    assert ref != old.gw_ref
    view = await journal.store.item_status("C100000001", "OLD-SETTLED")
    assert view is not None and view.state is State.QUEUED
    # while kept, the same MsgId is still a duplicate (no second request)
    dup = await journal.store.accept(
        NewRequest("C100000001", "OLD-SENT", "op01", "PAY", "other", NOW, (item(),))
    )
    assert not dup.created


async def test_nothing_is_removed_when_the_archive_cannot_be_written(
    journal: Journal, tmp_path: Path
) -> None:
    await build(journal)
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the archive folder should be")
    with pytest.raises(NotADirectoryError):
        await archive_once(journal.backend, journal.target, blocked / "archive", before=BEFORE)
    for m in ARCHIVED | KEPT:
        assert await journal.store.find_request("C100000001", m) is not None, m


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
async def test_a_full_archive_disk_removes_nothing_and_leaves_no_temp_file(
    journal: Journal, tmp_path: Path
) -> None:
    await build(journal)
    with small_disk(tmp_path / "disk", "1m") as disk:
        filler = fill(disk)
        with pytest.raises(OSError, match="No space left"):
            await archive_once(journal.backend, journal.target, disk, before=BEFORE, batch=2)
        assert [p.name for p in disk.iterdir()] == [filler.name]
        for m in ARCHIVED | KEPT:
            assert await journal.store.find_request("C100000001", m) is not None, m
        filler.unlink()  # space returns: the next pass archives
        res = await archive_once(journal.backend, journal.target, disk, before=BEFORE)
        assert res.requests == len(ARCHIVED)


async def test_archiving_in_batches_does_not_block_the_hot_path(
    journal: Journal, tmp_path: Path
) -> None:
    s = journal.store
    for i in range(300):
        await accept(journal, f"BULK-{i}", OLD + timedelta(seconds=i), item(state=State.REJECTED))
    archiving = asyncio.create_task(
        archive_once(journal.backend, journal.target, tmp_path / "a", before=BEFORE, batch=20)
    )
    accepted = 0
    while not archiving.done():  # the gateway keeps accepting while the archive runs
        await accept(journal, f"LIVE-{accepted}", NOW, item())
        accepted += 1
    res = await archiving
    assert res.requests == 300
    assert accepted > 0
    for i in range(accepted):
        assert await s.find_request("C100000001", f"LIVE-{i}") is not None
    assert res.path is not None
    ids = [r.record.msg_id for r in read_archive(res.path) if isinstance(r, ArchivedRequest)]
    assert ids == [f"BULK-{i}" for i in range(300)]  # oldest first, each once


@pytest.mark.parametrize("after", [0.0, 0.05, 0.2])
async def test_a_cancelled_pass_removes_only_what_it_archived(
    journal: Journal, tmp_path: Path, after: float
) -> None:
    """Shutdown cancels the archive task anywhere: no temp file is left, and every
    request that is gone from the journal is in an archive file."""
    for i in range(200):
        await accept(journal, f"BULK-{i}", OLD + timedelta(seconds=i), item(state=State.REJECTED))
    out = tmp_path / "a"
    task = asyncio.create_task(
        archive_once(journal.backend, journal.target, out, before=BEFORE, batch=10)
    )
    await asyncio.sleep(after)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    files = sorted(out.iterdir()) if out.exists() else []
    assert not [f for f in files if f.name.endswith(".tmp")]
    archived = {
        r.record.msg_id for f in files for r in read_archive(f) if isinstance(r, ArchivedRequest)
    }
    for i in range(200):
        if await journal.store.find_request("C100000001", f"BULK-{i}") is None:
            assert f"BULK-{i}" in archived
    again = await archive_once(journal.backend, journal.target, out, before=BEFORE)
    for i in range(200):  # the next pass finishes the job
        assert await journal.store.find_request("C100000001", f"BULK-{i}") is None
    assert again.path is not None or len(archived) == 200


def test_read_archive_refuses_a_foreign_file(tmp_path: Path) -> None:
    other = tmp_path / "other.jsonl.gz"
    with gzip.open(other, "wt") as fh:
        fh.write('{"kind": "something else"}\n')
    with pytest.raises(ValueError, match="not a journal archive"):
        list(read_archive(other))


async def test_archive_once_checks_its_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="UTC offset"):
        await archive_once("sqlite", tmp_path / "j", tmp_path, before=datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="backend"):
        await archive_once("oracle", "x", tmp_path, before=BEFORE)
    with pytest.raises(FileNotFoundError):
        await archive_once("sqlite", tmp_path / "missing.sqlite3", tmp_path, before=BEFORE)


async def test_an_items_screening_decision_is_archived_with_it(
    journal: Journal, tmp_path: Path
) -> None:
    """docs/foreign-currency.md §5: every screening decision, hit or not, records the list
    version that cleared it; an item leaving the journal keeps it in its archive line
    (format 6), with the review's steps in its transitions.  An unscreened item archives
    none, and a format 5 file (items without ``screening``) still reads."""
    decision = json.dumps({
        "versions": [{"list": "test-list", "version": "ab" * 32}],
        "hits": [{"list": "TEST", "entry_id": "T-1", "field": "payee_name", "score": 1.0,
                  "listed": "Northwind Shadow Trading LLC"}],
    })  # fmt: skip
    held = replace(item(state=State.REVIEW), ccy="USD", screening=decision)
    ref = await accept(journal, "OLD-SCREENED", OLD, held)
    await accept(journal, "OLD-PLAIN", OLD, item(state=State.REJECTED))
    why = "true match"
    no = OperatorAction(OLD + timedelta(minutes=5), 1001, "carol", ActionKind.REJECT, ref, why,
                        forced=False)  # fmt: skip
    step = ReviewStep(ref, no, (), State.REJECTED, f"rejected in review by carol: {why}",
                      reason_code=REJECT_CODE, reason_text=why)  # fmt: skip
    assert await journal.store.review_step(step) is ReviewOutcome.DONE

    res = await archive_once(journal.backend, journal.target, tmp_path / "a", before=BEFORE)
    assert res.requests == 2 and res.path is not None
    requests = {
        r.record.msg_id: r for r in read_archive(res.path) if isinstance(r, ArchivedRequest)
    }
    (screened,) = requests["OLD-SCREENED"].items
    assert screened.screening == decision
    assert (screened.state, screened.reason_code) == (State.REJECTED, "RR04")
    assert [(t.state, t.detail) for t in screened.transitions][1:] == [
        (State.REVIEW, None),
        (State.REJECTED, "rejected in review by carol: true match"),
    ]
    assert requests["OLD-PLAIN"].items[0].screening is None

    # the same file as format 5 wrote it: no item carries ``screening`` (nor format 7's fields)
    with gzip.open(res.path, "rt", encoding="utf-8") as fh:
        lines = [json.loads(line) for line in fh]
    assert lines[0]["kind"] == "archive" and lines[0]["format"] == 7
    lines[0]["format"] = 5
    for line in lines:
        for it in line.get("items", []):
            for key in ("screening", "uetr", "payee_bic", "payee_country", "chrg_br"):
                del it[key]
    older = tmp_path / "journal-20250714-20250714-000000000005.jsonl.gz"
    with gzip.open(older, "wt", encoding="utf-8") as fh:
        fh.writelines(json.dumps(line) + "\n" for line in lines)
    read = {r.record.msg_id: r for r in read_archive(older) if isinstance(r, ArchivedRequest)}
    assert read["OLD-SCREENED"].items[0] == replace(screened, screening=None)
