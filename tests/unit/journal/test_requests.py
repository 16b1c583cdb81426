"""The request side of the journal: accept, dedupe, GwRef, status, lifecycle.

Runs against both backends (``[sqlite]``, ``[postgres]``); what only one
backend has (SQLite's schema pragma, PostgreSQL's sequences, pools and
several nodes) is tested in test_sqlite.py and test_postgres*.py.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from gateway.clock import SHANGHAI
from gateway.journal.records import NewRequest
from gateway.model import Engine, State

from .conftest import JournalStore, NewStore, StoreFactory
from .helpers import BEPS_RCVR, INVALID_REQUESTS, T0, WORK_DATE, at, capped, item, request

GWREF = re.compile(r"GW(\d{8})([A-Z])(\d{9})")


async def test_accept_then_find_returns_the_same_record(store: JournalStore) -> None:
    outcome = await store.accept(request("20261127-000001"))
    assert outcome.created
    found = await store.find_request("C100000001", "20261127-000001")
    assert found is not None
    assert found == outcome.record
    assert (found.trn_code, found.oper_id, found.digest) == ("PAY", "op01", "d" * 64)
    assert await store.find_request("C100000001", "nope") is None
    assert await store.find_request("C100000002", "20261127-000001") is None


async def test_gwref_is_gw_date_node_and_nine_digit_id(make_store: StoreFactory) -> None:
    store = await make_store(node="B")
    first = (await store.accept(request("m-1"))).record
    second = (await store.accept(request("m-2"))).record
    assert first is not None
    assert second is not None
    assert GWREF.fullmatch(first.gw_ref)
    assert first.gw_ref == "GW20261127B000000001"
    assert second.gw_ref == "GW20261127B000000002"


async def test_gwref_date_is_the_shanghai_date_whatever_the_offset(store: JournalStore) -> None:
    # 16:30 UTC on the 26th is 00:30 on the 27th in Shanghai.
    late_utc = datetime(2026, 11, 26, 16, 30, tzinfo=UTC)
    outcome = await store.accept(request("m-utc", received_at=late_utc))
    assert outcome.record is not None
    assert outcome.record.gw_ref.startswith("GW20261127A")


async def test_received_at_round_trips_exactly_and_reads_back_in_shanghai(
    store: JournalStore,
) -> None:
    odd = datetime(2026, 11, 27, 1, 2, 3, 999999, tzinfo=timezone(timedelta(hours=-5)))
    await store.accept(request("m-t", received_at=odd))
    found = await store.find_request("C100000001", "m-t")
    assert found is not None
    assert found.received_at == odd
    assert found.received_at.utcoffset() == timedelta(hours=8)


async def test_duplicate_msgid_writes_nothing_and_returns_the_original(
    store: JournalStore,
) -> None:
    original = await store.accept(request("m-dup", digest="a" * 64))
    again = await store.accept(request("m-dup", digest="b" * 64, received_at=at(60)))
    assert not again.created
    assert again.record == original.record  # the caller compares digests (corplink.md §7)
    assert sum(c.count for c in await store.summary()) == 1


async def test_same_msgid_for_another_corp_is_a_new_request(store: JournalStore) -> None:
    a = await store.accept(request("m-x", corp_id="C1"))
    b = await store.accept(request("m-x", corp_id="C2"))
    assert a.created
    assert b.created
    assert a.record is not None
    assert b.record is not None
    assert a.record.gw_ref != b.record.gw_ref


async def test_fifty_identical_accepts_racing_create_exactly_one(store: JournalStore) -> None:
    outcomes = await asyncio.gather(*(store.accept(request("m-race")) for _ in range(50)))
    assert sum(o.created for o in outcomes) == 1
    assert len({o.record for o in outcomes}) == 1
    assert sum(c.count for c in await store.summary()) == 1


async def test_item_status_history_is_in_order(store: JournalStore) -> None:
    await store.accept(request("m-s"))
    view = await store.item_status("C100000001", "m-s")
    assert view is not None
    assert (view.state, view.engine, view.work_date) == (State.QUEUED, Engine.HVPS, WORK_DATE)
    assert [(t.state, t.at) for t in view.history] == [(State.ACCEPTED, T0), (State.QUEUED, T0)]
    assert await store.item_status("C100000001", "unknown") is None


async def test_held_item_status_carries_release_time(store: JournalStore) -> None:
    await store.accept(request("m-h", item(state=State.HELD, release_at=at(3600))))
    view = await store.item_status("C100000001", "m-h")
    assert view is not None
    assert (view.state, view.release_at) == (State.HELD, at(3600))
    assert view.release_at is not None
    assert view.release_at.utcoffset() == timedelta(hours=8)


async def test_batch_items_get_their_own_ids_and_status(store: JournalStore) -> None:
    items = [
        item(seq_no=1, engine=Engine.BEPS, receiver=BEPS_RCVR),
        item(seq_no=2, state=State.REJECTED, engine=None, receiver=None, reason_code="4001"),
        item(seq_no=3, engine=Engine.BEPS, receiver=BEPS_RCVR, amount="0.01"),
    ]
    outcome = await store.accept(request("m-b", *items, trn_code="PAYROLL"))
    assert outcome.record is not None
    ref = outcome.record.gw_ref
    rejected = await store.item_status("C100000001", "m-b", 2)
    assert rejected is not None
    assert (rejected.state, rejected.reason_code) == (State.REJECTED, "4001")
    assert rejected.reason_text == "bank code not in the directory"
    assert [t.state for t in rejected.history] == [State.ACCEPTED, State.REJECTED]
    first = await store.item_status("C100000001", "m-b")
    assert first is not None
    assert first.seq_no == 1
    assert await store.item_status("C100000001", "m-b", 4) is None
    queued = await store.claim_queued(Engine.BEPS, 10)
    assert [(q.seq_no, q.tx_id, q.end_to_end_id) for q in queued] == [
        (1, f"{ref}-1", "m-b-1"),
        (3, f"{ref}-3", "m-b-3"),
    ]
    assert queued[1].amount == Decimal("0.01")


async def test_a_large_batch_keeps_its_order(store: JournalStore) -> None:
    items = [item(seq_no=n, engine=Engine.BEPS, receiver=BEPS_RCVR) for n in range(5000, 0, -1)]
    await store.accept(request("m-big-batch", *items, trn_code="PAYROLL"))
    queued = await store.claim_queued(Engine.BEPS, 10_000)
    assert [q.seq_no for q in queued] == list(range(5000, 0, -1))
    assert [q.item_id for q in queued] == sorted(q.item_id for q in queued)


async def test_end_to_end_id_stays_within_35_characters(store: JournalStore) -> None:
    long_id = "X" * 35
    await store.accept(request(long_id, item(seq_no=50000, engine=Engine.BEPS, receiver=BEPS_RCVR)))
    (queued,) = await store.claim_queued(Engine.BEPS, 10)
    assert queued.end_to_end_id == "X" * 29 + "-50000"
    assert queued.msg_id == long_id  # the full MsgId is kept


async def test_amounts_are_exact(store: JournalStore) -> None:
    await store.accept(request("m-big", item(amount="999999999999999.99")))
    await store.accept(request("m-int", item(amount="5")))
    amounts = [q.amount for q in await store.claim_queued(Engine.HVPS, 10)]
    assert amounts == [Decimal("999999999999999.99"), Decimal("5.00")]
    assert str(amounts[1]) == "5.00"


@pytest.mark.parametrize("bad", INVALID_REQUESTS)
async def test_invalid_requests_are_refused_and_nothing_is_written(
    store: JournalStore, bad: NewRequest
) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (each case has its own message)
        await store.accept(bad)
    assert await store.find_request("C100000001", "v") is None
    assert await store.summary() == []


async def test_a_duplicate_over_the_limit_still_answers_with_the_original(
    store: JournalStore,
) -> None:
    first = await store.accept(capped("l-dup", "900.00"))
    again = await store.accept(capped("l-dup", "900.00"))
    assert (again.created, again.over_limit, again.record) == (False, False, first.record)


# -- lifecycle ------------------------------------------------------------------------


async def test_data_survives_reopen(make_store: StoreFactory) -> None:
    store = await make_store()
    first = (await store.accept(request("m-keep"))).record
    assert first is not None
    await store.close()
    again = await make_store()
    assert await again.find_request("C100000001", "m-keep") == first
    nxt = (await again.accept(request("m-next"))).record
    assert nxt is not None
    assert nxt.gw_ref.endswith("000000002")


#: Keyword arguments that make callers wait at ``close()``: SQLite queues every write for
#: its one writer anyway; PostgreSQL gets two connections for twenty calls.
CONTENDED: dict[str, dict[str, int]] = {"sqlite": {}, "postgres": {"pool_size": 2}}


async def test_close_finishes_the_calls_in_flight(make_store: StoreFactory, backend: str) -> None:
    store = await make_store(**CONTENDED[backend])
    pending = [asyncio.ensure_future(store.accept(request(f"m-{i}"))) for i in range(20)]
    await asyncio.sleep(0)  # let them enqueue / start
    await store.close()
    assert all(p.result().created for p in pending)
    again = await make_store()
    assert sum(c.count for c in await again.summary()) == 20


async def test_calls_before_start_and_after_close_raise(new_store: NewStore) -> None:
    store = new_store()
    with pytest.raises(RuntimeError):
        await store.find_request("C", "m")
    await store.start()
    with pytest.raises(RuntimeError):
        await store.start()
    await store.close()
    await store.close()  # idempotent
    with pytest.raises(RuntimeError):
        await store.accept(request("m"))
    with pytest.raises(RuntimeError):
        await store.summary()


def test_node_must_be_one_letter(new_store: NewStore) -> None:
    for bad in ("", "a", "AB", "1"):
        with pytest.raises(ValueError, match="node"):
            new_store(node=bad)


async def test_times_keep_microseconds_in_shanghai(store: JournalStore) -> None:
    when = datetime(2026, 11, 27, 9, 59, 59, 1, tzinfo=SHANGHAI)
    await store.accept(request("m-us", received_at=when))
    view = await store.item_status("C100000001", "m-us")
    assert view is not None
    assert view.history[0].at == when
    assert view.history[0].at.tzinfo is not None
