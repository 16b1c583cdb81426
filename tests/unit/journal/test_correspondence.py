"""The journal's correspondence: NTFY notifications, INQ/RPLY and ccms.314/315,
incoming credits, the BEPS netting ledger (corplink.md §4, clearing.md §4-§6,
routing.md §5).

Runs against both backends (``[sqlite]``, ``[postgres]``).
"""

from __future__ import annotations

import asyncio
from dataclasses import fields, replace
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from gateway.journal import correspondence_postgres, correspondence_sqlite
from gateway.journal.correspondence_rows import NOTICE_COLUMNS
from gateway.journal.records import (
    CreditState,
    Figures,
    InquiryDirection,
    InquiryState,
    NewIncomingCredit,
    NewInquiry,
    NewItem,
    NewOutbound,
    NewRequest,
    OutState,
    TxResult,
)
from gateway.journal.sqlite import SqliteStore
from gateway.model import BizType, Engine, Notice, NoticeKind, State

from .conftest import JournalStore, StoreFactory
from .helpers import BEPS_RCVR, HVPS_RCVR, WORK_DATE, at, item, request

CORP = "C100000001"
OTHER_CORP = "C200000002"
OTHER_RCVR = "313100000013"


# -- builders -------------------------------------------------------------------------


def bare(
    msg_id: str, trn_code: str = "INQ", *, corp_id: str = CORP, seconds: float = 0
) -> NewRequest:
    """An INQ / RPLY request: journaled like a PAY, without items."""
    made = request(
        msg_id, corp_id=corp_id, digest="e" * 64, received_at=at(seconds), trn_code=trn_code
    )
    return replace(made, items=())


def message(msg_id: str, msg_tp: str = "ccms.314", receiver: str = BEPS_RCVR) -> NewOutbound:
    """A ccms.314 / ccms.315: an outbound message without items."""
    return NewOutbound(
        msg_id=msg_id,
        engine=Engine.BEPS,
        msg_tp=msg_tp,
        topic="clearing/beps/out",
        receiver=receiver,
        work_date=WORK_DATE,
        payload=f"<Inqry>{msg_id}</Inqry>".encode(),
        item_ids=(),
        created_at=at(1),
    )


def out_inquiry(inq_id: str, msg_id: str = "pay-1", seq_no: int | None = None) -> NewInquiry:
    """A corporate's INQ about its payment ``msg_id``."""
    return NewInquiry(
        inq_id=inq_id,
        direction=InquiryDirection.OUT,
        counterparty=BEPS_RCVR,
        text="payee says nothing arrived",
        created_at=at(1),
        corp_id=CORP,
        msg_id=msg_id,
        seq_no=seq_no,
    )


def in_inquiry(inq_id: str, orgnl_tx_id: str | None, *, sender: str = BEPS_RCVR) -> NewInquiry:
    return NewInquiry(
        inq_id=inq_id,
        direction=InquiryDirection.IN,
        counterparty=sender,
        text="please confirm the payee account",
        created_at=at(5),
        orgnl_msg_id="B2026112700000001",
        orgnl_tx_id=orgnl_tx_id,
    )


def credit(
    gw_ref: str,
    tx_id: str,
    *,
    sender: str = BEPS_RCVR,
    corp_id: str | None = CORP,
    amount: str = "300.00",
    engine: Engine = Engine.BEPS,
    work_date: date = WORK_DATE,
) -> NewIncomingCredit:
    return NewIncomingCredit(
        gw_ref=gw_ref,
        engine=engine,
        msg_id=f"M-{tx_id}",
        tx_id=tx_id,
        end_to_end_id=f"E-{tx_id}",
        sender=sender,
        work_date=work_date,
        debtor_acct="6228480000000001",
        debtor_name="Li Si",
        debtor_bank=sender,
        creditor_acct="6222000011112222",
        creditor_name="Acme Trading Co",
        amount=Decimal(amount),
        purpose="refund 7",
        received_at=at(10),
        corp_id=corp_id,
    )


async def history(store: JournalStore, msg_id: str, seq_no: int | None = None) -> list[State]:
    view = await store.item_status(CORP, msg_id, seq_no)
    assert view is not None
    return [t.state for t in view.history]


async def send_and_ack(
    store: JournalStore, out_msg_id: str, engine: Engine, **group: object
) -> None:
    """Package every QUEUED item of ``engine`` (optionally one group) and receipt it."""
    items = await store.claim_queued(engine, 1000, **group)  # type: ignore[arg-type]
    assert items
    await store.create_outbound(
        [
            NewOutbound(
                msg_id=out_msg_id,
                engine=engine,
                msg_tp="beps.121" if engine is Engine.BEPS else "hvps.111",
                topic=f"clearing/{engine.value.lower()}/out",
                receiver=items[0].receiver,
                work_date=items[0].work_date,
                payload=b"<Document/>",
                item_ids=tuple(i.item_id for i in items),
                created_at=at(2),
            )
        ]
    )
    await store.mark_sent(out_msg_id, at(3))
    assert await store.apply_receipt(out_msg_id, at(4))


def beps(seq: int, amount: str, *, rcvr: str = BEPS_RCVR, biz: BizType = BizType.CREDIT) -> NewItem:
    return item(seq_no=seq, engine=Engine.BEPS, receiver=rcvr, amount=amount, biz_type=biz)


# -- notifications ----------------------------------------------------------------------


