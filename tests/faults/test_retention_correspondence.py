"""Retention of the correspondence tables and item-less messages (corplink.md §7), both backends.

Notifications, inquiries, incoming credits in a final state, netting rounds
and receipted ccms.314 / 315 messages older than the retention period go to
the archive file and then leave the journal; younger rows, CHECKING credits,
unreceipted messages and rounds whose items still wait for settlement stay.
A row that changes after it was exported is not deleted: the next pass
archives its new version.  Each test builds the journal through the store
protocol with explicit times, as the correspondence handlers do.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from dataclasses import fields
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway.journal import retention
from gateway.journal.records import (
    CreditState,
    Figures,
    InquiryDirection,
    InquiryRecord,
    InquiryState,
    NewIncomingCredit,
    NewInquiry,
    NewOutbound,
    NewRequest,
)
from gateway.journal.retention import (
    Archived,
    ArchivedCredit,
    ArchivedDailyTotal,
    ArchivedInquiry,
    ArchivedNettingRound,
    ArchivedNotification,
    ArchivedOutbound,
    ArchivedRequest,
    archive_once,
    read_archive,
)
from gateway.model import Engine, NoticeKind
from tests.faults import test_retention as base
from tests.faults.test_retention import BEFORE, NOW, OLD, Journal, accept, item, package

# the parametrized journal (sqlite, postgres); its PostgreSQL server is the suite's `pg`
journal = base.journal

CORP = "C100000001"
SENDER = "104100000004"  # the participant the incoming credits come from
RCVR = "102100099996"  # where base.item() routes BEPS payments
OTHER = "313100000013"
YOUNG = NOW - timedelta(days=10)


def credit(ref: str, at: datetime, *, corp_id: str | None = CORP) -> NewIncomingCredit:
    return NewIncomingCredit(
        gw_ref=ref, engine=Engine.BEPS, msg_id=f"M-{ref}", tx_id=f"T-{ref}",
        end_to_end_id=f"E-{ref}", sender=SENDER, work_date=at.date(),
        debtor_acct="6228480000000001", debtor_name="李四", debtor_bank=SENDER,
        creditor_acct="6222000011112222", creditor_name="Acme Trading Co",
        amount=Decimal("300.00"), purpose="refund 7", received_at=at, corp_id=corp_id,
    )  # fmt: skip


def ccms(msg_id: str, at: datetime, msg_tp: str = "ccms.314") -> NewOutbound:
    return NewOutbound(
        msg_id, Engine.BEPS, msg_tp, "clearing/beps/out", RCVR, at.date(),
        f"<Inqry>{msg_id}</Inqry>".encode(), (), at,
    )  # fmt: skip


def out_inquiry(inq_id: str, at: datetime, **kw: Any) -> NewInquiry:
    return NewInquiry(inq_id, InquiryDirection.OUT, RCVR, "payee says nothing arrived", at, **kw)


def in_inquiry(inq_id: str, at: datetime, orgnl_tx_id: str) -> NewInquiry:
    return NewInquiry(
        inq_id, InquiryDirection.IN, SENDER, "please confirm the payee", at,
        orgnl_msg_id="B2025071400000001", orgnl_tx_id=orgnl_tx_id,
    )  # fmt: skip


def bare(msg_id: str, trn: str, at: datetime) -> NewRequest:
    return NewRequest(CORP, msg_id, "op01", trn, f"digest-{msg_id}", at, ())


async def sent_and_acked(j: Journal, msg_id: str, at: datetime) -> None:
    await j.store.mark_sent(msg_id, at)
    assert await j.store.apply_receipt(msg_id, at)


async def build(j: Journal) -> dict[str, Any]:
    """Old and young correspondence; returns what the store showed before archiving."""
    s = j.store
    # credits: old POSTED (a CREDIT notice), old SUSPENSE (its automatic inquiry and
    # ccms.314, receipted and answered), old but still CHECKING, young POSTED
    await s.receive_credit(credit("GI-OLD-POSTED", OLD))
    assert await s.post_credit("GI-OLD-POSTED", OLD + timedelta(seconds=1))
    await s.receive_credit(credit("GI-OLD-SUSP", OLD, corp_id=None))
    auto = out_inquiry("IQ-AUTO", OLD + timedelta(seconds=1), credit_ref="GI-OLD-SUSP")
    assert await s.suspend_credit(
        "GI-OLD-SUSP", OLD + timedelta(seconds=1), auto, ccms("OUT-AUTO-314", OLD)
    )
    await sent_and_acked(j, "OUT-AUTO-314", OLD + timedelta(seconds=2))
    assert await s.receive_reply("IQ-AUTO", "account closed", OLD + timedelta(days=1))
    await s.receive_credit(credit("GI-OLD-CHECK", OLD))
    await s.receive_credit(credit("GI-YOUNG", YOUNG))
    assert await s.post_credit("GI-YOUNG", YOUNG)
    # inquiries: an old INQ still OPEN (its ccms.314 never receipted: it stays), an old
    # inbound one nobody answered (an INQUIRY notice), a young INQ answered (a REPLY notice)
    opened = await s.open_inquiry(
        bare("INQ-OLD", "INQ", OLD), out_inquiry("IQ-OLD", OLD, corp_id=CORP, msg_id="PAY-1"),
        ccms("OUT-INQ-OLD", OLD),
    )  # fmt: skip
    assert opened.created
    await s.mark_sent("OUT-INQ-OLD", OLD)
    assert await s.receive_inquiry(in_inquiry("IN-OLD", OLD, "T-GI-OLD-POSTED")) is not None
    assert (await s.open_inquiry(
        bare("INQ-YOUNG", "INQ", YOUNG), out_inquiry("IQ-YOUNG", YOUNG, corp_id=CORP),
        ccms("OUT-INQ-YOUNG", YOUNG),
    )).created  # fmt: skip
    await sent_and_acked(j, "OUT-INQ-YOUNG", YOUNG)
    assert await s.receive_reply("IQ-YOUNG", "paid on the 3rd", YOUNG + timedelta(hours=1))
    # netting: an old round with nothing left to settle, an old round whose item is NETTED
    # (waiting for its beps.settle), a young round
    zero = Figures(0, Decimal("0.00"), 0, Decimal("0.00"))
    assert (await s.apply_netting(OLD.date(), 1, OTHER, zero, OLD)).matched
    await accept(j, "PAY-NETTED", OLD, item())
    await package(j, "103100000019202507140000000009", OLD, {"PAY-NETTED"})
    assert await s.apply_receipt("103100000019202507140000000009", OLD)
    ours = await s.ledger(OLD.date(), RCVR)
    assert (await s.apply_netting(OLD.date(), 2, RCVR, ours, OLD)).items_netted == 1
    assert (await s.apply_netting(YOUNG.date(), 1, OTHER, zero, YOUNG)).matched
    return {
        "notices": await s.pull_notices(CORP, 0, 100),
        "IQ-OLD": await s.find_inquiry("IQ-OLD", InquiryDirection.OUT),
        "IQ-AUTO": await s.find_inquiry("IQ-AUTO", InquiryDirection.OUT),
        "IN-OLD": await s.find_inquiry("IN-OLD", InquiryDirection.IN),
    }


def records(path: Path) -> list[Archived]:
    return list(read_archive(path))


def of(kind: type[Any], found: list[Archived]) -> list[Any]:
    return [r for r in found if isinstance(r, kind)]


async def test_old_correspondence_is_archived_and_removed_the_rest_stays(
    journal: Journal, tmp_path: Path
) -> None:
    shown = await build(journal)
    s = journal.store
    out = tmp_path / "archive"
    res = await archive_once(journal.backend, journal.target, out, before=BEFORE, batch=2)

    assert (res.notifications, res.inquiries, res.incoming_credits, res.netting_rounds) == (
        2, 3, 2, 1,
    )  # fmt: skip
    assert res.requests == 1  # the old INQ request (no items); PAY-NETTED is not final
    assert res.outbound == 1  # the receipted automatic ccms.314
    assert res.removed == sum(res.counts().values()) and res.counts()["outbound"] == 1
    assert res.path is not None and [p.name for p in out.iterdir()] == [res.path.name]
    assert res.path.name.startswith(f"journal-{OLD:%Y%m%d}-")

    # what a user of the journal sees now
    assert await s.credit_state("GI-OLD-POSTED") is None
    assert await s.credit_state("GI-OLD-SUSP") is None
    assert await s.credit_state("GI-OLD-CHECK") is CreditState.CHECKING  # never deleted
    assert await s.credit_state("GI-YOUNG") is CreditState.POSTED
    for inq_id, direction in (("IQ-OLD", "OUT"), ("IQ-AUTO", "OUT"), ("IN-OLD", "IN")):
        assert await s.find_inquiry(inq_id, InquiryDirection(direction)) is None, inq_id
    young = await s.find_inquiry("IQ-YOUNG", InquiryDirection.OUT)
    assert young is not None and young.state is InquiryState.REPLIED
    left = await s.pull_notices(CORP, 0, 100)
    assert [n.kind for n in left] == [NoticeKind.CREDIT, NoticeKind.REPLY]
    assert all(n.at >= BEFORE for n in left)
    assert left == [n for n in shown["notices"] if n.at >= BEFORE]  # NtfyIds unchanged
    assert not (await s.apply_settlement(OLD.date(), 1, NOW)).rounds_known
    zero = Figures(0, Decimal("0.00"), 0, Decimal("0.00"))
    assert (await s.apply_netting(YOUNG.date(), 1, OTHER, zero, NOW)).already_applied
    kept = await s.apply_netting(OLD.date(), 2, RCVR, zero, NOW)
    assert kept.already_applied and kept.items_netted == 1  # its item still waits
    assert not await s.apply_receipt("OUT-AUTO-314", NOW)  # archived: unknown now
    assert await s.find_request(CORP, "INQ-YOUNG") is not None
    assert await s.find_request(CORP, "PAY-NETTED") is not None

    # the file reads back as what the journal showed
    found = records(res.path)
    notes = of(ArchivedNotification, found)
    old = [n for n in shown["notices"] if n.at < BEFORE]  # oldest first, NtfyId among equals
    assert [n.notice for n in notes] == sorted(old, key=lambda n: (n.at, n.ntfy_id))
    assert {n.notice.kind for n in notes} == {NoticeKind.CREDIT, NoticeKind.INQUIRY}
    assert all(n.corp_id == CORP for n in notes)
    inquiries = {i.inq_id: i for i in of(ArchivedInquiry, found)}
    assert set(inquiries) == {"IQ-OLD", "IQ-AUTO", "IN-OLD"}
    for inq_id, got in inquiries.items():  # as find_inquiry answered, plus its message
        assert (
            InquiryRecord(**{f.name: getattr(got, f.name) for f in fields(InquiryRecord)})
            == (shown[inq_id])
        )
    assert inquiries["IQ-AUTO"].state is InquiryState.REPLIED
    assert inquiries["IQ-AUTO"].reply_text == "account closed"
    assert inquiries["IQ-OLD"].out_msg_id == "OUT-INQ-OLD"
    credits = {c.gw_ref: c for c in of(ArchivedCredit, found)}
    assert set(credits) == {"GI-OLD-POSTED", "GI-OLD-SUSP"}
    assert credits["GI-OLD-POSTED"].state is CreditState.POSTED
    assert credits["GI-OLD-SUSP"].state is CreditState.SUSPENSE
    assert credits["GI-OLD-POSTED"].amount == Decimal("300.00")
    assert credits["GI-OLD-POSTED"].debtor_name == "李四"
    assert credits["GI-OLD-POSTED"].received_at == OLD
    assert credits["GI-OLD-POSTED"].node == (None if journal.backend == "sqlite" else "B")
    (round_,) = of(ArchivedNettingRound, found)
    assert (round_.work_date, round_.round, round_.counterparty) == (OLD.date(), 1, OTHER)
    assert round_.matched and round_.ours == round_.theirs and round_.items_netted == 0
    (message,) = of(ArchivedOutbound, found)
    assert message.msg_id == "OUT-AUTO-314" and message.msg_tp == "ccms.314"
    assert message.payload == b"<Inqry>OUT-AUTO-314</Inqry>"
    assert [r.record.msg_id for r in of(ArchivedRequest, found)] == ["INQ-OLD"]

    # a second pass finds nothing more: idempotent
    again = await archive_once(journal.backend, journal.target, out, before=BEFORE)
    assert again.path is None and again.removed == 0
    assert len(list(out.iterdir())) == 1

    # once the round's item is settled and its message receipted, both leave too
    assert (await s.apply_settlement(OLD.date(), 2, OLD + timedelta(days=1))).items_settled == 1
    assert await s.apply_receipt("OUT-INQ-OLD", NOW)
    later = await archive_once(journal.backend, journal.target, out, before=BEFORE)
    assert (later.netting_rounds, later.requests, later.outbound) == (1, 1, 2)
    assert later.notifications == 1  # the STATUS notice of the settlement, a day after OLD


async def test_a_row_that_changes_after_its_export_stays_for_the_next_pass(
    journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An inquiry answered and a credit netted while the pass runs: the archive holds
    their old version, the journal keeps them, the next pass archives the new one."""
    s = journal.store
    await s.receive_credit(credit("GI-OLD", OLD))
    assert await s.post_credit("GI-OLD", OLD)
    assert await s.receive_inquiry(in_inquiry("IN-OLD", OLD, "T-GI-OLD")) is not None
    real = retention._export_table

    async def export_then_change(*args: Any) -> Any:
        got = await real(*args)
        if args[3].line == "incoming_credit":  # both exported; now the hot path moves them
            answer = ccms("OUT-RPLY", NOW, "ccms.315")
            made = await s.answer_inquiry(bare("RPLY-1", "RPLY", NOW), "IN-OLD", "ok", answer)
            assert made.created
            ours = await s.ledger(OLD.date(), SENDER)
            assert ours.cdt_cnt == 1
            assert (await s.apply_netting(OLD.date(), 1, SENDER, ours, NOW)).matched
        return got

    monkeypatch.setattr(retention, "_export_table", export_then_change)
    out = tmp_path / "a"
    first = await archive_once(journal.backend, journal.target, out, before=BEFORE)
    assert first.path is not None
    assert (first.inquiries, first.incoming_credits) == (0, 0)
    assert first.notifications == 2  # CREDIT and INQUIRY notices do not change
    archived = records(first.path)
    assert [i.state for i in of(ArchivedInquiry, archived)] == [InquiryState.OPEN]
    assert [c.netting_round for c in of(ArchivedCredit, archived)] == [None]
    answered = await s.find_inquiry("IN-OLD", InquiryDirection.IN)
    assert answered is not None and answered.reply_text == "ok"
    assert await s.credit_state("GI-OLD") is CreditState.POSTED

    monkeypatch.setattr(retention, "_export_table", real)
    second = await archive_once(journal.backend, journal.target, out, before=BEFORE)
    assert second.path is not None
    assert (second.inquiries, second.incoming_credits) == (1, 1)
    archived = records(second.path)
    (inquiry,) = of(ArchivedInquiry, archived)
    assert inquiry.state is InquiryState.REPLIED and inquiry.request_msg_id == "RPLY-1"
    assert [c.netting_round for c in of(ArchivedCredit, archived)] == [1]
    assert await s.find_inquiry("IN-OLD", InquiryDirection.IN) is None
    assert await s.credit_state("GI-OLD") is None


