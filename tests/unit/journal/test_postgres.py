"""What only the PostgreSQL journal has: sequences, pools, migrations, several nodes.

The behaviour both backends share is in test_requests.py and
test_engine_side.py; packaging and leases across nodes are in
test_postgres_nodes.py, crashes and server restarts in
test_postgres_durability.py.
"""

from __future__ import annotations

import asyncio
from datetime import date

import asyncpg
import pytest

from gateway.journal import postgres_schema
from gateway.journal.postgres import PostgresStore
from gateway.journal.records import DailyLimit, NewRequest
from gateway.model import State

from .conftest import StoreFactory
from .helpers import BEYOND_BIGINT, CAP, INVALID_REQUESTS, capped, item, request


@pytest.fixture
def backend() -> str:
    """PostgreSQL only in this module."""
    return "postgres"


async def test_gwref_widens_past_nine_digits(store: PostgresStore, sql: asyncpg.Connection) -> None:
    await sql.execute("SELECT setval('request_ids', 999999999)")
    outcome = await store.accept(request("m-wide"))
    assert outcome.record is not None
    assert outcome.record.gw_ref == "GW20261127A1000000000"


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


async def test_an_amount_beyond_bigint_fen_is_refused_and_nothing_is_written(
    store: PostgresStore,
) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        await store.accept(BEYOND_BIGINT)
    assert await store.find_request("C100000001", "v") is None
    assert await store.summary() == []


@pytest.mark.parametrize("bad", INVALID_REQUESTS)
async def test_a_refused_request_does_not_consume_a_gwref_number(
    store: PostgresStore, sql: asyncpg.Connection, bad: NewRequest
) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (each case has its own message)
        await store.accept(bad)
    assert await sql.fetchval("SELECT is_called FROM request_ids") is False


# -- daily limits (corplink.md §6) ----------------------------------------------------


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


# -- schema and lifecycle -------------------------------------------------------------


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


async def test_an_unreachable_database_fails_start(pg_server: object) -> None:
    from gateway.testing import free_port

    store = PostgresStore(f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere")
    with pytest.raises(OSError):  # noqa: PT011 (connection refused, whatever its errno)
        await store.start()
    with pytest.raises(RuntimeError):
        await store.accept(request("m"))


def test_constructor_checks_its_arguments() -> None:
    # The node letter is checked in test_requests.py, for both backends.
    with pytest.raises(ValueError, match="pool_size"):
        PostgresStore("postgresql://x", pool_size=0)
    with pytest.raises(ValueError, match="lease"):
        PostgresStore("postgresql://x", lease=0)


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
