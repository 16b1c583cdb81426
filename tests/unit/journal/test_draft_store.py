"""The draft register in the journal (docs/bank-drafts.md §1-§4), on both backends.

What a corporate, the INTRA link and an operator can observe through the
``DraftStore`` methods: a DRAFT is journaled with its DraftNo once (a replay
gets the same number, two nodes never hand one out twice), counts toward the
daily limit with PAY, moves only along the register's table, is notified
when it reaches ISSUED, PAID, SETTLED, REFUNDED or REJECTED, has each INTRA
message journaled once, and has every presentment answered exactly once
with at most one ACCP even when two nodes race.  The register is kept:
retention never removes its rows, nor a request whose draft is still open.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest

from gateway.drafts.numbers import make_draft_no
from gateway.drafts.records import (
    ACCEPTED,
    DraftState,
    Presentment,
    Reason,
    Scope,
    rejected,
)
from gateway.journal.archive import ArchivedNotification, read_archive
from gateway.journal.audit import verify
from gateway.journal.draft_records import (
    DraftMessage,
    DraftRecord,
    NewDraft,
    PresentmentVerdict,
    RefundRefusal,
)
from gateway.journal.postgres import PostgresStore
from gateway.journal.records import DailyLimit, NewOutbound, NewRequest, OutState, TxResult
from gateway.journal.retention import archive_once
from gateway.model import Engine, NoticeKind, State

from .conftest import JournalStore, StoreFactory
from .helpers import CAP, T0, WORK_DATE, at, build_journal_at, capped, item, journal_of, request

PARTICIPANT = "102100099996"
CORP = "C100000001"
OTHER_CORP = "C100000002"
AGENT = "104100000004"
NEXT_DAY = WORK_DATE + timedelta(days=1)


# -- builders -----------------------------------------------------------------------------


def draft_request(
    msg_id: str,
    *,
    corp_id: str = CORP,
    trn_code: str = "DRAFT",
    limit: DailyLimit | None = None,
    received_at: datetime = T0,
) -> NewRequest:
    return NewRequest(
        corp_id=corp_id,
        msg_id=msg_id,
        oper_id="op01",
        trn_code=trn_code,
        digest="e" * 64,
        received_at=received_at,
        items=(),
        daily_limit=limit,
    )


def new_draft(
    *,
    amount: str = "500.00",
    issue_date: date = WORK_DATE,
    release_at: datetime | None = None,
    scope: Scope = Scope.NATIONAL,
) -> NewDraft:
    return NewDraft(
        participant=PARTICIPANT,
        scope=scope,
        amount=Decimal(amount),
        payer_acct="6222000011112222",
        payer_name="Acme Trading Co",
        payee_name="Zhang San",
        purpose="deposit",
        issue_date=issue_date,
        expiry_date=issue_date + timedelta(days=31),
        code_key="d-2026a",
        release_at=release_at,
    )


def outbound(
    msg_id: str, msg_tp: str = "intra.draft.answer", work_date: date = WORK_DATE
) -> NewOutbound:
    return NewOutbound(
        msg_id=msg_id,
        engine=Engine.INTRA,
        msg_tp=msg_tp,
        topic="clearing/intra/out",
        receiver="999999999999",
        work_date=work_date,
        payload=f"<ClrMsg>{msg_id}</ClrMsg>".encode(),
        item_ids=(),
        created_at=at(1),
    )


def message(msg_id: str, kind: DraftMessage, work_date: date = WORK_DATE) -> NewOutbound:
    return outbound(msg_id, kind.msg_tp, work_date)


def presentment(prsntmt_id: str, draft_no: str, settle: str = "400.00") -> Presentment:
    return Presentment(
        prsntmt_id=prsntmt_id,
        draft_no=draft_no,
        code="0123456789012345",
        issue_date=WORK_DATE,
        amount=Decimal("500.00"),
        settle_amount=Decimal(settle),
        agent_bank=AGENT,
        holder_acct="6217000033334444",
        holder_name="Li Si",
    )


async def opened(store: JournalStore, msg_id: str = "d-1", **kwargs: object) -> DraftRecord:
    out = await store.open_draft(draft_request(msg_id), new_draft(**kwargs))  # type: ignore[arg-type]
    assert out.created and out.draft is not None
    return out.draft


async def issued(store: JournalStore, msg_id: str = "d-1", amount: str = "500.00") -> DraftRecord:
    draft = await opened(store, msg_id, amount=amount)
    issue = f"I-{msg_id}"
    assert await store.add_draft_message(
        draft.draft_no, DraftMessage.ISSUE, 1, message(issue, DraftMessage.ISSUE)
    )
    result = await store.apply_draft_status(issue, "ACSC", None, None, at(10))
    assert result is not None and result.after is DraftState.ISSUED
    return result.draft


async def paid(store: JournalStore, msg_id: str = "d-1") -> DraftRecord:
    draft = await issued(store, msg_id)
    out = await store.record_presentment(
        presentment(f"P-{msg_id}", draft.draft_no),
        ACCEPTED,
        DraftState.ISSUED,
        outbound(f"A-{msg_id}"),
        WORK_DATE,
        at(20),
    )
    assert out.verdict is PresentmentVerdict.RECORDED
    found = await store.find_draft(draft.draft_no)
    assert found is not None
    return found


async def draft_notices(store: JournalStore, corp_id: str = CORP) -> list[tuple[object, ...]]:
    return [
        (n.draft_no, n.draft_state, n.amount, n.reason_code, n.orig_msg_id)
        for n in await store.pull_notices(corp_id, 0, 100)
        if n.kind is NoticeKind.DRAFT
    ]


@pytest.fixture
async def two_nodes(dsn: str) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    """Two gateway nodes on one PostgreSQL schema."""
    a, b = PostgresStore(dsn, node="A"), PostgresStore(dsn, node="B")
    await a.start()
    await b.start()
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


# -- open_draft ---------------------------------------------------------------------------


async def test_a_draft_is_journaled_pending_with_its_request_and_history(
    store: JournalStore,
) -> None:
    out = await store.open_draft(draft_request("d-1"), new_draft(release_at=at(60)))
    assert out.created and not out.over_limit
    assert out.record is not None and out.record.trn_code == "DRAFT"
    draft = out.draft
    assert draft is not None
    assert draft.draft_no == make_draft_no(PARTICIPANT, 1)
    assert draft.state is DraftState.PENDING
    assert (draft.corp_id, draft.msg_id, draft.purpose) == (CORP, "d-1", "deposit")
    assert draft.entry.amount == Decimal("500.00") and draft.entry.code_key == "d-2026a"
    assert draft.entry.expiry_date == WORK_DATE + timedelta(days=31)
    assert draft.release_at == at(60) and draft.created_at == T0
    assert [(s.state, s.at) for s in draft.history] == [(DraftState.PENDING, T0)]
    assert await store.find_draft(draft.draft_no) == draft
    assert await store.draft_for_request(CORP, "d-1") == draft
    assert await store.find_request(CORP, "d-1") == out.record


async def test_a_replay_gets_the_same_draft_no_and_uses_no_number(store: JournalStore) -> None:
    first = await store.open_draft(draft_request("d-1"), new_draft())
    again = await store.open_draft(draft_request("d-1"), new_draft(amount="9.99"))
    assert not again.created and not again.over_limit
    assert again.record == first.record and again.draft == first.draft
    second = await opened(store, "d-2")
    assert second.draft_no == make_draft_no(PARTICIPANT, 2)


async def test_a_replay_of_another_kind_of_request_has_no_draft(store: JournalStore) -> None:
    await store.accept(request("m-1"))
    out = await store.open_draft(draft_request("m-1"), new_draft())
    assert not out.created and out.record is not None and out.record.trn_code == "PAY"
    assert out.draft is None
    assert await store.list_drafts(None, None, 10) == []


async def test_the_daily_limit_is_shared_with_pay(store: JournalStore) -> None:
    assert (await store.accept(capped("pay-1", "600.00"))).created
    over = await store.open_draft(draft_request("d-1", limit=CAP), new_draft(amount="500.00"))
    assert over.over_limit and not over.created and over.record is None and over.draft is None
    assert await store.find_request(CORP, "d-1") is None
    assert await store.list_drafts(None, None, 10) == []
    within = await store.open_draft(draft_request("d-2", limit=CAP), new_draft(amount="400.00"))
    assert within.created and within.draft is not None
    assert within.draft.draft_no == make_draft_no(PARTICIPANT, 1)  # the refusal took no number
    assert (await store.accept(capped("pay-2", "0.01"))).over_limit
    alone = await store.open_draft(draft_request("d-3", limit=CAP), new_draft(amount="1000.01"))
    assert alone.over_limit


async def test_bad_drafts_are_refused_before_anything_is_written(store: JournalStore) -> None:
    with_items = NewRequest(
        CORP, "d-1", "op01", "DRAFT", "e" * 64, T0, (item(),), None
    )  # a DRAFT moves its amount through the register, not items
    with pytest.raises(ValueError, match="no items"):
        await store.open_draft(with_items, new_draft())
    with pytest.raises(ValueError, match="more than two decimals"):
        await store.open_draft(draft_request("d-1"), new_draft(amount="1.005"))
    with pytest.raises(ValueError, match="positive"):
        await store.open_draft(draft_request("d-1"), new_draft(amount="0.00"))
    naive = draft_request("d-1", received_at=datetime(2026, 11, 27, 10, 0))
    with pytest.raises(ValueError, match="UTC offset"):
        await store.open_draft(naive, new_draft())
    assert await store.find_request(CORP, "d-1") is None
    assert (await opened(store, "d-2")).draft_no == make_draft_no(PARTICIPANT, 1)


async def test_two_nodes_never_hand_out_one_draft_no(
    two_nodes: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = two_nodes
    outs = await asyncio.gather(
        *((a, b)[n % 2].open_draft(draft_request(f"d-{n}"), new_draft()) for n in range(24))
    )
    numbers = [o.draft.draft_no for o in outs if o.draft is not None]
    assert len(numbers) == 24 and all(o.created for o in outs)
    assert sorted(numbers) == [make_draft_no(PARTICIPANT, s) for s in range(1, 25)]
    replay = await b.open_draft(draft_request("d-0"), new_draft())
    assert replay.draft is not None and replay.draft.draft_no == outs[0].draft.draft_no  # type: ignore[union-attr]


# -- open_refund --------------------------------------------------------------------------


async def test_a_refund_moves_an_issued_draft_to_refunding(store: JournalStore) -> None:
    draft = await issued(store)
    out = await store.open_refund(
        draft_request("r-1", trn_code="DRAFTRFND", received_at=at(30)), draft.draft_no
    )
    assert out.created and out.refused is None and out.record is not None
    assert out.draft is not None and out.draft.state is DraftState.REFUNDING
    assert out.draft.history[-1].state is DraftState.REFUNDING and out.draft.history[-1].at == at(
        30
    )
    assert await store.draft_for_request(CORP, "r-1") == out.draft
    again = await store.open_refund(draft_request("r-1", trn_code="DRAFTRFND"), draft.draft_no)
    assert not again.created and again.record == out.record and again.draft == out.draft
    assert not any(state == "REFUNDING" for _, state, *_ in await draft_notices(store))


@pytest.mark.parametrize("case", ["unknown", "other corp", "pending", "refunding"])
async def test_refused_refunds_write_nothing(store: JournalStore, case: str) -> None:
    if case == "pending":
        draft = await opened(store)
    else:
        draft = await issued(store)
    if case == "refunding":
        first = draft_request("r-0", trn_code="DRAFTRFND")
        assert (await store.open_refund(first, draft.draft_no)).created
        draft = await store.find_draft(draft.draft_no)  # type: ignore[assignment]
    corp = OTHER_CORP if case == "other corp" else CORP
    draft_no = make_draft_no(PARTICIPANT, 99) if case == "unknown" else draft.draft_no
    out = await store.open_refund(
        draft_request("r-1", corp_id=corp, trn_code="DRAFTRFND"), draft_no
    )
    expected = {
        "unknown": RefundRefusal.UNKNOWN,
        "other corp": RefundRefusal.NOT_YOURS,
        "pending": RefundRefusal.NOT_ISSUED,
        "refunding": RefundRefusal.NOT_ISSUED,
    }[case]
    assert out.refused is expected and not out.created and out.record is None
    if case in ("unknown", "other corp"):
        assert out.draft is None  # another corporate's draft is not shown
    else:
        assert out.draft == draft  # the applicant sees why (1004 with the state)
    assert await store.find_request(corp, "r-1") is None
    assert await store.find_draft(draft.draft_no) == draft


async def test_a_refund_request_carries_no_items(store: JournalStore) -> None:
    draft = await issued(store)
    bad = NewRequest(CORP, "r-1", "op01", "DRAFTRFND", "e" * 64, T0, (item(),), None)
    with pytest.raises(ValueError, match="no items"):
        await store.open_refund(bad, draft.draft_no)


# -- apply_draft_status: every transition, and redelivery ------------------------------------


async def test_issue_acsc_issues_notifies_and_receipts_the_message(store: JournalStore) -> None:
    draft = await opened(store)
    assert await store.add_draft_message(
        draft.draft_no, DraftMessage.ISSUE, 1, message("I-1", DraftMessage.ISSUE)
    )
    result = await store.apply_draft_status("I-1", "ACSC", None, None, at(10))
    assert result is not None
    assert (result.before, result.after, result.kind) == (
        DraftState.PENDING,
        DraftState.ISSUED,
        DraftMessage.ISSUE,
    )
    assert [(s.state, s.at) for s in result.draft.history] == [
        (DraftState.PENDING, T0),
        (DraftState.ISSUED, at(10)),
    ]
    sent = await store.outbound_message("I-1")
    assert sent is not None and sent.state is OutState.ACKED
    assert await draft_notices(store) == [(draft.draft_no, "ISSUED", None, None, "d-1")]
    assert await store.apply_draft_status("I-1", "ACSC", None, None, at(11)) is None
    assert await store.apply_draft_status("I-1", "RJCT", "R1", "late", at(12)) is None
    assert len(await draft_notices(store)) == 1
    assert await store.find_draft(draft.draft_no) == result.draft


async def test_issue_rjct_rejects_with_its_reason(store: JournalStore) -> None:
    draft = await opened(store)
    await store.add_draft_message(
        draft.draft_no, DraftMessage.ISSUE, 1, message("I-1", DraftMessage.ISSUE)
    )
    result = await store.apply_draft_status("I-1", "RJCT", "AC04", "account closed", at(10))
    assert result is not None and result.after is DraftState.REJECTED
    last = result.draft.history[-1]
    assert (last.state, last.reason_code, last.reason_text) == (
        DraftState.REJECTED,
        "AC04",
        "account closed",
    )
    assert await draft_notices(store) == [(draft.draft_no, "REJECTED", None, "AC04", "d-1")]
    assert await store.apply_draft_status("I-1", "RJCT", "AC04", "again", at(11)) is None


async def test_settle_acsc_settles_and_notifies_the_remainder(store: JournalStore) -> None:
    draft = await paid(store)
    assert draft.state is DraftState.PAID and draft.paid_on == WORK_DATE
    assert draft.settle_amount == Decimal("400.00")
    await store.add_draft_message(
        draft.draft_no, DraftMessage.SETTLE, 1, message("S-1", DraftMessage.SETTLE, NEXT_DAY)
    )
    result = await store.apply_draft_status("S-1", "ACSC", None, None, at(86400))
    assert result is not None and (result.before, result.after) == (
        DraftState.PAID,
        DraftState.SETTLED,
    )
    assert await draft_notices(store) == [
        (draft.draft_no, "ISSUED", None, None, "d-1"),
        (draft.draft_no, "PAID", Decimal("400.00"), None, "d-1"),
        (draft.draft_no, "SETTLED", Decimal("100.00"), None, "d-1"),
    ]
    assert await store.apply_draft_status("S-1", "ACSC", None, None, at(86401)) is None


async def test_settle_rjct_stays_paid_with_the_reason_and_no_notice(store: JournalStore) -> None:
    draft = await paid(store)
    await store.add_draft_message(
        draft.draft_no, DraftMessage.SETTLE, 1, message("S-1", DraftMessage.SETTLE, NEXT_DAY)
    )
    result = await store.apply_draft_status("S-1", "RJCT", "AM04", "no funds", at(86400))
    assert result is not None and (result.before, result.after) == (
        DraftState.PAID,
        DraftState.PAID,
    )
    last = result.draft.history[-1]
    assert (last.state, last.reason_code, last.reason_text) == (DraftState.PAID, "AM04", "no funds")
    assert [n[1] for n in await draft_notices(store)] == ["ISSUED", "PAID"]
    assert await store.apply_draft_status("S-1", "ACSC", None, None, at(86401)) is None


async def test_refund_acsc_refunds_and_rjct_returns_to_issued(store: JournalStore) -> None:
    one = await issued(store, "d-1")
    two = await issued(store, "d-2")
    for n, draft in enumerate((one, two), start=1):
        refund = draft_request(f"r-{n}", trn_code="DRAFTRFND")
        assert (await store.open_refund(refund, draft.draft_no)).created
        assert await store.add_draft_message(
            draft.draft_no, DraftMessage.REFUND, 1, message(f"F-{n}", DraftMessage.REFUND)
        )
    done = await store.apply_draft_status("F-1", "ACSC", None, None, at(40))
    back = await store.apply_draft_status("F-2", "RJCT", "AC06", "account blocked", at(41))
    assert done is not None and (done.before, done.after) == (
        DraftState.REFUNDING,
        DraftState.REFUNDED,
    )
    assert back is not None and (back.before, back.after) == (
        DraftState.REFUNDING,
        DraftState.ISSUED,
    )
    assert back.draft.history[-1].reason_code == "AC06"
    states = [(n[0], n[1]) for n in await draft_notices(store)]
    assert states[-2:] == [(one.draft_no, "REFUNDED"), (two.draft_no, "ISSUED")]
    assert await store.apply_draft_status("F-1", "ACSC", None, None, at(42)) is None
    assert await store.apply_draft_status("F-2", "RJCT", "AC06", "again", at(42)) is None


async def test_a_status_for_something_else_changes_nothing(store: JournalStore) -> None:
    assert await store.apply_draft_status("NOPE", "ACSC", None, None, at(1)) is None
    await store.accept(request("pay-1"))
    [queued] = await store.claim_queued(Engine.HVPS, 10)
    await store.create_outbound(
        [
            NewOutbound(
                "H-1",
                Engine.HVPS,
                "hvps.111",
                "clearing/hvps/out",
                queued.receiver,
                WORK_DATE,
                b"<x/>",
                (queued.item_id,),
                at(1),
            )
        ]
    )
    assert await store.apply_draft_status("H-1", "ACSC", None, None, at(2)) is None
    sent = await store.outbound_message("H-1")
    assert sent is not None and sent.state is OutState.PENDING
    with pytest.raises(ValueError, match="ACSC or RJCT"):
        await store.apply_draft_status("H-1", "ACSP", None, None, at(2))


# -- drafts_needing_message and add_draft_message --------------------------------------------


async def test_an_issue_is_held_until_its_issue_date_and_release(store: JournalStore) -> None:
    draft = await opened(store, issue_date=NEXT_DAY, release_at=at(3600))
    assert await store.drafts_needing_message(WORK_DATE, at(7200), 10) == []
    assert await store.drafts_needing_message(NEXT_DAY, at(3599), 10) == []
    [need] = await store.drafts_needing_message(NEXT_DAY, at(3600), 10)
    assert (need.kind, need.attempt, need.draft.draft_no) == (DraftMessage.ISSUE, 1, draft.draft_no)
    assert await store.add_draft_message(
        draft.draft_no, DraftMessage.ISSUE, 1, message("I-1", DraftMessage.ISSUE)
    )
    assert await store.drafts_needing_message(NEXT_DAY, at(3600), 10) == []


async def test_needs_come_oldest_first_up_to_the_limit(store: JournalStore) -> None:
    for n in range(3):
        await store.open_draft(draft_request(f"d-{n}", received_at=at(n)), new_draft())
    needs = await store.drafts_needing_message(WORK_DATE, at(10), 2)
    assert [n.draft.msg_id for n in needs] == ["d-0", "d-1"]


async def test_a_settlement_is_due_the_day_after_payment_once_ever(store: JournalStore) -> None:
    draft = await paid(store)
    assert await store.drafts_needing_message(WORK_DATE, at(86400), 10) == []
    [need] = await store.drafts_needing_message(NEXT_DAY, at(86400), 10)
    assert (need.kind, need.attempt, need.draft.draft_no) == (
        DraftMessage.SETTLE,
        1,
        draft.draft_no,
    )
    assert need.draft.settle_amount == Decimal("400.00")
    assert await store.add_draft_message(
        draft.draft_no, DraftMessage.SETTLE, 1, message("S-1", DraftMessage.SETTLE, NEXT_DAY)
    )
    assert await store.drafts_needing_message(NEXT_DAY, at(86400), 10) == []
    await store.apply_draft_status("S-1", "RJCT", "AM04", None, at(86500))
    assert await store.drafts_needing_message(NEXT_DAY + timedelta(days=1), at(172800), 10) == []


async def test_a_second_refund_after_a_rejected_one_needs_attempt_two(store: JournalStore) -> None:
    draft = await issued(store)
    await store.open_refund(draft_request("r-1", trn_code="DRAFTRFND"), draft.draft_no)
    [need] = await store.drafts_needing_message(WORK_DATE, at(40), 10)
    assert (need.kind, need.attempt) == (DraftMessage.REFUND, 1)
    assert await store.add_draft_message(
        draft.draft_no, DraftMessage.REFUND, 1, message("F-1", DraftMessage.REFUND)
    )
    assert await store.drafts_needing_message(WORK_DATE, at(40), 10) == []
    await store.apply_draft_status("F-1", "RJCT", "AC06", None, at(41))
    assert await store.drafts_needing_message(WORK_DATE, at(42), 10) == []
    assert (
        await store.open_refund(draft_request("r-2", trn_code="DRAFTRFND"), draft.draft_no)
    ).created
    [need] = await store.drafts_needing_message(WORK_DATE, at(43), 10)
    assert (need.kind, need.attempt, need.draft.state) == (
        DraftMessage.REFUND,
        2,
        DraftState.REFUNDING,
    )
    assert await store.add_draft_message(
        draft.draft_no, DraftMessage.REFUND, 2, message("F-2", DraftMessage.REFUND)
    )
    done = await store.apply_draft_status("F-2", "ACSC", None, None, at(44))
    assert done is not None and done.after is DraftState.REFUNDED
    assert await store.draft_for_request(CORP, "r-2") == done.draft


async def test_a_draft_message_is_journaled_once(store: JournalStore) -> None:
    draft = await opened(store)
    assert await store.add_draft_message(
        draft.draft_no, DraftMessage.ISSUE, 1, message("I-1", DraftMessage.ISSUE)
    )
    assert not await store.add_draft_message(
        draft.draft_no, DraftMessage.ISSUE, 1, message("I-2", DraftMessage.ISSUE)
    )
    assert await store.outbound_message("I-2") is None
    [unsent] = await store.unsent_outbound(10)
    assert (unsent.msg_id, unsent.msg_tp) == ("I-1", "intra.draft.issue")


async def test_bad_draft_messages_are_refused(store: JournalStore) -> None:
    draft = await opened(store)
    with pytest.raises(KeyError):
        await store.add_draft_message(
            make_draft_no(PARTICIPANT, 99),
            DraftMessage.ISSUE,
            1,
            message("I-1", DraftMessage.ISSUE),
        )
    with pytest.raises(ValueError, match="attempt 1"):
        await store.add_draft_message(
            draft.draft_no, DraftMessage.ISSUE, 2, message("I-1", DraftMessage.ISSUE)
        )
    await store.accept(request("pay-1"))
    [queued] = await store.claim_queued(Engine.HVPS, 10)
    carrying = NewOutbound(
        "I-1",
        Engine.INTRA,
        "intra.draft.issue",
        "clearing/intra/out",
        "999999999999",
        WORK_DATE,
        b"x",
        (queued.item_id,),
        at(1),
    )
    with pytest.raises(ValueError, match="no items"):
        await store.add_draft_message(draft.draft_no, DraftMessage.ISSUE, 1, carrying)
    assert await store.outbound_message("I-1") is None


async def test_two_nodes_journal_one_issue_message(
    two_nodes: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = two_nodes
    draft = await opened(a)
    won = await asyncio.gather(
        a.add_draft_message(
            draft.draft_no, DraftMessage.ISSUE, 1, message("I-A", DraftMessage.ISSUE)
        ),
        b.add_draft_message(
            draft.draft_no, DraftMessage.ISSUE, 1, message("I-B", DraftMessage.ISSUE)
        ),
    )
    assert sorted(won) == [False, True]
    assert len(await a.unsent_outbound(10)) == 1


# -- record_presentment ---------------------------------------------------------------------


async def test_an_accp_pays_the_draft_with_its_answer(store: JournalStore) -> None:
    draft = await issued(store)
    out = await store.record_presentment(
        presentment("P-1", draft.draft_no),
        ACCEPTED,
        DraftState.ISSUED,
        outbound("A-1"),
        WORK_DATE,
        at(20),
    )
    assert out.verdict is PresentmentVerdict.RECORDED
    now = await store.find_draft(draft.draft_no)
    assert now is not None and now.state is DraftState.PAID
    assert (now.paid_on, now.settle_amount) == (WORK_DATE, Decimal("400.00"))
    assert (now.history[-1].state, now.history[-1].at) == (DraftState.PAID, at(20))
    answer = await store.outbound_message("A-1")
    assert answer is not None and answer.msg_tp == "intra.draft.answer"
    assert (await draft_notices(store))[-1] == (
        draft.draft_no,
        "PAID",
        Decimal("400.00"),
        None,
        "d-1",
    )
    stale = await store.record_presentment(
        presentment("P-2", draft.draft_no),
        ACCEPTED,
        DraftState.ISSUED,
        outbound("A-2"),
        WORK_DATE,
        at(21),
    )
    assert stale.verdict is PresentmentVerdict.STALE
    assert await store.outbound_message("A-2") is None
    pd = await store.record_presentment(
        presentment("P-2", draft.draft_no),
        rejected(Reason.PD),
        DraftState.PAID,
        outbound("A-2"),
        WORK_DATE,
        at(22),
    )
    assert pd.verdict is PresentmentVerdict.RECORDED
    assert await store.find_draft(draft.draft_no) == now  # a rejection changes nothing


async def test_a_presentment_is_answered_once_whatever_it_says_later(store: JournalStore) -> None:
    draft = await issued(store)
    first = await store.record_presentment(
        presentment("P-1", draft.draft_no),
        rejected(Reason.EX),
        DraftState.ISSUED,
        outbound("A-1"),
        WORK_DATE,
        at(20),
    )
    assert first.verdict is PresentmentVerdict.RECORDED
    again = await store.record_presentment(
        presentment("P-1", draft.draft_no, settle="500.00"),
        ACCEPTED,
        DraftState.ISSUED,
        outbound("A-2"),
        WORK_DATE,
        at(21),
    )
    assert again.verdict is PresentmentVerdict.EXISTING
    assert (again.answer, again.msg_id) == (rejected(Reason.EX), "A-1")
    assert await store.outbound_message("A-2") is None
    still = await store.find_draft(draft.draft_no)
    assert still is not None and still.state is DraftState.ISSUED
    other_bank = replace(presentment("P-1", draft.draft_no), agent_bank="105100000017")
    own = await store.record_presentment(
        other_bank, ACCEPTED, DraftState.ISSUED, outbound("A-3"), WORK_DATE, at(22)
    )
    assert own.verdict is PresentmentVerdict.RECORDED  # the key is (AgentBank, PrsntmtId)


async def test_an_unknown_draft_is_answered_once_too(store: JournalStore) -> None:
    unknown = make_draft_no(PARTICIPANT, 42)
    first = await store.record_presentment(
        presentment("P-1", unknown), rejected(Reason.NF), None, outbound("A-1"), WORK_DATE, at(20)
    )
    assert first.verdict is PresentmentVerdict.RECORDED
    again = await store.record_presentment(
        presentment("P-1", unknown), rejected(Reason.NF), None, outbound("A-2"), WORK_DATE, at(21)
    )
    assert (again.verdict, again.answer, again.msg_id) == (
        PresentmentVerdict.EXISTING,
        rejected(Reason.NF),
        "A-1",
    )


async def test_a_stale_expectation_writes_nothing(store: JournalStore) -> None:
    draft = await opened(store)
    stale = await store.record_presentment(
        presentment("P-1", draft.draft_no),
        rejected(Reason.NF),
        None,
        outbound("A-1"),
        WORK_DATE,
        at(20),
    )
    assert stale.verdict is PresentmentVerdict.STALE
    assert await store.outbound_message("A-1") is None
    with pytest.raises(ValueError, match="not allowed"):  # only an ISSUED draft can be paid
        await store.record_presentment(
            presentment("P-1", draft.draft_no),
            ACCEPTED,
            DraftState.PENDING,
            outbound("A-1"),
            WORK_DATE,
            at(20),
        )
    ok = await store.record_presentment(
        presentment("P-1", draft.draft_no),
        rejected(Reason.NF),
        DraftState.PENDING,
        outbound("A-1"),
        WORK_DATE,
        at(20),
    )
    assert ok.verdict is PresentmentVerdict.RECORDED


async def test_two_nodes_racing_accp_pay_a_draft_once(
    two_nodes: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = two_nodes
    for n in range(6):
        draft = await issued(a, f"d-{n}")
        outs = await asyncio.gather(
            a.record_presentment(
                presentment(f"PA-{n}", draft.draft_no),
                ACCEPTED,
                DraftState.ISSUED,
                outbound(f"AA-{n}"),
                WORK_DATE,
                at(20),
            ),
            b.record_presentment(
                presentment(f"PB-{n}", draft.draft_no, settle="300.00"),
                ACCEPTED,
                DraftState.ISSUED,
                outbound(f"AB-{n}"),
                WORK_DATE,
                at(20),
            ),
        )
        assert sorted(o.verdict.value for o in outs) == ["RECORDED", "STALE"]
        now = await b.find_draft(draft.draft_no)
        assert now is not None and now.state is DraftState.PAID
        assert [s.state for s in now.history].count(DraftState.PAID) == 1
    paid_notices = [n for n in await a.pull_notices(CORP, 0, 100) if n.draft_state == "PAID"]
    assert len(paid_notices) == 6


async def test_two_nodes_answering_one_presentment_answer_it_once(
    two_nodes: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = two_nodes
    unknown = make_draft_no(PARTICIPANT, 7)
    outs = await asyncio.gather(
        a.record_presentment(
            presentment("P-1", unknown),
            rejected(Reason.NF),
            None,
            outbound("AA"),
            WORK_DATE,
            at(20),
        ),
        b.record_presentment(
            presentment("P-1", unknown),
            rejected(Reason.NF),
            None,
            outbound("AB"),
            WORK_DATE,
            at(20),
        ),
    )
    verdicts = sorted(o.verdict.value for o in outs)
    assert verdicts == ["EXISTING", "RECORDED"]
    existing = next(o for o in outs if o.verdict is PresentmentVerdict.EXISTING)
    assert existing.msg_id in ("AA", "AB")
    assert len(await a.unsent_outbound(10)) == 1


# -- notifications, views ----------------------------------------------------------------


async def test_draft_notices_sit_with_status_notices_unchanged(store: JournalStore) -> None:
    await store.accept(request("pay-1"))
    [queued] = await store.claim_queued(Engine.HVPS, 10)
    await store.create_outbound(
        [
            NewOutbound(
                "H-1",
                Engine.HVPS,
                "hvps.111",
                "clearing/hvps/out",
                queued.receiver,
                WORK_DATE,
                b"<x/>",
                (queued.item_id,),
                at(1),
            )
        ]
    )
    await store.apply_tx_status("H-1", [TxResult(queued.tx_id, None, "ACSC")], at(5))
    draft = await issued(store)
    status, notice = await store.pull_notices(CORP, 0, 10)
    assert (status.kind, status.state, status.orig_msg_id, status.engine) == (
        NoticeKind.STATUS,
        State.SETTLED,
        "pay-1",
        Engine.HVPS,
    )
    assert (status.draft_no, status.draft_state) == (None, None)
    assert (notice.kind, notice.draft_no, notice.draft_state, notice.state) == (
        NoticeKind.DRAFT,
        draft.draft_no,
        "ISSUED",
        None,
    )
    assert (notice.orig_msg_id, notice.at, notice.amount) == ("d-1", at(10), None)
    assert notice.ntfy_id > status.ntfy_id
    assert await store.pull_notices(CORP, notice.ntfy_id, 10) == []
    assert await store.pull_notices(OTHER_CORP, 0, 10) == []


async def test_the_register_views(store: JournalStore) -> None:
    one = await issued(store, "d-1", amount="500.00")
    two = await issued(store, "d-2", amount="250.50")
    pending = await opened(store, "d-3", amount="10.00")
    assert await store.outstanding_drafts() == (2, Decimal("750.50"))
    counts = await store.draft_counts()
    assert counts[DraftState.ISSUED] == (2, Decimal("750.50"))
    assert counts[DraftState.PENDING] == (1, Decimal("10.00"))
    assert counts[DraftState.SETTLED] == (0, Decimal("0.00"))
    listed = await store.list_drafts(None, None, 10)
    assert [d.draft_no for d in listed] == sorted(
        (one.draft_no, two.draft_no, pending.draft_no), reverse=True
    )
    assert all(d.history == () for d in listed)
    assert [d.draft_no for d in await store.list_drafts(DraftState.PENDING, None, 10)] == [
        pending.draft_no
    ]
    assert await store.list_drafts(None, WORK_DATE + timedelta(days=31), 10) == []
    assert len(await store.list_drafts(None, WORK_DATE + timedelta(days=32), 2)) == 2


async def test_the_settlement_list_and_the_overdue_count(store: JournalStore) -> None:
    draft = await paid(store)
    assert await store.settle_list(WORK_DATE) == []
    assert [d.draft_no for d in await store.settle_list(NEXT_DAY)] == [draft.draft_no]
    assert await store.unsettled_paid(WORK_DATE) == 0
    assert await store.unsettled_paid(NEXT_DAY) == 1
    await store.add_draft_message(
        draft.draft_no, DraftMessage.SETTLE, 1, message("S-1", DraftMessage.SETTLE, NEXT_DAY)
    )
    assert [d.draft_no for d in await store.settle_list(NEXT_DAY)] == [draft.draft_no]
    assert await store.settle_list(NEXT_DAY + timedelta(days=1)) == []
    await store.apply_draft_status("S-1", "ACSC", None, None, at(86400))
    assert await store.unsettled_paid(NEXT_DAY) == 0
    assert [d.state for d in await store.settle_list(NEXT_DAY)] == [DraftState.SETTLED]


# -- retention and migration ---------------------------------------------------------------


async def test_retention_keeps_open_drafts_requests_and_the_whole_register(
    store: JournalStore, backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    live = await issued(store, "d-live")
    refunding = await issued(store, "d-refund")
    await store.open_refund(draft_request("r-1", trn_code="DRAFTRFND"), refunding.draft_no)
    closed = await opened(store, "d-closed")
    await store.add_draft_message(
        closed.draft_no, DraftMessage.ISSUE, 1, message("I-d-closed", DraftMessage.ISSUE)
    )
    await store.apply_draft_status("I-d-closed", "RJCT", "AC04", None, at(10))
    await store.record_presentment(
        presentment("P-1", live.draft_no),
        rejected(Reason.CD),
        DraftState.ISSUED,
        outbound("A-1"),
        WORK_DATE,
        at(20),
    )
    await store.apply_receipt("A-1", at(21))
    register = {d.draft_no: await store.find_draft(d.draft_no) for d in (live, refunding, closed)}

    journal = journal_of(backend, request)
    res = await archive_once(backend, journal, tmp_path / "archive", before=T0 + timedelta(days=1))
    assert res.requests == 1  # only the DRAFT whose issue was rejected
    assert await store.find_request(CORP, "d-closed") is None
    for msg_id in ("d-live", "d-refund", "r-1"):
        assert await store.find_request(CORP, msg_id) is not None
    for draft_no, kept in register.items():
        assert await store.find_draft(draft_no) == kept
    for msg_id in ("I-d-live", "I-d-refund", "I-d-closed", "A-1"):
        assert await store.outbound_message(msg_id) is not None
    assert res.path is not None and res.notifications == 3  # notices leave by age
    assert await draft_notices(store) == []
    archived = [r.notice for r in read_archive(res.path) if isinstance(r, ArchivedNotification)]
    assert [(n.kind, n.draft_no, n.draft_state, n.state, n.reason_code) for n in archived] == [
        (NoticeKind.DRAFT, live.draft_no, "ISSUED", None, None),
        (NoticeKind.DRAFT, refunding.draft_no, "ISSUED", None, None),
        (NoticeKind.DRAFT, closed.draft_no, "REJECTED", None, "AC04"),
    ]
    again = await store.record_presentment(
        presentment("P-1", live.draft_no),
        ACCEPTED,
        DraftState.ISSUED,
        outbound("A-9"),
        WORK_DATE,
        at(30),
    )
    assert (again.verdict, again.msg_id) == (PresentmentVerdict.EXISTING, "A-1")


_V9_NOTICE = (
    "INSERT INTO notifications (ntfy_id, corp_id, kind, at, orig_msg_id, seq_no, state, engine,"
    " work_date) VALUES ({p})"
)


async def test_migration_10_keeps_notifications_and_their_cursor(
    backend: str, request: pytest.FixtureRequest, make_store: StoreFactory
) -> None:
    journal = journal_of(backend, request)

    def sqlite_rows(conn: sqlite3.Connection) -> None:
        for n in (1, 2, 3):
            conn.execute(
                _V9_NOTICE.format(p="?, ?, 'STATUS', ?, ?, NULL, 'SETTLED', 'HVPS', '2026-11-27'"),
                (n, CORP, n, f"m-{n}"),
            )
        conn.execute("DELETE FROM notifications WHERE ntfy_id = 3")  # as retention would

    async def pg_rows(sql: asyncpg.Connection) -> None:
        for n in (1, 2, 3):
            await sql.execute(
                "INSERT INTO notifications (corp_id, kind, at, orig_msg_id, state, engine,"
                " work_date) VALUES ($1, 'STATUS', $2, $3, 'SETTLED', 'HVPS', $4)",
                CORP, T0, f"m-{n}", WORK_DATE,
            )  # fmt: skip
        await sql.execute("DELETE FROM notifications WHERE ntfy_id = 3")

    await build_journal_at(journal, 9, sqlite_rows=sqlite_rows, pg_rows=pg_rows)
    store = await make_store(node="A")
    kept = await store.pull_notices(CORP, 0, 10)
    assert [(n.ntfy_id, n.kind, n.state, n.orig_msg_id, n.draft_no) for n in kept] == [
        (1, NoticeKind.STATUS, State.SETTLED, "m-1", None),
        (2, NoticeKind.STATUS, State.SETTLED, "m-2", None),
    ]
    draft = await issued(store)
    [new] = await store.pull_notices(CORP, 2, 10)
    assert new.ntfy_id == 4 and new.draft_no == draft.draft_no  # id 3 is never given again


async def test_every_step_and_answer_is_a_link_of_the_audit_chain(
    store: JournalStore, backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    draft = await paid(store)
    await store.record_presentment(
        presentment("P-2", draft.draft_no),
        rejected(Reason.PD),
        DraftState.PAID,
        outbound("A-2"),
        WORK_DATE,
        at(30),
    )
    journal = journal_of(backend, request)
    query = (
        "SELECT kind, subject, state FROM state_changes"
        " WHERE kind IN ('draft', 'presentment') ORDER BY seq"
    )
    if isinstance(journal, Path):
        conn = sqlite3.connect(journal)
        try:
            links = [tuple(r) for r in conn.execute(query)]
        finally:
            conn.close()
    else:
        sql = await asyncpg.connect(journal)
        try:
            links = [tuple(r) for r in await sql.fetch(query)]
        finally:
            await sql.close()
    assert links == [
        ("draft", draft.draft_no, "PENDING"),
        ("draft", draft.draft_no, "ISSUED"),
        ("presentment", f"{AGENT} P-d-1", "ACCP"),
        ("draft", draft.draft_no, "PAID"),
        ("presentment", f"{AGENT} P-2", "RJCT"),
    ]
    report = await verify(backend, journal, tmp_path / "archive", "A")
    assert report.ok, report.brk
