"""The journal's audit chain: every change of state linked, every kind of tampering found.

Runs against both backends (``[sqlite]``, ``[postgres]``).  A journal with
every kind of chained change (items, outbound messages, an incoming credit,
an inquiry, a netting round) is built through the store, then tampered with
the way someone with write access to the database would: edit a row, delete
a row, swap two rows, cut the tail (with and without fixing the counter),
and replace an archive.  ``verify`` must name the first break each time, and
``gatewayctl audit verify`` must exit non-zero.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import json
import sqlite3
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from gateway.cli import gatewayctl
from gateway.journal.audit import Report, audit_once, head_path, read_head, verify
from gateway.journal.audit_chain import GENESIS, link_hash
from gateway.journal.records import Figures, NewOutbound, TxResult
from gateway.journal.retention import archive_once
from gateway.journal.schema import to_micros
from gateway.model import Engine, State
from gateway.ops import metrics

from .conftest import JournalStore, StoreFactory
from .helpers import BEPS_RCVR, T0, WORK_DATE, at, item, request
from .test_correspondence import credit, in_inquiry

KINDS = {"item", "outbound", "credit", "inquiry", "netting"}


def _target(backend: str, request: pytest.FixtureRequest) -> Path | str:
    if backend == "sqlite":
        path: Path = request.getfixturevalue("db_path")
        return path
    dsn: str = request.getfixturevalue("dsn")
    return dsn


async def _sql(
    backend: str, target: Path | str, statement: str, *args: Any
) -> list[tuple[Any, ...]]:
    """Run one statement under the store, as someone with write access to the database."""
    if backend == "sqlite":
        conn = sqlite3.connect(target)
        try:
            with conn:
                return [tuple(r) for r in conn.execute(statement, args).fetchall()]
        finally:
            conn.close()
    pg = await asyncpg.connect(str(target))
    try:
        marked = statement
        for n in range(len(args)):
            marked = marked.replace("?", f"${n + 1}", 1)
        return [tuple(r) for r in await pg.fetch(marked, *args)]
    finally:
        await pg.close()


async def _busy(store: JournalStore) -> None:
    """Changes of every chained kind; requests 1 and 3 are final (archivable), 2 is not."""
    one = (await store.accept(request("pay-1", item(seq_no=1), item(seq_no=2)))).record
    assert one is not None
    await store.accept(request("pay-2", item(), received_at=at(10)))
    rejected = item(state=State.REJECTED, engine=None, receiver=None, reason_code="RC01")
    await store.accept(request("pay-3", rejected, received_at=at(20)))
    # pay-1's items go out in one HVPS message: PENDING, SENT, ACKED, then a ccms.900
    queued = await store.claim_queued(Engine.HVPS, 10)
    ids = tuple(q.item_id for q in queued if q.msg_id == "pay-1")
    await store.create_outbound([
        NewOutbound("H1", Engine.HVPS, "hvps.111", "clearing/hvps/out", queued[0].receiver,
                    WORK_DATE, b"<Document/>", ids, at(30))
    ])  # fmt: skip
    await store.mark_sent("H1", at(31))
    assert await store.apply_receipt("H1", at(32))
    results = [
        TxResult(f"{one.gw_ref}-1", None, "ACSC"),
        TxResult(f"{one.gw_ref}-2", None, "RJCT", "AC04", "account closed"),
    ]
    assert await store.apply_tx_status("H1", results, at(33)) == 2
    await store.receive_credit(credit("GI1", "T-1"))
    assert await store.post_credit("GI1", at(40))
    await store.receive_inquiry(in_inquiry("B-IQ-1", "T-1"))
    nothing = Figures(0, Decimal(0), 0, Decimal(0))
    await store.apply_netting(WORK_DATE, 1, BEPS_RCVR, nothing, at(50))


async def _links(backend: str, target: Path | str) -> list[tuple[Any, ...]]:
    """(seq, table, kind) of every chained row, in seq order."""
    rows = await _sql(
        backend, target,
        "SELECT seq, 'transitions', 'item' FROM transitions WHERE seq IS NOT NULL"
        " UNION ALL SELECT seq, 'state_changes', kind FROM state_changes ORDER BY 1",
    )  # fmt: skip
    return rows


def _gauge(name: str) -> float | None:
    return metrics.REGISTRY.get_sample_value(name)


async def _verify(backend: str, target: Path | str, archive: Path) -> Report:
    return await verify(backend, target, archive, "A")


@pytest.fixture
async def busy(store: JournalStore) -> JournalStore:
    await _busy(store)
    return store


async def test_every_change_of_state_is_a_link_with_a_gap_free_seq(
    busy: JournalStore, backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    target = _target(backend, request)
    links = await _links(backend, target)
    assert [int(r[0]) for r in links] == list(range(1, len(links) + 1))
    assert {r[2] for r in links} == KINDS
    # the outbound message's three states, the credit's two, one inquiry, one round
    kinds = [r[2] for r in links]
    assert (kinds.count("outbound"), kinds.count("credit")) == (3, 2)
    report = await _verify(backend, target, tmp_path / "archive")
    assert report.ok, report.brk
    assert report.rows == len(links) and report.head.seq == len(links)
    first = (await _sql(backend, target, "SELECT prev_hash FROM transitions WHERE seq = 1"))[0]
    assert first[0] == GENESIS


async def test_the_hash_is_the_documented_function_of_the_row(
    busy: JournalStore, backend: str, request: pytest.FixtureRequest
) -> None:
    """Anyone can recompute a link with sha256: the format is in audit_chain.link_hash."""
    target = _target(backend, request)
    at_us = "at" if backend == "sqlite" else "(extract(epoch FROM at) * 1000000)::bigint"
    rows = await _sql(
        backend, target,
        f"SELECT seq, kind, subject, state, {at_us}, detail, prev_hash, hash FROM state_changes",  # noqa: S608
    )  # fmt: skip
    for seq, kind, subject, state, micros, detail, prev, digest in rows:
        assert link_hash(prev, seq, kind, subject, state, int(micros), detail) == digest


async def test_a_rolled_back_write_leaves_no_gap(
    busy: JournalStore, backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The outbound row (and its chain link) is written, then the bad item undoes it all."""
    target = _target(backend, request)
    before = await _links(backend, target)
    bad = NewOutbound(
        "H9", Engine.HVPS, "hvps.111", "t", BEPS_RCVR, WORK_DATE, b"x", (999,), at(60)
    )
    with pytest.raises(ValueError, match="item 999"):
        await busy.create_outbound([bad])
    await busy.accept(request_of("pay-4"))
    after = await _links(backend, target)
    assert [int(r[0]) for r in after] == list(range(1, len(before) + 3))
    assert (await _verify(backend, target, tmp_path / "archive")).ok