async def test_ntfy_cursor_orders_limits_and_separates_corporates(store: JournalStore) -> None:
    for n, corp in enumerate((CORP, OTHER_CORP, CORP, CORP, OTHER_CORP)):
        await store.receive_credit(credit(f"GI{n}", f"T{n}", corp_id=corp))
        assert await store.post_credit(f"GI{n}", at(20 + n))
    mine = await store.pull_notices(CORP, 0, 100)
    assert [n.gw_ref for n in mine] == ["GI0", "GI2", "GI3"]
    ids = [n.ntfy_id for n in mine]
    assert ids == sorted(ids)
    assert len(set(ids)) == 3
    theirs = await store.pull_notices(OTHER_CORP, 0, 100)
    assert [n.gw_ref for n in theirs] == ["GI1", "GI4"]
    assert not {n.ntfy_id for n in theirs} & set(ids)  # one global NtfyId sequence
    assert [n.gw_ref for n in await store.pull_notices(CORP, 0, 2)] == ["GI0", "GI2"]
    assert [n.gw_ref for n in await store.pull_notices(CORP, ids[0], 100)] == ["GI2", "GI3"]
    assert await store.pull_notices(CORP, ids[-1], 100) == []
    assert await store.pull_notices(CORP, 0, 0) == []
    assert await store.pull_notices("C999999999", 0, 100) == []


async def test_status_notices_when_final_after_acceptance_only(store: JournalStore) -> None:
    rejected_at_accept = item(seq_no=2, state=State.REJECTED, reason_code="1001")
    await store.accept(request("pr", item(seq_no=1), item(seq_no=3), rejected_at_accept))
    assert await store.pull_notices(CORP, 0, 100) == []  # the PAYROLL response told it already
    await send_and_ack(store, "h-1", Engine.HVPS)
    results = [
        TxResult(tx_id=None, end_to_end_id="pr-1", status="ACSC"),
        TxResult(tx_id=None, end_to_end_id="pr-3", status="RJCT", reason_code="AC04",
                 reason_text="account closed"),
    ]  # fmt: skip
    assert await store.apply_tx_status("h-1", results, at(30)) == 2
    settled, rejected = await store.pull_notices(CORP, 0, 100)
    assert (settled.kind, settled.orig_msg_id, settled.seq_no, settled.state) == (
        NoticeKind.STATUS, "pr", 1, State.SETTLED,
    )  # fmt: skip
    assert (settled.engine, settled.work_date, settled.at) == (Engine.HVPS, WORK_DATE, at(30))
    assert (settled.reason_code, settled.text, settled.gw_ref) == (None, None, None)
    assert (rejected.seq_no, rejected.state, rejected.reason_code, rejected.text) == (
        3, State.REJECTED, "AC04", "account closed",
    )  # fmt: skip
    # Re-applied ccms.900: nothing changes, nothing new to notify.
    assert await store.apply_tx_status("h-1", results, at(31)) == 0
    assert len(await store.pull_notices(CORP, 0, 100)) == 2


async def test_acsp_writes_no_notice(store: JournalStore) -> None:
    await store.accept(request("p1"))
    await send_and_ack(store, "h-1", Engine.HVPS)
    await store.apply_tx_status("h-1", [TxResult(None, "p1", "ACSP")], at(30))
    assert await store.pull_notices(CORP, 0, 100) == []


async def test_item_ref_names_the_payment_and_its_message(store: JournalStore) -> None:
    ref = (await store.accept(request("pr", item(seq_no=1), item(seq_no=2)))).record
    assert ref is not None
    await send_and_ack(store, "h-1", Engine.HVPS)
    first = await store.item_ref(CORP, "pr", None)
    second = await store.item_ref(CORP, "pr", 2)
    assert first is not None
    assert second is not None
    assert (first.seq_no, first.tx_id, first.end_to_end_id) == (1, f"{ref.gw_ref}-1", "pr-1")
    assert (second.seq_no, second.receiver, second.engine) == (2, HVPS_RCVR, Engine.HVPS)
    assert (second.state, second.out_msg_id, second.work_date) == (State.ACKED, "h-1", WORK_DATE)
    assert await store.item_ref(CORP, "pr", 9) is None
    assert await store.item_ref(OTHER_CORP, "pr", None) is None


# -- INQ / RPLY and ccms.314 / ccms.315 --------------------------------------------------


async def test_open_inquiry_journals_request_inquiry_and_message_together(
    store: JournalStore,
) -> None:
    await store.accept(request("pay-1"))
    outcome = await store.open_inquiry(bare("inq-1"), out_inquiry("IQ1"), message("Q1"))
    assert outcome.created
    assert outcome.record is not None
    assert outcome.record.gw_ref.startswith("GW20261127A")
    assert await store.find_request(CORP, "inq-1") == outcome.record
    found = await store.inquiry_for_request(CORP, "inq-1")
    assert found is not None
    assert (found.inq_id, found.direction, found.state) == (
        "IQ1", InquiryDirection.OUT, InquiryState.OPEN,
    )  # fmt: skip
    assert (found.corp_id, found.msg_id, found.request_msg_id) == (CORP, "pay-1", "inq-1")
    assert await store.find_inquiry("IQ1", InquiryDirection.OUT) == found
    assert await store.find_inquiry("IQ1", InquiryDirection.IN) is None
    # The ccms.314 goes out through the outbox like a payment message.
    (pending,) = await store.unsent_outbound(10)
    assert (pending.msg_id, pending.msg_tp, pending.state) == ("Q1", "ccms.314", OutState.PENDING)
    await store.mark_sent("Q1", at(2))
    assert [r.msg_id for r in await store.due_for_resend(at(2), 10)] == ["Q1"]
    assert await store.apply_receipt("Q1", at(3))
    assert await store.due_for_resend(at(999), 10) == []
    # The INQ request has no items: only the payment's item is counted anywhere.
    assert [(s.state, s.count) for s in await store.summary()] == [(State.QUEUED, 1)]


