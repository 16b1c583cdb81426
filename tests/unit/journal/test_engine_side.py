"""The engine side: HELD release, packaging queries, outbound messages, receipts.

Runs against both backends (``[sqlite]``, ``[postgres]``); several nodes on
one PostgreSQL database are tested in test_postgres_nodes.py.
"""

from __future__ import annotations

import asyncio
from datetime import date

import pytest

from gateway.journal.records import AcceptOutcome, NewItem, NewOutbound, OutState, TxResult
from gateway.model import BizType, Engine, State

from .conftest import JournalStore, StoreFactory
from .helpers import BEPS_RCVR, HVPS_RCVR, T0, WORK_DATE, at, item, request

OTHER_RCVR = "313100000013"


async def states(store: JournalStore, msg_id: str, seq_no: int | None = None) -> list[State]:
    view = await store.item_status("C100000001", msg_id, seq_no)
    assert view is not None
    return [t.state for t in view.history]


def outbound(msg_id: str, *item_ids: int, engine: Engine = Engine.HVPS) -> NewOutbound:
    return NewOutbound(
        msg_id=msg_id,
        engine=engine,
        msg_tp="hvps.111" if engine is Engine.HVPS else "beps.121",
        topic=f"clearing/{engine.value.lower()}/out",
        receiver=HVPS_RCVR,
        work_date=WORK_DATE,
        payload=b"<ClrMsg>\x00signed bytes\xff</ClrMsg>",
        item_ids=item_ids,
        created_at=at(1),
    )


async def queued_ids(store: JournalStore, engine: Engine = Engine.HVPS) -> list[int]:
    return [q.item_id for q in await store.claim_queued(engine, 100)]


async def sent_message(store: JournalStore, msg_id: str = "out-1", *, n: int = 1) -> list[int]:
    """Journal ``n`` HVPS payments, put them in one outbound message, mark it sent."""
    for i in range(n):
        await store.accept(request(f"{msg_id}-pay-{i}"))
    ids = await queued_ids(store)
    await store.create_outbound([outbound(msg_id, *ids)])
    await store.mark_sent(msg_id, at(2))
    return ids


# -- HELD release -------------------------------------------------------------


async def test_release_held_moves_due_items_oldest_first(store: JournalStore) -> None:
    for name, release in (("late", at(300)), ("early", at(100)), ("mid", at(200))):
        await store.accept(request(name, item(state=State.HELD, release_at=release)))
    assert await store.release_held(at(50), 10) == 0
    assert await store.release_held(at(250), 1) == 1
    early = await store.item_status("C100000001", "early")
    assert early is not None
    assert early.state is State.QUEUED
    assert early.release_at == at(100)
    assert [(t.state, t.at) for t in early.history] == [
        (State.ACCEPTED, T0),
        (State.HELD, T0),
        (State.QUEUED, at(250)),
    ]
    assert await store.release_held(at(250), 10) == 1  # "mid"; "late" is not due
    assert await store.release_held(at(250), 10) == 0
    (first, second) = await store.claim_queued(Engine.HVPS, 10)
    assert first.msg_id == "early"
    assert second.queued_at == at(250)
    assert await store.release_held(at(300), 0) == 0


async def test_release_held_per_engine_leaves_other_engines_held(store: JournalStore) -> None:
    """Each engine releases at its own rate (engines.<engine>.release_rate, routing.md §4)."""
    await store.accept(request("h", item(state=State.HELD, release_at=at(100))))
    await store.accept(
        request("i", item(state=State.HELD, release_at=at(100), engine=Engine.INTRA))
    )
    assert await store.release_held(at(200), 10, Engine.BEPS) == 0
    assert await store.release_held(at(200), 10, Engine.INTRA) == 1
    hvps = await store.item_status("C100000001", "h")
    assert hvps is not None and hvps.state is State.HELD
    assert await store.release_held(at(200), 10, Engine.HVPS) == 1
    assert await store.release_held(at(200), 10) == 0


# -- packaging queries ----------------------------------------------------------


