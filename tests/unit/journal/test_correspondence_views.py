"""The journal's read-only views for operations (``gatewayctl credits / inquiries /
netting``): incoming credits by state (clearing.md §6), open inquiries (corplink.md §4,
clearing.md §6), a work date's netting rounds with both figures (routing.md §5).

Runs against both backends (``[sqlite]``, ``[postgres]``), on the builders of
``test_correspondence``.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

from gateway.journal.correspondence_rows import CREDITS_IN_STATE
from gateway.journal.records import (
    CreditState,
    Figures,
    InquiryDirection,
    InquiryState,
    NettingRoundView,
    NewInquiry,
)

from .conftest import JournalStore
from .helpers import BEPS_RCVR, WORK_DATE, at, request
from .test_correspondence import (
    CORP,
    OTHER_RCVR,
    OURS,
    bare,
    beps_ledger,
    credit,
    in_inquiry,
    message,
    out_inquiry,
)


def auto_inquiry(inq_id: str, gw_ref: str, tx_id: str, seconds: float) -> NewInquiry:
    """The automatic ccms.314 of a credit put in suspense (clearing.md §6)."""
    return NewInquiry(
        inq_id=inq_id,
        direction=InquiryDirection.OUT,
        counterparty=BEPS_RCVR,
        text="creditor name does not match the account",
        created_at=at(seconds),
        orgnl_msg_id=f"M-{tx_id}",
        orgnl_tx_id=tx_id,
        credit_ref=gw_ref,
    )


async def suspend(store: JournalStore, gw_ref: str, tx_id: str, seconds: float) -> None:
    inquiry = auto_inquiry(f"IQ-{gw_ref}", gw_ref, tx_id, seconds)
    assert await store.suspend_credit(gw_ref, at(seconds), inquiry, message(f"Q-{gw_ref}"))


async def test_credits_in_state_lists_oldest_received_first(store: JournalStore) -> None:
    # GI9 arrives first, though its reference sorts last.
    await store.receive_credit(replace(credit("GI9", "T-9"), received_at=at(5)))
    await store.receive_credit(credit("GI1", "T-1"))
    await store.receive_credit(replace(credit("GI2", "T-2", amount="12.34"), received_at=at(11)))
    await store.receive_credit(replace(credit("GI3", "T-3"), received_at=at(12)))
    await store.receive_credit(replace(credit("GI4", "T-4"), received_at=at(13)))
    assert await store.post_credit("GI1", at(20))
    await suspend(store, "GI2", "T-2", 21)
    await suspend(store, "GI9", "T-9", 22)
    await store.postpone_credit_check("GI4", at(99))

    suspense = await store.credits_in_state(CreditState.SUSPENSE, 100)
    assert [c.gw_ref for c in suspense] == ["GI9", "GI2"]
    gi2 = suspense[1]
    assert (gi2.state, gi2.amount, gi2.creditor_acct, gi2.debtor_acct, gi2.sender) == (
        CreditState.SUSPENSE, Decimal("12.34"), "6222000011112222", "6228480000000001",
        BEPS_RCVR,
    )  # fmt: skip
    assert [c.gw_ref for c in await store.credits_in_state(CreditState.SUSPENSE, 1)] == ["GI9"]
    assert [c.gw_ref for c in await store.credits_in_state(CreditState.POSTED, 100)] == ["GI1"]
    checking = await store.credits_in_state(CreditState.CHECKING, 100)
    # Whether due or postponed: every CHECKING credit, with its attempts so far.
    assert [(c.gw_ref, c.check_attempts) for c in checking] == [("GI3", 0), ("GI4", 1)]
    assert await store.credits_in_state(CreditState.CHECKING, 0) == []


async def test_credits_in_state_on_an_empty_journal(store: JournalStore) -> None:
    for state in CreditState:
        assert await store.credits_in_state(state, 10) == []


async def test_open_inquiries_lists_both_directions_oldest_first(store: JournalStore) -> None:
    await store.accept(request("pay-1"))
    await store.receive_credit(credit("GI1", "T-1"))
    await store.open_inquiry(bare("inq-1"), out_inquiry("IQ1"), message("Q1"))  # OUT, at(1)
    answered_out = replace(out_inquiry("IQ2"), created_at=at(2))
    await store.open_inquiry(bare("inq-2"), answered_out, message("Q2"))
    assert await store.receive_reply("IQ2", "credited", at(30)) is not None
    assert await store.receive_inquiry(replace(in_inquiry("B-IQ-1", "T-1"), created_at=at(3)))
    assert await store.receive_inquiry(in_inquiry("B-IQ-2", "T-1"))  # IN, at(5)
    answered = await store.answer_inquiry(
        bare("rply-1", "RPLY"), "B-IQ-1", "account and name are right", message("R1", "ccms.315")
    )
    assert answered.created
    await suspend(store, "GI1", "T-1", 4)  # the automatic OUT inquiry, at(4)

    found = await store.open_inquiries(100)
    assert [(i.inq_id, i.direction) for i in found] == [
        ("IQ1", InquiryDirection.OUT),
        ("IQ-GI1", InquiryDirection.OUT),
        ("B-IQ-2", InquiryDirection.IN),
    ]
    assert {i.state for i in found} == {InquiryState.OPEN}
    assert (found[1].credit_ref, found[1].corp_id) == ("GI1", None)
    assert (found[2].orgnl_tx_id, found[2].credit_ref, found[2].corp_id) == ("T-1", "GI1", CORP)
    assert [i.inq_id for i in await store.open_inquiries(2)] == ["IQ1", "IQ-GI1"]
    assert await store.open_inquiries(0) == []


async def test_netting_rounds_show_both_figures_matched_or_not(store: JournalStore) -> None:
    await beps_ledger(store)
    skewed = replace(OURS, cdt_sum=Decimal("340.01"))
    other = Figures(1, Decimal("9.00"), 1, Decimal("5.00"))
    assert await store.netting_rounds(WORK_DATE) == []
    await store.apply_netting(WORK_DATE, 1, BEPS_RCVR, skewed, at(100))
    await store.apply_netting(WORK_DATE, 2, OTHER_RCVR, other, at(101))
    await store.apply_netting(WORK_DATE, 2, BEPS_RCVR, OURS, at(102))

    views = await store.netting_rounds(WORK_DATE)
    assert views == [
        NettingRoundView(WORK_DATE, 1, BEPS_RCVR, OURS, skewed, False, 0, at(100)),
        NettingRoundView(WORK_DATE, 2, BEPS_RCVR, OURS, OURS, True, 3, at(102)),
        NettingRoundView(WORK_DATE, 2, OTHER_RCVR, other, other, True, 1, at(101)),
    ]
    assert await store.netting_rounds("2026-11-27") == views
    assert await store.netting_rounds(date(2026, 11, 30)) == []
    # A re-delivered position changes nothing in the view.
    await store.apply_netting(WORK_DATE, 2, BEPS_RCVR, OURS, at(200))
    assert await store.netting_rounds(WORK_DATE) == views
    assert views[0].ours.net == Decimal("39.50")
    assert views[0].theirs.net == Decimal("39.51")


def test_every_credit_state_has_a_view() -> None:
    assert set(CREDITS_IN_STATE) == set(CreditState)