async def test_open_inquiry_dup_writes_nothing(store: JournalStore) -> None:
    first = await store.open_inquiry(bare("inq-1"), out_inquiry("IQ1"), message("Q1"))
    again = await store.open_inquiry(bare("inq-1", seconds=9), out_inquiry("IQ2"), message("Q2"))
    assert not again.created
    assert again.record == first.record
    assert await store.find_inquiry("IQ2", InquiryDirection.OUT) is None
    assert [r.msg_id for r in await store.unsent_outbound(10)] == ["Q1"]


async def test_open_inquiry_is_all_or_nothing(store: JournalStore) -> None:
    await store.open_inquiry(bare("inq-1"), out_inquiry("IQ1"), message("Q1"))
    with pytest.raises(ValueError, match="already journaled"):  # the ccms.314 MsgId is taken
        await store.open_inquiry(bare("inq-2"), out_inquiry("IQ2"), message("Q1"))
    with pytest.raises(ValueError, match="already journaled"):  # the InqId is taken
        await store.open_inquiry(bare("inq-3"), out_inquiry("IQ1"), message("Q3"))
    for msg_id in ("inq-2", "inq-3"):
        assert await store.find_request(CORP, msg_id) is None
        assert await store.inquiry_for_request(CORP, msg_id) is None
    assert await store.find_inquiry("IQ2", InquiryDirection.OUT) is None
    assert [r.msg_id for r in await store.unsent_outbound(10)] == ["Q1"]
    with pytest.raises(ValueError, match="no items"):
        await store.open_inquiry(request("inq-4"), out_inquiry("IQ4"), message("Q4"))
    assert await store.find_request(CORP, "inq-4") is None


async def test_receive_inquiry_about_our_payment_notifies_its_payer(store: JournalStore) -> None:
    ref = (await store.accept(request("pr", item(seq_no=1), item(seq_no=2)))).record
    assert ref is not None
    got = await store.receive_inquiry(in_inquiry("B-IQ-1", f"{ref.gw_ref}-2"))
    assert got is not None
    assert (got.direction, got.state, got.corp_id, got.msg_id, got.seq_no, got.credit_ref) == (
        InquiryDirection.IN, InquiryState.OPEN, CORP, "pr", 2, None,
    )  # fmt: skip
    assert (got.orgnl_msg_id, got.orgnl_tx_id, got.created_at) == (
        "B2026112700000001", f"{ref.gw_ref}-2", at(5),
    )  # fmt: skip
    (notice,) = await store.pull_notices(CORP, 0, 100)
    assert (notice.kind, notice.inq_id, notice.orig_msg_id, notice.seq_no, notice.gw_ref) == (
        NoticeKind.INQUIRY, "B-IQ-1", "pr", 2, None,
    )  # fmt: skip
    assert (notice.text, notice.at) == ("please confirm the payee account", at(5))
    # A re-delivery is the same inquiry, with no second notification.
    assert await store.receive_inquiry(in_inquiry("B-IQ-1", f"{ref.gw_ref}-2")) == got
    assert len(await store.pull_notices(CORP, 0, 100)) == 1


async def test_receive_inquiry_about_an_incoming_credit(store: JournalStore) -> None:
    await store.receive_credit(credit("GI1", "T-1"))
    got = await store.receive_inquiry(in_inquiry("B-IQ-2", "T-1"))
    assert got is not None
    assert (got.corp_id, got.credit_ref, got.msg_id) == (CORP, "GI1", None)
    (notice,) = await store.pull_notices(CORP, 0, 100)
    assert (notice.kind, notice.gw_ref, notice.orig_msg_id) == (NoticeKind.INQUIRY, "GI1", None)
    # The asking bank must be the credit's sender.
    assert await store.receive_inquiry(in_inquiry("B-IQ-3", "T-1", sender=OTHER_RCVR)) is None
    # A credit to an account nobody enrolled: journaled, nobody to notify.
    await store.receive_credit(credit("GI2", "T-2", corp_id=None))
    orphan = await store.receive_inquiry(in_inquiry("B-IQ-4", "T-2"))
    assert orphan is not None
    assert (orphan.corp_id, orphan.credit_ref) == (None, "GI2")
    assert len(await store.pull_notices(CORP, 0, 100)) == 1


async def test_receive_inquiry_about_nothing_we_know(store: JournalStore) -> None:
    assert await store.receive_inquiry(in_inquiry("B-IQ-9", "GW20261127A999999999")) is None
    assert await store.receive_inquiry(in_inquiry("B-IQ-8", None)) is None
    assert await store.find_inquiry("B-IQ-9", InquiryDirection.IN) is None
    assert await store.pull_notices(CORP, 0, 100) == []


async def test_answer_inquiry(store: JournalStore) -> None:
    ref = (await store.accept(request("pay-1"))).record
    assert ref is not None
    await store.receive_inquiry(in_inquiry("B-IQ-1", ref.gw_ref))
    outcome = await store.answer_inquiry(
        bare("rply-1", "RPLY", seconds=40), "B-IQ-1", "payee confirmed", message("R1", "ccms.315")
    )
    assert outcome.created
    answered = await store.find_inquiry("B-IQ-1", InquiryDirection.IN)
    assert answered is not None
    assert (answered.state, answered.reply_text, answered.replied_at) == (
        InquiryState.REPLIED, "payee confirmed", at(40),
    )  # fmt: skip
    assert answered.request_msg_id == "rply-1"
    assert [(r.msg_id, r.msg_tp) for r in await store.unsent_outbound(10)] == [("R1", "ccms.315")]
    # The same RPLY again is a Dup: the existing request, nothing written.
    again = await store.answer_inquiry(
        bare("rply-1", "RPLY", seconds=50), "B-IQ-1", "other text", message("R2", "ccms.315")
    )
    assert (again.created, again.record) == (False, outcome.record)
    assert [r.msg_id for r in await store.unsent_outbound(10)] == ["R1"]