async def test_pending_groups_and_claim_by_group(store: JournalStore) -> None:
    def beps(seq: int, rcvr: str, biz: BizType = BizType.CREDIT) -> NewItem:
        return item(seq_no=seq, engine=Engine.BEPS, receiver=rcvr, biz_type=biz)

    await store.accept(request("b1", beps(1, BEPS_RCVR), beps(2, OTHER_RCVR), received_at=at(1)))
    await store.accept(
        request("b2", beps(1, BEPS_RCVR), beps(2, BEPS_RCVR, BizType.DEBIT), received_at=at(2))
    )
    await store.accept(request("h1"))  # HVPS, not in BEPS groups
    groups = await store.pending_groups(Engine.BEPS)
    assert [(g.receiver, g.biz_type, g.work_date, g.count, g.oldest_queued_at) for g in groups] == [
        (BEPS_RCVR, BizType.CREDIT, WORK_DATE, 2, at(1)),
        (OTHER_RCVR, BizType.CREDIT, WORK_DATE, 1, at(1)),
        (BEPS_RCVR, BizType.DEBIT, WORK_DATE, 1, at(2)),
    ]
    credits = await store.claim_queued(
        Engine.BEPS, 10, receiver=BEPS_RCVR, biz_type=BizType.CREDIT, work_date=WORK_DATE
    )
    assert [(c.msg_id, c.seq_no) for c in credits] == [("b1", 1), ("b2", 1)]
    assert all(c.engine is Engine.BEPS for c in credits)
    assert await store.claim_queued(Engine.BEPS, 10, work_date=date(2026, 11, 28)) == []
    assert len(await store.claim_queued(Engine.BEPS, 2)) == 2
    assert await store.pending_groups(Engine.INTRA) == []


async def test_claimed_item_carries_everything_for_the_document(store: JournalStore) -> None:
    ref = (await store.accept(request("m-doc"))).record.gw_ref
    (q,) = await store.claim_queued(Engine.HVPS, 10)
    assert (q.tx_id, q.end_to_end_id, q.corp_id, q.seq_no) == (ref, "m-doc", "C100000001", None)
    assert (q.receiver, q.payee_bank_code, q.work_date) == (HVPS_RCVR, HVPS_RCVR, WORK_DATE)
    assert (q.payer_name, q.payee_acct, q.purpose, q.queued_at) == (
        "Acme Trading Co",
        "6217000033334444",
        "invoice 42",
        T0,
    )


# -- outbound messages ------------------------------------------------------------


async def test_create_outbound_links_items_and_stays_pending(store: JournalStore) -> None:
    await store.accept(request("m-1"))
    ids = await queued_ids(store)
    await store.create_outbound([outbound("out-1", *ids)])
    assert await queued_ids(store) == []  # linked items are no longer claimable
    (rec,) = await store.unsent_outbound(10)
    assert (rec.msg_id, rec.state, rec.attempts, rec.last_sent_at) == (
        "out-1",
        OutState.PENDING,
        0,
        None,
    )
    assert rec.payload == b"<ClrMsg>\x00signed bytes\xff</ClrMsg>"
    assert rec.created_at == at(1)
    assert await states(store, "m-1") == [State.ACCEPTED, State.QUEUED]


async def test_create_outbound_is_all_or_nothing(store: JournalStore) -> None:
    await store.accept(request("ok"))
    await store.accept(request("held", item(state=State.HELD, release_at=at(99))))
    (ok_id,) = await queued_ids(store)
    with pytest.raises(ValueError, match="not a QUEUED"):
        await store.create_outbound([outbound("out-a", ok_id), outbound("out-b", ok_id + 1)])
    assert await store.unsent_outbound(10) == []
    assert await queued_ids(store) == [ok_id]
    with pytest.raises(ValueError, match="not a QUEUED"):
        await store.create_outbound([outbound("out-c", 999_999)])
    with pytest.raises(ValueError, match="not a QUEUED"):
        await store.create_outbound([outbound("out-d", ok_id, engine=Engine.BEPS)])
    await store.create_outbound([outbound("out-e", ok_id)])
    with pytest.raises(ValueError, match="not a QUEUED"):  # already linked
        await store.create_outbound([outbound("out-f", ok_id)])
    with pytest.raises(ValueError, match="already journaled"):
        await store.create_outbound([outbound("out-e")])
    assert [r.msg_id for r in await store.unsent_outbound(10)] == ["out-e"]


