"""The request side on PostgreSQL: accept, dedupe, GwRef, status, limits, lifecycle.

The same behaviour as the SQLite journal (tests/unit/journal/test_requests.py),
run against :class:`PostgresStore` on a private server.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import asyncpg
import pytest

from gateway.clock import SHANGHAI
from gateway.journal import postgres_schema
from gateway.journal.postgres import PostgresStore
from gateway.journal.records import DailyLimit, NewRequest
from gateway.model import Engine, State
from tests.unit.journal.helpers import BEPS_RCVR, T0, WORK_DATE, at, item, request

from .conftest import StoreFactory

GWREF = re.compile(r"GW(\d{8})([A-Z])(\d{9})")


async def test_accept_then_find_returns_the_same_record(store: PostgresStore) -> None:
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


async def test_gwref_widens_past_nine_digits(store: PostgresStore, sql: asyncpg.Connection) -> None:
    await sql.execute("SELECT setval('request_ids', 999999999)")
    outcome = await store.accept(request("m-wide"))
    assert outcome.record is not None
    assert outcome.record.gw_ref == "GW20261127A1000000000"


async def test_gwref_date_is_the_shanghai_date_whatever_the_offset(store: PostgresStore) -> None:
    # 16:30 UTC on the 26th is 00:30 on the 27th in Shanghai.
    late_utc = datetime(2026, 11, 26, 16, 30, tzinfo=UTC)
    outcome = await store.accept(request("m-utc", received_at=late_utc))
    assert outcome.record is not None
    assert outcome.record.gw_ref.startswith("GW20261127A")


async def test_received_at_round_trips_exactly_and_reads_back_in_shanghai(
    store: PostgresStore,
) -> None:
    odd = datetime(2026, 11, 27, 1, 2, 3, 999999, tzinfo=timezone(timedelta(hours=-5)))
    await store.accept(request("m-t", received_at=odd))
    found = await store.find_request("C100000001", "m-t")
    assert found is not None
    assert found.received_at == odd
    assert found.received_at.utcoffset() == timedelta(hours=8)


async def test_duplicate_msgid_writes_nothing_and_returns_the_original(
    store: PostgresStore,
) -> None:
    original = await store.accept(request("m-dup", digest="a" * 64))
    again = await store.accept(request("m-dup", digest="b" * 64, received_at=at(60)))
    assert not again.created
    assert again.record == original.record  # the caller compares digests (corplink.md §7)
    assert sum(c.count for c in await store.summary()) == 1


async def test_same_msgid_for_another_corp_is_a_new_request(store: PostgresStore) -> None:
    a = await store.accept(request("m-x", corp_id="C1"))
    b = await store.accept(request("m-x", corp_id="C2"))
    assert a.created
    assert b.created
    assert a.record is not None
    assert b.record is not None
    assert a.record.gw_ref != b.record.gw_ref


async def test_fifty_identical_accepts_racing_create_exactly_one(store: PostgresStore) -> None:
    outcomes = await asyncio.gather(*(store.accept(request("m-race")) for _ in range(50)))
    assert sum(o.created for o in outcomes) == 1
    assert len({o.record for o in outcomes}) == 1
    assert sum(c.count for c in await store.summary()) == 1


async def test_identical_accepts_racing_on_two_nodes_create_exactly_one(
    make_store: StoreFactory, sql: asyncpg.Connection
) -> None:
    a = await make_store(node="A")
    b = await make_store(node="B")
    for n in range(5):
        msg_id = f"m-race-{n}"
        outcomes = await asyncio.gather(
            *(node.accept(request(msg_id)) for _ in range(25) for node in (a, b))
        )
        assert sum(o.created for o in outcomes) == 1
        assert len({o.record for o in outcomes}) == 1
    assert await sql.fetchval("SELECT count(*) FROM items") == 5
    # The daily total counted each request once, not once per racer.
    assert await sql.fetchval("SELECT total_fen FROM daily_totals") == 5 * 123456


async def test_item_status_history_is_in_order(store: PostgresStore) -> None:
    await store.accept(request("m-s"))
    view = await store.item_status("C100000001", "m-s")
    assert view is not None
    assert (view.state, view.engine, view.work_date) == (State.QUEUED, Engine.HVPS, WORK_DATE)
    assert [(t.state, t.at) for t in view.history] == [(State.ACCEPTED, T0), (State.QUEUED, T0)]
    assert await store.item_status("C100000001", "unknown") is None


async def test_held_item_status_carries_release_time(store: PostgresStore) -> None:
    await store.accept(request("m-h", item(state=State.HELD, release_at=at(3600))))
    view = await store.item_status("C100000001", "m-h")
    assert view is not None
    assert (view.state, view.release_at) == (State.HELD, at(3600))
    assert view.release_at is not None
    assert view.release_at.utcoffset() == timedelta(hours=8)


async def test_batch_items_get_their_own_ids_and_status(store: PostgresStore) -> None:
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


async def test_a_large_batch_keeps_its_order(store: PostgresStore) -> None:
    items = [item(seq_no=n, engine=Engine.BEPS, receiver=BEPS_RCVR) for n in range(5000, 0, -1)]
    await store.accept(request("m-big-batch", *items, trn_code="PAYROLL"))
    queued = await store.claim_queued(Engine.BEPS, 10_000)
    assert [q.seq_no for q in queued] == list(range(5000, 0, -1))
    assert [q.item_id for q in queued] == sorted(q.item_id for q in queued)


async def test_end_to_end_id_stays_within_35_characters(store: PostgresStore) -> None:
    long_id = "X" * 35
    await store.accept(request(long_id, item(seq_no=50000, engine=Engine.BEPS, receiver=BEPS_RCVR)))
    (queued,) = await store.claim_queued(Engine.BEPS, 10)
    assert queued.end_to_end_id == "X" * 29 + "-50000"
    assert queued.msg_id == long_id  # the full MsgId is kept


async def test_amounts_are_exact(store: PostgresStore) -> None:
    await store.accept(request("m-big", item(amount="999999999999999.99")))
    await store.accept(request("m-int", item(amount="5")))
    amounts = [q.amount for q in await store.claim_queued(Engine.HVPS, 10)]
    assert amounts == [Decimal("999999999999999.99"), Decimal("5.00")]
    assert str(amounts[1]) == "5.00"


@pytest.mark.parametrize(
    "bad",
    [
        request("v", item(amount="1.005")),
        request("v", item(amount="NaN")),
        request("v", item(amount="1E+30")),  # beyond bigint fen
        request("v", item(), item()),  # two items without SeqNo
        request("v", item(seq_no=1), item(seq_no=1)),
        request("v", item(state=State.SENT)),
        request("v", item(state=State.HELD)),  # no release_at
        request("v", item(state=State.HELD, release_at=datetime(2026, 11, 27, 11, 0))),  # naive
        request("v", item(engine=None)),
        request("v", item(state=State.REJECTED)),  # no reason code
        request("v", received_at=datetime(2026, 11, 27, 10, 0)),  # naive
    ],
)
async def test_invalid_requests_are_refused_and_nothing_is_written(
    store: PostgresStore, sql: asyncpg.Connection, bad: NewRequest
) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (each case has its own message)
        await store.accept(bad)
    assert await store.find_request("C100000001", "v") is None
    assert await store.summary() == []
    # A refused request does not even consume a GwRef number.
    assert await sql.fetchval("SELECT is_called FROM request_ids") is False


# -- daily limits (corplink.md §6) ---------------------------------------------------

CAP = DailyLimit(day=date(2026, 11, 27), cap=Decimal("1000.00"))


def capped(msg_id: str, amount: str, *, limit: DailyLimit = CAP, oper: str = "op01") -> NewRequest:
    base = request(msg_id, item(amount=amount))
    return NewRequest(
        corp_id=base.corp_id,
        msg_id=base.msg_id,
        oper_id=oper,
        trn_code=base.trn_code,
        digest=base.digest,
        received_at=base.received_at,
        items=base.items,
        daily_limit=limit,
    )


async def test_daily_limit_refuses_what_goes_over_and_writes_nothing(
    store: PostgresStore, sql: asyncpg.Connection
) -> None:
    assert (await store.accept(capped("l-1", "600.00"))).created
    over = await store.accept(capped("l-2", "400.01"))
    assert (over.created, over.record, over.over_limit) == (False, None, True)
    assert await store.find_request("C100000001", "l-2") is None
    assert (await store.accept(capped("l-3", "400.00"))).created  # exactly the cap
    assert not (await store.accept(capped("l-4", "0.01"))).created
    # Other operators, other days and single requests above the cap.
    assert (await store.accept(capped("l-5", "1000.00", oper="op02"))).created
    tomorrow = DailyLimit(day=date(2026, 11, 28), cap=CAP.cap)
    assert (await store.accept(capped("l-6", "999.00", limit=tomorrow))).created
    too_big = await store.accept(capped("l-7", "1000.01", oper="op03"))
    assert too_big.over_limit
    totals = await sql.fetch("SELECT oper_id, day, total_fen FROM daily_totals ORDER BY 1, 2")
    assert [tuple(r) for r in totals] == [
        ("op01", date(2026, 11, 27), 100000),
        ("op01", date(2026, 11, 28), 99900),
        ("op02", date(2026, 11, 27), 100000),
    ]
    assert sum(c.count for c in await store.summary()) == 4


async def test_a_duplicate_over_the_limit_still_answers_with_the_original(
    store: PostgresStore,
) -> None:
    first = await store.accept(capped("l-dup", "900.00"))
    again = await store.accept(capped("l-dup", "900.00"))
    assert (again.created, again.over_limit, again.record) == (False, False, first.record)


async def test_rejected_items_do_not_count_and_uncapped_requests_do(
    store: PostgresStore, sql: asyncpg.Connection
) -> None:
    items = (
        item(seq_no=1, amount="700.00"),
        item(seq_no=2, state=State.REJECTED, engine=None, receiver=None, reason_code="4001"),
    )
    await store.accept(request("l-batch", *items, trn_code="PAYROLL"))
    assert await sql.fetchval("SELECT total_fen FROM daily_totals") == 70000
    assert (await store.accept(capped("l-a", "300.00"))).created
    assert (await store.accept(capped("l-b", "0.01"))).over_limit


async def test_daily_limit_is_exact_with_two_nodes_racing(make_store: StoreFactory) -> None:
    a = await make_store(node="A")
    b = await make_store(node="B")
    outcomes = await asyncio.gather(
        *((a, b)[n % 2].accept(capped(f"l-race-{n}", "30.00")) for n in range(50))
    )
    assert sum(o.created for o in outcomes) == 33  # 33 x 30.00 <= 1000.00 < 34 x 30.00
    assert sum(o.over_limit for o in outcomes) == 17
    assert sum(c.count for c in await a.summary()) == 33


# -- lifecycle ----------------------------------------------------------------------


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


async def test_a_newer_schema_is_refused(make_store: StoreFactory, sql: asyncpg.Connection) -> None:
    await (await make_store()).close()
    await sql.execute("INSERT INTO schema_version (version, node) VALUES (99, 'Z')")
    with pytest.raises(RuntimeError, match="newer"):
        await make_store()


async def test_a_version_one_database_is_upgraded_in_place(
    make_store: StoreFactory, sql: asyncpg.Connection
) -> None:
    async with sql.transaction():
        await sql.execute(postgres_schema._VERSION_TABLE)
        await sql.execute(postgres_schema.MIGRATIONS[0])
        await sql.execute("INSERT INTO schema_version (version, node) VALUES (1, 'A')")
    store = await make_store()
    assert (await store.accept(capped("m-up", "10.00"))).created
    versions = await sql.fetch("SELECT version FROM schema_version ORDER BY version")
    assert [r["version"] for r in versions] == list(range(1, postgres_schema.SCHEMA_VERSION + 1))


async def test_calls_before_start_and_after_close_raise(dsn: str) -> None:
    store = PostgresStore(dsn)
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


async def test_an_unreachable_database_fails_start(pg_server: object) -> None:
    from gateway.testing import free_port

    store = PostgresStore(f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere")
    with pytest.raises(OSError):  # noqa: PT011 (connection refused, whatever its errno)
        await store.start()
    with pytest.raises(RuntimeError):
        await store.accept(request("m"))


async def test_close_waits_for_calls_in_flight(make_store: StoreFactory) -> None:
    store = await make_store(pool_size=2)
    pending = [asyncio.ensure_future(store.accept(request(f"m-{i}"))) for i in range(20)]
    await asyncio.sleep(0)  # let them start
    await store.close()
    assert all(p.result().created for p in pending)
    again = await make_store()
    assert sum(c.count for c in await again.summary()) == 20


def test_constructor_checks_its_arguments() -> None:
    for bad in ("", "a", "AB", "1"):
        with pytest.raises(ValueError, match="node"):
            PostgresStore("postgresql://x", node=bad)
    with pytest.raises(ValueError, match="pool_size"):
        PostgresStore("postgresql://x", pool_size=0)
    with pytest.raises(ValueError, match="lease"):
        PostgresStore("postgresql://x", lease=0)


async def test_times_keep_microseconds_in_shanghai(store: PostgresStore) -> None:
    when = datetime(2026, 11, 27, 9, 59, 59, 1, tzinfo=SHANGHAI)
    await store.accept(request("m-us", received_at=when))
    view = await store.item_status("C100000001", "m-us")
    assert view is not None
    assert view.history[0].at == when
    assert view.history[0].at.tzinfo is not None


async def test_pending_writes_counts_callers_waiting_for_a_connection(
    make_store: StoreFactory,
) -> None:
    store = await make_store(pool_size=1)
    assert store.pending_writes == 0
    tasks = [asyncio.ensure_future(store.accept(request(f"p-{i}"))) for i in range(5)]
    await asyncio.sleep(0)
    assert store.pending_writes == 4
    await asyncio.gather(*tasks)
    assert store.pending_writes == 0