async def test_answer_inquiry_refusals_write_nothing(store: JournalStore) -> None:
    ref = (await store.accept(request("pay-1"))).record
    assert ref is not None
    await store.receive_inquiry(in_inquiry("B-IQ-1", ref.gw_ref))
    with pytest.raises(LookupError):  # no such inquiry
        await store.answer_inquiry(bare("r-1", "RPLY"), "B-IQ-X", "t", message("R1", "ccms.315"))
    with pytest.raises(LookupError):  # not this corporate's inquiry
        await store.answer_inquiry(
            bare("r-2", "RPLY", corp_id=OTHER_CORP), "B-IQ-1", "t", message("R2", "ccms.315")
        )
    await store.open_inquiry(bare("inq-1"), out_inquiry("IQ1"), message("Q1"))
    with pytest.raises(LookupError):  # our own OUT inquiry is not answered by RPLY
        await store.answer_inquiry(bare("r-3", "RPLY"), "IQ1", "t", message("R3", "ccms.315"))
    await store.answer_inquiry(bare("r-4", "RPLY"), "B-IQ-1", "ok", message("R4", "ccms.315"))
    with pytest.raises(ValueError, match="already replied"):
        await store.answer_inquiry(bare("r-5", "RPLY"), "B-IQ-1", "t", message("R5", "ccms.315"))
    for msg_id in ("r-1", "r-2", "r-3", "r-5"):
        assert await store.find_request(CORP, msg_id) is None
        assert await store.find_request(OTHER_CORP, msg_id) is None
    assert [r.msg_id for r in await store.unsent_outbound(10)] == ["Q1", "R4"]
    answered = await store.find_inquiry("B-IQ-1", InquiryDirection.IN)
    assert answered is not None
    assert answered.reply_text == "ok"


async def test_receive_reply_notifies_once(store: JournalStore) -> None:
    await store.open_inquiry(bare("inq-1"), out_inquiry("IQ1", seq_no=3), message("Q1"))
    got = await store.receive_reply("IQ1", "funds returned", at(60))
    assert got is not None
    assert (got.state, got.reply_text, got.replied_at) == (
        InquiryState.REPLIED, "funds returned", at(60),
    )  # fmt: skip
    assert await store.find_inquiry("IQ1", InquiryDirection.OUT) == got
    assert await store.receive_reply("IQ1", "funds returned", at(61)) == got
    (notice,) = await store.pull_notices(CORP, 0, 100)
    assert (notice.kind, notice.inq_id, notice.orig_msg_id, notice.seq_no, notice.text) == (
        NoticeKind.REPLY, "IQ1", "pay-1", 3, "funds returned",
    )  # fmt: skip
    assert notice.at == at(60)
    assert await store.receive_reply("IQ-unknown", "x", at(62)) is None


# -- the link an inquiry travels on (migration 6, clearing.md §2) ---------------------------


async def test_an_out_inquiry_keeps_the_link_of_its_payment(store: JournalStore) -> None:
    await store.accept(request("pay-1"))
    ours = replace(out_inquiry("IQ1"), engine=Engine.HVPS)
    assert (await store.open_inquiry(bare("inq-1"), ours, message("Q1"))).created
    found = await store.find_inquiry("IQ1", InquiryDirection.OUT)
    assert found is not None and found.engine is Engine.HVPS
    assert await store.inquiry_for_request(CORP, "inq-1") == found
    replied = await store.receive_reply("IQ1", "funds returned", at(60))
    assert replied is not None and replied.engine is Engine.HVPS
    assert await store.find_inquiry("IQ1", InquiryDirection.OUT) == replied


async def test_an_in_inquiry_keeps_the_link_it_arrived_on(store: JournalStore) -> None:
    ref = (await store.accept(request("pay-1"))).record
    assert ref is not None
    await store.receive_credit(credit("GI1", "T-1", engine=Engine.HVPS, sender=HVPS_RCVR))
    # about our HVPS payment, asked on the bank's INTRA link: INTRA is where it came from
    about_payment = replace(in_inquiry("B-IQ-1", ref.gw_ref), engine=Engine.INTRA)
    got = await store.receive_inquiry(about_payment)
    assert got is not None and got.engine is Engine.INTRA
    # a re-delivery on another link is the same inquiry: the first link stays
    again = await store.receive_inquiry(replace(about_payment, engine=Engine.BEPS))
    assert again == got
    # about an incoming HVPS credit, asked on HVPS
    about_credit = replace(in_inquiry("B-IQ-2", "T-1", sender=HVPS_RCVR), engine=Engine.HVPS)
    credit_inq = await store.receive_inquiry(about_credit)
    assert credit_inq is not None
    assert (credit_inq.credit_ref, credit_inq.engine) == ("GI1", Engine.HVPS)
    # answering it changes its state, not its link
    outcome = await store.answer_inquiry(
        bare("rply-1", "RPLY", seconds=40), "B-IQ-2", "payee confirmed", message("R1", "ccms.315")
    )
    assert outcome.created
    answered = await store.find_inquiry("B-IQ-2", InquiryDirection.IN)
    assert answered is not None
    assert (answered.state, answered.engine) == (InquiryState.REPLIED, Engine.HVPS)
    # a topic that named no engine: journaled without one
    await store.receive_credit(credit("GI2", "T-2"))
    unnamed = await store.receive_inquiry(in_inquiry("B-IQ-3", "T-2"))
    assert unnamed is not None and unnamed.engine is None
    found = await store.find_inquiry("B-IQ-3", InquiryDirection.IN)
    assert found is not None and found.engine is None