def request_of(msg_id: str) -> Any:
    return request(msg_id, item(), received_at=at(70))


@pytest.mark.parametrize(
    ("tamper", "problem"),
    [
        ("UPDATE transitions SET state = 'SETTLED' WHERE seq = 4", "does not give its hash"),
        ("UPDATE state_changes SET detail = 'forged' WHERE kind = 'netting'", "does not give"),
        ("DELETE FROM transitions WHERE seq = 4", "no row carries this seq"),
        (
            "UPDATE transitions SET seq = CASE seq WHEN 4 THEN 5 ELSE 4 END WHERE seq IN (4, 5)",
            "does not give its hash",
        ),
        ("UPDATE transitions SET seq = NULL WHERE seq = 3", "no row carries this seq"),
    ],
    ids=["edit-row", "edit-state-change", "delete-row", "swap-rows", "unchain-row"],
)
async def test_tampering_with_a_live_row_is_found(
    busy: JournalStore, backend: str, request: pytest.FixtureRequest, tmp_path: Path,
    tamper: str, problem: str,
) -> None:  # fmt: skip
    target = _target(backend, request)
    await _sql(backend, target, tamper)
    report = await _verify(backend, target, tmp_path / "archive")
    assert not report.ok
    assert report.brk is not None and problem in report.brk.problem, report.brk