@pytest.mark.parametrize("after", [0.0, 0.05, 0.2, 0.45])
async def test_a_cancelled_pass_removes_only_what_it_archived(
    journal: Journal, tmp_path: Path, after: float
) -> None:
    """Shutdown cancels the pass anywhere: every credit and notification gone from the
    journal is in an archive file, and the next passes finish the job."""
    s = journal.store
    refs = [f"GI-{i:03d}" for i in range(60)]
    for i, ref in enumerate(refs):
        await s.receive_credit(credit(ref, OLD + timedelta(seconds=i)))
        assert await s.post_credit(ref, OLD + timedelta(seconds=i))
    out = tmp_path / "a"
    task = asyncio.create_task(
        archive_once(journal.backend, journal.target, out, before=BEFORE, batch=5)
    )
    await asyncio.sleep(after)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    files = sorted(out.iterdir()) if out.exists() else []
    assert not [f for f in files if f.name.endswith(".tmp")]
    found = [r for f in files for r in read_archive(f)]
    archived = {c.gw_ref for c in of(ArchivedCredit, found)}
    for ref in refs:
        if await s.credit_state(ref) is None:
            assert ref in archived, ref
    noticed = {n.notice.gw_ref for n in of(ArchivedNotification, found)}
    left = {n.gw_ref for n in await s.pull_notices(CORP, 0, 1000)}
    assert set(refs) <= noticed | left  # every notice is in the journal or in a file
    # at most max_requests rows of each table per pass: two passes for 60 with a cap of 40
    one = await archive_once(journal.backend, journal.target, out, before=BEFORE, max_requests=40)
    assert one.incoming_credits <= 40 and one.notifications <= 40
    await archive_once(journal.backend, journal.target, out, before=BEFORE, max_requests=40)
    assert [await s.credit_state(ref) for ref in refs] == [None] * len(refs)
    assert await s.pull_notices(CORP, 0, 1000) == []