async def test_the_automatic_inquiry_keeps_the_link_of_its_credit(store: JournalStore) -> None:
    await store.receive_credit(credit("GI1", "T-1", engine=Engine.INTRA, sender=HVPS_RCVR))
    auto = NewInquiry(
        inq_id="IQ20261127000001", direction=InquiryDirection.OUT, counterparty=HVPS_RCVR,
        text="creditor account unknown", created_at=at(20), orgnl_msg_id="M-T-1",
        orgnl_tx_id="T-1", credit_ref="GI1", engine=Engine.INTRA,
    )  # fmt: skip
    assert await store.suspend_credit("GI1", at(20), auto, message("Q1"))
    found = await store.find_inquiry("IQ20261127000001", InquiryDirection.OUT)
    assert found is not None
    assert (found.credit_ref, found.engine) == ("GI1", Engine.INTRA)


# -- incoming credits -------------------------------------------------------------------


async def test_credit_received_twice_is_one_credit(store: JournalStore) -> None:
    first = await store.receive_credit(credit("GI1", "T-1"))
    assert (first.state, first.check_attempts, first.next_check_at) == (
        CreditState.CHECKING, 0, at(10),
    )  # fmt: skip
    assert (first.amount, first.sender, first.corp_id, first.work_date) == (
        Decimal("300.00"), BEPS_RCVR, CORP, WORK_DATE,
    )  # fmt: skip
    again = await store.receive_credit(credit("GI9", "T-1", amount="1.00"))
    assert again == first
    assert await store.credit_state("GI9") is None
    # Same TxId from another bank: another credit.
    other = await store.receive_credit(credit("GI2", "T-1", sender=OTHER_RCVR))
    assert other.gw_ref == "GI2"
    with pytest.raises(ValueError, match="already journaled"):  # our reference reused
        await store.receive_credit(credit("GI2", "T-7"))


async def test_credit_check_postponed_then_posted_with_a_notice(store: JournalStore) -> None:
    await store.receive_credit(credit("GI1", "T-1"))
    await store.receive_credit(credit("GI2", "T-2", corp_id=None))
    assert [c.gw_ref for c in await store.credits_to_check(at(9), 10)] == []
    assert [c.gw_ref for c in await store.credits_to_check(at(10), 10)] == ["GI1", "GI2"]
    assert [c.gw_ref for c in await store.credits_to_check(at(10), 1)] == ["GI1"]
    await store.postpone_credit_check("GI1", at(13))
    assert [c.gw_ref for c in await store.credits_to_check(at(12), 10)] == ["GI2"]
    (due,) = [c for c in await store.credits_to_check(at(13), 10) if c.gw_ref == "GI1"]
    assert (due.check_attempts, due.next_check_at) == (1, at(13))
    with pytest.raises(KeyError):
        await store.postpone_credit_check("GI-unknown", at(13))

    assert await store.post_credit("GI1", at(14))
    assert await store.credit_state("GI1") is CreditState.POSTED
    assert not await store.post_credit("GI1", at(15))
    (notice,) = await store.pull_notices(CORP, 0, 100)
    assert (notice.kind, notice.gw_ref, notice.acct, notice.amount) == (
        NoticeKind.CREDIT, "GI1", "6222000011112222", Decimal("300.00"),
    )  # fmt: skip
    assert (notice.counterparty_acct, notice.counterparty_name, notice.counterparty_bank) == (
        "6228480000000001", "Li Si", BEPS_RCVR,
    )  # fmt: skip
    assert (notice.engine, notice.work_date, notice.text, notice.at) == (
        Engine.BEPS, WORK_DATE, "refund 7", at(14),
    )  # fmt: skip
    assert await store.post_credit("GI2", at(16))  # nobody enrolled it: posted, nobody notified
    assert len(await store.pull_notices(CORP, 0, 100)) == 1
    assert await store.credits_to_check(at(99), 10) == []
    await store.postpone_credit_check("GI1", at(99))  # no longer checking: left alone
    assert await store.credits_to_check(at(99), 10) == []


async def test_suspended_credit_gets_an_automatic_inquiry(store: JournalStore) -> None:
    await store.receive_credit(credit("GI1", "T-1"))
    auto = NewInquiry(
        inq_id="IQ20261127000001",
        direction=InquiryDirection.OUT,
        counterparty=BEPS_RCVR,
        text="creditor name does not match the account",
        created_at=at(20),
        orgnl_msg_id="M-T-1",
        orgnl_tx_id="T-1",
        credit_ref="GI1",
    )
    assert await store.suspend_credit("GI1", at(20), auto, message("Q1"))
    assert await store.credit_state("GI1") is CreditState.SUSPENSE
    found = await store.find_inquiry("IQ20261127000001", InquiryDirection.OUT)
    assert found is not None
    assert (found.credit_ref, found.corp_id, found.state) == ("GI1", None, InquiryState.OPEN)
    assert [(r.msg_id, r.state) for r in await store.unsent_outbound(10)] == [
        ("Q1", OutState.PENDING)
    ]
    # Not CHECKING any more: nothing written.
    assert not await store.suspend_credit("GI1", at(21), replace(auto, inq_id="IQ2"), message("Q2"))
    assert not await store.post_credit("GI1", at(21))
    assert await store.find_inquiry("IQ2", InquiryDirection.OUT) is None
    assert [r.msg_id for r in await store.unsent_outbound(10)] == ["Q1"]
    # The answer to an automatic inquiry concerns no corporate: no notification.
    assert await store.receive_reply("IQ20261127000001", "name corrected", at(30)) is not None
    assert await store.pull_notices(CORP, 0, 100) == []