async def test_an_edit_rehashed_is_found_at_the_next_link(
    busy: JournalStore, backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Whoever edits a row and recomputes its hash breaks the next row's prev_hash."""
    target = _target(backend, request)
    seq, item_id, at_v, detail, prev = (await _sql(
        backend, target, "SELECT seq, item_id, at, detail, prev_hash FROM transitions WHERE seq = 4"
    ))[0]  # fmt: skip
    micros = at_v if backend == "sqlite" else to_micros(at_v)
    forged = link_hash(prev, seq, "item", item_id, "SETTLED", micros, detail)
    await _sql(backend, target, "UPDATE transitions SET state = 'SETTLED', hash = ? WHERE seq = 4",
               forged)  # fmt: skip
    report = await _verify(backend, target, tmp_path / "archive")
    assert report.brk is not None
    assert (report.brk.seq, report.brk.problem) == (5, "prev_hash is not the previous row's hash")
    assert report.brk.found != report.brk.expected == forged


async def test_a_cut_tail_is_found_by_the_counter_or_the_recorded_head(
    busy: JournalStore, backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    target = _target(backend, request)
    archive = tmp_path / "archive"
    daily = await audit_once(backend, target, archive, "A", T0 + timedelta(days=1))
    assert daily.ok and _gauge("gateway_audit_chain_ok") == 1
    recorded = read_head(head_path(archive, "A"))
    assert recorded is not None and recorded.seq == daily.head.seq > 3
    last = recorded.seq
    # crude: the last three rows go, the counter stays
    await _sql(backend, target, "DELETE FROM state_changes WHERE seq > ?", last - 3)
    await _sql(backend, target, "DELETE FROM transitions WHERE seq > ?", last - 3)
    report = await _verify(backend, target, archive)
    assert report.brk is not None and "counter row" in report.brk.problem
    # careful: the counter rolled back too; only the recorded head, outside the journal, sees it
    (new_hash,) = (await _sql(backend, target,
        "SELECT hash FROM state_changes WHERE seq = ? UNION ALL"
        " SELECT hash FROM transitions WHERE seq = ?", last - 3, last - 3))[0]  # fmt: skip
    await _sql(backend, target, "UPDATE audit_head SET seq = ?, hash = ?", last - 3, new_hash)
    report = await _verify(backend, target, archive)
    assert report.brk is not None, "a cut tail must be found"
    assert "tail cut" in report.brk.problem and report.brk.seq == last - 2
    broken = await audit_once(backend, target, archive, "A", T0 + timedelta(days=2))
    assert not broken.ok and _gauge("gateway_audit_chain_ok") == 0
    assert read_head(head_path(archive, "A")) == recorded  # a break never moves the head
    head_path(archive, "A").unlink()
    assert (await _verify(backend, target, archive)).ok  # what the head file is for


async def _archived(backend: str, target: Path | str, archive: Path) -> Path:
    result = await archive_once(backend, target, archive, before=T0 + timedelta(days=3))
    assert result.path is not None and result.requests == 2 and result.state_changes > 0
    return result.path


def _rewrite(path: Path, change: Any) -> None:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        lines = [json.loads(t) for t in fh if t.strip()]
    lines = change(lines)
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.writelines(json.dumps(line) + "\n" for line in lines)


def _chained(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every transition entry of the file that carries a chain link, in file order."""
    return [
        t for ln in lines if ln["kind"] == "request" for i in ln["items"] for t in i["transitions"]
        if "chain" in t
    ]  # fmt: skip


async def test_archives_stitch_into_the_chain_by_seq(
    busy: JournalStore, backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    target = _target(backend, request)
    archive = tmp_path / "archive"
    links = await _links(backend, target)
    path = await _archived(backend, target, archive)
    live = {int(r[0]) for r in await _links(backend, target)}
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        stored = _chained([json.loads(t) for t in fh if t.strip()])
    archived = {t["chain"]["seq"] for t in stored}
    # scattered: pay-2 (still QUEUED) keeps links in the middle of the archived ones
    assert min(archived) < min(live) < max(archived)
    report = await _verify(backend, target, archive)
    assert report.ok, report.brk
    assert report.rows == len(links)
    # a second copy of the same rows (a pass that crashed before deleting) is fine
    (archive / ("journal-copy-" + path.name[8:])).write_bytes(path.read_bytes())
    assert (await _verify(backend, target, archive)).ok


@pytest.mark.parametrize("how", ["edit", "rehash", "remove", "older-copy"])
async def test_a_replaced_archive_is_found(
    busy: JournalStore, backend: str, request: pytest.FixtureRequest, tmp_path: Path, how: str
) -> None:
    target = _target(backend, request)
    archive = tmp_path / "archive"
    path = await _archived(backend, target, archive)
    original = path.read_bytes()

    def edit(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        _chained(lines)[0]["state"] = "SETTLED"
        return lines

    def rehash(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """A careful forger: edit, then recompute every link of the file from there on."""
        links = _chained(lines)
        links[0]["state"] = "SETTLED"
        by_seq = sorted(links, key=lambda t: t["chain"]["seq"])
        prev = by_seq[0]["chain"]["prev"]
        for t in by_seq:
            c = t["chain"]
            c["prev"] = prev
            c["hash"] = prev = link_hash(prev, c["seq"], "item", c["item_id"], t["state"],
                                         to_micros(datetime.fromisoformat(t["at"])), t["detail"])  # fmt: skip
        return lines

    if how == "edit":
        _rewrite(path, edit)
    elif how == "rehash":
        _rewrite(path, rehash)
    elif how == "remove":
        path.unlink()
    else:  # the file swapped for one that lacks a row: the archive of an earlier pass
        _rewrite(path, lambda lines: [ln for ln in lines if ln["kind"] != "state_change"])
    report = await _verify(backend, target, archive)
    assert not report.ok, how
    assert report.brk is not None
    if how != "remove":
        path.write_bytes(original)
        assert (await _verify(backend, target, archive)).ok


async def test_verify_from_a_date_needs_no_older_rows(
    busy: JournalStore, backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """As if the bank dropped the archives of pay-1 (seq 1-4, at T0) past its audit period."""
    target = _target(backend, request)
    archive = tmp_path / "archive"
    await _sql(backend, target, "DELETE FROM transitions WHERE seq <= 4")
    report = await _verify(backend, target, archive)
    assert report.brk is not None and report.brk.seq == 1
    later = await verify(backend, target, archive, "A", since=at(10))
    assert later.ok and later.first_seq == 5, later.brk
    await _sql(backend, target, "DELETE FROM transitions WHERE seq = 6")
    assert not (await verify(backend, target, archive, "A", since=at(10))).ok


async def test_gatewayctl_audit_verify_exits_non_zero_on_a_break(
    busy: JournalStore, backend: str, request: pytest.FixtureRequest, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    target = _target(backend, request)
    archive = tmp_path / "archive"
    journal = (
        f'path = "{target}"' if backend == "sqlite" else f'backend = "postgres"\ndsn = "{target}"'
    )
    overlay = tmp_path / "overlay.toml"
    overlay.write_text(f'[journal]\n{journal}\narchive_dir = "{archive}"\n', encoding="utf-8")
    ctl = functools.partial(asyncio.to_thread, gatewayctl.main)  # it runs its own event loop
    assert await ctl(["--config", str(overlay), "audit", "verify"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    await _sql(backend, target, "DELETE FROM transitions WHERE seq = 2")
    assert await ctl(["--config", str(overlay), "audit", "verify"]) == 1
    captured = capsys.readouterr()
    found = json.loads(captured.out)["break"]
    assert (found["seq"], found["expected"], found["found"]) == (2, "a row with seq 2", "none")
    assert "BROKEN at seq 2" in captured.err
    assert await ctl(["--config", str(overlay), "audit", "verify", "--from",
                            (T0 + timedelta(days=1)).date().isoformat()]) == 0  # fmt: skip


@pytest.mark.parametrize("backend", ["postgres"])  # one SQLite file is one node's journal
async def test_each_node_keeps_its_own_chain(
    make_store: StoreFactory, backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    target = _target(backend, request)
    a, b = await make_store(node="A"), await make_store(node="B")
    for n in range(3):
        await a.accept(request_of(f"a-{n}"))
        await b.accept(request_of(f"b-{n}"))
    for node in ("A", "B"):
        report = await verify(backend, target, tmp_path, node)
        assert report.ok and report.head.seq == 6, (node, report.brk)
    await _sql(backend, target, "UPDATE transitions SET detail = 'x' WHERE node = 'B' AND seq = 2")
    assert (await verify(backend, target, tmp_path, "A")).ok
    assert not (await verify(backend, target, tmp_path, "B")).ok


_OLD_NODE_WRITE = (
    "INSERT INTO outbound (msg_id, engine, msg_tp, topic, receiver, work_date, payload, state,"
    " created_at, node) VALUES ($1, 'BEPS', 'ccms.314', 't', '104100000004', '2026-11-27',"
    " '\\x3c3e'::bytea, 'PENDING', now(), 'B')"
)


@pytest.mark.parametrize("backend", ["postgres"])
async def test_a_node_of_the_release_before_joins_its_own_chain(
    store: JournalStore, dsn: str, tmp_path: Path
) -> None:
    """Rolling upgrade: a node still on the release before sets no gateway.node; its
    application_name (gateway-<node>) names its chain.  A stranger cannot write."""
    old = await asyncpg.connect(dsn, server_settings={"application_name": "gateway-B"})
    try:
        await old.execute(_OLD_NODE_WRITE, "OLD-1")
    finally:
        await old.close()
    report = await verify("postgres", dsn, tmp_path, "B")
    assert report.ok and report.head.seq == 1, report.brk
    stranger = await asyncpg.connect(dsn, server_settings={"application_name": "psql"})
    try:
        with pytest.raises(asyncpg.RaiseError, match=r"gateway\.node setting is missing"):
            await stranger.execute(_OLD_NODE_WRITE, "OLD-2")
    finally:
        await stranger.close()


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_sqlite_triggers_hash_the_bytes_link_hash_names(
    busy: JournalStore, db_path: Path, tmp_path: Path
) -> None:
    """The trigger builds the text in SQL; multi-byte UTF-8 must count as bytes there too."""
    from gateway.journal import schema

    conn = schema.connect(db_path)
    try:
        conn.execute(
            "INSERT INTO state_changes (kind, subject, state, at, detail)"
            " VALUES ('inquiry', 'IN 查询-1', 'OPEN', 1, '收款人说没有收到')"
        )
    finally:
        conn.close()
    assert (await verify("sqlite", db_path, tmp_path, "A")).ok