async def test_a_failing_op_does_not_spoil_its_batch(store: JournalStore) -> None:
    await store.accept(request("m-0"))
    (item_id,) = await queued_ids(store)
    results = await asyncio.gather(
        *(store.accept(request(f"m-{i}")) for i in range(1, 10)),
        store.create_outbound([outbound("out-bad", item_id, item_id)]),  # item twice
        *(store.accept(request(f"m-{i}")) for i in range(10, 20)),
        return_exceptions=True,
    )
    assert isinstance(results[9], ValueError)
    accepted = results[:9] + results[10:]
    assert all(isinstance(r, AcceptOutcome) and r.created for r in accepted)
    assert len(await queued_ids(store)) == 20


async def test_mark_sent_is_idempotent(store: JournalStore) -> None:
    await sent_message(store)
    await store.mark_sent("out-1", at(3))
    assert await store.unsent_outbound(10) == []
    (rec,) = await store.due_for_resend(at(2), 10)
    assert (rec.state, rec.attempts, rec.last_sent_at) == (OutState.SENT, 1, at(2))
    assert await states(store, "out-1-pay-0") == [State.ACCEPTED, State.QUEUED, State.SENT]
    with pytest.raises(KeyError):
        await store.mark_sent("no-such-message", at(3))


async def test_due_for_resend_and_mark_resent(store: JournalStore) -> None:
    await sent_message(store)
    assert await store.due_for_resend(at(1), 10) == []
    assert [r.msg_id for r in await store.due_for_resend(at(2), 10)] == ["out-1"]
    await store.mark_resent("out-1", at(62))
    await store.mark_resent("out-1", at(62))  # the same re-send reported twice
    assert await store.due_for_resend(at(61), 10) == []
    (rec,) = await store.due_for_resend(at(62), 10)
    assert (rec.attempts, rec.last_sent_at) == (2, at(62))
    assert await states(store, "out-1-pay-0") == [State.ACCEPTED, State.QUEUED, State.SENT]
    await store.apply_receipt("out-1", at(70))
    assert await store.due_for_resend(at(999), 10) == []
    with pytest.raises(KeyError):
        await store.mark_resent("no-such-message", at(3))


async def test_receipt_acks_items_once(store: JournalStore) -> None:
    await sent_message(store, n=2)
    assert await store.apply_receipt("out-1", at(3))
    assert await store.apply_receipt("out-1", at(4))
    view = await store.item_status("C100000001", "out-1-pay-1")
    assert view is not None
    assert [(t.state, t.at) for t in view.history][2:] == [
        (State.SENT, at(2)),
        (State.ACKED, at(3)),
    ]
    assert not await store.apply_receipt("unknown", at(3))


async def test_receipt_that_overtakes_the_puback(store: JournalStore) -> None:
    await store.accept(request("m-fast"))
    await store.create_outbound([outbound("out-fast", *await queued_ids(store))])
    assert await store.apply_receipt("out-fast", at(2))
    await store.mark_sent("out-fast", at(3))
    assert await states(store, "m-fast") == [State.ACCEPTED, State.QUEUED, State.SENT, State.ACKED]
    assert await store.unsent_outbound(10) == []
    assert await store.due_for_resend(at(999), 10) == []


async def test_tx_status_settles_rejects_and_never_moves_final_states(store: JournalStore) -> None:
    await sent_message(store, n=3)
    await store.apply_receipt("out-1", at(3))
    results = [
        TxResult(tx_id=None, end_to_end_id="out-1-pay-0", status="ACSC"),
        TxResult(tx_id=None, end_to_end_id="out-1-pay-1", status="RJCT", reason_code="AC04"),
        TxResult(tx_id=None, end_to_end_id="out-1-pay-2", status="ACSP"),
    ]
    assert await store.apply_tx_status("out-1", results, at(4)) == 2
    assert await store.apply_tx_status("out-1", results, at(5)) == 0
    flipped = [
        TxResult(tx_id=None, end_to_end_id="out-1-pay-0", status="RJCT", reason_code="XX"),
        TxResult(tx_id=None, end_to_end_id="out-1-pay-1", status="ACSC"),
    ]
    assert await store.apply_tx_status("out-1", flipped, at(6)) == 0
    assert (await states(store, "out-1-pay-0"))[-1] is State.SETTLED
    rejected = await store.item_status("C100000001", "out-1-pay-1")
    assert rejected is not None
    assert (rejected.state, rejected.reason_code) == (State.REJECTED, "AC04")
    assert [t.state for t in rejected.history].count(State.REJECTED) == 1
    assert await states(store, "out-1-pay-2") == [
        State.ACCEPTED,
        State.QUEUED,
        State.SENT,
        State.ACKED,
    ]


