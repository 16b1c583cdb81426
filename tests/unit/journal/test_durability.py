"""Durability and group commit: what was acknowledged survives, many requests per fsync.

corplink.md §5: no 0000 before the journal write is on stable storage.  The
crash test kills a real child process (SIGKILL, no cleanup) while it accepts
requests and prints each MsgId after ``accept`` returned; every printed MsgId
must be in the file afterwards.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gateway.journal.sqlite import SqliteStore
from gateway.ops.metrics import REGISTRY

from .helpers import request

REPO = Path(__file__).resolve().parents[3]

CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from tests.unit.journal.helpers import request
    from gateway.journal.sqlite import SqliteStore

    async def worker(store, w, n):
        for i in range(n):
            msg_id = f"w{w}-{i}"
            outcome = await store.accept(request(msg_id))
            assert outcome.created
            sys.stdout.write(msg_id + "\\n")
            sys.stdout.flush()

    async def main():
        store = SqliteStore(Path(sys.argv[1]))
        await store.start()
        sys.stdout.write("ready\\n")
        sys.stdout.flush()
        await asyncio.gather(*(worker(store, w, 100_000) for w in range(8)))

    asyncio.run(main())
    """
)


def crash_once(db_path: Path, seed: int) -> list[str]:
    """Run the child, SIGKILL it after a random number of acknowledgements."""
    rng = random.Random(seed)
    kill_after = rng.randint(1, 300)
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db_path)],
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


async def assert_all_journaled(db_path: Path, acked: list[str]) -> None:
    store = SqliteStore(db_path)
    await store.start()
    try:
        for msg_id in acked:
            assert await store.find_request("C100000001", msg_id) is not None, msg_id
    finally:
        await store.close()


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_every_acknowledged_request_survives_sigkill(tmp_path: Path, seed: int) -> None:
    db_path = tmp_path / "journal.sqlite"
    acked = await asyncio.to_thread(crash_once, db_path, seed)
    assert acked
    await assert_all_journaled(db_path, acked)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100, 130))
async def test_every_acknowledged_request_survives_sigkill_many_seeds(
    tmp_path: Path, seed: int
) -> None:
    db_path = tmp_path / "journal.sqlite"
    acked = await asyncio.to_thread(crash_once, db_path, seed)
    await assert_all_journaled(db_path, acked)


def commits() -> float:
    return REGISTRY.get_sample_value("gateway_journal_commits_total") or 0.0


async def test_group_commit_puts_many_requests_in_one_fsync(store: SqliteStore) -> None:
    before = commits()
    outcomes = await asyncio.gather(*(store.accept(request(f"g-{i}")) for i in range(200)))
    assert all(o.created for o in outcomes)
    assert len({o.record.gw_ref for o in outcomes}) == 200
    assert 1 <= commits() - before < 200


async def test_max_batch_one_still_works(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "j.sqlite", max_batch=1)
    await store.start()
    try:
        before = commits()
        await asyncio.gather(*(store.accept(request(f"s-{i}")) for i in range(10)))
        assert commits() - before == 10
    finally:
        await store.close()


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