# -- BEPS netting ---------------------------------------------------------------------------


async def beps_ledger(store: JournalStore) -> None:
    """To BEPS_RCVR, ACKED: credits 100.00 + 200.50 (dbt), a debit 40.00 (cdt); in
    flight (SENT, not counted): 7.00; to OTHER_RCVR: 9.00.  From BEPS_RCVR: an
    incoming credit 300.00 (cdt); from OTHER_RCVR: 5.00."""
    await store.accept(
        request("b1", beps(1, "100.00"), beps(2, "200.50"), beps(3, "9.00", rcvr=OTHER_RCVR))
    )
    await store.accept(request("b2", beps(1, "40.00", biz=BizType.DEBIT)))
    await send_and_ack(store, "P1", Engine.BEPS, receiver=BEPS_RCVR, biz_type=BizType.CREDIT)
    await send_and_ack(store, "P2", Engine.BEPS, receiver=BEPS_RCVR, biz_type=BizType.DEBIT)
    await send_and_ack(store, "P3", Engine.BEPS, receiver=OTHER_RCVR)
    await store.accept(request("b3", beps(1, "7.00")))
    (late,) = await store.claim_queued(Engine.BEPS, 10)
    await store.create_outbound([replace(message("P4"), item_ids=(late.item_id,))])
    await store.mark_sent("P4", at(3))
    await store.receive_credit(credit("GI1", "T-1", amount="300.00"))
    await store.receive_credit(credit("GI2", "T-2", amount="5.00", sender=OTHER_RCVR))
    await store.receive_credit(credit("GI3", "T-3", amount="8.00", work_date=date(2026, 11, 30)))


OURS = Figures(dbt_cnt=2, dbt_sum=Decimal("300.50"), cdt_cnt=2, cdt_sum=Decimal("340.00"))


async def test_ledger_counts_what_is_receipted_and_not_netted(store: JournalStore) -> None:
    await beps_ledger(store)
    ours = await store.ledger(WORK_DATE, BEPS_RCVR)
    assert ours == OURS
    assert ours.net == Decimal("39.50")
    assert await store.ledger("2026-11-27", OTHER_RCVR) == Figures(
        1, Decimal("9.00"), 1, Decimal("5.00")
    )
    assert await store.ledger(date(2026, 11, 30), BEPS_RCVR) == Figures(
        0, Decimal(0), 1, Decimal("8.00")
    )
    assert await store.ledger(WORK_DATE, "999999999999") == Figures(0, Decimal(0), 0, Decimal(0))


async def test_netting_mismatch_moves_nothing_and_is_recorded(store: JournalStore) -> None:
    await beps_ledger(store)
    theirs = replace(OURS, cdt_sum=Decimal("340.01"))
    outcome = await store.apply_netting(WORK_DATE, 1, BEPS_RCVR, theirs, at(100))
    assert (outcome.matched, outcome.ours, outcome.theirs, outcome.items_netted) == (
        False, OURS, theirs, 0,
    )  # fmt: skip
    assert not outcome.already_applied
    assert await store.ledger(WORK_DATE, BEPS_RCVR) == OURS
    assert await history(store, "b1", 1) == [State.ACCEPTED, State.QUEUED, State.SENT, State.ACKED]
    # Re-applied, even with figures that would now match: the recorded outcome.
    again = await store.apply_netting(WORK_DATE, 1, BEPS_RCVR, OURS, at(101))
    assert again == replace(outcome, already_applied=True)
    assert await store.ledger(WORK_DATE, BEPS_RCVR) == OURS


async def test_netting_match_nets_exactly_the_ledger(store: JournalStore) -> None:
    await beps_ledger(store)
    outcome = await store.apply_netting(WORK_DATE, 2, BEPS_RCVR, OURS, at(100))
    assert (outcome.matched, outcome.items_netted, outcome.already_applied) == (True, 3, False)
    assert await store.ledger(WORK_DATE, BEPS_RCVR) == Figures(0, Decimal(0), 0, Decimal(0))
    for msg_id, seq in (("b1", 1), ("b1", 2), ("b2", 1)):
        view = await store.item_status(CORP, msg_id, seq)
        assert view is not None
        assert view.state is State.NETTED
        assert (view.history[-1].state, view.history[-1].at) == (State.NETTED, at(100))
    for msg_id, seq, state in (("b1", 3, State.ACKED), ("b3", 1, State.SENT)):
        view = await store.item_status(CORP, msg_id, seq)
        assert view is not None
        assert view.state is state
    assert await store.ledger(WORK_DATE, OTHER_RCVR) == Figures(
        1, Decimal("9.00"), 1, Decimal("5.00")
    )
    again = await store.apply_netting(WORK_DATE, 2, BEPS_RCVR, OURS, at(101))
    assert again == replace(outcome, already_applied=True)
    assert await store.pull_notices(CORP, 0, 100) == []  # NETTED is not final


