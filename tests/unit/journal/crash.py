"""A journal client killed mid-flight, for the durability tests (corplink.md §5).

corplink.md §5: no 0000 before the journal write is on stable storage.  The
parent (:func:`run_until_killed`) starts this module as a child process that
accepts requests from eight concurrent workers and prints each MsgId after
``accept`` returned, then SIGKILLs it (no cleanup) after a random number of
acknowledgements.  Every MsgId the child printed was acknowledged, so the
tests then look for each one in the journal (:func:`assert_all_journaled`).

The child (``python -m tests.unit.journal.crash BACKEND TARGET``) uses one
SQLite store on the file ``TARGET``, or two PostgreSQL nodes (A and B, pool 4
each) on the DSN ``TARGET``, the workers alternating between them.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

from gateway.journal.postgres import PostgresStore
from gateway.journal.sqlite import SqliteStore
from tests.unit.journal.helpers import request

REPO = Path(__file__).resolve().parents[3]
WORKERS = 8


def run_until_killed(backend: str, target: str, seed: int) -> list[str]:
    """Run the child, SIGKILL it after a random number of acknowledgements.

    Returns every MsgId it acknowledged (a torn last line was not).
    """
    kill_after = random.Random(seed).randint(1, 300)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.unit.journal.crash", backend, target],
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


async def assert_all_journaled(store: SqliteStore | PostgresStore, acked: list[str]) -> None:
    """Start ``store`` (a fresh one, after the crash) and find every acknowledged MsgId."""
    await store.start()
    try:
        for msg_id in acked:
            assert await store.find_request("C100000001", msg_id) is not None, msg_id
    finally:
        await store.close()


# -- the child ------------------------------------------------------------------------


async def _worker(store: SqliteStore | PostgresStore, w: int, n: int) -> None:
    for i in range(n):
        msg_id = f"w{w}-{i}"
        outcome = await store.accept(request(msg_id))
        assert outcome.created
        sys.stdout.write(msg_id + "\n")
        sys.stdout.flush()


async def _child(backend: str, target: str) -> None:
    stores: list[SqliteStore | PostgresStore]
    if backend == "sqlite":
        stores = [SqliteStore(Path(target))]
    else:
        stores = [PostgresStore(target, node=n, pool_size=4) for n in "AB"]
    for store in stores:
        await store.start()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    await asyncio.gather(*(_worker(stores[w % len(stores)], w, 100_000) for w in range(WORKERS)))


if __name__ == "__main__":
    asyncio.run(_child(sys.argv[1], sys.argv[2]))
