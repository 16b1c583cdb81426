"""Durability on PostgreSQL: what was acknowledged survives a client and a server crash.

corplink.md §5: no 0000 before the journal write is on stable storage.  A
child process accepts requests on two nodes' stores and prints each MsgId
after ``accept`` returned; it is SIGKILLed at a random point, then the
server is stopped the hard way (``pg_ctl stop -m immediate``: no checkpoint,
the next start replays the WAL, so only flushed commits come back).  Every
printed MsgId must be found, exactly once, with its items.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from gateway.journal.postgres import PostgresStore
from gateway.testing_pg import PgServer

from .conftest import StoreFactory
from .crash import assert_all_journaled, run_until_killed
from .helpers import request


@pytest.fixture
def backend() -> str:
    """PostgreSQL only in this module."""
    return "postgres"


@pytest.mark.parametrize("seed", [1, 2])
async def test_every_acknowledged_request_survives_client_and_server_crash(
    pg_server: PgServer, dsn: str, seed: int
) -> None:
    acked = await asyncio.to_thread(run_until_killed, "postgres", dsn, seed)
    assert acked
    await asyncio.to_thread(pg_server.restart, "immediate")
    await assert_all_journaled(PostgresStore(dsn), acked)
    sql = await asyncpg.connect(dsn)
    try:
        orphans = await sql.fetchval(
            "SELECT count(*) FROM requests r WHERE NOT EXISTS"
            " (SELECT 1 FROM items i WHERE i.request_id = r.id)"
        )
        trails = await sql.fetchval(
            "SELECT count(*) FROM items i WHERE (SELECT count(*) FROM transitions t"
            " WHERE t.item_id = i.id) <> 2"
        )
    finally:
        await sql.close()
    assert (orphans, trails) == (0, 0)  # each request whole or absent


async def test_the_store_rides_out_a_server_restart_and_an_outage(
    pg_server: PgServer, make_store: StoreFactory
) -> None:
    """Dead pooled connections are replaced; during the outage calls fail, never lie."""
    store = await make_store(pool_size=3)
    await asyncio.gather(*(store.accept(request(f"before-{i}")) for i in range(6)))
    await asyncio.to_thread(pg_server.restart, "fast")
    assert (await store.accept(request("after-restart"))).created
    await asyncio.to_thread(pg_server.stop, "fast")
    try:
        # Refused, or the pooled connection found dead: either way an error (9999), no answer.
        with pytest.raises((OSError, asyncpg.PostgresError, asyncpg.InterfaceError)):
            await store.accept(request("during-outage"))
    finally:
        await asyncio.to_thread(pg_server.start)
    assert (await store.accept(request("after-outage"))).created
    assert await store.find_request("C100000001", "during-outage") is None
    assert sum(c.count for c in await store.summary()) == 8
