"""What only the SQLite journal has: its file, its writer thread and group commit.

corplink.md §5: no 0000 before the journal write is on stable storage.  The
crash test kills a real child process (SIGKILL, no cleanup) while it accepts
requests and prints each MsgId after ``accept`` returned; every printed MsgId
must be in the file afterwards.  Group commit puts many requests in one fsync;
a full disk fails the batch without acknowledging anything it did not write.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from gateway.journal.sqlite import SqliteStore
from gateway.ops.metrics import REGISTRY

from .conftest import NewStore, StoreFactory
from .crash import assert_all_journaled, run_until_killed
from .helpers import request


@pytest.fixture
def backend() -> str:
    """SQLite only in this module."""
    return "sqlite"


# -- durability -----------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_every_acknowledged_request_survives_sigkill(db_path: Path, seed: int) -> None:
    acked = await asyncio.to_thread(run_until_killed, "sqlite", str(db_path), seed)
    assert acked
    await assert_all_journaled(SqliteStore(db_path), acked)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100, 130))
async def test_every_acknowledged_request_survives_sigkill_many_seeds(
    db_path: Path, seed: int
) -> None:
    acked = await asyncio.to_thread(run_until_killed, "sqlite", str(db_path), seed)
    await assert_all_journaled(SqliteStore(db_path), acked)


# -- the writer: group commit, batches, a full disk -----------------------------------


def commits() -> float:
    return REGISTRY.get_sample_value("gateway_journal_commits_total") or 0.0


async def test_group_commit_puts_many_requests_in_one_fsync(store: SqliteStore) -> None:
    before = commits()
    outcomes = await asyncio.gather(*(store.accept(request(f"g-{i}")) for i in range(200)))
    assert all(o.created for o in outcomes)
    assert len({o.record.gw_ref for o in outcomes}) == 200
    assert 1 <= commits() - before < 200


async def test_max_batch_one_still_works(make_store: StoreFactory) -> None:
    store = await make_store(max_batch=1)
    before = commits()
    await asyncio.gather(*(store.accept(request(f"s-{i}")) for i in range(10)))
    assert commits() - before == 10


async def test_full_disk_fails_the_batch_and_the_writer_recovers(store: SqliteStore) -> None:
    kept = await store.accept(request("before"))
    # Simulate a full disk: cap the file at its current size on the writer's connection.
    await store._writer.submit(
        lambda conn: conn.execute(
            "PRAGMA max_page_count = " + str(conn.execute("PRAGMA page_count").fetchone()[0])
        )
    )
    big = [f"full-{i}" for i in range(100)]
    results = await asyncio.gather(
        *(store.accept(request(m, digest="x" * 4000)) for m in big), return_exceptions=True
    )
    failed = [r for r in results if isinstance(r, BaseException)]
    assert failed
    assert all(isinstance(r, sqlite3.OperationalError) for r in failed)
    for msg_id, result in zip(big, results, strict=True):
        found = await store.find_request("C100000001", msg_id)
        # Acknowledged ⇔ journaled: a failed accept left nothing behind.
        assert (found is not None) == (not isinstance(result, BaseException)), msg_id
    assert await store.find_request("C100000001", "before") == kept.record
    await store._writer.submit(lambda conn: conn.execute("PRAGMA max_page_count = 1073741823"))
    assert (await store.accept(request("after"))).created


# -- the file -------------------------------------------------------------------------


async def test_a_newer_schema_is_refused(db_path: Path, new_store: NewStore) -> None:
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    store = new_store()
    with pytest.raises(RuntimeError, match="newer"):
        await store.start()
    with pytest.raises(RuntimeError):
        await store.accept(request("m"))
