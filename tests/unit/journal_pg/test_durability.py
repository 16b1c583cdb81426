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
import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import asyncpg
import pytest

from gateway.journal.postgres import PostgresStore
from gateway.testing_pg import PgServer
from tests.unit.journal.helpers import request

from .conftest import StoreFactory

REPO = Path(__file__).resolve().parents[3]

CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from tests.unit.journal.helpers import request
    from gateway.journal.postgres import PostgresStore

    async def worker(store, w, n):
        for i in range(n):
            msg_id = f"w{w}-{i}"
            outcome = await store.accept(request(msg_id))
            assert outcome.created
            sys.stdout.write(msg_id + "\\n")
            sys.stdout.flush()

    async def main():
        nodes = [PostgresStore(sys.argv[1], node=n, pool_size=4) for n in "AB"]
        for node in nodes:
            await node.start()
        sys.stdout.write("ready\\n")
        sys.stdout.flush()
        await asyncio.gather(*(worker(nodes[w % 2], w, 100_000) for w in range(8)))

    asyncio.run(main())
    """
)


def crash_client(dsn: str, seed: int) -> list[str]:
    """Run the child, SIGKILL it after a random number of acknowledgements."""
    kill_after = random.Random(seed).randint(1, 300)
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, dsn],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    acked: list[str] = []
    try:
        assert proc.stdout.readline() == b"ready\n", proc.stderr.read() if proc.stderr else ""
        while len(acked) < kill_after:
            line = proc.stdout.readline()
            assert line.endswith(b"\n"), "child died early"
            acked.append(line.decode().strip())
        proc.send_signal(signal.SIGKILL)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # Everything the child wrote before dying was acknowledged; a torn last line was not.
    acked += [line.decode() for line in rest.split(b"\n")[:-1]]
    assert proc.returncode == -signal.SIGKILL
    return acked


@pytest.mark.parametrize("seed", [1, 2])
async def test_every_acknowledged_request_survives_client_and_server_crash(
    pg_server: PgServer, dsn: str, seed: int
) -> None:
    acked = await asyncio.to_thread(crash_client, dsn, seed)
    assert acked
    await asyncio.to_thread(pg_server.restart, "immediate")
    store = PostgresStore(dsn)
    await store.start()
    try:
        for msg_id in acked:
            assert await store.find_request("C100000001", msg_id) is not None, msg_id
    finally:
        await store.close()
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