async def test_settlement_settles_the_round_and_notifies(store: JournalStore) -> None:
    await beps_ledger(store)
    await store.apply_netting(WORK_DATE, 2, BEPS_RCVR, OURS, at(100))
    mismatch = Figures(1, Decimal("9.00"), 1, Decimal("6.00"))
    await store.apply_netting(WORK_DATE, 2, OTHER_RCVR, mismatch, at(100))
    outcome = await store.apply_settlement(WORK_DATE, 2, at(200))
    assert (outcome.items_settled, outcome.our_net, outcome.rounds_known) == (
        3, Decimal("39.50"), True,
    )  # fmt: skip
    assert await history(store, "b1", 2) == [
        State.ACCEPTED, State.QUEUED, State.SENT, State.ACKED, State.NETTED, State.SETTLED,
    ]  # fmt: skip
    notices = await store.pull_notices(CORP, 0, 100)
    assert [(n.kind, n.orig_msg_id, n.seq_no, n.state) for n in notices] == [
        (NoticeKind.STATUS, "b1", 1, State.SETTLED),
        (NoticeKind.STATUS, "b1", 2, State.SETTLED),
        (NoticeKind.STATUS, "b2", 1, State.SETTLED),
    ]
    assert all((n.engine, n.work_date, n.at) == (Engine.BEPS, WORK_DATE, at(200)) for n in notices)
    view = await store.item_status(CORP, "b1", 3)  # its position did not reconcile
    assert view is not None
    assert view.state is State.ACKED
    # Idempotent: a repeated beps.settle settles nothing more.
    again = await store.apply_settlement(WORK_DATE, 2, at(201))
    assert (again.items_settled, again.our_net, again.rounds_known) == (0, Decimal("39.50"), True)
    assert len(await store.pull_notices(CORP, 0, 100)) == 3
    unknown = await store.apply_settlement(WORK_DATE, 7, at(202))
    assert (unknown.items_settled, unknown.our_net, unknown.rounds_known) == (0, Decimal(0), False)


async def test_a_netted_item_rejected_by_ccms900_is_not_settled(store: JournalStore) -> None:
    await beps_ledger(store)
    await store.apply_netting(WORK_DATE, 1, BEPS_RCVR, OURS, at(100))
    rjct = TxResult(tx_id=None, end_to_end_id="b2-1", status="RJCT", reason_code="AM04")
    assert await store.apply_tx_status("P2", [rjct], at(150)) == 1
    assert (await store.apply_settlement(WORK_DATE, 1, at(200))).items_settled == 2
    states = [(n.orig_msg_id, n.state) for n in await store.pull_notices(CORP, 0, 100)]
    assert states == [("b2", State.REJECTED), ("b1", State.SETTLED), ("b1", State.SETTLED)]


async def test_two_nodes_applying_one_netting_apply_it_once(make_store: StoreFactory) -> None:
    a = await make_store(node="A")
    b = await make_store(node="B")
    await beps_ledger(a)
    outcomes = await asyncio.gather(
        *(store.apply_netting(WORK_DATE, 1, BEPS_RCVR, OURS, at(100)) for store in (a, b, a, b))
    )
    assert sorted(o.already_applied for o in outcomes) == [False, True, True, True]
    assert all((o.matched, o.items_netted) == (True, 3) for o in outcomes)
    assert await history(b, "b1", 1) == [
        State.ACCEPTED, State.QUEUED, State.SENT, State.ACKED, State.NETTED,
    ]  # fmt: skip
    settled = await asyncio.gather(*(s.apply_settlement(WORK_DATE, 1, at(200)) for s in (a, b)))
    assert sorted(s.items_settled for s in settled) == [0, 3]
    assert len(await b.pull_notices(CORP, 0, 100)) == 3


async def test_notices_of_one_corporate_from_two_nodes_keep_cursor_order(
    make_store: StoreFactory,
) -> None:
    a = await make_store(node="A")
    b = await make_store(node="B")
    for n in range(40):
        await a.receive_credit(credit(f"GI{n}", f"T{n}"))
    await asyncio.gather(*(s.post_credit(f"GI{n}", at(20)) for n, s in enumerate([a, b] * 20)))
    notices = await a.pull_notices(CORP, 0, 500)
    assert len(notices) == 40
    assert [n.ntfy_id for n in notices] == sorted(n.ntfy_id for n in notices)
    assert sorted(n.gw_ref or "" for n in notices) == sorted(f"GI{n}" for n in range(40))


# -- settlement in chunks (correspondence_rows.SETTLE_CHUNK) ------------------------------

ROUND_ITEMS = [("s1", 1), ("s1", 2), ("s1", 3), ("s2", 1), ("s2", 2)]
"""Five BEPS credits netted in round 1: s1 of CORP (1.00, 2.00, 3.00), s2 of OTHER_CORP."""


class Crash(Exception):
    """The gateway died inside a settlement transaction (it is rolled back)."""


async def netted_round(store: JournalStore) -> None:
    await store.accept(request("s1", beps(1, "1.00"), beps(2, "2.00"), beps(3, "3.00")))
    await store.accept(request("s2", beps(1, "4.00"), beps(2, "5.00"), corp_id=OTHER_CORP))
    await send_and_ack(store, "P1", Engine.BEPS)
    figures = await store.ledger(WORK_DATE, BEPS_RCVR)
    outcome = await store.apply_netting(WORK_DATE, 1, BEPS_RCVR, figures, at(100))
    assert (outcome.matched, outcome.items_netted) == (True, 5)