async def test_tx_status_matches_by_tx_id_first(store: JournalStore) -> None:
    ref = (await store.accept(request("m-tx"))).record.gw_ref
    await store.create_outbound([outbound("out-tx", *await queued_ids(store))])
    await store.mark_sent("out-tx", at(2))
    wrong = [TxResult(tx_id="GW-other", end_to_end_id=None, status="ACSC")]
    assert await store.apply_tx_status("out-tx", wrong, at(3)) == 1  # the implied 990 only
    assert (await states(store, "m-tx"))[-1] is State.ACKED
    right = [TxResult(tx_id=ref, end_to_end_id="ignored", status="ACSC")]
    assert await store.apply_tx_status("out-tx", right, at(4)) == 1
    assert (await states(store, "m-tx"))[-1] is State.SETTLED
    assert await store.apply_tx_status("unknown", right, at(4)) == 0
    with pytest.raises(ValueError, match="status"):
        await store.apply_tx_status("out-tx", [TxResult(ref, None, "PDNG")], at(5))


async def test_tx_status_when_the_990_was_lost(store: JournalStore) -> None:
    await sent_message(store, n=2)
    results = [TxResult(tx_id=None, end_to_end_id="out-1-pay-0", status="ACSC")]
    assert await store.apply_tx_status("out-1", results, at(9)) == 2
    assert await states(store, "out-1-pay-0") == [
        State.ACCEPTED,
        State.QUEUED,
        State.SENT,
        State.ACKED,
        State.SETTLED,
    ]
    assert (await states(store, "out-1-pay-1"))[-1] is State.ACKED
    assert await store.due_for_resend(at(999), 10) == []  # no more re-sends


async def test_ambiguous_end_to_end_id_is_skipped(store: JournalStore) -> None:
    await store.accept(request("same", corp_id="C100000001"))
    await store.accept(request("same", corp_id="C100000002"))
    await store.create_outbound([outbound("out-amb", *await queued_ids(store))])
    await store.apply_receipt("out-amb", at(2))
    results = [TxResult(tx_id=None, end_to_end_id="same", status="ACSC")]
    assert await store.apply_tx_status("out-amb", results, at(3)) == 0


async def test_summary_counts_by_engine_state_and_reason(store: JournalStore) -> None:
    await store.accept(request("a"))
    await store.accept(request("b"))
    await store.accept(request("c", item(state=State.HELD, release_at=at(5))))
    await store.accept(
        request(
            "d",
            item(seq_no=1, state=State.REJECTED, engine=None, receiver=None, reason_code="4001"),
            item(seq_no=2, engine=Engine.BEPS, receiver=BEPS_RCVR),
        )
    )
    counts = {(c.engine, c.state, c.reason_code): c.count for c in await store.summary()}
    assert counts == {
        (Engine.HVPS, State.QUEUED, None): 2,
        (Engine.HVPS, State.HELD, None): 1,
        (None, State.REJECTED, "4001"): 1,
        (Engine.BEPS, State.QUEUED, None): 1,
    }


async def test_sequences_are_durable_and_reserve_ranges(make_store: StoreFactory) -> None:
    store = await make_store()
    assert await store.next_sequence("hvps") == 1
    assert await store.next_sequence("hvps", 5) == 2
    assert await store.next_sequence("beps") == 1
    with pytest.raises(ValueError, match="count"):
        await store.next_sequence("hvps", 0)
    firsts = await asyncio.gather(*(store.next_sequence("hvps") for _ in range(20)))
    assert sorted(firsts) == list(range(7, 27))
    await store.close()
    again = await make_store(node="B")
    assert await again.next_sequence("hvps") == 27