def test_a_format_1_file_still_reads(tmp_path: Path) -> None:
    """Files written before the correspondence lines existed stay readable."""
    old = tmp_path / "journal-20250714-20250714-000000000000.jsonl.gz"
    with gzip.open(old, "wt", encoding="utf-8") as fh:
        fh.write(json.dumps({"kind": "archive", "format": 1, "backend": "sqlite"}) + "\n")
        fh.write(json.dumps({
            "kind": "daily_total", "corp_id": CORP, "oper_id": "op01", "day": "2025-07-14",
            "total": "900.00",
        }) + "\n")  # fmt: skip
    assert records(old) == [ArchivedDailyTotal(CORP, "op01", date(2025, 7, 14), Decimal("900"))]


async def test_a_swift_credit_is_archived_in_its_currency(journal: Journal, tmp_path: Path) -> None:
    """Migration 13: a JPY credit (0 minor units) and its CREDIT notice leave the journal
    as 1500 yen with their currency and the credit's screening decision, never as 15.00."""
    s = journal.store
    decision = json.dumps({"versions": [{"list": "demo-list", "version": "ab" * 32}], "hits": []})
    jpy = NewIncomingCredit(
        gw_ref="GI-JPY", engine=Engine.SWIFT, msg_id="M-JPY", tx_id="T-JPY",
        end_to_end_id="E-JPY", sender="MIZUJPJTXXX", work_date=OLD.date(),
        debtor_acct="000123456789", debtor_name="Tokyo Buyer KK", debtor_bank="MIZUJPJTXXX",
        creditor_acct="6222000011112222", creditor_name="Acme Trading Co",
        amount=Decimal("1500"), purpose=None, received_at=OLD, corp_id=CORP,
        ccy="JPY", minor_units=0, screening=decision,
    )  # fmt: skip
    await s.receive_credit(jpy)
    assert await s.post_credit("GI-JPY", OLD + timedelta(seconds=1))
    (notice,) = await s.pull_notices(CORP, 0, 10)
    out = tmp_path / "archive"
    res = await archive_once(journal.backend, journal.target, out, before=BEFORE)
    assert (res.incoming_credits, res.notifications) == (1, 1)
    assert res.path is not None
    found = records(res.path)
    (credit_,) = of(ArchivedCredit, found)
    assert (credit_.amount, credit_.ccy, credit_.screening) == (Decimal("1500"), "JPY", decision)
    assert str(credit_.amount) == "1500"
    (note,) = of(ArchivedNotification, found)
    assert note.notice == notice
    assert (note.notice.amount, note.notice.ccy) == (Decimal("1500"), "JPY")