async def settled_notices(store: JournalStore) -> list[tuple[str | None, int | None]]:
    """The STATUS SETTLED notices of both corporates, in NtfyId order."""
    notices = await store.pull_notices(CORP, 0, 100) + await store.pull_notices(OTHER_CORP, 0, 100)
    assert all((n.kind, n.state) == (NoticeKind.STATUS, State.SETTLED) for n in notices)
    return [(n.orig_msg_id, n.seq_no) for n in sorted(notices, key=lambda n: n.ntfy_id)]


async def settled_once(store: JournalStore, msg_id: str, seq_no: int) -> bool:
    """True when the item is SETTLED with exactly one SETTLED transition."""
    corp = CORP if msg_id == "s1" else OTHER_CORP
    view = await store.item_status(corp, msg_id, seq_no)
    assert view is not None
    settled = [t for t in view.history if t.state is State.SETTLED]
    assert len(settled) <= 1
    return view.state is State.SETTLED and len(settled) == 1


def test_notice_columns_are_read_in_the_notice_field_order() -> None:
    """``notices_of`` reads rows by position: ``SELECT {NOTICE_COLUMNS}`` must follow Notice.

    A DRAFT notice's ``draft_state`` has no column of its own: it is kept in ``state``;
    ``minor_units`` (migration 13) has no field: it scales ``amount``.
    """
    names = [
        "amount_fen" if f.name == "amount" else f.name
        for f in fields(Notice)
        if f.name != "draft_state"
    ] + ["minor_units"]
    assert NOTICE_COLUMNS.split(", ") == names


@pytest.mark.parametrize("chunk", [2, 5])
async def test_settlement_larger_than_a_chunk_settles_the_whole_round(
    store: JournalStore, chunk: int
) -> None:
    """Five items in chunks of 2 (2 + 2 + 1) or of 5 (5, then an empty chunk)."""
    await netted_round(store)
    store.settle_chunk = chunk
    outcome = await store.apply_settlement(WORK_DATE, 1, at(200))
    assert (outcome.items_settled, outcome.our_net, outcome.rounds_known) == (
        5, Decimal("-15.00"), True,
    )  # fmt: skip
    assert [await settled_once(store, m, s) for m, s in ROUND_ITEMS] == [True] * 5
    assert await settled_notices(store) == ROUND_ITEMS  # in item order, across chunks
    again = await store.apply_settlement(WORK_DATE, 1, at(201))
    assert (again.items_settled, again.our_net, again.rounds_known) == (
        0, Decimal("-15.00"), True,
    )  # fmt: skip
    assert len(await settled_notices(store)) == 5


async def test_settlement_interrupted_between_chunks_is_finished_by_reapplying(
    store: JournalStore, make_store: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first chunk commits, the second dies before its commit: the re-delivered
    beps.settle (on a restarted store) settles the rest, each item once."""
    await netted_round(store)
    store.settle_chunk = 2
    calls = 0
    if isinstance(store, SqliteStore):
        real = correspondence_sqlite.settle_next

        def dies_in_second(*args: Any) -> int:
            nonlocal calls
            calls += 1
            moved = real(*args)  # the writes are done, the commit never happens
            if calls == 2:
                raise Crash
            return moved

        monkeypatch.setattr(correspondence_sqlite, "settle_next", dies_in_second)
    else:
        real_pg = correspondence_postgres.settle_next

        async def dies_in_second_pg(*args: Any) -> int:
            nonlocal calls
            calls += 1
            moved = await real_pg(*args)
            if calls == 2:
                raise Crash
            return moved

        monkeypatch.setattr(correspondence_postgres, "settle_next", dies_in_second_pg)
    with pytest.raises(Crash):
        await store.apply_settlement(WORK_DATE, 1, at(200))
    monkeypatch.undo()

    assert await settled_notices(store) == ROUND_ITEMS[:2]  # the first chunk, no more
    assert [await settled_once(store, m, s) for m, s in ROUND_ITEMS] == [True] * 2 + [False] * 3
    assert await history(store, "s1", 3) == [
        State.ACCEPTED, State.QUEUED, State.SENT, State.ACKED, State.NETTED,
    ]  # fmt: skip
    restarted = await make_store(node="A")
    outcome = await restarted.apply_settlement(WORK_DATE, 1, at(300))
    assert (outcome.items_settled, outcome.our_net, outcome.rounds_known) == (
        3, Decimal("-15.00"), True,
    )  # fmt: skip
    assert [await settled_once(restarted, m, s) for m, s in ROUND_ITEMS] == [True] * 5
    assert await settled_notices(restarted) == ROUND_ITEMS
    assert (await restarted.apply_settlement(WORK_DATE, 1, at(301))).items_settled == 0


async def test_two_nodes_settling_one_round_in_chunks_settle_each_item_once(
    make_store: StoreFactory,
) -> None:
    a = await make_store(node="A")
    b = await make_store(node="B")
    await netted_round(a)
    a.settle_chunk = b.settle_chunk = 2
    outcomes = await asyncio.gather(*(s.apply_settlement(WORK_DATE, 1, at(200)) for s in (a, b)))
    assert sum(o.items_settled for o in outcomes) == 5
    assert [await settled_once(b, m, s) for m, s in ROUND_ITEMS] == [True] * 5
    assert sorted(await settled_notices(a)) == ROUND_ITEMS


async def test_a_settle_chunk_below_one_is_refused(store: JournalStore) -> None:
    await netted_round(store)
    store.settle_chunk = 0
    with pytest.raises(ValueError, match="settle_chunk"):
        await store.apply_settlement(WORK_DATE, 1, at(200))
    assert await settled_notices(store) == []
